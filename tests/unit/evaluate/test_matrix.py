"""The intervention matrix's rows: per-example metrics against direct means with paired
intervals, and the summary of own group against the others."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from polyneuron.evaluate.matrix import ABLATION_SCHEMA, mean_metric_rows, summarize


def test_mean_metric_rows_against_direct_means():
    rng = np.random.default_rng(3)
    base = rng.integers(0, 2, 40).astype(float)
    off = base.copy()
    off[:10] = 0.0
    off[5] = np.nan  # an unscorable example is dropped from both sides of the pair
    rows = mean_metric_rows(
        "de", {"de": base, "fr": base}, {"de": off, "fr": base}, "accuracy", 7, n_boot=300
    )
    assert rows.schema == pl.Schema(ABLATION_SCHEMA)
    de = rows.row(0, named=True)
    assert de["intervened"] == "de" and de["evaluated"] == "de" and de["metric"] == "accuracy"
    assert de["value"] == pytest.approx(np.nanmean(off))
    assert de["baseline"] == pytest.approx(base.mean())
    keep = ~np.isnan(off)
    assert de["delta"] == pytest.approx((off[keep] - base[keep]).mean())
    assert de["ci_low"] <= de["delta"] <= de["ci_high"] < 0
    assert de["n_neurons"] == 7 and de["n_texts"] == 40 and de["control"] == "none"
    fr = rows.row(1, named=True)
    assert fr["delta"] == 0.0 and fr["ci_low"] == fr["ci_high"] == 0.0
    with pytest.raises(ValueError, match="not the same examples"):
        mean_metric_rows("de", {"de": base}, {"de": off[:30]}, "accuracy", 7)
    with pytest.raises(ValueError, match="no baseline"):
        mean_metric_rows("de", {"fr": base}, {"de": off}, "accuracy", 7)
    with pytest.raises(ValueError, match="takes a seed"):
        mean_metric_rows("de", {"de": base}, {"de": off}, "accuracy", 7, control="random")


def test_summarize_separates_own_group_from_the_others():
    frame = pl.DataFrame(
        {
            "intervened": ["a", "a", "b", "b", "a", "a"],
            "evaluated": ["a", "b", "a", "b", "a", "b"],
            "metric": ["loss"] * 6,
            "control": ["none"] * 4 + ["random"] * 2,
            "delta": [1.0, 0.2, 0.4, 3.0, 0.1, 0.3],
            "n_neurons": [4, 4, 6, 6, 4, 4],
            "lang": ["en"] * 6,
        }
    )
    out = summarize(frame, by=["lang"]).sort("control")
    assert out["diagonal"].to_list() == [2.0, 0.1]
    np.testing.assert_allclose(out["off_diagonal"].to_list(), [0.3, 0.3])
    assert out["n_groups"].to_list() == [2, 1]
