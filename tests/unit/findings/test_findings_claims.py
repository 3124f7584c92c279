"""Each claim's verdict on planted tables: reproduced, not reproduced, not measurable, not run."""

from __future__ import annotations

import polars as pl
import pytest
from unit.findings.findings_frames import NAN, ablation, diagonal

from polyneuron.findings import claims as c
from polyneuron.findings.families import family_of

TH = c.Thresholds(n_boot=200)


# --------------------------------------------------------------------------- LAPE / tasks


def test_lape_diagonal_reproduced_when_own_set_is_largest_and_above_control():
    found = c.diagonal_specificity(diagonal(2.0, 0.2, 0.0), TH, "nll", "language", "lape")
    assert found.verdict == c.REPRODUCED
    assert "2 of 2 languages" in found.reason
    assert "de +2 (largest, above control" in found.measured  # ratio 2.0 / 0.0: n/a
    assert "de [+1.9, +2.1]" in found.ci


def test_lape_diagonal_not_reproduced_when_another_set_hits_a_language_harder():
    found = c.diagonal_specificity(diagonal(0.5, 2.0, 0.0), TH, "nll", "language", "lape")
    assert found.verdict == c.NOT_REPRODUCED
    assert "0 of 2" in found.reason and "not largest" in found.measured


def test_lape_diagonal_not_reproduced_when_own_interval_meets_the_control():
    found = c.diagonal_specificity(diagonal(0.25, 0.0, 0.1), TH, "nll", "language", "lape")
    # 0.25 - 0.1 = 0.15 is not above the control's 0.1 + 0.1 = 0.2
    assert found.verdict == c.NOT_REPRODUCED and "within control" in found.measured
    assert "2.5× control" in found.measured


def test_lape_diagonal_nan_language_is_named_and_left_out_of_the_count():
    frame = diagonal(2.0, 0.2, 0.0, langs=("de", "sw", "zh")).with_columns(
        delta=pl.when(
            (pl.col("intervened") == "zh")
            & (pl.col("evaluated") == "zh")
            & (pl.col("control") == "none")
        )
        .then(NAN)
        .otherwise(pl.col("delta"))
    )
    found = c.diagonal_specificity(frame, TH, "nll", "language", "lape")
    assert found.verdict == c.REPRODUCED
    assert "2 of 2 languages" in found.reason and "NaN, not counted: zh" in found.reason


def test_lape_diagonal_all_nan_is_not_measurable_not_zero():
    frame = diagonal(2.0, 0.2, 0.0).with_columns(delta=pl.lit(NAN))
    found = c.diagonal_specificity(frame, TH, "nll", "language", "lape")
    assert found.verdict == c.NOT_MEASURABLE and "NaN" in found.reason


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (diagonal(2.0, 0.2, 0.0, langs=("de",)), "it has 1"),
        (diagonal(2.0, 0.2, 0.0).filter(pl.col("control") == "none"), "no random-control"),
        (diagonal(2.0, 0.2, 0.0).with_columns(metric=pl.lit("perplexity")), "no 'nll' rows"),
    ],
)
def test_lape_diagonal_not_measurable(frame, reason):
    found = c.diagonal_specificity(frame, TH, "nll", "language", "lape")
    assert found.verdict == c.NOT_MEASURABLE and reason in found.reason


def test_lape_diagonal_not_run_without_its_table():
    assert c.diagonal_specificity(None, TH, "nll", "language", "lape").verdict == c.NOT_RUN


def test_task_specialisation_reads_the_loss_metric():
    frame = ablation(
        {
            ("sentiment", "sentiment"): (3.0, 2.0, 4.0),
            ("topic", "sentiment"): (1.0, 0.5, 1.5),
            ("sentiment", "topic"): (0.5, 0.0, 1.0),
            ("topic", "topic"): (0.2, -0.1, 0.5),
        },
        {k: [(0.0, -0.5, 0.5)] for k in [("sentiment", "sentiment"), ("topic", "topic")]},
        metric="loss",
    )
    found = c.diagonal_specificity(frame, TH, "loss", "task", "tasks")
    # sentiment: largest and above; topic: largest (0.2 > 0.5? no) -> 1 of 2, not > 50%
    assert found.verdict == c.NOT_REPRODUCED and "1 of 2 tasks" in found.reason


# --------------------------------------------------------------------------- overlap


