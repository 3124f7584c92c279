"""HSIC bridge selection (BridgeX-ICL): how strongly two languages' overlap neurons co-vary.

For a target (low-resource) language t and a candidate bridge b, take the neurons of one layer
that are in both languages' overlap sets, and their per-example mean activations on aligned
probe pairs (the same word in t and in b): ``x[:, i]`` on t's probes, ``y[:, j]`` on b's. Each
neuron gets a Gaussian kernel over the examples, K_i[a, b] = exp(−(x_ia − x_ib)² / 2σ²), a
neuron pair gets an HSIC score (optionally divided by (n−1)²), and the layer's score is
½(mean_i max_j HSIC + mean_j max_i HSIC). Candidates are ranked by the mean layer score over a
window of layers, and the best is the target's bridge. Two forms, ``sigma``:

- ``reference`` (the default; the reference's bridge_hsic.py): each neuron's row of activations
  over the n examples is z-scored with the unbiased standard deviation + 1e-6; one σ serves the
  whole layer pair: the median of the Euclidean distances between z-scored neuron rows within x
  and within y, pooled (both full distance matrices, their zero diagonals included) + 1e-6; and
  the score is the reference's tr(K_i H · H L_j) = tr(K_i H L_j), H = I − 11ᵀ/n (H is
  idempotent; unlike the textbook tr(K H L H) it can be negative).
- ``per_neuron`` (this project's earlier form): each neuron's activations z-scored (population
  standard deviation), its own σ, the median distance between two different examples (a
  constant neuron gets σ = 1), and the textbook tr(K_i H L_j H).

The reference's window is layers 10–21 of LLaMA-3-8B's 32; :func:`reference_window` scales it
to the model's depth.

All pairs of a layer come from one matrix product of flattened kernels, tr(K H L) = ⟨H K, L⟩
and tr(K H L H) = ⟨H K H, L⟩ (Frobenius; K, L symmetric): no loop over neuron pairs.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence

import polars as pl
import torch

log = logging.getLogger(__name__)


SIGMAS = ("reference", "per_neuron")
REFERENCE_WINDOW = (10, 21, 32)  # layers 10-21 of LLaMA-3-8B's 32


def reference_window(n_layers: int) -> tuple[int, int]:
    """The reference's layers 10–21 of 32 scaled to ``n_layers`` (rounded half up)."""
    first, last, depth = REFERENCE_WINDOW
    scale = n_layers / depth
    return (
        min(int(first * scale + 0.5), n_layers - 1),
        min(int(last * scale + 0.5), n_layers - 1),
    )


def resolve_window(window: str | Sequence[int] | None, n_layers: int) -> tuple[int, int] | None:
    """``bridges.window`` as layers: ``"reference"`` → :func:`reference_window`, a pair as
    given, None (every layer) as None."""
    if window == "reference":
        return reference_window(n_layers)
    if window is None:
        return None
    first, last = window
    return int(first), int(last)


def zscore(x: torch.Tensor) -> torch.Tensor:
    """Columns of ``x [n, d]`` to mean 0, standard deviation 1 (population); a constant
    column becomes all zeros."""
    x = x.double()
    std = x.std(0, unbiased=False)
    return (x - x.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))


def zscore_reference(x: torch.Tensor) -> torch.Tensor:
    """Columns of ``x [n, d]`` z-scored as the reference does: (x − mean) / (unbiased std +
    1e-6); a constant column becomes all zeros."""
    x = x.double()
    std = x.std(0, unbiased=True) if x.shape[0] > 1 else torch.zeros(x.shape[1], dtype=x.dtype)
    return (x - x.mean(0)) / (std + 1e-6)


def reference_sigma(zx: torch.Tensor, zy: torch.Tensor) -> float:
    """One σ for a layer pair: the median (midpoint of the two middle values for an even count)
    of the Euclidean distances between the z-scored neuron rows within ``zx [n, d1]`` and within
    ``zy [n, d2]``, both full matrices pooled, + 1e-6."""
    distances = torch.cat([torch.cdist(zx.T, zx.T).flatten(), torch.cdist(zy.T, zy.T).flatten()])
    return float(torch.quantile(distances, 0.5)) + 1e-6


def gaussian_kernels(z: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """exp(−(z_a − z_b)² / 2σ²) per column of ``z [n, d]``: ``[d, n, n]`` (σ one number, or
    one per column)."""
    z = z.T
    sigma = torch.as_tensor(sigma, dtype=z.dtype)
    if sigma.ndim:
        sigma = sigma[:, None, None]
    return torch.exp(-((z[:, :, None] - z[:, None, :]) ** 2) / (2 * sigma**2))


def rbf_kernels(x: torch.Tensor) -> torch.Tensor:
    """One RBF kernel per column of ``x [n, d]``: ``[d, n, n]``, σ = the column's median
    distance between two different examples (a column with σ = 0 gives all ones)."""
    z = zscore(x)
    n = x.shape[0]
    dist = (z.T[:, :, None] - z.T[:, None, :]).abs()  # [d, n, n]
    rows, cols = torch.triu_indices(n, n, offset=1)
    sigma = dist[:, rows, cols].median(dim=1).values if n > 1 else torch.zeros(z.shape[1])
    return gaussian_kernels(z, torch.where(sigma > 0, sigma, torch.ones_like(sigma)))


def centre_rows(kernels: torch.Tensor) -> torch.Tensor:
    """H K for each ``[n, n]`` kernel of ``[d, n, n]`` (each column's mean removed)."""
    return kernels - kernels.mean(1, keepdim=True)


def centre(kernels: torch.Tensor) -> torch.Tensor:
    """H K H for each ``[n, n]`` kernel of ``[d, n, n]``."""
    return (
        kernels
        - kernels.mean(1, keepdim=True)
        - kernels.mean(2, keepdim=True)
        + kernels.mean((1, 2), keepdim=True)
    )


def hsic_matrix(
    x: torch.Tensor, y: torch.Tensor, normalised: bool = False, sigma: str = "reference"
) -> torch.Tensor:
    """HSIC of every column of ``x [n, d1]`` with every column of ``y [n, d2]``: ``[d1, d2]``,
    with the ``sigma`` rule of the module's docstring."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y need the same examples ({x.shape[0]} vs {y.shape[0]})")
    if sigma not in SIGMAS:
        raise ValueError(f"sigma must be one of {', '.join(SIGMAS)}, not {sigma!r}")
    n = x.shape[0]
    if sigma == "reference":
        zx, zy = zscore_reference(x), zscore_reference(y)
        width = reference_sigma(zx, zy)
        k, l_ = centre_rows(gaussian_kernels(zx, width)), gaussian_kernels(zy, width)
    else:
        k, l_ = centre(rbf_kernels(x)), rbf_kernels(y)
    scores = k.reshape(x.shape[1], -1) @ l_.reshape(y.shape[1], -1).T
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
    sigma: str = "reference",
) -> pl.DataFrame:
    """Per target, candidate (``pairs``: target → candidates) and layer: the layer score of the
    neurons in both languages' overlap sets (``sets [layer, neuron, lang]``, languages in
    ``langs``' order) on their aligned probe pairs (:func:`align_pairs` of each language's
    ``pair_ids``; ``examples[lang]``: per-example activations ``[example, layer, neuron]``;
    ``sigma``: see :func:`hsic_matrix`); NaN where the layer has no shared neuron or there are
    fewer than two pairs."""
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
                    score = layer_score(hsic_matrix(x, y, normalised, sigma))
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
