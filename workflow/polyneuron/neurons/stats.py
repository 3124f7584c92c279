"""Reading activation shards back: reduce over shards, stack languages into tensors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl
import torch

from polyneuron import PolyneuronError

SHARD_COLUMNS = ("layer", "neuron", "n_tokens", "n_active", "act_sum", "act_sqsum")


def reduce_shards(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """Sum shard statistics per (layer, neuron); shards are disjoint sets of examples."""
    if not frames:
        raise PolyneuronError("no activation shards to reduce")
    return (
        pl.concat([f.select(SHARD_COLUMNS) for f in frames])
        .group_by("layer", "neuron")
        .agg(pl.col("n_tokens", "n_active", "act_sum", "act_sqsum").sum())
        .sort("layer", "neuron")
    )


def read_language(paths: Sequence[str | Path]) -> pl.DataFrame:
    return reduce_shards([pl.read_parquet(p) for p in paths])


def activation_probs(per_lang: Mapping[str, pl.DataFrame]) -> tuple[torch.Tensor, list[str]]:
    """``act_prob[layer, neuron, lang]`` = fraction of the language's tokens with act > 0."""
    langs = list(per_lang)
    probs = []
    shape: tuple[int, int] | None = None
    for lang in langs:
        frame = per_lang[lang]
        n_layers = int(frame["layer"].max()) + 1  # type: ignore[operator]
        n_neurons = int(frame["neuron"].max()) + 1  # type: ignore[operator]
        if shape is not None and shape != (n_layers, n_neurons):
            raise PolyneuronError(
                f"language {lang!r}: statistics for {n_layers}x{n_neurons} neurons, "
                f"others have {shape[0]}x{shape[1]}"
            )
        shape = (n_layers, n_neurons)
        n_tokens = torch.tensor(frame["n_tokens"].to_numpy()).reshape(shape)
        if int(n_tokens.min()) == 0:
            raise PolyneuronError(
                f"language {lang!r}: no tokens were counted; its probe file is empty or every "
                "text was masked out"
            )
        n_active = torch.tensor(frame["n_active"].to_numpy()).reshape(shape)
        probs.append(n_active.double() / n_tokens.double())
    return torch.stack(probs, dim=-1), langs


def load_act_prob(
    paths: Sequence[str | Path], languages: Sequence[str], shards: int
) -> tuple[torch.Tensor, list[str]]:
    """``act_prob[layer, neuron, lang]`` from shard files listed language by language."""
    if len(paths) != len(languages) * shards:
        raise ValueError(f"{len(paths)} shard files for {len(languages)} languages x {shards}")
    per_lang = {
        lang: read_language(paths[i * shards : (i + 1) * shards])
        for i, lang in enumerate(languages)
    }
    return activation_probs(per_lang)
