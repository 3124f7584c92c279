"""The verdicts of the findings and what every claim shares: :class:`Thresholds`,
:class:`Finding`, the number formats, the own-versus-control table of an evaluation
(:func:`own_and_control`) and the bootstrap over pooled cells.

A NaN is never read as zero: cells whose value or interval is NaN are left out of every count
and named in the reason (:func:`_cell_ok`, :func:`_nan_note`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_MEASURABLE = "not measurable on this model"
NOT_RUN = "not run in this configuration"
NAN = float("nan")


@dataclass(frozen=True)
class Thresholds:
    """The config's ``findings:`` values that decide the verdicts."""

    majority: float = 0.5  # a claim over several groups holds when more than this share shows it
    min_refusal_rate: float = 0.25  # a language is measurable for refusal at this baseline rate
    lens_min_prob: float = 0.01  # English "leads" a layer only with at least this probability
    high_resource: Sequence[str] = ("en", "de", "fr", "es", "it", "pt", "ru", "zh", "ja")
    n_boot: int = 1000
    seed: int = 0
    alpha: float = 0.05
    ablation_mode: str = "zero"  # the workflow's ablation.mode, which the overlap claim names


@dataclass(frozen=True)
class Finding:
    """One row of the findings: a claim measured on a model."""

    verdict: str
    reason: str
    measured: str = "—"
    ci: str = "—"
    control: str = "—"
    claim: str = ""
    model: str = ""


def not_run(reason: str) -> Finding:
    return Finding(NOT_RUN, reason)


# --------------------------------------------------------------------------- formatting


def _finite(*xs: float | None) -> bool:
    return all(x is not None and math.isfinite(x) for x in xs)


def num(x: float | None, signed: bool = True) -> str:
    """3 significant digits; NaN and null spelt out."""
    if x is None:
        return "null"
    if math.isnan(x):
        return "NaN"
    return f"{x:+.3g}" if signed else f"{x:.3g}"


def interval(low: float | None, high: float | None) -> str:
    return f"[{num(low)}, {num(high)}]"


def _share_text(k: int, n: int, th: Thresholds, what: str) -> str:
    return f"{k} of {n} {what} (needs more than {th.majority:.0%})"


def _majority(k: int, n: int, th: Thresholds) -> str:
    return REPRODUCED if n and k / n > th.majority else NOT_REPRODUCED


def _nan_note(names: Sequence[str]) -> str:
    return f"; NaN, not counted: {', '.join(names)}" if names else ""


def bootstrap_mean(values: np.ndarray, th: Thresholds) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` resampled with replacement."""
    rng = np.random.default_rng(th.seed)
    idx = rng.integers(0, len(values), size=(th.n_boot, len(values)))
    means = values[idx].mean(axis=1)
    return (float(np.quantile(means, th.alpha / 2)), float(np.quantile(means, 1 - th.alpha / 2)))


# --------------------------------------------------------------------------- own vs control


def own_and_control(
    frame: pl.DataFrame,
    metric: str,
    keys: Sequence[str] = ("intervened", "evaluated"),
    control_keys: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Per cell (``keys``): the own set's ``own`` delta and interval (``own_low``,
    ``own_high``) and ``baseline``, beside its random controls over the seeds (joined on
    ``control_keys``, default ``keys``): ``ctrl`` the mean delta, ``ctrl_low``/``ctrl_high``
    the envelope of their intervals (lowest low, highest high), ``seeds`` how many. A NaN in any
    seed's delta or interval makes the control's value NaN: it is never averaged away."""
    control_keys = list(control_keys or keys)
    rows = frame.filter(pl.col("metric") == metric).with_columns(
        pl.col("delta", "ci_low", "ci_high", "baseline").cast(pl.Float64).fill_null(NAN)
    )
    own = rows.filter(pl.col("control") == "none").select(
        *keys,
        "baseline",
        own=pl.col("delta"),
        own_low=pl.col("ci_low"),
        own_high=pl.col("ci_high"),
    )

    def guarded(expr: pl.Expr, column: str) -> pl.Expr:
        return pl.when(pl.col(column).is_nan().any()).then(NAN).otherwise(expr)

    ctrl = (
        rows.filter(pl.col("control") == "random")
        .group_by(control_keys)
        .agg(
            ctrl=guarded(pl.col("delta").mean(), "delta"),
            ctrl_low=guarded(pl.col("ci_low").min(), "ci_low"),
            ctrl_high=guarded(pl.col("ci_high").max(), "ci_high"),
            seeds=pl.len(),
        )
    )
    joined = own.join(ctrl, on=control_keys, how="left", nulls_equal=True)
    return joined.with_columns(
        pl.col("ctrl", "ctrl_low", "ctrl_high").fill_null(NAN), pl.col("seeds").fill_null(0)
    )


def _above(row: dict) -> bool:
    """The own interval lies wholly above the control's."""
    return row["own_low"] > row["ctrl_high"]


def _ratio(own: float, ctrl: float) -> str:
    if not _finite(own, ctrl) or ctrl == 0:
        return "ratio n/a"
    return f"{own / ctrl:.3g}× control"


def _no_controls(cells: pl.DataFrame) -> bool:
    return cells.is_empty() or int(cells["seeds"].max() or 0) == 0


def _no_metric(frame: pl.DataFrame, metric: str, table: str) -> Finding | None:
    """A finding saying the table has no rows of ``metric``, or None when it has some."""
    if frame.filter(pl.col("metric") == metric).is_empty():
        found = ", ".join(sorted(set(frame["metric"]))) or "none"
        return Finding(NOT_MEASURABLE, f"{table} has no {metric!r} rows (metrics: {found})")
    return None


def _cell_ok(row: dict) -> bool:
    return _finite(row["own"], row["own_low"], row["own_high"], row["ctrl"], row["ctrl_high"])


# --------------------------------------------------------------------------- the claims
