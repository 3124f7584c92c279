from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest

from polyneuron import PolyneuronError
from polyneuron.evaluate.matrix import ABLATION_SCHEMA
from polyneuron.plots.common import (
    layer_counts,
    neuron_sets,
    plot_bridges,
    plot_cross_method,
    plot_lape_layers,
    plot_logit_lens,
    plot_overlap_heatmap,
    plot_task_overlap,
    set_jaccard,
)
from polyneuron.plots.figures import (
    ablation_matrices,
    addition_rates,
    control_means,
    plot_ablation_matrix,
    plot_refusal,
    plot_relation_cumulativity,
    plot_value_shifts,
    plot_xtransplant,
    shared_language,
)

SEEDS = (0, 1)


def own_delta(a: str, b: str, extra: tuple = ()) -> float:
    """A delta that tells cells apart: the own set hurts its own group most."""
    return (10.0 if a == b else 1.0) + 0.1 * len(b) + 0.01 * sum(len(str(x)) for x in extra)


def random_delta(seed: int) -> float:
    return 0.5 if seed == 0 else -0.3  # mean over the two seeds: 0.1


def ablation_table(
    intervened, evaluated, metric="perplexity", extra: dict[str, list] | None = None
) -> pl.DataFrame:
    """Rows of ABLATION_SCHEMA (+ extra key columns): own set and two random seeds per cell;
    intervals delta -/+ 1 (own) and delta -/+ (1 + seed) (random)."""
    extra = extra or {}
    rows = []
    for a, b, *values in itertools.product(intervened, evaluated, *extra.values()):
        for control, seed in (("none", None), *(("random", s) for s in SEEDS)):
            delta = own_delta(a, b, tuple(values)) if seed is None else random_delta(seed)
            half = 1.0 if seed is None else 1.0 + seed
            rows.append({
                "intervened": a, "evaluated": b, "metric": metric, "value": 5.0 + delta,
                "baseline": 5.0, "delta": delta, "control": control, "seed": seed,
                "ci_low": delta - half, "ci_high": delta + half, "n_neurons": 7,
                "n_texts": 10, **dict(zip(extra, values, strict=True)),
            })  # fmt: skip
    schema = {**ABLATION_SCHEMA, **{c: pl.Series(v).dtype for c, v in extra.items()}}
    return pl.DataFrame(rows, schema=schema)


