from __future__ import annotations

import numpy as np
import polars as pl
from unit.plots.helpers import ablation_table, assert_pdf, labels

from polyneuron.plots.refusal import addition_rates, plot_refusal


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
