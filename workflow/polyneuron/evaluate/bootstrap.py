"""Percentile-bootstrap intervals of a mean over examples.

- :func:`bootstrap_ci`: the mean and its interval (NaNs dropped);
- :func:`paired_delta_ci`: the mean change between paired examples, both sides resampled with
  the same indices.

:data:`_BLOCK_ELEMENTS` bounds the resampled indices held at once, here and in
:func:`polyneuron.evaluate.perplexity.bootstrap_perplexity`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["bootstrap_ci", "paired_delta_ci"]

#: resampled examples drawn per block, so that n_boot x n indices never all sit in memory
_BLOCK_ELEMENTS = 1 << 24


def _as_numpy(values: torch.Tensor | np.ndarray | Sequence[float]) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64).ravel()


def _clean(values: torch.Tensor | np.ndarray | Sequence[float]) -> np.ndarray:
    array = _as_numpy(values)
    return array[~np.isnan(array)]


def bootstrap_ci(
    values: torch.Tensor | np.ndarray | Sequence[float],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """(mean, low, high): the mean over examples and its percentile-bootstrap ``1 - alpha``
    interval. NaNs are dropped first; no values give NaNs.

    ``numpy.random.default_rng(seed).integers(0, n, (n_boot, n))`` resamples the examples (drawn
    in blocks of rows, the same stream); low and high are the ``alpha/2`` and ``1 - alpha/2``
    quantiles (numpy's linear interpolation) of the resampled means."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    data = _clean(values)
    n = data.size
    if n == 0:
        return (float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_ELEMENTS // n)
    boot = np.empty(n_boot)
    for start in range(0, n_boot, block):
        stop = min(n_boot, start + block)
        boot[start:stop] = data[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return (float(data.mean()), float(low), float(high))


def paired_delta_ci(
    base: torch.Tensor | np.ndarray | Sequence[float],
    other: torch.Tensor | np.ndarray | Sequence[float],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """(mean, low, high) of ``mean(other - base)`` over paired examples, both resampled with
    the same indices (which is the bootstrap of the per-example differences). Pairs with a NaN
    on either side are dropped."""
    a, b = _as_numpy(base), _as_numpy(other)
    if a.shape != b.shape:
        raise ValueError(f"paired values differ in length: {a.size} base, {b.size} other")
    return bootstrap_ci(b - a, n_boot=n_boot, seed=seed, alpha=alpha)
