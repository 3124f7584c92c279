"""Figures of the intervention results (``results/ablation/{model}/{method}.parquet``): what
switching neuron sets off (or transplanting, or adding directions) does, always beside the
random control of the same size.

The tables follow :data:`polyneuron.evaluate.matrix.ABLATION_SCHEMA`; some add key columns after
its twelve (``lang``, ``fraction``, ``intervention``, ``prompts``, ``layer``). Every function
here treats any such extra column as part of a row's key, so one reader serves them all:
:func:`control_means` condenses the random controls over seeds, :func:`ablation_matrices`
assembles intervened × evaluated matrices. Each ``plot_*`` saves a vector PDF and returns its
Figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.colors import Normalize, TwoSlopeNorm

from polyneuron import PolyneuronError
from polyneuron.plots.common import annotate_cells, category_colours, save_figure

#: the columns every ablation table has that are measurements, not keys
_MEASURES = ("value", "baseline", "delta", "ci_low", "ci_high", "n_neurons", "n_texts")
_OWN_COLOUR, _RANDOM_COLOUR = "tab:red", "tab:gray"


def key_columns(table: pl.DataFrame) -> list[str]:
    """What identifies a row besides its control and seed: intervened, evaluated, metric and
    any extra column a table adds (lang, fraction, intervention, prompts, layer)."""
    return [c for c in table.columns if c not in (*_MEASURES, "control", "seed")]


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


def _centred_norm(*matrices: np.ndarray) -> Normalize:
    """A colour scale centred at 0, symmetric, spanning every finite value shown."""
    finite = np.concatenate([m[np.isfinite(m)] for m in matrices])
    limit = float(np.abs(finite).max()) if finite.size else 1.0
    limit = limit or 1.0
    return TwoSlopeNorm(0.0, -limit, limit)


def _matrix_panel(
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
    image = ax.imshow(matrix, cmap=cmap, norm=norm, aspect="auto")
    annotate_cells(ax, matrix, norm)
    ax.set_xticks(range(len(cols)), list(cols), rotation=90)
    ax.set_yticks(range(len(rows)), list(rows))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return image


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
    norm = _centred_norm(m.own, m.random)
    panels = (("own neurons off", m.own), ("random neurons off (mean over seeds)", m.random))
    image = None
    for ax, (name, matrix) in zip(axes, panels, strict=True):
        image = _matrix_panel(
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
    fig.colorbar(image, ax=list(axes), label=f"Δ {metric} (neurons off − plain model)")
    fig.suptitle(f"{model}: {title}")
    save_figure(fig, path)
    return fig


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


def _line_with_band(ax: Axes, x, frame: pl.DataFrame, colour, linestyle: str, label: str):
    """delta against ``x`` with its interval as a band (fainter for a dashed control)."""
    ax.plot(
        x, frame["delta"], color=colour, linestyle=linestyle, marker="o", markersize=3, label=label
    )
    alpha = 0.18 if linestyle == "-" else 0.08
    ax.fill_between(x, frame["ci_low"], frame["ci_high"], color=colour, alpha=alpha, linewidth=0)


def plot_relation_cumulativity(
    table: pl.DataFrame, model: str, path: str | Path, metric: str = "accuracy"
) -> plt.Figure:
    """One panel per relation: the change of ``metric`` on the relation's own prompts as a
    growing share (``fraction``) of its neurons is switched off, random control dashed;
    intervals as bands. The plain model (fraction 0, change 0) anchors every curve."""
    if "fraction" not in table.columns:
        raise PolyneuronError("the relations ablation table has no 'fraction' column")
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
                _line_with_band(ax, line["fraction"], line, colours[lang][k], style, name + suffix)
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


def cosine_matrix(cosine: pl.DataFrame) -> tuple[list[str], np.ndarray]:
    """``[lang_a, lang_b]`` cosine of the languages' selected refusal directions."""
    rows = cosine.filter(pl.col("direction") == "selected")
    langs = rows["lang_a"].unique(maintain_order=True).to_list()
    matrix = np.full((len(langs), len(langs)), np.nan)
    for a, b, c in rows.select("lang_a", "lang_b", "cosine").iter_rows():
        matrix[langs.index(a), langs.index(b)] = c
    return langs, matrix


