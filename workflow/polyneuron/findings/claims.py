"""Each seed paper's headline claim, measured on one model's tables, with a verdict.

Every function here takes the workflow's tables as polars frames (None: the table was not made
in this configuration) and returns one :class:`Finding`: what was measured, its interval, the
control it is read against, a verdict and the reason for it. Verdicts:

- :data:`REPRODUCED` / :data:`NOT_REPRODUCED`: the table answers the claim;
- :data:`NOT_MEASURABLE`: the table exists but cannot answer it here (a chat model that never
  refuses, a single language, no random controls, every value NaN);
- :data:`NOT_RUN`: the method's table is not made in this configuration.

A NaN is never read as zero: cells whose value or interval is NaN are left out of every count
and named in the reason. Intervals of the evaluation tables are their own (paired bootstrap
over texts); where a finding pools cells (families, relations) it bootstraps over them here,
seeded by :attr:`Thresholds.seed`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import polars as pl

from polyneuron.findings.families import family_of

__all__ = [
    "NOT_MEASURABLE",
    "NOT_REPRODUCED",
    "NOT_RUN",
    "REPRODUCED",
    "Finding",
    "Thresholds",
    "bridge_choice",
    "diagonal_specificity",
    "lens_switch",
    "overlap_ablation",
    "overlap_families",
    "own_and_control",
    "refusal_transfer",
    "relation_cumulativity",
    "value_shifts",
    "xtransplant_gain",
]

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


def diagonal_specificity(
    frame: pl.DataFrame | None,
    th: Thresholds,
    metric: str,
    what: str,
    table: str,
) -> Finding:
    """Each group's own set off changes ``metric`` on its own texts more than any other group's
    set does (the largest delta in its column: the same texts, so the deltas compare), and the
    own interval lies above its matched random control's. Reproduced when more than
    ``th.majority`` of the groups show both."""
    if frame is None:
        return not_run(f"{table} is not made in this configuration")
    if missing := _no_metric(frame, metric, table):
        return missing
    cells = own_and_control(frame, metric)
    groups = [
        g
        for g in cells["intervened"].unique(maintain_order=True)
        if g in set(cells["evaluated"].to_list())
    ]
    if len(groups) < 2:
        return Finding(
            NOT_MEASURABLE,
            f"needs two or more {what}s both intervened and "
            f"evaluated in {table}; it has {len(groups)}",
        )
    if _no_controls(cells):
        return Finding(NOT_MEASURABLE, f"{table} has no random-control rows (ablation.seeds)")
    measured, cis, controls, nan, hits = [], [], [], [], 0
    for g in groups:
        column = cells.filter(pl.col("evaluated") == g)
        own = column.filter(pl.col("intervened") == g).row(0, named=True)
        others = column.filter(pl.col("intervened") != g)["own"].to_list()
        if not _cell_ok(own) or not all(_finite(x) for x in others):
            nan.append(g)
            continue
        largest = own["own"] > max(others, default=-math.inf)
        above = _above(own)
        hits += largest and above
        flags = ("largest" if largest else "not largest") + (
            ", above control" if above else ", within control"
        )
        measured.append(f"{g} {num(own['own'])} ({flags}; {_ratio(own['own'], own['ctrl'])})")
        cis.append(f"{g} {interval(own['own_low'], own['own_high'])}")
        controls.append(f"{g} {num(own['ctrl'])} {interval(own['ctrl_low'], own['ctrl_high'])}")
    n = len(groups) - len(nan)
    if n == 0:
        return Finding(
            NOT_MEASURABLE, f"every own-set {metric} delta or interval is NaN{_nan_note(nan)}"
        )
    reason = _share_text(
        hits,
        n,
        th,
        f"{what}s: own set's Δ{metric} largest in its column and "
        "its interval above the random control's",
    ) + _nan_note(nan)
    return Finding(
        _majority(hits, n, th), reason, "; ".join(measured), "; ".join(cis), "; ".join(controls)
    )


def overlap_families(frame: pl.DataFrame | None, th: Thresholds) -> Finding:
    """Same-family language pairs share more overlap neurons (Jaccard) than cross-family pairs:
    the difference of the two means with a bootstrap interval (each group resampled over its
    pairs); reproduced when the interval lies above 0."""
    if frame is None:
        return not_run("results/neurons/{model}/overlap.parquet is not made")
    pairs = frame.filter(pl.col("lang_a") < pl.col("lang_b")).with_columns(
        pl.col("jaccard").cast(pl.Float64).fill_null(NAN)
    )
    langs = sorted(set(pairs["lang_a"]) | set(pairs["lang_b"]))
    unknown = [lang for lang in langs if family_of(lang) is None]
    nan = [
        f"{a}-{b}"
        for a, b, j in pairs.select("lang_a", "lang_b", "jaccard").iter_rows()
        if not math.isfinite(j)
    ]
    same, cross = [], []
    for a, b, j in pairs.select("lang_a", "lang_b", "jaccard").iter_rows():
        fa, fb = family_of(a), family_of(b)
        if fa is None or fb is None or not math.isfinite(j):
            continue
        (same if fa == fb else cross).append((f"{a}-{b}", j))
    note = (f"; no family for {', '.join(unknown)}" if unknown else "") + _nan_note(nan)
    if not same or not cross:
        return Finding(
            NOT_MEASURABLE,
            f"the configured languages form {len(same)} same-family "
            f"and {len(cross)} cross-family pairs; both are needed{note}",
        )
    s, c = np.array([j for _, j in same]), np.array([j for _, j in cross])
    rng = np.random.default_rng(th.seed)
    diffs = s[rng.integers(0, len(s), (th.n_boot, len(s)))].mean(1) - c[
        rng.integers(0, len(c), (th.n_boot, len(c)))
    ].mean(1)
    low, high = np.quantile(diffs, [th.alpha / 2, 1 - th.alpha / 2])
    diff = float(s.mean() - c.mean())
    measured = (
        f"mean Jaccard same-family {s.mean():.3f} ({', '.join(p for p, _ in same)}) − "
        f"cross-family {c.mean():.3f} ({len(c)} pairs) = {num(diff)}"
    )
    verdict = REPRODUCED if low > 0 else NOT_REPRODUCED
    reason = (
        "the difference's bootstrap interval over pairs lies above 0"
        if low > 0
        else "the difference's bootstrap interval over pairs reaches 0 or below"
    ) + note
    return Finding(
        verdict,
        reason,
        measured,
        interval(float(low), float(high)),
        "cross-family pairs (families: polyneuron.findings.families)",
    )


def bridge_choice(frame: pl.DataFrame | None, th: Thresholds) -> Finding:
    """The bridge chosen for each target is a same-family or a high-resource language
    (``th.high_resource``), as BridgeX-ICL reports; a target where every candidate is one or
    the other cannot tell and is left out of the count."""
    if frame is None:
        return not_run("no bridge targets (bridges.targets is empty)")
    per = frame.unique(["target", "candidate"], keep="first", maintain_order=True).with_columns(
        pl.col("window_score").cast(pl.Float64).fill_null(NAN)
    )
    if per.is_empty():
        return Finding(NOT_MEASURABLE, "bridges.parquet has no rows")
    high = set(th.high_resource)

    def fits(target: str, lang: str) -> bool:
        return lang in high or (
            family_of(lang) is not None and family_of(lang) == family_of(target)
        )

    measured, open_, hits, n = [], [], 0, 0
    for target in per["target"].unique(maintain_order=True):
        rows = per.filter(pl.col("target") == target).sort("rank")
        chosen = rows.filter(pl.col("selected"))
        if chosen.is_empty() or not _finite(chosen["window_score"][0]):
            open_.append(f"{target}: no bridge with a finite score")
            continue
        best = chosen.row(0, named=True)
        runner = rows.filter(~pl.col("selected") & pl.col("window_score").is_finite())
        margin = best["window_score"] - runner["window_score"].max() if runner.height else NAN
        ok = fits(target, best["candidate"])
        kind = (
            "same family"
            if family_of(best["candidate"]) == family_of(target)
            else "high-resource"
            if best["candidate"] in high
            else "neither"
        )
        runner_name = (
            runner.sort("window_score", descending=True)["candidate"][0]
            if runner.height
            else "none"
        )
        measured.append(
            f"{target} → {best['candidate']} ({kind}; window score "
            f"{num(best['window_score'], False)}, margin {num(margin)} over "
            f"{runner_name})"
        )
        if all(fits(target, c) for c in rows["candidate"]):
            open_.append(f"{target}: every candidate is same-family or high-resource")
            continue
        n += 1
        hits += ok
    note = f"; not counted: {'; '.join(open_)}" if open_ else ""
    if n == 0:
        return Finding(
            NOT_MEASURABLE,
            f"no target whose choice could disagree{note}",
            "; ".join(measured) or "—",
            "— (one HSIC score per candidate)",
        )
    reason = (
        _share_text(
            hits,
            n,
            th,
            "targets bridged by a same-family or high-resource "
            f"language (high-resource: {', '.join(th.high_resource)})",
        )
        + note
    )
    return Finding(
        _majority(hits, n, th),
        reason,
        "; ".join(measured),
        "— (one HSIC score per candidate)",
        "the runner-up candidate",
    )


def overlap_ablation(frame: pl.DataFrame | None, th: Thresholds) -> Finding:
    """A language's overlap neurons are shared: switching them off raises NLL on the other
    languages too, beyond the matched random control. Reproduced when more than
    ``th.majority`` of the off-diagonal cells lie above their control."""
    if frame is None:
        return not_run("results/evaluation/{model}/overlap.parquet is not made")
    if missing := _no_metric(frame, "nll", "overlap"):
        return missing
    cells = own_and_control(frame, "nll")
    if _no_controls(cells):
        return Finding(NOT_MEASURABLE, "overlap.parquet has no random-control rows")
    off = cells.filter(pl.col("intervened") != pl.col("evaluated"))
    diag = cells.filter(pl.col("intervened") == pl.col("evaluated"))
    if off.is_empty():
        return Finding(NOT_MEASURABLE, "needs two or more languages (evaluation.overlap)")
    rows = list(off.iter_rows(named=True))
    nan = [f"{r['intervened']}→{r['evaluated']}" for r in rows if not _cell_ok(r)]
    good = [r for r in rows if _cell_ok(r)]
    if not good:
        return Finding(NOT_MEASURABLE, f"every cross-language cell is NaN{_nan_note(nan)}")
    hits = sum(_above(r) for r in good)
    own = np.array([r["own"] for r in good])
    ctrl = np.array([r["ctrl"] for r in good])
    low, high = bootstrap_mean(own - ctrl, th)
    diag_ok = [r["own"] for r in diag.iter_rows(named=True) if _finite(r["own"])]
    measured = (
        f"cross-language ΔNLL {num(float(own.mean()))} mean over {len(good)} cells "
        f"(own language: {num(float(np.mean(diag_ok))) if diag_ok else 'n/a'}); "
        f"{hits} cells above their control"
    )
    reason = _share_text(
        hits, len(good), th, "cross-language cells whose interval lies above the random control's"
    ) + _nan_note(nan)
    if th.ablation_mode == "zero":
        reason += (
            "; measured with ablation.mode zero: an overlap set is mostly neurons active on "
            "nearly every token, and zeroing them also removes the constant they feed forward "
            "(run ablation.mode: mean to test sharing without that shift)"
        )
    else:
        reason += f"; measured with ablation.mode {th.ablation_mode}"
    return Finding(
        _majority(hits, len(good), th),
        reason,
        measured,
        f"own − control {interval(low, high)} (bootstrap over cells)",
        f"random sets, mean ΔNLL {num(float(ctrl.mean()))}",
    )


def value_shifts(frame: pl.DataFrame | None, th: Thresholds) -> Finding:
    """Switching a value's neurons off shifts P(value-supported option) on that value's
    questions, outside the random controls' interval (either way). Reproduced when more than
    ``th.majority`` of the (language, value) cells show it."""
    if frame is None:
        return not_run("results/evaluation/{model}/values.parquet is not made")
    keys = (
        ("lang", "intervened", "evaluated")
        if "lang" in frame.columns
        else ("intervened", "evaluated")
    )
    cells = own_and_control(frame, "p_supported", keys).filter(
        pl.col("intervened") == pl.col("evaluated")
    )
    if cells.is_empty():
        return Finding(NOT_MEASURABLE, "values.parquet has no own-value rows")
    if _no_controls(cells):
        return Finding(NOT_MEASURABLE, "values.parquet has no random-control rows")
    measured, cis, controls, nan, hits = [], [], [], [], 0
    for r in cells.iter_rows(named=True):
        name = f"{r['lang']}/{r['intervened']}" if "lang" in r else r["intervened"]
        if not (_cell_ok(r) and _finite(r["ctrl_low"])):
            nan.append(name)
            continue
        shifted = r["own_low"] > r["ctrl_high"] or r["own_high"] < r["ctrl_low"]
        hits += shifted
        measured.append(f"{name} {num(r['own'])}{' (shifted)' if shifted else ''}")
        cis.append(f"{name} {interval(r['own_low'], r['own_high'])}")
        controls.append(f"{name} {num(r['ctrl'])} {interval(r['ctrl_low'], r['ctrl_high'])}")
    n = len(measured)
    if n == 0:
        return Finding(NOT_MEASURABLE, f"every cell is NaN{_nan_note(nan)}")
    reason = _share_text(
        hits, n, th, "values whose own ΔP(supported) interval lies outside the random control's"
    ) + _nan_note(nan)
    return Finding(
        _majority(hits, n, th), reason, "; ".join(measured), "; ".join(cis), "; ".join(controls)
    )


def relation_cumulativity(frame: pl.DataFrame | None, th: Thresholds) -> Finding:
    """Switching off a larger share of a relation's neurons drops its accuracy more (the mean
    drop over relations never shrinks as the fraction grows, and grows from the smallest to the
    largest), and at the largest fraction the drop exceeds the random control's (the paired
    own − control difference's bootstrap interval over relations lies below 0). Relations the
    plain model never answers (baseline 0) cannot drop and are left out."""
    if frame is None:
        return not_run("results/evaluation/{model}/relations.parquet is not made")
    keys = [k for k in ("lang", "fraction") if k in frame.columns]
    cells = own_and_control(frame, "accuracy", (*keys, "intervened", "evaluated")).filter(
        pl.col("intervened") == pl.col("evaluated")
    )
    if "fraction" not in cells.columns or cells.is_empty():
        return Finding(NOT_MEASURABLE, "relations.parquet has no own-relation rows by fraction")
    if _no_controls(cells):
        return Finding(NOT_MEASURABLE, "relations.parquet has no random-control rows")
    name = pl.concat_str(
        [pl.col(k).cast(pl.String) for k in ("lang", "intervened") if k in cells.columns],
        separator="/",
    )
    cells = cells.with_columns(name=name)
    zero = sorted(set(cells.filter(pl.col("baseline") <= 0)["name"]))
    cells = cells.filter(~pl.col("name").is_in(zero))
    bad = cells.filter(~(pl.col("own").is_finite() & pl.col("ctrl").is_finite()))
    nan = sorted(set(bad["name"]))
    cells = cells.filter(~pl.col("name").is_in(nan))
    note = (f"; baseline accuracy 0, left out: {', '.join(zero)}" if zero else "") + _nan_note(nan)
    if cells.is_empty():
        return Finding(NOT_MEASURABLE, f"no relation the plain model answers{note}")
    fractions = sorted(set(cells["fraction"]))
    per = cells.group_by("fraction").agg(own=pl.col("own").mean(), ctrl=pl.col("ctrl").mean())
    per = per.sort("fraction")
    drops = [-x for x in per["own"]]
    top = cells.filter(pl.col("fraction") == fractions[-1])
    low, high = bootstrap_mean((top["own"] - top["ctrl"]).to_numpy(), th)
    measured = (
        "; ".join(
            f"{f:g}: Δaccuracy {num(o)}" for f, o in zip(per["fraction"], per["own"], strict=True)
        )
        + f" (mean over {top.height} relations)"
    )
    control = "; ".join(
        f"{f:g}: {num(c)}" for f, c in zip(per["fraction"], per["ctrl"], strict=True)
    )
    ci = f"own − control at {fractions[-1]:g}: {interval(low, high)}"
    beyond = high < 0
    if len(fractions) < 2:
        return Finding(
            NOT_MEASURABLE,
            "one fraction configured (evaluation.relations."
            f"fractions): cumulativity needs two or more; beyond control at "
            f"{fractions[0]:g}: {'yes' if beyond else 'no'}{note}",
            measured,
            ci,
            control,
        )
    grows = all(b >= a for a, b in pairwise(drops)) and drops[-1] > drops[0]
    verdict = REPRODUCED if grows and beyond else NOT_REPRODUCED
    reason = (
        f"mean drop {'grows' if grows else 'does not grow'} with the fraction; at "
        f"{fractions[-1]:g} it is {'beyond' if beyond else 'within'} the random "
        f"control{note}"
    )
    return Finding(verdict, reason, measured, ci, control)


def refusal_transfer(
    evaluation: pl.DataFrame | None,
    directions: pl.DataFrame | None,
    th: Thresholds,
    source: str = "en",
) -> Finding:
    """Ablating the ``source`` (English) refusal direction stops refusal on harmful prompts in
    English and in the other languages, more than a random direction does (the own interval of
    the refusal rate's change lies below the random directions'). Only languages the model
    refuses at baseline (``th.min_refusal_rate``) can show it; reproduced when English does and
    more than ``th.majority`` of the other such languages do."""
    if evaluation is None:
        return not_run("results/evaluation/{model}/refusal.parquet is not made")
    ablation = evaluation.filter(pl.col("intervention") == "ablation")
    layer = ""
    if directions is not None:
        chosen = directions.filter((pl.col("group") == source) & pl.col("selected"))
        if chosen.height:
            layer = f"{source} direction: layer {chosen['layer'][0]}; "
    if ablation.filter(pl.col("intervened") == source).is_empty():
        return Finding(
            NOT_MEASURABLE,
            f"no {source} refusal direction was evaluated "
            "(refusal_directions.languages, or none passed the selection)",
        )
    cells = own_and_control(ablation, "refusal_rate", control_keys=("evaluated",)).filter(
        pl.col("intervened") == source
    )
    if _no_controls(cells):
        return Finding(NOT_MEASURABLE, "refusal.parquet has no random-direction rows")
    rates = {r["evaluated"]: r for r in cells.iter_rows(named=True)}
    base = rates.get(source, {}).get("baseline", NAN)
    baselines = ", ".join(f"{lang} {num(r['baseline'], False)}" for lang, r in rates.items())
    if not _finite(base) or base < th.min_refusal_rate:
        return Finding(
            NOT_MEASURABLE,
            f"the model does not refuse {source} harmful prompts at "
            f"baseline (refusal rate {num(base, False)} < {th.min_refusal_rate:g})",
            f"{layer}baseline refusal rates: {baselines}",
        )
    measured, cis, controls, low_base, nan, hits = [], [], [], [], [], 0
    bypass = {}
    for lang, r in rates.items():
        if not (_cell_ok(r) and _finite(r["ctrl_low"])):
            nan.append(lang)
            continue
        if r["baseline"] < th.min_refusal_rate:
            low_base.append(f"{lang} ({num(r['baseline'], False)})")
            continue
        bypass[lang] = r["own_high"] < r["ctrl_low"]
        measured.append(
            f"{lang} {num(r['baseline'], False)} → {num(r['baseline'] + r['own'], False)}"
            f"{' (bypassed)' if bypass[lang] else ''}"
        )
        cis.append(f"{lang} {interval(r['own_low'], r['own_high'])}")
        controls.append(f"{lang} {num(r['ctrl'])} {interval(r['ctrl_low'], r['ctrl_high'])}")
    others = {lang: b for lang, b in bypass.items() if lang != source}
    note = (
        f"; refusing too rarely at baseline, left out: {', '.join(low_base)}" if low_base else ""
    ) + _nan_note(nan)
    text = f"{layer}refusal rate plain → {source} direction ablated: " + "; ".join(measured)
    if source not in bypass or not others:
        return Finding(
            NOT_MEASURABLE,
            f"no other language is refused at baseline{note}"
            if source in bypass
            else f"{source}'s cell is NaN{note}",
            text,
            "; ".join(cis),
            "; ".join(controls),
        )
    hits = sum(others.values())
    verdict = _majority(hits, len(others), th) if bypass[source] else NOT_REPRODUCED
    reason = (
        f"{source} {'is' if bypass[source] else 'is not'} bypassed beyond random "
        "directions; " + _share_text(hits, len(others), th, "other languages bypassed") + note
    )
    return Finding(
        verdict,
        reason,
        text,
        "Δrate " + "; ".join(cis),
        "random directions: " + "; ".join(controls),
    )


def _switch_layer(gold: list[float], english: list[float]) -> int | None:
    """The first layer from which the answer's probability stays above English's."""
    switch = None
    for layer in range(len(gold) - 1, -1, -1):
        if gold[layer] > english[layer]:
            switch = layer
        else:
            break
    return switch


def lens_switch(frame: pl.DataFrame | None, th: Thresholds, source: str = "en") -> Finding:
    """The English-pivot picture: decoded layer by layer, a non-English prompt's answer is
    preceded by its English counterpart (English leads some layer with at least
    ``th.lens_min_prob``) before the target-language answer overtakes it for good (the switch
    layer). Read on the relation prompts (the English counterpart is the parallel English
    prompt's answer), else the MUSE prompts. Reproduced when more than ``th.majority`` of the
    languages show a switch with English leading before it. Observational: no control."""
    if frame is None:
        return not_run("results/neurons/{model}/logit_lens.parquet is not made")
    probes = [
        p
        for p in ("relations", "muse")
        if frame.filter((pl.col("probe") == p) & (pl.col("lang") != source)).height
    ]
    if not probes:
        return Finding(NOT_MEASURABLE, "the logit lens has no non-English prompts")
    probe = probes[0]
    rows = frame.filter((pl.col("probe") == probe) & (pl.col("lang") != source)).with_columns(
        pl.col("p_gold", "p_english").cast(pl.Float64).fill_null(NAN)
    )
    measured, nan, hits, n = [], [], 0, 0
    for lang in rows["lang"].unique(maintain_order=True):
        per = rows.filter(pl.col("lang") == lang).sort("layer")
        gold, english = per["p_gold"].to_list(), per["p_english"].to_list()
        if not all(_finite(g, e) for g, e in zip(gold, english, strict=True)):
            nan.append(lang)
            continue
        n += 1
        switch = _switch_layer(gold, english)
        before = range(switch if switch is not None else len(gold))
        led = [
            layer
            for layer in before
            if english[layer] > gold[layer] and english[layer] >= th.lens_min_prob
        ]
        shows = switch is not None and bool(led)
        hits += shows
        where = f"switch at layer {switch} of {len(gold)}" if switch is not None else "no switch"
        if led:
            span = f"layer {led[0]}" if len(led) == 1 else f"layers {led[0]}–{led[-1]}"
            lead = f"English led at {span}"
        else:
            lead = "English never led"
        measured.append(f"{lang}: {where}, {lead}")
    if n == 0:
        return Finding(NOT_MEASURABLE, f"every language's layer means are NaN{_nan_note(nan)}")
    reason = _share_text(
        hits,
        n,
        th,
        f"languages ({probe} prompts) whose answer overtakes "
        f"English for good after English led (p ≥ {th.lens_min_prob:g})",
    ) + _nan_note(nan)
    return Finding(
        _majority(hits, n, th),
        reason,
        "; ".join(measured),
        "— (the table holds per-layer means)",
        "none (observational)",
    )


def xtransplant_gain(frame: pl.DataFrame | None, th: Thresholds, source: str = "en") -> Finding:
    """Transplanting the English prompt's FFN output into the same fact's prompt in another
    language raises that language's accuracy: at the best layer, the interval of the change
    (against the plain run) lies above 0 and above the other-fact control's. The best of many
    layers is an optimistic pick, as XTransplant's own upper bound is; reproduced when more
    than ``th.majority`` of the languages gain."""
    if frame is None:
        return not_run("evaluation.xtransplant.languages is empty")
    cells = own_and_control(frame, "accuracy", ("intervened", "evaluated", "layer")).filter(
        (pl.col("intervened") == source) & (pl.col("evaluated") != source)
    )
    if cells.is_empty():
        return Finding(NOT_MEASURABLE, f"xtransplant.parquet has no {source} → X rows")
    if _no_controls(cells):
        return Finding(NOT_MEASURABLE, "xtransplant.parquet has no control rows")
    measured, cis, controls, nan, hits = [], [], [], [], 0
    for lang in cells["evaluated"].unique(maintain_order=True):
        per = cells.filter((pl.col("evaluated") == lang) & pl.col("own").is_finite())
        if per.is_empty():
            nan.append(lang)
            continue
        best = per.sort(["own", "layer"], descending=[True, False]).row(0, named=True)
        gain = _finite(best["own_low"], best["ctrl_high"]) and best["own_low"] > max(
            0.0, best["ctrl_high"]
        )
        hits += gain
        measured.append(
            f"{lang}: best layer {best['layer']} of {per.height}, accuracy "
            f"{num(best['baseline'], False)} {num(best['own'])}"
            f"{' (gain)' if gain else ''}"
        )
        cis.append(f"{lang} {interval(best['own_low'], best['own_high'])}")
        controls.append(
            f"{lang} {num(best['ctrl'])} {interval(best['ctrl_low'], best['ctrl_high'])}"
        )
    n = len(measured)
    if n == 0:
        return Finding(NOT_MEASURABLE, f"every transplant cell is NaN{_nan_note(nan)}")
    reason = _share_text(
        hits,
        n,
        th,
        f"languages whose best-layer {source} → X transplant "
        "interval lies above 0 and above the control's",
    ) + _nan_note(nan)
    return Finding(
        _majority(hits, n, th),
        reason,
        "; ".join(measured),
        "; ".join(cis),
        "other facts' outputs: " + "; ".join(controls),
    )
