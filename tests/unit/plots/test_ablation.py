from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from unit.plots.helpers import ablation_table, assert_pdf, labels

from polyneuron import PolyneuronError
from polyneuron.evaluate.matrix import ABLATION_SCHEMA
from polyneuron.plots.ablation import ablation_matrices, control_means, plot_ablation_matrix


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


def test_ablation_matrices_spread_a_random_control_without_intervened_group_over_its_column():
    table = ablation_table(["en", "de"], ["en", "de"]).filter(pl.col("control") == "none")
    shared = pl.DataFrame(
        [(None, b, "perplexity", 6.0, 5.0, d, "random", s, "uniform", d - 1, d + 1, None, 10)
         for b, d in (("en", 0.4), ("de", -0.2)) for s in (0, 1)],
        schema=ABLATION_SCHEMA,
        orient="row",
    )  # fmt: skip
    m = ablation_matrices(pl.concat([table, shared]), "perplexity")
    assert m.intervened == ["en", "de"]
    np.testing.assert_allclose(m.random, [[0.4, -0.2], [0.4, -0.2]])


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
