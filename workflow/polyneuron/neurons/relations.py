"""Relation-specific neurons: each neuron as a classifier of "this prompt expresses relation r".

A neuron's score of a prompt is its mean activation over the prompt's tokens (the per-example
activations). For relation r, the positives are r's training prompts and the negatives a seeded
sample of ``ratio`` (4) times as many prompts of other relations; a neuron's relation score is
the average precision (AP) of ranking positives above negatives by its activation. The top N
neurons per relation and language are its relation neurons (the reference keeps 3,000 of
LLaMA-2 7B's 352,256; :func:`scaled_top_n` keeps the same share of a model's neurons);
:func:`relation_overlap` says how far languages share them.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence

import polars as pl
import torch

from polyneuron.neurons.overlap import pairwise_overlap
from polyneuron.neurons.select import top_k_mask

REFERENCE_NEURONS = 32 * 11008  # LLaMA-2 7B: layers x FFN width
log = logging.getLogger(__name__)


def average_precision(scores: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """AP of each column of ``scores [n, d]`` for the boolean labels ``positive [n]``:
    Σ_k (R_k − R_{k−1}) P_k over the distinct score thresholds, high to low (ties share a
    threshold, as in scikit-learn's ``average_precision_score``)."""
    n_pos = int(positive.sum())
    if n_pos == 0:
        raise ValueError("average precision needs at least one positive")
    order = torch.argsort(scores, dim=0, descending=True, stable=True)
    ranked = scores.gather(0, order)
    hits = positive[order].double()  # [n, d]
    tp = hits.cumsum(0)
    rank = torch.arange(1, scores.shape[0] + 1, dtype=torch.float64)[:, None]
    # a threshold ends where the next score differs (or at the last example)
    end = torch.ones_like(ranked, dtype=torch.bool)
    end[:-1] = ranked[1:] != ranked[:-1]
    precision = tp / rank
    recall = tp / n_pos
    recall_at_ends = torch.where(end, recall, torch.zeros_like(recall))
    previous = torch.cat(
        [torch.zeros_like(recall[:1]), recall_at_ends.cummax(0).values[:-1]], dim=0
    )
    gain = torch.where(end, recall - previous, torch.zeros_like(recall))
    return (gain * precision).sum(0)


def classification_rows(
    labels: Sequence[str], relation: str, ratio: int = 4, seed: int = 0
) -> tuple[list[int], list[bool]]:
    """Rows of ``relation`` (positives) and a seeded sample of ``ratio`` times as many rows of
    other relations (all of them when there are fewer), with their labels."""
    positives = [i for i, label in enumerate(labels) if label == relation]
    others = [i for i, label in enumerate(labels) if label != relation]
    n_neg = min(len(others), ratio * len(positives))
    negatives = sorted(random.Random(f"{seed}:{relation}").sample(others, n_neg))
    rows = positives + negatives
    return rows, [True] * len(positives) + [False] * len(negatives)


def scaled_top_n(top_n: int, n_neurons: int, reference: int = REFERENCE_NEURONS) -> int:
    """The reference's top-N as the same share of this model's neurons (at least 1)."""
    return max(1, round(top_n * n_neurons / reference))


RELATION_NEURON_SCHEMA = {
    "layer": pl.Int32,
    "neuron": pl.Int32,
    "group": pl.String,
    "lang": pl.String,
    "score": pl.Float64,
    "selected": pl.Boolean,
}

RELATION_OVERLAP_SCHEMA = {
    "group": pl.String,
    "lang_a": pl.String,
    "lang_b": pl.String,
    "n_a": pl.Int64,
    "n_b": pl.Int64,
    "n_overlap": pl.Int64,
    "jaccard": pl.Float64,
}


def relation_neurons(
    acts: torch.Tensor,
    labels: Sequence[str],
    lang: str,
    top_n: int,
    reference: int = REFERENCE_NEURONS,
    ratio: int = 4,
    seed: int = 0,
) -> tuple[pl.DataFrame, dict[str, torch.Tensor]]:
    """Every neuron's relation score in one language from its per-example activations
    ``acts [example, layer, neuron]`` and the examples' relation ``labels``: one row per
    (relation, layer, neuron) with its AP (``score``) and whether it is among the relation's
    :func:`scaled_top_n` neurons (``selected``), and those masks (flat over layer and neuron)
    per relation. A relation without another one to contrast with is skipped, with a warning."""
    n_layers, n_neurons = acts.shape[1], acts.shape[2]
    k = scaled_top_n(top_n, n_layers * n_neurons, reference)
    frames = [pl.DataFrame(schema=RELATION_NEURON_SCHEMA)]
    masks = {}
    for relation in sorted(set(labels)):
        rows, truth = classification_rows(labels, relation, ratio, seed)
        if all(truth):
            log.warning("%s %s: no other relation to contrast with; skipped", lang, relation)
            continue
        ap = average_precision(acts[rows].flatten(1), torch.tensor(truth))
        masks[relation] = top_k_mask(ap, k)
        frames.append(
            pl.DataFrame(
                {
                    "layer": torch.arange(n_layers).repeat_interleave(n_neurons).numpy(),
                    "neuron": torch.arange(n_neurons).repeat(n_layers).numpy(),
                    "group": relation,
                    "lang": lang,
                    "score": ap.numpy(),
                    "selected": masks[relation].numpy(),
                },
                schema_overrides={"layer": pl.Int32, "neuron": pl.Int32},
            )
        )
        log.info("%s %s: %d prompts, top %d neurons, best AP %.3f",
                 lang, relation, len(rows), k, float(ap.max()))  # fmt: skip
    return pl.concat(frames), masks


def relation_overlap(masks: Mapping[tuple[str, str], torch.Tensor]) -> pl.DataFrame:
    """How far languages share a relation's neurons: for every relation, every ordered pair of
    the languages that have its mask (``masks[relation, lang]``; a language with itself
    included), :func:`~polyneuron.neurons.overlap.pairwise_overlap`'s counts and Jaccard index;
    rows in the order of ``masks``' keys (pair a, then pair b)."""
    rank = {key: i for i, key in enumerate(masks)}
    rows = []
    for relation in dict.fromkeys(r for r, _ in masks):
        langs = [lang for r, lang in masks if r == relation]
        sets = torch.stack([masks[relation, lang].flatten() for lang in langs], dim=1)
        rows += [(relation, *row) for row in pairwise_overlap(sets, langs).iter_rows()]
    rows.sort(key=lambda row: (rank[row[0], row[1]], rank[row[0], row[2]]))
    return pl.DataFrame(rows, schema=RELATION_OVERLAP_SCHEMA, orient="row")
