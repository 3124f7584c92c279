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

The language claims (LAPE, BridgeX-ICL) live in :mod:`polyneuron.findings.language` and the
verdicts and shared helpers in :mod:`polyneuron.findings.verdicts`; both are re-exported here.
"""

from __future__ import annotations

from itertools import pairwise

import polars as pl

from polyneuron.findings.language import (
    bridge_choice,
    diagonal_specificity,
    overlap_ablation,
    overlap_families,
)
from polyneuron.findings.verdicts import (
    NAN,
    NOT_MEASURABLE,
    NOT_REPRODUCED,
    NOT_RUN,
    REPRODUCED,
    Finding,
    Thresholds,
    _cell_ok,
    _finite,
    _majority,
    _nan_note,
    _no_controls,
    _share_text,
    bootstrap_mean,
    interval,
    not_run,
    num,
    own_and_control,
)

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
