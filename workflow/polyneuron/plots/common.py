"""Figures of neuron sets and scores (``results/neurons``): vector PDFs, titled, with
labelled axes and colour bars, and the helpers every figure shares. Each ``plot_*`` saves its
PDF and returns the Figure (closed, still inspectable). Figures of intervention results live
in :mod:`polyneuron.plots.figures`."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.colors import Normalize, PowerNorm
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform

from polyneuron.io import atomic_path


def jaccard_matrix(table: pl.DataFrame, langs: Sequence[str]) -> np.ndarray:
    """``[lang_a, lang_b]`` Jaccard from an overlap table, in the order of ``langs``."""
    index = {lang: i for i, lang in enumerate(langs)}
    matrix = np.full((len(langs), len(langs)), np.nan)
    for a, b, j in table.select("lang_a", "lang_b", "jaccard").iter_rows():
        matrix[index[a], index[b]] = j
    return matrix


def cluster_order(similarity: np.ndarray) -> list[int]:
    """Leaf order of an average-linkage clustering on 1 − similarity (optimal ordering)."""
    n = similarity.shape[0]
    if n < 3:
        return list(range(n))
    distance = 1.0 - (similarity + similarity.T) / 2
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance.clip(min=0), checks=False), "average", optimal_ordering=True)
    return [int(i) for i in leaves_list(tree)]


def save_figure(fig: plt.Figure, path: str | Path) -> None:
    """Write ``fig`` as a vector PDF, atomically, and release it from pyplot."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="pdf", bbox_inches="tight")
    plt.close(fig)


def format_cell(value: float) -> str:
    """A cell's value in at most four characters or so: 412, 40.9, 5.4, 0.07."""
    if not np.isfinite(value):
        return ""
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2g}"


def annotate_cells(ax: plt.Axes, matrix: np.ndarray, norm, fontsize: float = 7) -> None:
    """Write each finite cell's value on an ``imshow`` of ``matrix``, white on dark cells."""
    image = ax.get_images()[-1]
    for (i, j), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            r, g, b, _ = image.cmap(norm(value))
            colour = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
            ax.text(
                j, i, format_cell(value), ha="center", va="center", fontsize=fontsize, color=colour
            )


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


_K = TypeVar("_K", bound=Hashable)


def category_colours(names: Sequence[_K]) -> dict[_K, tuple[float, float, float]]:
    """One tab10/tab20 colour per name (any hashable key), stable across a figure's panels."""
    cmap = plt.cm.tab10 if len(names) <= 10 else plt.cm.tab20
    return {name: cmap.colors[i % len(cmap.colors)] for i, name in enumerate(names)}


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


def pair_matrix(
    table: pl.DataFrame, a: str, b: str, value: str, order: Sequence[str]
) -> np.ndarray:
    """``[name_a, name_b]`` of ``value`` from a long table of pairs, in the order of ``order``;
    NaN for pairs the table lacks."""
    index = {name: i for i, name in enumerate(order)}
    matrix = np.full((len(order), len(order)), np.nan)
    for x, y, v in table.select(a, b, value).iter_rows():
        if x in index and y in index:
            matrix[index[x], index[y]] = v
    return matrix


def _similarity_panel(
    ax: plt.Axes,
    matrix: np.ndarray,
    labels: Sequence[str],
    annotate: bool,
    norm=None,
    fontsize: float = 8,
):
    """A clustered similarity heatmap without its diagonal; returns the image and order."""
    n = len(labels)
    order = cluster_order(np.nan_to_num(matrix))
    shown = matrix[np.ix_(order, order)]
    shown = np.where(np.eye(n, dtype=bool), np.nan, shown)
    if norm is None:
        finite = shown[np.isfinite(shown)]
        vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        norm = Normalize(vmin, vmax if vmax > vmin else vmin + 0.05)
    image = ax.imshow(shown, cmap="viridis", norm=norm)
    if annotate:
        annotate_cells(ax, shown, norm, fontsize)
    ax.set_xticks(range(n), [labels[i] for i in order], rotation=90)
    ax.set_yticks(range(n), [labels[i] for i in order])
    return image, order


def plot_task_overlap(table: pl.DataFrame, model: str, path: str | Path) -> plt.Figure:
    """Jaccard index between the tasks' neuron sets, clustered, set sizes on the axes."""
    tasks = table["task_a"].unique(maintain_order=True).to_list()
    sizes = dict(table.select("task_a", "n_a").unique("task_a").iter_rows())
    matrix = pair_matrix(table, "task_a", "task_b", "jaccard", tasks)
    side = max(4.0, 0.7 * len(tasks) + 2.0)
    fig, ax = plt.subplots(figsize=(side + 1.2, side), layout="constrained")
    image, _ = _similarity_panel(ax, matrix, [f"{t} ({sizes[t]})" for t in tasks], True)
    ax.set_xlabel("task (neurons)")
    ax.set_ylabel("task (neurons)")
    fig.colorbar(image, ax=ax, label="Jaccard index", shrink=0.8)
    ax.set_title(f"{model}: overlap of task-specific neurons")
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


