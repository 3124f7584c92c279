"""The refusal figure: cosine between the languages' refusal directions, refusal rates with a
direction added, and the cross-lingual transfer of directional ablation beside random
directions."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.colors import Normalize

from polyneuron.plots.ablation import ablation_matrices, control_means, select_rows
from polyneuron.plots.common import centred_norm, matrix_panel, save_figure


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
    image = matrix_panel(
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
    image = matrix_panel(
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
    norm = centred_norm(m.own, m.random)
    for ax, name, matrix in (
        (axes[1, 0], "directional ablation, harmful prompts", m.own),
        (axes[1, 1], "random directions ablated (mean over seeds)", m.random),
    ):
        image = matrix_panel(
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
