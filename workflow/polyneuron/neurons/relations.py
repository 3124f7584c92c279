"""Relation-specific neurons: each neuron as a classifier of "this prompt expresses relation r".

A neuron's score of a prompt is its mean activation over the prompt's tokens (the per-example
activations). For relation r, the positives are r's training prompts and the negatives a seeded
sample of ``ratio`` (4) times as many prompts of other relations; a neuron's relation score is
the average precision (AP) of ranking positives above negatives by its activation. The top N
neurons per relation and language are its relation neurons (the reference keeps 3,000 of
LLaMA-2 7B's 352,256; :func:`scaled_top_n` keeps the same share of a model's neurons).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

REFERENCE_NEURONS = 32 * 11008  # LLaMA-2 7B: layers x FFN width


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


def top_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``k`` highest scores (ties broken by position)."""
    flat = scores.flatten()
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[torch.argsort(flat, descending=True, stable=True)[: min(k, flat.numel())]] = True
    return mask.reshape(scores.shape)
