"""Figures: vector PDFs, titled, with labelled axes and colour bars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl
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


def _save(fig: plt.Figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="pdf", bbox_inches="tight")
    plt.close(fig)


def plot_overlap_heatmap(
    tables: Mapping[str, pl.DataFrame], langs: Sequence[str], probe: str, path: str | Path
) -> None:
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
    _save(fig, path)


def plot_lape_layers(
    neurons: pl.DataFrame, langs: Sequence[str], n_layers: int, model: str, path: str | Path
) -> None:
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
    _save(fig, path)
