from __future__ import annotations

import polars as pl
import pytest
from unit.plots.helpers import ablation_table, assert_pdf, labels

from polyneuron.plots.concepts import (
    layer_counts,
    neuron_sets,
    plot_cross_method,
    plot_relation_cumulativity,
    plot_task_overlap,
    plot_value_shifts,
    set_jaccard,
)


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
    # value masks count only on the layers they act on
    acting = values.with_columns(acts=pl.col("layer") == 1)
    assert neuron_sets({"value": acting}).rows() == [("value", "care", 1, 0)]


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


def test_a_relation_table_without_rows_draws_a_figure_that_says_why(tmp_path):
    table = ablation_table(["P17"], ["P17"], "accuracy", {"fraction": [1.0]}).clear()
    path = tmp_path / "relation_cumulativity.pdf"
    fig = plot_relation_cumulativity(table, "m", path)
    assert_pdf(path)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("no relation has neurons" in t for t in texts)


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
