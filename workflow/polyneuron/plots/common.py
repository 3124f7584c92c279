"""What every figure shares: vector PDFs, titled, with labelled axes and colour bars. Each
``plot_*`` in :mod:`polyneuron.plots` saves its PDF with :func:`save_figure` and returns the
Figure (closed, still inspectable); the helpers here write values in cells, colour categories,
order by clustering, centre colour scales at 0 and draw annotated matrices and lines with
interval bands."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import TypeVar

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.colors import Normalize, TwoSlopeNorm
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform

from polyneuron.io import atomic_path


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


_K = TypeVar("_K", bound=Hashable)


def category_colours(names: Sequence[_K]) -> dict[_K, tuple[float, float, float]]:
    """One tab10/tab20 colour per name (any hashable key), stable across a figure's panels."""
    cmap = plt.cm.tab10 if len(names) <= 10 else plt.cm.tab20
    return {name: cmap.colors[i % len(cmap.colors)] for i, name in enumerate(names)}


def centred_norm(*matrices: np.ndarray) -> Normalize:
    """A colour scale centred at 0, symmetric, spanning every finite value shown."""
    finite = np.concatenate([m[np.isfinite(m)] for m in matrices])
    limit = float(np.abs(finite).max()) if finite.size else 1.0
    limit = limit or 1.0
    return TwoSlopeNorm(0.0, -limit, limit)


def matrix_panel(
    ax: Axes,
    matrix: np.ndarray,
    rows: Sequence[str],
    cols: Sequence[str],
    norm: Normalize,
    cmap: str,
    title: str,
    ylabel: str,
    xlabel: str,
):
    """An ``imshow`` of ``matrix`` with its values written in the cells, ticks and labels."""
    image = ax.imshow(matrix, cmap=cmap, norm=norm, aspect="auto")
    annotate_cells(ax, matrix, norm)
    ax.set_xticks(range(len(cols)), list(cols), rotation=90)
    ax.set_yticks(range(len(rows)), list(rows))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return image


def line_with_band(ax: Axes, x, frame: pl.DataFrame, colour, linestyle: str, label: str):
    """delta against ``x`` with its interval as a band (fainter for a dashed control)."""
    ax.plot(
        x, frame["delta"], color=colour, linestyle=linestyle, marker="o", markersize=3, label=label
    )
    alpha = 0.18 if linestyle == "-" else 0.08
    ax.fill_between(x, frame["ci_low"], frame["ci_high"], color=colour, alpha=alpha, linewidth=0)