def neuron_sets(frames: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """``method, group, layer, neuron``: each method's selected neurons per group, from its
    neuron table (``selected`` rows when it has the column, else every row; the group is the
    ``group`` column, else ``lang``), each (group, neuron) once; a group's languages (values,
    relations) are pooled."""
    parts = []
    for method, frame in frames.items():
        if "selected" in frame.columns:
            frame = frame.filter("selected")
        group = "group" if "group" in frame.columns else "lang"
        parts.append(
            frame.select(
                method=pl.lit(method),
                group=pl.col(group).cast(pl.String),
                layer=pl.col("layer").cast(pl.Int32),
                neuron=pl.col("neuron").cast(pl.Int32),
            ).unique(maintain_order=True)
        )
    return pl.concat(parts)


def set_jaccard(sets: pl.DataFrame, key: str) -> pl.DataFrame:
    """Every ordered pair of the sets named by ``key`` (in the order they first appear):
    ``a, b, n_a, n_b, n_overlap, jaccard`` over their (layer, neuron)s."""
    members = sets.select(key, "layer", "neuron").unique(maintain_order=True)
    sizes = members.group_by(key, maintain_order=True).len("n")
    shared = (
        members.join(members, on=["layer", "neuron"], suffix="_b")
        .group_by(key, f"{key}_b")
        .len("n_overlap")
        .rename({key: "a", f"{key}_b": "b"})
    )
    left = sizes.rename({key: "a", "n": "n_a"}).with_row_index("i")
    right = sizes.rename({key: "b", "n": "n_b"}).with_row_index("j")
    return (
        left.join(right, how="cross")
        .join(shared, on=["a", "b"], how="left")
        .with_columns(
            pl.col("n_overlap").fill_null(0).cast(pl.Int64), pl.col("n_a", "n_b").cast(pl.Int64)
        )
        .with_columns(
            jaccard=pl.col("n_overlap") / (pl.col("n_a") + pl.col("n_b") - pl.col("n_overlap"))
        )
        .sort("i", "j")
        .select("a", "b", "n_a", "n_b", "n_overlap", "jaccard")
    )


def layer_counts(sets: pl.DataFrame, n_layers: int) -> dict[str, np.ndarray]:
    """Per method: ``[layer]`` count of the neurons in its union (each neuron once)."""
    counts = {}
    for (method,), rows in sets.group_by("method", maintain_order=True):
        per_layer = np.zeros(n_layers, dtype=int)
        for layer, n in rows.unique(["layer", "neuron"]).group_by("layer").len().iter_rows():
            per_layer[layer] = n
        counts[method] = per_layer
    return counts


def plot_cross_method(
    sets: pl.DataFrame, n_layers: int, model: str, path: str | Path
) -> plt.Figure:
    """How the methods' neuron sets intersect: Jaccard between their unions (annotated);
    Jaccard between every group of every method (clustered, labels coloured by method); the
    union's neurons per layer for each method."""
    methods = sets["method"].unique(maintain_order=True).to_list()
    colours = category_colours(methods)
    by_method = set_jaccard(sets, "method")
    groups = sets.with_columns(set=pl.col("method") + ": " + pl.col("group"))
    by_group = set_jaccard(groups, "set")
    names = by_group["a"].unique(maintain_order=True).to_list()
    method_of = dict(groups.select("set", "method").unique("set").iter_rows())
    side = max(6.0, 0.2 * len(names) + 2.5)
    fig, axes = plt.subplot_mosaic(
        [["groups", "methods"], ["groups", "layers"]],
        figsize=(side + 5.5, side),
        width_ratios=[side, 5.0],
        layout="constrained",
    )
    sizes = dict(by_method.select("a", "n_a").unique("a").iter_rows())
    labels = [f"{m} ({sizes[m]})" for m in methods]
    matrix = pair_matrix(by_method, "a", "b", "jaccard", methods)
    image, _ = _similarity_panel(axes["methods"], matrix, labels, True)
    fig.colorbar(image, ax=axes["methods"], label="Jaccard index of the unions")
    axes["methods"].set_title("union per method (neurons)", fontsize=9)
    matrix = pair_matrix(by_group, "a", "b", "jaccard", names)
    finite = matrix[np.isfinite(matrix) & ~np.eye(len(names), dtype=bool)]
    # a square-root scale: most pairs across methods share little, a few share much
    norm = PowerNorm(0.5, 0.0, max(float(finite.max()) if finite.size else 1.0, 1e-6))
    image, order = _similarity_panel(axes["groups"], matrix, names, len(names) <= 16, norm)
    for ticks in (axes["groups"].get_xticklabels(), axes["groups"].get_yticklabels()):
        for tick, i in zip(ticks, order, strict=True):
            tick.set_color(colours[method_of[names[i]]])
            tick.set_fontsize(7)
    fig.colorbar(image, ax=axes["groups"], label="Jaccard index", shrink=0.6)
    axes["groups"].set_title("every group of every method (clustered)", fontsize=9)
    for method, counts in layer_counts(sets, n_layers).items():
        axes["layers"].plot(
            range(n_layers), counts, color=colours[method], marker="o", markersize=2.5, label=method
        )
    axes["layers"].set_xlabel("layer")
    axes["layers"].set_ylabel("neurons in the method's union")
    axes["layers"].legend(fontsize=7)
    axes["layers"].set_title("neurons per layer", fontsize=9)
    fig.suptitle(f"{model}: language, value, task and relation neurons compared")
    save_figure(fig, path)
    return fig