def overlap_table(jaccard: dict[tuple[str, str], float]) -> pl.DataFrame:
    rows = [(a, b, 10, 10, 5, j) for (a, b), j in jaccard.items()]
    rows += [(b, a, 10, 10, 5, j) for (a, b), j in jaccard.items()]  # both orders, as written
    return pl.DataFrame(
        rows, schema=["lang_a", "lang_b", "n_a", "n_b", "n_overlap", "jaccard"], orient="row"
    )


FAMILY_PAIRS = {("de", "en"): 0.8, ("fr", "it"): 0.6}
CROSS_PAIRS = {("de", "fr"): 0.2, ("de", "it"): 0.3, ("en", "fr"): 0.1, ("en", "it"): 0.2}


def test_families_hold_for_these_codes():
    assert family_of("de") == family_of("en") != family_of("fr") == family_of("it")
    assert family_of("fi") == family_of("hu") and family_of("xx") is None


def test_overlap_families_reproduced_with_the_hand_computed_difference():
    found = c.overlap_families(overlap_table({**FAMILY_PAIRS, **CROSS_PAIRS}), TH)
    assert found.verdict == c.REPRODUCED
    assert "= +0.5" in found.measured  # (0.8 + 0.6) / 2 - (0.2 + 0.3 + 0.1 + 0.2) / 4


def test_overlap_families_not_reproduced_when_cross_pairs_overlap_as_much():
    flipped = {k: 0.15 for k in FAMILY_PAIRS} | CROSS_PAIRS
    found = c.overlap_families(overlap_table(flipped), TH)
    assert found.verdict == c.NOT_REPRODUCED


def test_overlap_families_not_measurable_without_a_same_family_pair():
    found = c.overlap_families(overlap_table({("de", "fr"): 0.2, ("en", "zh"): 0.1}), TH)
    assert found.verdict == c.NOT_MEASURABLE and "0 same-family" in found.reason


def test_overlap_families_leaves_nan_and_unknown_languages_out():
    table = overlap_table({**FAMILY_PAIRS, **CROSS_PAIRS, ("de", "xx"): 0.9, ("de", "en"): NAN})
    found = c.overlap_families(table, TH)
    assert "no family for xx" in found.reason and "de-en" in found.reason
    assert "= +0.4" in found.measured  # 0.6 - 0.2: the NaN en-de pair is not a zero


def test_overlap_families_not_run_without_the_table():
    assert c.overlap_families(None, TH).verdict == c.NOT_RUN


# --------------------------------------------------------------------------- bridges


def bridges_table(scores: dict[str, float], target: str = "sw") -> pl.DataFrame:
    ranked = sorted(scores, key=scores.get, reverse=True)
    rows = [
        (
            target,
            cand,
            layer,
            5,
            50,
            1.0,
            scores[cand],
            ranked.index(cand) + 1,
            ranked.index(cand) == 0,
        )
        for cand in ranked
        for layer in (0, 1)
    ]
    schema = [
        "target",
        "candidate",
        "layer",
        "n_neurons",
        "n_pairs",
        "score",
        "window_score",
        "rank",
        "selected",
    ]
    return pl.DataFrame(rows, schema=schema, orient="row")


def test_bridge_reproduced_when_a_high_resource_language_is_chosen():
    found = c.bridge_choice(bridges_table({"de": 3.0, "tr": 2.5, "fi": 1.0}), TH)
    assert found.verdict == c.REPRODUCED
    assert "sw → de (high-resource" in found.measured and "margin +0.5 over tr" in found.measured


def test_bridge_not_reproduced_when_neither_related_nor_high_resource():
    found = c.bridge_choice(bridges_table({"tr": 3.0, "de": 2.0}), TH)
    assert found.verdict == c.NOT_REPRODUCED and "neither" in found.measured


def test_bridge_not_measurable_when_every_candidate_agrees():
    found = c.bridge_choice(bridges_table({"de": 3.0, "fr": 2.0}), TH)
    assert found.verdict == c.NOT_MEASURABLE and "every candidate" in found.reason


def test_bridge_not_run_without_targets():
    assert c.bridge_choice(None, TH).verdict == c.NOT_RUN


# --------------------------------------------------------------------------- overlap ablation


def test_overlap_ablation_reproduced_when_other_languages_suffer_beyond_control():
    found = c.overlap_ablation(diagonal(3.0, 2.0, 0.0), TH)
    assert found.verdict == c.REPRODUCED and "2 of 2 cross-language" in found.reason
    # zeroing always-on neurons is a mean shift as much as a removal: the reason says which mode
    assert "ablation.mode zero" in found.reason and "ablation.mode: mean" in found.reason
    mean = c.overlap_ablation(
        diagonal(3.0, 2.0, 0.0), c.Thresholds(n_boot=200, ablation_mode="mean")
    )
    assert mean.reason.endswith("measured with ablation.mode mean")


