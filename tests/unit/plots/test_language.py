from __future__ import annotations

import polars as pl
from unit.plots.helpers import ablation_table, assert_pdf, labels

from polyneuron.plots.language import (
    plot_bridges,
    plot_lape_layers,
    plot_logit_lens,
    plot_overlap_heatmap,
    plot_xtransplant,
    shared_language,
)


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


def test_shared_language_finds_the_pivot_of_every_pair():
    assert shared_language([("en", "de"), ("de", "en"), ("en", "zh")]) == "en"
    assert shared_language([("en", "de")]) is None  # both are shared: no single pivot
    assert shared_language([("en", "de"), ("fr", "zh")]) is None


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
