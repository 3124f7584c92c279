"""Reading the intervention results (``results/evaluation/{model}/{method}.parquet``): what
switching neuron sets off (or transplanting, or adding directions) does, always beside the
random control of the same size; and the intervened × evaluated matrix figure.

The tables follow :data:`polyneuron.evaluate.matrix.ABLATION_SCHEMA`; some add key columns after
its twelve (``lang``, ``fraction``, ``intervention``, ``prompts``, ``layer``). Every function
here treats any such extra column as part of a row's key, so one reader serves every
intervention figure: :func:`control_means` condenses the random controls over seeds,
:func:`ablation_matrices` assembles intervened × evaluated matrices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from polyneuron import PolyneuronError
from polyneuron.plots.common import centred_norm, matrix_panel, save_figure

#: how a metric reads on a colour bar (others as they are named)
METRIC_LABELS = {"nll": "NLL per token (nats)", "p_at_1": "P@1"}

#: the columns every ablation table has that are measurements, not keys
_MEASURES = ("value", "baseline", "delta", "ci_low", "ci_high", "n_neurons", "n_texts")


def key_columns(table: pl.DataFrame) -> list[str]:
    """What identifies a row besides its control and seed: intervened, evaluated, metric and
    any extra column a table adds (lang, fraction, intervention, prompts, layer)."""
    return [c for c in table.columns if c not in (*_MEASURES, "control", "seed", "control_draw")]


def select_rows(
    table: pl.DataFrame, metric: str, where: Mapping[str, object] | None = None
) -> pl.DataFrame:
    """The rows of ``metric`` whose extra columns equal ``where``'s values; a metric or column
    the table lacks fails naming the ones it has."""
    metrics = table["metric"].unique(maintain_order=True).to_list()
    if metric not in metrics:
        raise PolyneuronError(f"no {metric!r} rows in the ablation table; it has {metrics}")
    rows = table.filter(pl.col("metric") == metric)
    for column, wanted in (where or {}).items():
        if column not in rows.columns:
            raise PolyneuronError(
                f"the ablation table has no column {column!r}; it has {rows.columns}"
            )
        rows = rows.filter(pl.col(column) == wanted)
    return rows


def control_means(table: pl.DataFrame) -> pl.DataFrame:
    """One row per key and control: the ``none`` rows as they are, the ``random`` rows
    condensed over seeds: mean value, baseline and delta; the interval spans every seed's
    interval (min ci_low, max ci_high), so that it holds both the texts' and the random draws'
    spread; ``n_seeds`` counts them (1 for ``none``). Rows keep the table's order."""
    keys = key_columns(table)
    own = table.filter(pl.col("control") == "none").select(
        *keys,
        "control",
        "value",
        "baseline",
        "delta",
        "ci_low",
        "ci_high",
        n_seeds=pl.lit(1, pl.UInt32),
    )
    random = (
        table.filter(pl.col("control") == "random")
        .group_by(*keys, "control", maintain_order=True)
        .agg(
            pl.col("value").mean(),
            pl.col("baseline").mean(),
            pl.col("delta").mean(),
            pl.col("ci_low").min(),
            pl.col("ci_high").max(),
            n_seeds=pl.len(),
        )
    )
    return pl.concat([own, random])


@dataclass(frozen=True)
class AblationMatrices:
    """``own[intervened, evaluated]``: delta with the intervened group's own set off;
    ``random[...]``: mean delta of its random controls; NaN where a cell was not measured."""

    intervened: list[str]
    evaluated: list[str]
    own: np.ndarray
    random: np.ndarray


def ablation_matrices(
    table: pl.DataFrame, metric: str, where: Mapping[str, object] | None = None
) -> AblationMatrices:
    """The intervened × evaluated matrices of ``metric``'s delta (rows and columns in the
    table's order); random rows without an intervened group fill their whole column. After
    ``where`` each (intervened, evaluated, control, seed) must be one row: an extra column left
    free fails naming itself."""
    rows = select_rows(table, metric, where)
    if rows.is_empty():
        raise PolyneuronError(f"no {metric!r} rows match {dict(where or {})}")
    free = [c for c in key_columns(rows) if c not in ("intervened", "evaluated", "metric")]
    duplicated = rows.select("intervened", "evaluated", "control", "seed").is_duplicated()
    if duplicated.any():
        raise PolyneuronError(
            f"several {metric!r} rows per intervened and evaluated group: choose values of "
            f"{[c for c in free if c not in (where or {})]} (the table's extra columns)"
        )
    intervened = rows["intervened"].drop_nulls().unique(maintain_order=True).to_list()
    evaluated = rows["evaluated"].unique(maintain_order=True).to_list()
    means = control_means(rows)
    matrices = {}
    for control in ("none", "random"):
        matrix = np.full((len(intervened), len(evaluated)), np.nan)
        part = means.filter(pl.col("control") == control)
        for a, b, delta in part.select("intervened", "evaluated", "delta").iter_rows():
            # a control without an intervened group (a random refusal direction, ablated once
            # for all) stands beside every row
            matrix[slice(None) if a is None else intervened.index(a), evaluated.index(b)] = delta
        matrices[control] = matrix
    return AblationMatrices(intervened, evaluated, matrices["none"], matrices["random"])


def _matrix_size(n_rows: int, n_cols: int, panels: int) -> tuple[float, float]:
    return panels * max(3.5, 0.55 * n_cols + 1.5) + 1.2, max(3.0, 0.45 * n_rows + 1.8)


def plot_ablation_matrix(
    table: pl.DataFrame,
    metric: str,
    model: str,
    title: str,
    group: str,
    path: str | Path,
    where: Mapping[str, object] | None = None,
) -> plt.Figure:
    """Change of ``metric`` (delta) per intervened group (rows) and evaluated group (columns)
    with the group's own neurons off, beside the same matrix for the random control (mean over
    seeds); one diverging scale centred at 0, values written in the cells. ``group`` names
    what rows and columns are ("language (ISO 639-1)", "task")."""
    m = ablation_matrices(table, metric, where)
    width, height = _matrix_size(len(m.intervened), len(m.evaluated), 2)
    fig, axes = plt.subplots(1, 2, figsize=(width, height), sharey=True, layout="constrained")
    norm = centred_norm(m.own, m.random)
    panels = (("own neurons off", m.own), ("random neurons off (mean over seeds)", m.random))
    image = None
    for ax, (name, matrix) in zip(axes, panels, strict=True):
        image = matrix_panel(
            ax,
            matrix,
            m.intervened,
            m.evaluated,
            norm,
            "RdBu_r",
            name,
            f"intervened {group}",
            f"evaluated {group}",
        )
    axes[1].set_ylabel("")
    fig.colorbar(
        image,
        ax=list(axes),
        label=f"Δ {METRIC_LABELS.get(metric, metric)} (neurons off − plain model)",
    )
    fig.suptitle(f"{model}: {title}")
    save_figure(fig, path)
    return fig