def test_overlap_ablation_not_reproduced_when_only_the_own_language_suffers():
    found = c.overlap_ablation(diagonal(3.0, 0.05, 0.0), TH)
    assert found.verdict == c.NOT_REPRODUCED


def test_overlap_ablation_not_measurable_with_one_language():
    found = c.overlap_ablation(diagonal(3.0, 2.0, 0.0, langs=("en",)), TH)
    assert found.verdict == c.NOT_MEASURABLE


# --------------------------------------------------------------------------- values


def values_table(own_delta: float) -> pl.DataFrame:
    values = ("harmony", "justice")
    own = {(v, w): ((own_delta if v == w else 0.0), 0.0, 0.0) for v in values for w in values}
    own = {k: (d, d - 0.02, d + 0.02) for k, (d, _, _) in own.items()}
    random = {(v, v): [(0.0, -0.03, 0.03)] * 3 for v in values}
    return ablation(own, random, metric="p_supported", baseline=0.5, lang="en")


def test_values_reproduced_when_own_shift_leaves_the_control_interval_either_way():
    found = c.value_shifts(values_table(-0.2), TH)
    assert found.verdict == c.REPRODUCED and "en/harmony -0.2 (shifted)" in found.measured


def test_values_not_reproduced_inside_the_control_interval():
    assert c.value_shifts(values_table(0.01), TH).verdict == c.NOT_REPRODUCED


def test_values_not_measurable_without_controls():
    frame = values_table(-0.2).filter(pl.col("control") == "none")
    assert c.value_shifts(frame, TH).verdict == c.NOT_MEASURABLE


# --------------------------------------------------------------------------- relations


def relations_table(drops: dict[float, float], ctrl: float = 0.0, baseline=0.8) -> pl.DataFrame:
    frames = []
    for fraction, drop in drops.items():
        for rel, base in (("capital", baseline), ("currency", baseline), ("never", 0.0)):
            frames.append(
                ablation(
                    {(rel, rel): (-drop, -drop - 0.05, -drop + 0.05)},
                    {(rel, rel): [(ctrl, ctrl - 0.05, ctrl + 0.05)]},
                    metric="accuracy",
                    baseline=base,
                    lang="en",
                    fraction=fraction,
                )
            )
    return pl.concat(frames)


def test_relations_reproduced_when_the_drop_grows_and_beats_the_control():
    found = c.relation_cumulativity(relations_table({0.1: 0.1, 0.5: 0.3, 1.0: 0.6}), TH)
    assert found.verdict == c.REPRODUCED
    assert "1: Δaccuracy -0.6" in found.measured
    assert "left out: en/never" in found.reason  # baseline 0: nothing to drop


def test_relations_not_reproduced_when_the_drop_shrinks():
    found = c.relation_cumulativity(relations_table({0.1: 0.5, 1.0: 0.2}), TH)
    assert found.verdict == c.NOT_REPRODUCED and "does not grow" in found.reason


def test_relations_not_reproduced_when_the_control_drops_as_much():
    found = c.relation_cumulativity(relations_table({0.1: 0.1, 1.0: 0.3}, ctrl=-0.3), TH)
    assert found.verdict == c.NOT_REPRODUCED and "within the random" in found.reason


def test_relations_not_measurable_with_one_fraction():
    found = c.relation_cumulativity(relations_table({0.5: 0.3}), TH)
    assert found.verdict == c.NOT_MEASURABLE and "one fraction" in found.reason


# --------------------------------------------------------------------------- refusal


def refusal_table(baseline: float, own: dict[str, float], ctrl: float = 0.0) -> pl.DataFrame:
    frames = []
    for lang, d in own.items():
        frames.append(
            ablation(
                {("en", lang): (d, d - 0.1, d + 0.1)}, {}, metric="refusal_rate", baseline=baseline
            )
        )
        frames.append(
            ablation(
                {},
                {("x", lang): [(ctrl, ctrl - 0.1, ctrl + 0.1)] * 2},
                metric="refusal_rate",
                baseline=baseline,
            ).with_columns(intervened=pl.lit(None, pl.String))
        )
    frame = pl.concat(frames)
    return frame.with_columns(intervention=pl.lit("ablation"), prompts=pl.lit("harmful"))


DIRECTIONS = pl.DataFrame(
    {"layer": [3, 5], "position": [-1, -1], "group": ["en", "en"], "selected": [False, True]}
)


