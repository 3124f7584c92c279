"""Figures of concept neurons (tasks, values, relations): overlap of the tasks' sets, value
choices and relation accuracy with the neurons off, and how every method's sets (language
neurons included) intersect. Each ``plot_*`` saves a vector PDF and returns its Figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.colors import Normalize, PowerNorm

from polyneuron import PolyneuronError
from polyneuron.plots.ablation import control_means, select_rows
from polyneuron.plots.common import (
    annotate_cells,
    category_colours,
    cluster_order,
    line_with_band,
    save_figure,
)


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


def neuron_sets(frames: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """``method, group, layer, neuron``: each method's selected neurons per group, from its
    neuron table (``selected`` rows when it has the column, else every row, and of those only
    the ``acts`` rows when it has that column: value masks act on their own layers; the group is
    the ``group`` column, else ``lang``), each (group, neuron) once; a group's languages and
    masks (values, relations) are pooled."""
    parts = []
    for method, frame in frames.items():
        if "selected" in frame.columns:
            frame = frame.filter("selected")
        if "acts" in frame.columns:
            frame = frame.filter("acts")
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


_OWN_COLOUR, _RANDOM_COLOUR = "tab:red", "tab:gray"


def _diagonal(table: pl.DataFrame, metric: str) -> pl.DataFrame:
    """Each group's effect on itself (intervened == evaluated), controls over seeds condensed."""
    rows = select_rows(table, metric).filter(pl.col("intervened") == pl.col("evaluated"))
    if rows.is_empty():
        raise PolyneuronError(f"no {metric!r} rows with intervened == evaluated")
    return control_means(rows)


def _bars(ax: Axes, frame: pl.DataFrame, groups: Sequence[str]) -> None:
    """Horizontal bars of delta per group, own set and random control, CIs as error bars."""
    height = 0.38
    for offset, control, colour, label in (
        (-height / 2, "none", _OWN_COLOUR, "own neurons off"),
        (height / 2, "random", _RANDOM_COLOUR, "random neurons off (mean over seeds)"),
    ):
        part = frame.filter(pl.col("control") == control)
        by_group = {
            g: (d, lo, hi)
            for g, d, lo, hi in part.select("intervened", "delta", "ci_low", "ci_high").iter_rows()
        }
        y = [i + offset for i, g in enumerate(groups) if g in by_group]
        stats = np.array([by_group[g] for g in groups if g in by_group]).reshape(-1, 3)
        err = np.abs(stats[:, 1:].T - stats[:, 0])
        ax.barh(
            y,
            stats[:, 0],
            height,
            xerr=err,
            color=colour,
            label=label,
            error_kw={"elinewidth": 0.8, "capsize": 2},
        )
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_yticks(range(len(groups)), list(groups))
    ax.invert_yaxis()


def plot_value_shifts(
    table: pl.DataFrame, model: str, path: str | Path, metric: str = "p_supported"
) -> plt.Figure:
    """Per value (one panel per language when the table has ``lang``): the shift of
    ``metric`` with the value's own neurons off, beside the random control; error bars: the
    paired bootstrap interval (own) and the span of the seeds' intervals (random)."""
    diagonal = _diagonal(table, metric)
    langs = (
        diagonal["lang"].unique(maintain_order=True).to_list()
        if "lang" in diagonal.columns
        else [None]
    )
    values = diagonal["intervened"].unique(maintain_order=True).to_list()
    fig, axes = plt.subplots(
        1,
        len(langs),
        figsize=(3.6 * len(langs) + 1.6, 0.42 * len(values) + 1.8),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for ax, lang in zip(axes[0], langs, strict=True):
        part = diagonal if lang is None else diagonal.filter(pl.col("lang") == lang)
        _bars(ax, part, values)
        ax.set_xlabel(f"Δ {metric} (neurons off − plain model)")
        ax.set_title("all languages" if lang is None else f"{lang} questions")
    axes[0, 0].set_ylabel("value (its own neurons off)")
    axes[0, -1].legend(loc="lower right", fontsize=7)
    fig.suptitle(f"{model}: value neurons off — shift of {metric}")
    save_figure(fig, path)
    return fig


def plot_relation_cumulativity(
    table: pl.DataFrame, model: str, path: str | Path, metric: str = "accuracy"
) -> plt.Figure:
    """One panel per relation: the change of ``metric`` on the relation's own prompts as a
    growing share (``fraction``) of its neurons is switched off, random control dashed;
    intervals as bands. The plain model (fraction 0, change 0) anchors every curve."""
    if "fraction" not in table.columns:
        raise PolyneuronError("the relations ablation table has no 'fraction' column")
    if table.is_empty():
        # no relation had neurons (e.g. the model answered none of a relation's training
        # prompts, relation_neurons.positives: correct): say so instead of an empty grid
        fig, ax = plt.subplots(figsize=(6.4, 2.4), layout="constrained")
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no relation has neurons to switch off: the model answered none of\n"
                "their training prompts correctly (relation_neurons.positives: correct);\n"
                "see logs/score_relations", ha="center", va="center", fontsize=10)  # fmt: skip
        fig.suptitle(f"{model}: relation neurons off, cumulatively")
        save_figure(fig, path)
        return fig
    diagonal = _diagonal(table, metric).sort("fraction", maintain_order=True)
    relations = diagonal["intervened"].unique(maintain_order=True).to_list()
    langs = (
        diagonal["lang"].unique(maintain_order=True).to_list()
        if "lang" in diagonal.columns
        else [None]
    )
    # one language: own red, random grey (as in the value figure); several: a colour each
    colours = {lang: (colour, colour) for lang, colour in category_colours(langs).items()}
    if len(langs) == 1:
        colours = {langs[0]: (_OWN_COLOUR, _RANDOM_COLOUR)}
    n_cols = min(4, len(relations))
    n_rows = -(-len(relations) // n_cols)
    fig, axes = plt.subplots(
        n_rows,
        n_cols,
        figsize=(3.2 * n_cols + 0.6, 2.6 * n_rows + 1.0),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for ax, relation in zip(axes.flat, relations, strict=False):
        part = diagonal.filter(pl.col("intervened") == relation)
        baselines = []
        for lang in langs:
            rows = part if lang is None else part.filter(pl.col("lang") == lang)
            suffix = "" if lang is None else f" ({lang})"
            for k, (control, style, name) in enumerate(
                (("none", "-", "own"), ("random", "--", "random"))
            ):
                line = rows.filter(pl.col("control") == control)
                if line.is_empty():
                    continue
                anchor = pl.DataFrame(
                    {"fraction": [0.0], "delta": [0.0], "ci_low": [0.0], "ci_high": [0.0]}
                )
                line = pl.concat([anchor, line.select(anchor.columns)], how="vertical_relaxed")
                line_with_band(ax, line["fraction"], line, colours[lang][k], style, name + suffix)
            baselines.append(rows["baseline"].mean())
        ax.axhline(0, color="black", linewidth=0.6)
        plain = ", ".join(f"{b:.2f}" for b in baselines if b is not None)
        ax.set_title(f"{relation} (plain {metric} {plain})", fontsize=9)
    for ax in axes.flat[len(relations) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("fraction of the relation's neurons off")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"Δ {metric}")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{model}: relation neurons off, cumulatively — own (solid) vs random (dashed)")
    save_figure(fig, path)
    return fig
