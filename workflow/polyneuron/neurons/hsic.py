"""HSIC bridge selection (BridgeX-ICL): how strongly two languages' overlap neurons co-vary.

For a target (low-resource) language t and a candidate bridge b, take the neurons of one layer
that are in both languages' overlap sets, and their per-example mean activations on aligned
probe pairs (the same word in t and in b): ``x[:, i]`` on t's probes, ``y[:, j]`` on b's. Per
neuron, activations are z-scored over the examples and turned into an RBF kernel matrix whose
bandwidth σ is the median pairwise distance between examples. The score of a neuron pair is
HSIC(i, j) = tr(K_i H L_j H), H = I − 11ᵀ/n (optionally divided by (n−1)²); the layer's score is
½(mean_i max_j HSIC + mean_j max_i HSIC). Candidates are ranked by the mean layer score over a
window of layers, and the best is the target's bridge.

tr(K H L H) = ⟨H K H, L⟩ (Frobenius), so all pairs of a layer come from one matrix product of
the flattened centred kernels: no loop over neuron pairs.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence

import polars as pl
import torch

log = logging.getLogger(__name__)


def zscore(x: torch.Tensor) -> torch.Tensor:
    """Columns of ``x [n, d]`` to mean 0, standard deviation 1 (population); a constant
    column becomes all zeros."""
    x = x.double()
    std = x.std(0, unbiased=False)
    return (x - x.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))


def rbf_kernels(x: torch.Tensor) -> torch.Tensor:
    """One RBF kernel per column of ``x [n, d]``: ``[d, n, n]``, σ = the column's median
    distance between two different examples (a column with σ = 0 gives all ones)."""
    z = zscore(x).T  # [d, n]
    dist = (z[:, :, None] - z[:, None, :]).abs()  # [d, n, n]
    n = x.shape[0]
    rows, cols = torch.triu_indices(n, n, offset=1)
    sigma = dist[:, rows, cols].median(dim=1).values if n > 1 else torch.zeros(z.shape[0])
    sigma = torch.where(sigma > 0, sigma, torch.ones_like(sigma))
    return torch.exp(-(dist**2) / (2 * sigma[:, None, None] ** 2))


def centre(kernels: torch.Tensor) -> torch.Tensor:
    """H K H for each ``[n, n]`` kernel of ``[d, n, n]``."""
    return (
        kernels
        - kernels.mean(1, keepdim=True)
        - kernels.mean(2, keepdim=True)
        + kernels.mean((1, 2), keepdim=True)
    )


def hsic_matrix(x: torch.Tensor, y: torch.Tensor, normalised: bool = False) -> torch.Tensor:
    """HSIC of every column of ``x [n, d1]`` with every column of ``y [n, d2]``: ``[d1, d2]``."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y need the same examples ({x.shape[0]} vs {y.shape[0]})")
    n = x.shape[0]
    k = centre(rbf_kernels(x)).reshape(x.shape[1], -1)
    l_ = rbf_kernels(y).reshape(y.shape[1], -1)
    scores = k @ l_.T
    return scores / (n - 1) ** 2 if normalised else scores


def layer_score(scores: torch.Tensor) -> float:
    """½(mean over rows of the row maximum + mean over columns of the column maximum)."""
    if scores.numel() == 0:
        return float("nan")
    return 0.5 * float(scores.max(1).values.mean() + scores.max(0).values.mean())


def align_pairs(
    target_ids: Sequence[str], candidate_ids: Sequence[str], max_pairs: int, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Row indices of the probes the two languages share (by ``pair_id``, the first row of
    each), in the target's order; a seeded sample of ``max_pairs`` when there are more."""
    first_c: dict[str, int] = {}
    for row, pair in enumerate(candidate_ids):
        first_c.setdefault(pair, row)
    seen: set[str] = set()
    pairs: list[tuple[int, int]] = []
    for row, pair in enumerate(target_ids):
        if pair in first_c and pair not in seen:
            seen.add(pair)
            pairs.append((row, first_c[pair]))
    if len(pairs) > max_pairs:
        keep = sorted(random.Random(seed).sample(range(len(pairs)), max_pairs))
        pairs = [pairs[i] for i in keep]
    return [t for t, _ in pairs], [c for _, c in pairs]


BRIDGE_SCORE_SCHEMA = {
    "target": pl.String,
    "candidate": pl.String,
    "layer": pl.Int32,
    "n_neurons": pl.Int32,
    "n_pairs": pl.Int32,
    "score": pl.Float64,
}


def bridge_scores(
    sets: torch.Tensor,
    langs: Sequence[str],
    pair_ids: Mapping[str, Sequence[str]],
    examples: Mapping[str, torch.Tensor],
    pairs: Mapping[str, Sequence[str]],
    max_pairs: int,
    seed: int = 0,
    normalised: bool = False,
) -> pl.DataFrame:
    """Per target, candidate (``pairs``: target → candidates) and layer: the layer score of the
    neurons in both languages' overlap sets (``sets [layer, neuron, lang]``, languages in
    ``langs``' order) on their aligned probe pairs (:func:`align_pairs` of each language's
    ``pair_ids``; ``examples[lang]``: per-example activations ``[example, layer, neuron]``);
    NaN where the layer has no shared neuron or there are fewer than two pairs."""
    rows = []
    for target, candidates in pairs.items():
        t = langs.index(target)
        for candidate in candidates:
            c = langs.index(candidate)
            t_rows, c_rows = align_pairs(pair_ids[target], pair_ids[candidate], max_pairs, seed)
            x_all, y_all = examples[target][t_rows], examples[candidate][c_rows]
            for layer in range(sets.shape[0]):
                neurons = torch.nonzero(sets[layer, :, t] & sets[layer, :, c]).flatten()
                score = float("nan")
                if len(neurons) and len(t_rows) > 1:
                    x = x_all[:, layer, neurons]
                    y = y_all[:, layer, neurons]
                    score = layer_score(hsic_matrix(x, y, normalised))
                rows.append((target, candidate, layer, len(neurons), len(t_rows), score))
            log.info("%s <- %s: %d aligned pairs", target, candidate, len(t_rows))
    return pl.DataFrame(rows, schema=BRIDGE_SCORE_SCHEMA, orient="row")


def rank_bridges(scores: pl.DataFrame, window: Sequence[int] | None) -> pl.DataFrame:
    """Add to per-layer scores (``target, candidate, layer, score``) each candidate's mean
    score over the layer ``window`` (first and last layer, inclusive; None: every layer;
    layers without overlap neurons skipped), its rank per target (1 = best) and ``selected``
    for the best."""
    inside = scores
    if window is not None:
        inside = scores.filter(pl.col("layer").is_between(window[0], window[1]))
    means = (
        inside.filter(pl.col("score").is_not_nan())
        .group_by("target", "candidate")
        .agg(window_score=pl.col("score").mean())
        .with_columns(
            rank=pl.col("window_score")
            .rank("ordinal", descending=True)
            .over("target")
            .cast(pl.Int32)
        )
    )
    return (
        scores.join(means, on=["target", "candidate"], how="left")
        .with_columns(selected=pl.col("rank") == 1)
        .sort("target", "rank", "candidate", "layer", nulls_last=True)
    )
