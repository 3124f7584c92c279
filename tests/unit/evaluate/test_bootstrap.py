"""Bootstrap intervals against plain numpy: the mean's, the paired change's, and the same
interval whatever the block size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polyneuron.evaluate.bootstrap import bootstrap_ci, paired_delta_ci


def direct_bootstrap(values: np.ndarray, n_boot: int, seed: int, alpha: float):
    rng = np.random.default_rng(seed)
    resampled = values[rng.integers(0, len(values), size=(n_boot, len(values)))]
    means = resampled.mean(axis=1)
    return (
        values.mean(),
        np.percentile(means, 100 * alpha / 2),
        np.percentile(means, 100 * (1 - alpha / 2)),
    )


def test_bootstrap_ci_against_a_direct_numpy_bootstrap():
    values = np.random.default_rng(5).normal(2.0, 1.0, size=60)
    mean, low, high = bootstrap_ci(values, n_boot=500, seed=3)
    assert mean == pytest.approx(values.mean(), abs=1e-12)
    want = direct_bootstrap(values, 500, 3, 0.05)
    assert (mean, low, high) == pytest.approx(want, abs=1e-12)
    assert low < mean < high
    assert bootstrap_ci(values, n_boot=500, seed=3) == (mean, low, high)
    assert bootstrap_ci(values, n_boot=500, seed=4) != (mean, low, high)
    wider = bootstrap_ci(values, n_boot=500, seed=3, alpha=0.01)
    assert wider[1] < low and wider[2] > high
    torch_in = bootstrap_ci(torch.tensor(values), n_boot=500, seed=3)
    list_in = bootstrap_ci(values.tolist(), n_boot=500, seed=3)
    assert torch_in == list_in == pytest.approx((mean, low, high), abs=1e-12)


def test_bootstrap_ci_narrows_with_data_drops_nans_and_handles_empty():
    rng = np.random.default_rng(0)
    small = rng.normal(size=20)
    large = rng.normal(size=2000)
    _, lo_s, hi_s = bootstrap_ci(small)
    _, lo_l, hi_l = bootstrap_ci(large)
    assert hi_l - lo_l < (hi_s - lo_s) / 4
    with_nans = np.concatenate([small[:5], [np.nan], small[5:], [np.nan]])
    assert bootstrap_ci(with_nans, seed=2) == bootstrap_ci(small, seed=2)
    for empty in ([], [np.nan, np.nan], torch.zeros(0)):
        assert all(np.isnan(x) for x in bootstrap_ci(empty))
    constant = bootstrap_ci([1.5] * 10)
    assert constant == (1.5, 1.5, 1.5)


def test_blocked_resampling_gives_the_same_interval(monkeypatch):
    import polyneuron.evaluate.bootstrap as bootstrap

    values = np.random.default_rng(9).exponential(size=37)
    whole = bootstrap_ci(values, n_boot=300, seed=1)
    monkeypatch.setattr(bootstrap, "_BLOCK_ELEMENTS", 37 * 7)  # blocks of 7 resamples
    assert bootstrap_ci(values, n_boot=300, seed=1) == whole


def test_paired_delta_ci_resamples_the_pairs_together():
    rng = np.random.default_rng(1)
    base = rng.normal(size=80)
    other = base + 0.3 + 0.1 * rng.normal(size=80)
    mean, low, high = paired_delta_ci(base, other, n_boot=400, seed=2)
    # direct: the same resampled examples on both sides
    r = np.random.default_rng(2)
    idx = r.integers(0, 80, size=(400, 80))
    deltas = other[idx].mean(1) - base[idx].mean(1)
    assert mean == pytest.approx(np.mean(other - base), abs=1e-12)
    assert (low, high) == pytest.approx(tuple(np.percentile(deltas, [2.5, 97.5])), abs=1e-12)
    assert 0 < low < mean < high
    # pairing: far narrower than resampling the two sides apart (base varies a lot)
    _, lo_b, hi_b = bootstrap_ci(base, n_boot=400, seed=2)
    assert high - low < (hi_b - lo_b) / 3
    other_nan = other.copy()
    other_nan[3] = np.nan
    kept = np.ones(80, dtype=bool)
    kept[3] = False
    assert paired_delta_ci(base, other_nan, seed=2) == paired_delta_ci(
        base[kept], other[kept], seed=2
    )
    with pytest.raises(ValueError, match="differ in length"):
        paired_delta_ci(base, other[:-1])