def assert_pdf(path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 1000


def labels(fig) -> tuple[set[str], set[str], set[str]]:
    axes = [ax for ax in fig.axes if ax.get_visible()]
    return (
        {ax.get_title() for ax in axes},
        {ax.get_xlabel() for ax in axes},
        {ax.get_ylabel() for ax in axes},
    )


# --------------------------------------------------------------------------- set arithmetic


def test_control_means_average_random_seeds_and_span_their_intervals():
    table = ablation_table(["de"], ["de", "en"])
    means = control_means(table)
    own = means.filter(pl.col("control") == "none", pl.col("evaluated") == "de")
    random = means.filter(pl.col("control") == "random", pl.col("evaluated") == "de")
    assert own.select("delta", "ci_low", "ci_high", "n_seeds").row(0) == pytest.approx(
        (10.2, 9.2, 11.2, 1)
    )
    # seeds: 0.5 [-0.5, 1.5] and -0.3 [-2.3, 1.7] -> mean 0.1, span [-2.3, 1.7]
    assert random.select("delta", "ci_low", "ci_high", "n_seeds").row(0) == pytest.approx(
        (0.1, -2.3, 1.7, 2)
    )
    assert means.height == 4  # two cells x (own, random)


def test_ablation_matrices_put_own_and_random_deltas_in_table_order():
    table = ablation_table(["en", "de"], ["en", "de", "sw"])
    m = ablation_matrices(table, "perplexity")
    assert (m.intervened, m.evaluated) == (["en", "de"], ["en", "de", "sw"])
    expected = np.array([[10.2, 1.2, 1.2], [1.2, 10.2, 1.2]])
    np.testing.assert_allclose(m.own, expected)
    np.testing.assert_allclose(m.random, np.full((2, 3), 0.1))


def test_ablation_matrices_filter_extra_columns_and_refuse_to_mix_them():
    table = ablation_table(
        ["en", "de"],
        ["en", "de"],
        "refusal_rate",
        {"intervention": ["ablation", "addition"], "prompts": ["harmful", "harmless"]},
    )
    with pytest.raises(PolyneuronError, match="intervention"):
        ablation_matrices(table, "refusal_rate")
    m = ablation_matrices(table, "refusal_rate", {"intervention": "ablation", "prompts": "harmful"})
    shift = 0.01 * (len("ablation") + len("harmful"))
    np.testing.assert_allclose(np.diag(m.own), [10.2 + shift, 10.2 + shift])
    with pytest.raises(PolyneuronError, match=r"'loss'.*refusal_rate"):
        ablation_matrices(table, "loss")


def test_addition_rates_stack_plain_each_direction_and_the_random_mean():
    table = ablation_table(
        ["en", "de"],
        ["en", "de"],
        "refusal_rate",
        {"intervention": ["addition"], "prompts": ["harmless"]},
    )
    rows, cols, rates = addition_rates(table)
    assert rows == ["plain", "en", "de", "random"] and cols == ["en", "de"]
    shift = 0.01 * (len("addition") + len("harmless"))
    np.testing.assert_allclose(rates[0], [5.0, 5.0])  # baseline
    np.testing.assert_allclose(rates[1:3], 5.0 + np.array([[10.2, 1.2], [1.2, 10.2]]) + shift)
    np.testing.assert_allclose(rates[3], [5.1, 5.1])  # 5 + mean(0.5, -0.3)


def test_neuron_sets_pool_languages_and_use_only_selected_rows():
    lape = pl.DataFrame({"layer": [0, 0, 1], "neuron": [1, 1, 2], "lang": ["de", "fr", "de"]})
    values = pl.DataFrame({
        "layer": [0, 0, 0, 1], "neuron": [1, 1, 3, 0], "group": ["care"] * 4,
        "lang": ["en", "zh", "en", "en"], "selected": [True, True, False, True],
    })  # fmt: skip
    sets = neuron_sets({"language": lape, "value": values})
    assert sets.rows() == [
        ("language", "de", 0, 1), ("language", "fr", 0, 1), ("language", "de", 1, 2),
        ("value", "care", 0, 1), ("value", "care", 1, 0),
    ]  # fmt: skip


def test_set_jaccard_counts_shared_neurons_of_every_ordered_pair():
    sets = pl.DataFrame({
        "method": ["a"] * 3 + ["b"] * 3 + ["c"],
        "layer": [0, 0, 1, 0, 1, 2, 5],
        "neuron": [1, 2, 3, 2, 3, 0, 5],
    })  # fmt: skip
    table = set_jaccard(sets, "method")
    # a = {(0,1), (0,2), (1,3)}, b = {(0,2), (1,3), (2,0)}: 2 shared of 4 -> 0.5; c apart
    expected = {
        ("a", "a"): (3, 3, 3, 1.0), ("a", "b"): (3, 3, 2, 0.5), ("a", "c"): (3, 1, 0, 0.0),
        ("b", "a"): (3, 3, 2, 0.5), ("b", "b"): (3, 3, 3, 1.0), ("b", "c"): (3, 1, 0, 0.0),
        ("c", "a"): (1, 3, 0, 0.0), ("c", "b"): (1, 3, 0, 0.0), ("c", "c"): (1, 1, 1, 1.0),
    }  # fmt: skip
    assert [(a, b) for a, b in table.select("a", "b").rows()] == list(expected)
    for a, b, n_a, n_b, shared, jaccard in table.rows():
        assert (n_a, n_b, shared) == expected[a, b][:3]
        assert jaccard == pytest.approx(expected[a, b][3])


def test_set_jaccard_of_the_unions_counts_a_neuron_in_several_groups_once():
    lape = pl.DataFrame({"layer": [0, 0, 0], "neuron": [1, 1, 2], "lang": ["de", "fr", "fr"]})
    tasks = pl.DataFrame({"layer": [0, 3], "neuron": [1, 1], "group": ["x", "y"]})
    table = set_jaccard(neuron_sets({"language": lape, "task": tasks}), "method")
    # language = {(0,1), (0,2)}, task = {(0,1), (3,1)}: 1 shared of 3
    row = table.filter(pl.col("a") == "language", pl.col("b") == "task")
    assert row.select("n_a", "n_b", "n_overlap").row(0) == (2, 2, 1)
    assert row["jaccard"][0] == pytest.approx(1 / 3)


def test_layer_counts_count_each_union_neuron_once_per_layer():
    sets = pl.DataFrame({
        "method": ["language"] * 3 + ["task"] * 2, "group": ["de", "fr", "fr", "x", "y"],
        "layer": [0, 0, 2, 1, 1], "neuron": [1, 1, 4, 3, 3],
    })  # fmt: skip
    counts = layer_counts(sets, 3)
    assert counts["language"].tolist() == [1, 0, 1]
    assert counts["task"].tolist() == [0, 1, 0]


def test_shared_language_finds_the_pivot_of_every_pair():
    assert shared_language([("en", "de"), ("de", "en"), ("en", "zh")]) == "en"
    assert shared_language([("en", "de")]) is None  # both are shared: no single pivot
    assert shared_language([("en", "de"), ("fr", "zh")]) is None


# --------------------------------------------------------------------------- figures


def test_plot_ablation_matrix_draws_own_and_random_panels(tmp_path):
    table = ablation_table(["en", "de", "zh"], ["en", "de", "zh"])
    path = tmp_path / "ablation_lape.pdf"
    fig = plot_ablation_matrix(
        table, "perplexity", "m", "LAPE neurons off", "language (ISO 639-1)", path
    )
    assert_pdf(path)
    assert fig.get_suptitle() == "m: LAPE neurons off"
    titles, xlabels, ylabels = labels(fig)
    assert {"own neurons off", "random neurons off (mean over seeds)"} <= titles
    assert "evaluated language (ISO 639-1)" in xlabels
    assert "intervened language (ISO 639-1)" in ylabels
    assert "Δ perplexity (neurons off − plain model)" in ylabels  # the colour bar
    assert {t.get_text() for t in fig.axes[0].texts} == {"10.2", "1.2"}  # annotated cells


def test_plot_value_shifts_draws_a_panel_per_language(tmp_path):
    table = ablation_table(["care", "fairness"], ["care", "fairness"], "p_supported",
                           {"lang": ["en", "zh"]})  # fmt: skip
    path = tmp_path / "values.pdf"
    fig = plot_value_shifts(table, "m", path)
    assert_pdf(path)
    titles, xlabels, ylabels = labels(fig)
    assert titles == {"en questions", "zh questions"}
    assert xlabels == {"Δ p_supported (neurons off − plain model)"}
    assert "value (its own neurons off)" in ylabels
    assert "value neurons off" in fig.get_suptitle()


def test_plot_relation_cumulativity_draws_own_and_dashed_random_lines(tmp_path):
    table = ablation_table(["P17", "P19", "P36"], ["P17", "P19", "P36"], "accuracy",
                           {"fraction": [0.1, 0.5, 1.0]})  # fmt: skip
    path = tmp_path / "relation_cumulativity.pdf"
    fig = plot_relation_cumulativity(table, "m", path)
    assert_pdf(path)
    titles, xlabels, ylabels = labels(fig)
    assert {t.split(" ")[0] for t in titles} == {"P17", "P19", "P36"}
    assert "fraction of the relation's neurons off" in xlabels
    assert "Δ accuracy" in ylabels
    styles = {line.get_linestyle() for line in fig.axes[0].lines if line.get_label() != "_"}
    assert {"-", "--"} <= styles
    own = next(line for line in fig.axes[0].lines if line.get_label() == "own")
    assert list(own.get_xdata()) == pytest.approx([0.0, 0.1, 0.5, 1.0])  # plain anchor first


def test_plot_refusal_draws_cosine_addition_and_transfer_matrices(tmp_path):
    langs = ["en", "de", "zh"]
    table = ablation_table(
        langs,
        langs,
        "refusal_rate",
        {"intervention": ["ablation", "addition"], "prompts": ["harmful", "harmless"]},
    )
    cosine = pl.DataFrame(
        [("selected", None, a, b, 1.0 if a == b else 0.6) for a in langs for b in langs],
        schema=["direction", "layer", "lang_a", "lang_b", "cosine"],
        orient="row",
    )
    path = tmp_path / "refusal.pdf"
    fig = plot_refusal(table, cosine, "chat", path)
    assert_pdf(path)
    titles, xlabels, ylabels = labels(fig)
    assert {
        "cosine of selected directions",
        "activation addition, harmless prompts",
        "directional ablation, harmful prompts",
        "random directions ablated (mean over seeds)",
    } <= titles
    assert {"cosine similarity", "refusal rate", "direction added"} <= ylabels
    assert "evaluated language (ISO 639-1)" in xlabels


def test_plot_xtransplant_splits_directions_into_two_panels(tmp_path):
    rows = [ablation_table([a], [b], "accuracy", {"layer": [0, 1, 2]})
            for a, b in (("en", "de"), ("de", "en"), ("en", "zh"), ("zh", "en"))]  # fmt: skip
    path = tmp_path / "xtransplant.pdf"
    fig = plot_xtransplant(pl.concat(rows), "m", path)
    assert_pdf(path)
    titles, xlabels, ylabels = labels(fig)
    assert titles == {"en → X", "X → en"}
    assert xlabels == {"layer of the transplanted FFN output"}
    assert "Δ accuracy (transplanted − plain model)" in ylabels
    names = {line.get_label() for line in fig.axes[0].lines}
    assert {"en→de", "en→de (random)", "en→zh"} <= names


def test_plot_bridges_highlights_the_selected_bridge(tmp_path):
    table = pl.DataFrame({
        "target": ["sw"] * 6, "candidate": ["en"] * 3 + ["fr"] * 3, "layer": [0, 1, 2] * 2,
        "n_neurons": [5] * 6, "n_pairs": [20] * 6, "score": [0.1, 0.3, 0.2, 0.1, 0.1, 0.1],
        "window_score": [0.2] * 3 + [0.1] * 3, "rank": [1] * 3 + [2] * 3,
        "selected": [True] * 3 + [False] * 3,
    })  # fmt: skip
    path = tmp_path / "bridges.pdf"
    fig = plot_bridges(table, "m", path, window=[1, 2])
    assert_pdf(path)
    titles, xlabels, ylabels = labels(fig)
    assert titles == {"target sw"} and xlabels == {"layer"} and ylabels == {"HSIC layer score"}
    widths = {line.get_label(): line.get_linewidth() for line in fig.axes[0].lines}
    assert widths["en (0.2) — bridge"] > widths["fr (0.1)"]


def test_plot_task_overlap_labels_tasks_with_their_sizes(tmp_path):
    tasks = ["a", "b", "c"]
    jaccard = {("a", "b"): 0.2, ("a", "c"): 0.1, ("b", "c"): 0.4}
    table = pl.DataFrame(
        [(x, y, 10, 10, 0, 1.0 if x == y else jaccard[tuple(sorted((x, y)))])
         for x in tasks for y in tasks],
        schema=["task_a", "task_b", "n_a", "n_b", "n_overlap", "jaccard"],
        orient="row",
    )  # fmt: skip
    path = tmp_path / "task_overlap.pdf"
    fig = plot_task_overlap(table, "m", path)
    assert_pdf(path)
    ax = fig.axes[0]
    assert ax.get_title() == "m: overlap of task-specific neurons"
    assert ax.get_xlabel() == ax.get_ylabel() == "task (neurons)"
    assert {t.get_text() for t in ax.get_xticklabels()} == {"a (10)", "b (10)", "c (10)"}
    assert {t.get_text() for t in ax.texts} == {"0.2", "0.1", "0.4"}


def test_plot_logit_lens_draws_a_curve_per_language_and_probe(tmp_path):
    rows = [
        ("muse", lang, layer, 5, 0.1 * layer, 0.05 * layer, 0.0, 0.0, 0.0, 0.0)
        for lang in ("de", "fr")
        for layer in range(4)
    ]
    rows += [("relations", "en", layer, 5, 0.2, 0.2, 0.0, 0.0, 0.0, 0.0) for layer in range(4)]
    table = pl.DataFrame(rows, orient="row", schema=[
        "probe", "lang", "layer", "n_examples", "p_gold", "p_english", "top1_gold",
        "top1_english", "top1_target_script", "top1_latin"])  # fmt: skip
    path = tmp_path / "logit_lens.pdf"
    fig = plot_logit_lens(table, "m", path)
    assert_pdf(path)
    titles, xlabels, ylabels = labels(fig)
    assert titles == {"muse probes", "relations probes"}
    assert xlabels == {"layer (residual stream after it)", ""}
    assert {"P(gold answer's first token)", "P(English counterpart's first token)"} <= ylabels
    assert {line.get_label() for line in fig.axes[0].lines} == {"de", "fr"}


def test_plot_cross_method_draws_method_group_and_layer_panels(tmp_path):
    sets = neuron_sets({
        "language": pl.DataFrame({"layer": [0, 0, 1, 2], "neuron": [1, 2, 2, 3],
                                  "lang": ["de", "fr", "fr", "de"]}),
        "task": pl.DataFrame({"layer": [0, 1, 1], "neuron": [1, 2, 5], "group": ["x", "x", "y"],
                              "selected": [True, True, True]}),
        "value": pl.DataFrame({"layer": [2], "neuron": [3], "group": ["care"], "lang": ["en"]}),
    })  # fmt: skip
    path = tmp_path / "cross_method.pdf"
    fig = plot_cross_method(sets, 3, "m", path)
    assert_pdf(path)
    titles, xlabels, ylabels = labels(fig)
    assert {"union per method (neurons)", "every group of every method (clustered)",
            "neurons per layer"} <= titles  # fmt: skip
    assert "neurons in the method's union" in ylabels and "layer" in xlabels
    assert fig.get_suptitle() == "m: language, value, task and relation neurons compared"


def test_existing_figures_return_their_figure(tmp_path):
    lape = pl.DataFrame({"layer": [0, 1], "neuron": [3, 4], "lang": ["de", "fr"]})
    fig = plot_lape_layers(lape, ["de", "fr"], 2, "m", tmp_path / "lape.pdf")
    assert fig.get_suptitle() == "m: language-specific neurons (LAPE) per layer"
    overlap = pl.DataFrame(
        [(a, b, 1.0 if a == b else 0.3) for a in "xyz" for b in "xyz"],
        schema=["lang_a", "lang_b", "jaccard"],
        orient="row",
    )
    fig = plot_overlap_heatmap({"m": overlap}, list("xyz"), "muse", tmp_path / "overlap.pdf")
    assert_pdf(tmp_path / "overlap.pdf")
    assert fig.axes[0].get_title() == "m — muse probes"


def test_ablation_matrices_spread_a_random_control_without_intervened_group_over_its_column():
    table = ablation_table(["en", "de"], ["en", "de"]).filter(pl.col("control") == "none")
    shared = pl.DataFrame(
        [(None, b, "perplexity", 6.0, 5.0, d, "random", s, d - 1, d + 1, None, 10)
         for b, d in (("en", 0.4), ("de", -0.2)) for s in (0, 1)],
        schema=ABLATION_SCHEMA,
        orient="row",
    )  # fmt: skip
    m = ablation_matrices(pl.concat([table, shared]), "perplexity")
    assert m.intervened == ["en", "de"]
    np.testing.assert_allclose(m.random, [[0.4, -0.2], [0.4, -0.2]])
