"""The language claims (LAPE, BridgeX-ICL): the LAPE diagonal, overlap by language family,
the bridge chosen for a low-resource language and the overlap-set ablation, each measured on
one model's tables (:mod:`polyneuron.findings.verdicts` for the verdicts)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from polyneuron.findings.families import family_of
from polyneuron.findings.verdicts import (
    NAN,
    NOT_MEASURABLE,
    NOT_REPRODUCED,
    REPRODUCED,
    Finding,
    Thresholds,
    _above,
    _cell_ok,
    _finite,
    _majority,
    _nan_note,
    _no_controls,
    _no_metric,
    _ratio,
    _share_text,
    bootstrap_mean,
    interval,
    not_run,
    num,
    own_and_control,
)


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