def test_refusal_reproduced_when_english_direction_bypasses_every_language():
    found = c.refusal_transfer(refusal_table(0.9, {"en": -0.8, "de": -0.7}), DIRECTIONS, TH)
    assert found.verdict == c.REPRODUCED
    assert "en direction: layer 5" in found.measured and "de 0.9 → 0.2" in found.measured


def test_refusal_not_reproduced_when_other_languages_keep_refusing():
    found = c.refusal_transfer(refusal_table(0.9, {"en": -0.8, "de": 0.0}), DIRECTIONS, TH)
    assert found.verdict == c.NOT_REPRODUCED and "0 of 1 other" in found.reason


def test_refusal_not_measurable_when_the_model_never_refuses():
    found = c.refusal_transfer(refusal_table(0.0, {"en": 0.0, "de": 0.0}), DIRECTIONS, TH)
    assert found.verdict == c.NOT_MEASURABLE and "does not refuse" in found.reason


def test_refusal_not_measurable_without_an_english_direction():
    frame = refusal_table(0.9, {"en": -0.8}).with_columns(
        intervened=pl.when(pl.col("control") == "none")
        .then(pl.lit("de"))
        .otherwise(pl.col("intervened"))
    )
    assert c.refusal_transfer(frame, None, TH).verdict == c.NOT_MEASURABLE


def test_refusal_not_run_without_the_table():
    assert c.refusal_transfer(None, None, TH).verdict == c.NOT_RUN


# --------------------------------------------------------------------------- logit lens


def lens_table(per_lang: dict[str, tuple[list[float], list[float]]]) -> pl.DataFrame:
    rows = [
        ("relations", lang, layer, 8, g, e, 0.0, 0.0, 0.0, 0.0)
        for lang, (gold, english) in per_lang.items()
        for layer, (g, e) in enumerate(zip(gold, english, strict=True))
    ]
    schema = [
        "probe",
        "lang",
        "layer",
        "n_examples",
        "p_gold",
        "p_english",
        "top1_gold",
        "top1_english",
        "top1_target_script",
        "top1_latin",
    ]
    return pl.DataFrame(rows, schema=schema, orient="row")


PIVOT = ([0.0, 0.01, 0.1, 0.2, 0.6], [0.0, 0.2, 0.3, 0.1, 0.1])  # English leads 1-2, switch 3


def test_lens_reproduced_when_english_leads_before_the_switch():
    found = c.lens_switch(lens_table({"de": PIVOT, "zh": PIVOT}), TH)
    assert found.verdict == c.REPRODUCED
    assert "de: switch at layer 3 of 5, English led at layers 1–2" in found.measured


def test_lens_not_reproduced_without_a_switch():
    never = ([0.1, 0.1, 0.1], [0.2, 0.3, 0.4])
    found = c.lens_switch(lens_table({"de": never, "zh": PIVOT}), TH)
    assert found.verdict == c.NOT_REPRODUCED and "de: no switch" in found.measured


def test_lens_english_below_the_floor_does_not_lead():
    faint = ([0.0, 0.001, 0.5], [0.0, 0.005, 0.1])  # English "leads" layer 1 at 0.005 < 0.01
    assert c.lens_switch(lens_table({"de": faint}), TH).verdict == c.NOT_REPRODUCED


def test_lens_not_measurable_with_english_only():
    assert c.lens_switch(lens_table({"en": PIVOT}), TH).verdict == c.NOT_MEASURABLE


# --------------------------------------------------------------------------- xtransplant


def xtransplant_table(gain: float) -> pl.DataFrame:
    frames = [
        ablation(
            {("en", "de"): (d, d - 0.05, d + 0.05)},
            {("en", "de"): [(0.0, -0.05, 0.05)]},
            metric="accuracy",
            baseline=0.3,
            layer=layer,
        )
        for layer, d in ((0, 0.0), (1, gain))
    ]
    return pl.concat(frames)


def test_xtransplant_reproduced_when_the_best_layer_beats_plain_and_control():
    found = c.xtransplant_gain(xtransplant_table(0.3), TH)
    assert found.verdict == c.REPRODUCED and "de: best layer 1 of 2" in found.measured


def test_xtransplant_not_reproduced_when_no_layer_helps():
    assert c.xtransplant_gain(xtransplant_table(0.02), TH).verdict == c.NOT_REPRODUCED


def test_xtransplant_not_run_without_languages():
    assert c.xtransplant_gain(None, TH).verdict == c.NOT_RUN
