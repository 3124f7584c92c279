"""Relation-specific neurons: each neuron as a classifier of "this prompt expresses relation r".

A neuron's score of a prompt is its output averaged over the prompt's tokens (the per-example
means). The pool (:data:`POOLS`) is the reference's by default: every output coordinate of the
MLP's gate, up and down projections (LLaMA-2 7B: 32 × (11,008 + 11,008 + 4,096) = 835,584);
``activation`` keeps only the activation function's outputs, the neurons of every other method
(352,256). For relation r, the positives are r's training prompts that the model answers
correctly (the reference; or all of them) and the negatives a seeded sample of ``ratio`` (4)
times as many prompts of other relations; a neuron's relation score is the average precision
(AP) of ranking positives above negatives. The top N neurons per relation and language are its
relation neurons (the reference keeps 3,000 of its 835,584; :func:`scaled_top_n` keeps the same
share of a model's pool), ties in AP in a seeded random order; :func:`relation_overlap` says how
far languages share them.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence

import polars as pl
import torch

from polyneuron.model.adapters import ACT
from polyneuron.neurons.overlap import pairwise_overlap

#: the pool of each choice on LLaMA-2 7B, the reference's model: its 32 layers' gate, up (11,008
#: each) and down (4,096) outputs; the activation function's outputs alone
POOLS = {"reference": 32 * (11008 + 11008 + 4096), "activation": 32 * 11008}
REFERENCE_NEURONS = POOLS["reference"]
#: greedy tokens that must form a prefix of the object for a prompt to count as answered
#: correctly (the reference's test of its positives)
ANSWER_TOKENS = 2
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
    labels: Sequence[str],
    relation: str,
    ratio: int = 4,
    seed: int = 0,
    keep: Sequence[bool] | None = None,
) -> tuple[list[int], list[bool]]:
    """Rows of ``relation`` (positives; only those ``keep`` marks, when given) and a seeded
    sample of ``ratio`` times as many rows of other relations (all of them when there are
    fewer), with their labels."""
    positives = [
        i for i, label in enumerate(labels) if label == relation and (keep is None or keep[i])
    ]
    others = [i for i, label in enumerate(labels) if label != relation]
    n_neg = min(len(others), ratio * len(positives))
    negatives = sorted(random.Random(f"{seed}:{relation}").sample(others, n_neg))
    rows = positives + negatives
    return rows, [True] * len(positives) + [False] * len(negatives)


def scaled_top_n(top_n: int, n_neurons: int, reference: int = REFERENCE_NEURONS) -> int:
    """The reference's top-N as the same share of this model's neurons (at least 1)."""
    return max(1, round(top_n * n_neurons / reference))


def seeded_rank(scores: torch.Tensor, seed: str) -> torch.Tensor:
    """``[n]`` int64 ranks, 1 the highest score; tied scores in a random order seeded by the
    string ``seed`` (a fixed order would hand ties, many at AP = 1 on small probe sets, to the
    first layers)."""
    generator = torch.Generator().manual_seed(random.Random(seed).getrandbits(63))
    shuffle = torch.randperm(scores.numel(), generator=generator)
    order = shuffle[torch.argsort(scores[shuffle], descending=True, stable=True)]
    rank = torch.empty(scores.numel(), dtype=torch.int64)
    rank[order] = torch.arange(1, scores.numel() + 1)
    return rank


RELATION_NEURON_SCHEMA = {
    "layer": pl.Int32,
    "module": pl.String,
    "neuron": pl.Int32,
    "group": pl.String,
    "lang": pl.String,
    "score": pl.Float64,
    "rank": pl.Int64,
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
    modules: Sequence[tuple[str, int]] | None = None,
    correct: Sequence[bool] | None = None,
) -> tuple[pl.DataFrame, dict[str, torch.Tensor]]:
    """Every neuron's relation score in one language from its per-example outputs
    ``acts [example, layer, neuron]`` and the examples' relation ``labels``: one row per
    (relation, layer, module, neuron) with its AP (``score``), its ``rank`` within the relation
    (1 the best; ties in a random order seeded by ``seed``) and whether it is among the
    relation's :func:`scaled_top_n` neurons of the pool (``selected``), and those masks (flat
    over layer and neuron) per relation.

    ``modules``: (name, width) of the modules whose outputs lie side by side in a layer's row
    (default: one, ``act``); ``neuron`` is the index within its module's output. ``correct``:
    per example, whether the model answers it; only those count as positives (a relation
    without one gets no neurons, and the log says so), negatives are drawn from every prompt of
    the other relations. A relation without another one to contrast with is skipped, with a
    warning."""
    n_layers, width = acts.shape[1], acts.shape[2]
    modules = list(modules or [(ACT, width)])
    if sum(w for _, w in modules) != width:
        raise ValueError(f"modules {modules} do not add up to the {width} neurons per layer")
    if correct is not None and len(correct) != len(labels):
        raise ValueError(f"{len(correct)} correctness flags for {len(labels)} examples")
    k = scaled_top_n(top_n, n_layers * width, reference)
    names = [name for name, w in modules for _ in range(w)]
    within = [i for _, w in modules for i in range(w)]
    frames = [pl.DataFrame(schema=RELATION_NEURON_SCHEMA)]
    masks = {}
    for relation in sorted(set(labels)):
        mine = [i for i, label in enumerate(labels) if label == relation]
        kept = [i for i in mine if correct is None or correct[i]]
        if correct is not None:
            log.info("%s %s: %d of %d prompts answered correctly kept as positives",
                     lang, relation, len(kept), len(mine))  # fmt: skip
            if not kept:
                log.warning("%s %s: no prompt answered correctly; no neurons", lang, relation)
                continue
        rows, truth = classification_rows(labels, relation, ratio, seed, correct)
        if all(truth):
            log.warning("%s %s: no other relation to contrast with; skipped", lang, relation)
            continue
        ap = average_precision(acts[rows].flatten(1), torch.tensor(truth))
        rank = seeded_rank(ap, f"{seed}:{relation}:{lang}")
        masks[relation] = rank <= k
        frames.append(
            pl.DataFrame(
                {
                    "layer": torch.arange(n_layers).repeat_interleave(width).numpy(),
                    "module": names * n_layers,
                    "neuron": within * n_layers,
                    "group": relation,
                    "lang": lang,
                    "score": ap.numpy(),
                    "rank": rank.numpy(),
                    "selected": masks[relation].numpy(),
                },
                schema_overrides=RELATION_NEURON_SCHEMA,
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
