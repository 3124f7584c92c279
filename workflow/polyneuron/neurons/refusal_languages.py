"""A chat model's refusal directions over its languages (:mod:`polyneuron.neurons.refusal`
finds them one language at a time): every language's candidates in one table, and the cosine
similarity of every pair of languages' directions — the selected ones, and per layer those at
the last post-instruction position."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl
import torch

COSINE_SCHEMA = {
    "direction": pl.String,
    "layer": pl.Int32,
    "lang_a": pl.String,
    "lang_b": pl.String,
    "cosine": pl.Float64,
}


def cosine_matrix(vectors: dict[str, torch.Tensor]) -> list[tuple[str, str, float]]:
    """Cosine similarity of every ordered pair of named vectors; NaN where a vector is zero
    (a layer-0 direction at the post-instruction positions is: both means embed the same
    template tokens)."""
    names = list(vectors)
    if not names:
        return []
    stacked = torch.stack([vectors[n].double() for n in names])
    norms = stacked.norm(dim=-1, keepdim=True)
    unit = torch.where(norms > 0, stacked / norms, torch.full_like(stacked, float("nan")))
    sims = unit @ unit.T
    return [(a, b, float(sims[i, j])) for i, a in enumerate(names) for j, b in enumerate(names)]


def candidates_table(tables: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """The languages' candidate tables
    (:func:`polyneuron.neurons.refusal.find_refusal_direction`) as one, in the neuron tables'
    terms: ``group`` the language, ``score`` the ablation score."""
    return pl.concat(tables).select(
        "layer",
        "position",
        pl.col("lang").alias("group"),
        pl.col("ablation_score").alias("score"),
        "selected",
        "steering_score",
        "kl",
        "norm",
        "reason",
    )


def direction_cosines(
    selected: Mapping[str, torch.Tensor], last: Mapping[str, torch.Tensor]
) -> pl.DataFrame:
    """:func:`cosine_matrix` of the languages' ``selected`` directions (``direction``
    "selected", ``layer`` null), then per layer of their directions at the last
    post-instruction position (``last[lang]``: ``[layer, hidden]``; "last_position")."""
    rows = [("selected", None, a, b, c) for a, b, c in cosine_matrix(selected)]
    n_layers = next(iter(last.values())).shape[0]
    for layer in range(n_layers):
        by_lang = {lang: vectors[layer] for lang, vectors in last.items()}
        rows += [("last_position", layer, a, b, c) for a, b, c in cosine_matrix(by_lang)]
    return pl.DataFrame(rows, schema=COSINE_SCHEMA, orient="row")
