"""Figures of language neurons and of what passes between languages: overlap of the
languages' neuron sets, LAPE neurons per layer, HSIC bridge languages, the logit lens and FFN
transplants across languages. Each ``plot_*`` saves a vector PDF and returns its Figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from polyneuron import PolyneuronError
from polyneuron.plots.ablation import control_means, select_rows
from polyneuron.plots.common import (
    category_colours,
    cluster_order,
    format_cell,
    line_with_band,
    save_figure,
)


def jaccard_matrix(table: pl.DataFrame, langs: Sequence[str]) -> np.ndarray:
    """``[lang_a, lang_b]`` Jaccard from an overlap table, in the order of ``langs``."""
    index = {lang: i for i, lang in enumerate(langs)}
    matrix = np.full((len(langs), len(langs)), np.nan)
    for a, b, j in table.select("lang_a", "lang_b", "jaccard").iter_rows():
        matrix[index[a], index[b]] = j
    return matrix


def plot_overlap_heatmap(
    tables: Mapping[str, pl.DataFrame], langs: Sequence[str], probe: str, path: str | Path
) -> plt.Figure:
    """One panel per model: Jaccard of the languages' overlap neurons, clustered order."""
    n = len(langs)
    size = max(4.0, 0.45 * n + 1.5)
    fig, axes = plt.subplots(1, len(tables), figsize=(size * len(tables) + 1, size), squeeze=False)
    off_diag = ~np.eye(n, dtype=bool)
    off = np.concatenate([jaccard_matrix(t, langs)[off_diag] for t in tables.values()])
    # the colour scale spans the off-diagonal values, so that differences between pairs show
    vmin, vmax = float(np.nanmin(off)), float(np.nanmax(off))
    if vmax - vmin < 1e-9:
        vmin, vmax = max(vmin - 0.05, 0.0), vmax + 0.05
    image = None
    for ax, (model, table) in zip(axes[0], tables.items(), strict=True):
        matrix = jaccard_matrix(table, langs)
        order = cluster_order(np.nan_to_num(matrix))
        shown = matrix[np.ix_(order, order)]
        labels = [langs[i] for i in order]
        image = ax.imshow(
            np.where(np.eye(n, dtype=bool), np.nan, shown), cmap="viridis", vmin=vmin, vmax=vmax
        )
        for i in range(n):
            for j in range(n):
                if i != j:
                    value = shown[i, j]
                    colour = "black" if value > vmin + 0.6 * (vmax - vmin) else "white"
                    ax.text(
                        j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color=colour
                    )
        ax.set_xticks(range(n), labels, rotation=90)
        ax.set_yticks(range(n), labels)
        ax.set_xlabel("language (ISO 639-1)")
        ax.set_ylabel("language (ISO 639-1)")
        ax.set_title(f"{model} — {probe} probes")
    fig.suptitle("Jaccard overlap of language overlap neurons (top-1% activation probability)")
    fig.colorbar(image, ax=axes[0].tolist(), label="Jaccard index", shrink=0.8)
    save_figure(fig, path)
    return fig


def plot_lape_layers(
    neurons: pl.DataFrame, langs: Sequence[str], n_layers: int, model: str, path: str | Path
) -> plt.Figure:
    """Language-specific neurons per layer and language (heatmap) and per layer (bars)."""
    counts = np.zeros((n_layers, len(langs)), dtype=int)
    index = {lang: i for i, lang in enumerate(langs)}
    for layer, lang, count in neurons.group_by("layer", "lang").len().iter_rows():
        counts[layer, index[lang]] = count
    fig, (ax, bars) = plt.subplots(
        1,
        2,
        figsize=(0.45 * len(langs) + 4.5, 0.3 * n_layers + 2),
        width_ratios=[3, 1],
        sharey=True,
    )
    image = ax.imshow(counts, aspect="auto", cmap="magma_r", origin="lower")
    for layer in range(n_layers):
        for k in range(len(langs)):
            if counts[layer, k]:
                colour = "white" if counts[layer, k] > 0.6 * counts.max() else "black"
                ax.text(
                    k,
                    layer,
                    str(counts[layer, k]),
                    ha="center",
                    va="center",
                    fontsize=6,
                    color=colour,
                )
    ax.set_xticks(range(len(langs)), list(langs), rotation=90)
    ax.set_xlabel("language (ISO 639-1)")
    ax.set_ylabel("layer")
    fig.colorbar(image, ax=ax, label="language-specific neurons", location="left", pad=0.12)
    per_layer = neurons.unique(["layer", "neuron"]).group_by("layer").len()
    totals = np.zeros(n_layers, dtype=int)
    for layer, count in per_layer.iter_rows():
        totals[layer] = count
    bars.barh(range(n_layers), totals, color="tab:gray")
    bars.set_xlabel("neurons (any language)")
    fig.suptitle(f"{model}: language-specific neurons (LAPE) per layer")
    save_figure(fig, path)
    return fig