def addition_rates(
    table: pl.DataFrame, prompts: str = "harmless"
) -> tuple[list[str], list[str], np.ndarray]:
    """Refusal rates under activation addition on ``prompts``: rows ``plain`` (the baseline),
    each added language direction, and ``random`` (mean over directions and seeds); columns
    the evaluated languages."""
    rows = select_rows(table, "refusal_rate", {"intervention": "addition", "prompts": prompts})
    means = control_means(rows)
    evaluated = rows["evaluated"].unique(maintain_order=True).to_list()
    directions = rows["intervened"].drop_nulls().unique(maintain_order=True).to_list()
    labels = ["plain", *directions, "random"]
    matrix = np.full((len(labels), len(evaluated)), np.nan)
    for lang, rate in rows.group_by("evaluated").agg(pl.col("baseline").first()).iter_rows():
        matrix[0, evaluated.index(lang)] = rate
    own = means.filter(pl.col("control") == "none")
    for a, b, rate in own.select("intervened", "evaluated", "value").iter_rows():
        matrix[labels.index(a), evaluated.index(b)] = rate
    random = (
        means.filter(pl.col("control") == "random")
        .group_by("evaluated")
        .agg(pl.col("value").mean())
    )
    for lang, rate in random.iter_rows():
        matrix[-1, evaluated.index(lang)] = rate
    return labels, evaluated, matrix


def plot_refusal(
    ablation: pl.DataFrame, cosine: pl.DataFrame, model: str, path: str | Path
) -> plt.Figure:
    """Four panels: cosine between the languages' selected refusal directions; the refusal
    rates with a direction added on harmless prompts; the transfer matrix (change of refusal
    rate on harmful prompts with direction A ablated from language B's prompts) and the same
    for random directions."""
    langs, cos = cosine_matrix(cosine)
    m = ablation_matrices(
        ablation, "refusal_rate", {"intervention": "ablation", "prompts": "harmful"}
    )
    labels, evaluated, rates = addition_rates(ablation)
    n = max(len(langs), len(m.evaluated), len(evaluated))
    side = max(3.6, 0.55 * n + 1.8)
    fig, axes = plt.subplots(2, 2, figsize=(2 * side + 1.5, 2 * side), layout="constrained")
    image = _matrix_panel(
        axes[0, 0],
        cos,
        langs,
        langs,
        Normalize(-1, 1),
        "RdBu_r",
        "cosine of selected directions",
        "language (ISO 639-1)",
        "language (ISO 639-1)",
    )
    fig.colorbar(image, ax=axes[0, 0], label="cosine similarity")
    image = _matrix_panel(
        axes[0, 1],
        rates,
        labels,
        evaluated,
        Normalize(0, 1),
        "viridis",
        "activation addition, harmless prompts",
        "direction added",
        "evaluated language (ISO 639-1)",
    )
    fig.colorbar(image, ax=axes[0, 1], label="refusal rate")
    norm = _centred_norm(m.own, m.random)
    for ax, name, matrix in (
        (axes[1, 0], "directional ablation, harmful prompts", m.own),
        (axes[1, 1], "random directions ablated (mean over seeds)", m.random),
    ):
        image = _matrix_panel(
            ax,
            matrix,
            m.intervened,
            m.evaluated,
            norm,
            "RdBu_r",
            name,
            "direction ablated (language)",
            "evaluated language (ISO 639-1)",
        )
    fig.colorbar(image, ax=list(axes[1]), label="Δ refusal rate (ablated − plain model)")
    fig.suptitle(f"{model}: refusal directions across languages")
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
                    _line_with_band(ax, line["layer"], line, colour, style, label)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xlabel("layer of the transplanted FFN output")
        ax.set_title(name)
        ax.legend(fontsize=7, ncols=2)
    axes[0, 0].set_ylabel(f"Δ {metric} (transplanted − plain model)")
    fig.suptitle(f"{model}: FFN transplant across languages — own (solid) vs random (dashed)")
    save_figure(fig, path)
    return fig