def plot_bridges(
    table: pl.DataFrame,
    model: str,
    path: str | Path,
    window: Sequence[int] | None = None,
    normalised: bool = False,
) -> plt.Figure:
    """One panel per target language: each candidate's HSIC layer score across layers, the
    selected bridge drawn thick, the layer window that ranks them shaded."""
    targets = table["target"].unique(maintain_order=True).to_list()
    colours = category_colours(sorted(table["candidate"].unique().to_list()))
    fig, axes = plt.subplots(
        1,
        len(targets),
        figsize=(7.0 * len(targets) + 0.8, 4.2),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    for ax, target in zip(axes[0], targets, strict=True):
        part = table.filter(pl.col("target") == target).sort("rank", "layer", nulls_last=True)
        for (candidate,), rows in part.group_by("candidate", maintain_order=True):
            best = bool(rows["selected"].any())
            mean = rows["window_score"][0]
            label = f"{candidate} ({format_cell(mean) if mean is not None else 'n/a'})"
            ax.plot(
                rows["layer"],
                rows["score"],
                color=colours[candidate],
                linewidth=2.6 if best else 1.0,
                alpha=1.0 if best else 0.75,
                marker="o",  # layers without shared neurons (NaN) break the lines
                markersize=3.5 if best else 2,
                label=f"{label} — bridge" if best else label,
                zorder=3 if best else 2,
            )
        if window is not None:
            ax.axvspan(
                window[0] - 0.5,
                window[1] + 0.5,
                color="tab:gray",
                alpha=0.12,
                label="ranking window",
            )
        ax.set_xlabel("layer")
        ax.set_title(f"target {target}")
        ax.legend(
            title="candidate (window mean)",
            fontsize=7,
            title_fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
        )
    axes[0, 0].set_ylabel("HSIC layer score" + (" (normalised)" if normalised else ""))
    fig.suptitle(f"{model}: HSIC bridge scores of candidate languages per layer")
    save_figure(fig, path)
    return fig


#: the logit-lens quantities drawn, one row of panels each
LENS_QUANTITIES = {
    "p_gold": "P(gold answer's first token)",
    "p_english": "P(English counterpart's first token)",
}


def plot_logit_lens(table: pl.DataFrame, model: str, path: str | Path) -> plt.Figure:
    """Per probe set (columns) and quantity (rows: probability of the gold answer, of its
    English counterpart), one curve per language across layers."""
    probes = table["probe"].unique(maintain_order=True).to_list()
    colours = category_colours(table["lang"].unique(maintain_order=True).to_list())
    fig, axes = plt.subplots(
        len(LENS_QUANTITIES),
        len(probes),
        figsize=(4.6 * len(probes) + 0.8, 3.0 * len(LENS_QUANTITIES) + 0.6),
        sharex=True,
        squeeze=False,
        layout="constrained",
    )
    for col, probe in enumerate(probes):
        part = table.filter(pl.col("probe") == probe).sort("layer")
        for row, (quantity, label) in enumerate(LENS_QUANTITIES.items()):
            ax = axes[row, col]
            for (lang,), rows in part.group_by("lang", maintain_order=True):
                ax.plot(
                    rows["layer"],
                    rows[quantity],
                    color=colours[lang],
                    marker="o",
                    markersize=2.5,
                    linewidth=1.2,
                    label=lang,
                )
            ax.set_title(f"{probe} probes", fontsize=9)
            ax.set_ylim(bottom=0)
            if col == 0:
                ax.set_ylabel(label)
            if row == len(LENS_QUANTITIES) - 1:
                ax.set_xlabel("layer (residual stream after it)")
        axes[0, col].legend(title="language", fontsize=7, title_fontsize=7, ncols=2)
    fig.suptitle(f"{model}: logit lens — mean probability per layer and language")
    save_figure(fig, path)
    return fig


def shared_language(pairs: Sequence[tuple[str, str]]) -> str | None:
    """The language in every (source, target) pair (English in en→X, X→en), else None."""
    common = set.intersection(*(set(p) for p in pairs)) if pairs else set()
    return next(iter(common)) if len(common) == 1 else None


def plot_xtransplant(
    table: pl.DataFrame, model: str, path: str | Path, metric: str = "accuracy"
) -> plt.Figure:
    """Change of ``metric`` against the layer whose FFN output is transplanted, one line per
    direction (intervened = the language transplanted from, evaluated = into), random control
    dashed, intervals as bands; pivot → X and X → pivot in two panels."""
    if "layer" not in table.columns:
        raise PolyneuronError("the xtransplant table has no 'layer' column")
    means = control_means(select_rows(table, metric)).sort("layer", maintain_order=True)
    pairs = means.select("intervened", "evaluated").unique(maintain_order=True).rows()
    pivot = shared_language(pairs)
    panels = (
        {
            f"{pivot} → X": [p for p in pairs if p[0] == pivot],
            f"X → {pivot}": [p for p in pairs if p[0] != pivot],
        }
        if pivot
        else {"all directions": pairs}
    )
    panels = {name: found for name, found in panels.items() if found}
    others = sorted({lang for pair in pairs for lang in pair if lang != pivot})
    # a colour per other language; without a shared pivot, a colour per direction
    colours = category_colours(others) if pivot else category_colours(pairs)
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(5.0 * len(panels) + 0.6, 3.8),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for ax, (name, found) in zip(axes[0], panels.items(), strict=True):
        for source, target in found:
            other = target if source == pivot else source
            colour = colours[other if pivot else (source, target)]
            rows = means.filter(pl.col("intervened") == source, pl.col("evaluated") == target)
            for control, style in (("none", "-"), ("random", "--")):
                line = rows.filter(pl.col("control") == control)
                if not line.is_empty():
                    label = f"{source}→{target}" + (" (random)" if control == "random" else "")
                    line_with_band(ax, line["layer"], line, colour, style, label)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xlabel("layer of the transplanted FFN output")
        ax.set_title(name)
        ax.legend(fontsize=7, ncols=2)
    axes[0, 0].set_ylabel(f"Δ {metric} (transplanted − plain model)")
    fig.suptitle(f"{model}: FFN transplant across languages — own (solid) vs random (dashed)")
    save_figure(fig, path)
    return fig
