"""Language overlap neurons (BridgeX-ICL).

Each language's set is its neurons whose activation probability is at or above that
language's own ``percentile`` (0.99: its top 1%), the quantile taken as in LAPE
(:func:`polyneuron.neurons.lape.kth_quantile`) — the reference's ``>=``, so every neuron tied
at the threshold is kept (``ties="keep"``; on Gemma 3 270M the 99th percentile is p = 1.0 and
the "top 1%" is every always-on neuron). ``ties="exact"`` keeps exactly round(N·(1 − q)) per
language, the most active first, ties to the lower (layer, neuron). Two languages' overlap is
the intersection of their sets; the table records each language's threshold and how many of
its neurons sit exactly at it.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import torch

from polyneuron.neurons.lape import kth_quantile

TIES = ("keep", "exact")


def thresholds(act_prob: torch.Tensor, percentile: float = 0.99) -> torch.Tensor:
    """``[lang]``: each language's ``percentile`` quantile of its activation probabilities."""
    return torch.tensor(
        [kth_quantile(act_prob[..., k], percentile) for k in range(act_prob.shape[-1])],
        dtype=act_prob.dtype,
    )


def overlap_sets(
    act_prob: torch.Tensor, percentile: float = 0.99, ties: str = "keep"
) -> torch.Tensor:
    """Boolean ``[layer, neuron, lang]``: the neuron is in the language's top set (``ties``: see
    the module's docstring)."""
    if ties not in TIES:
        raise ValueError(f"ties must be one of {', '.join(TIES)}, not {ties!r}")
    if ties == "keep":
        return act_prob >= thresholds(act_prob, percentile)
    flat = act_prob.flatten(0, 1)  # [neuron, lang], layer-major
    k = round(flat.shape[0] * (1 - percentile))
    sets = torch.zeros_like(flat, dtype=torch.bool)
    for lang in range(flat.shape[1]):
        order = torch.sort(flat[:, lang], descending=True, stable=True).indices
        sets[order[:k], lang] = True
    return sets.reshape(act_prob.shape)


def pairwise_overlap(
    sets: torch.Tensor, names: Sequence[str], key: str = "lang", empty: float = 0.0
) -> pl.DataFrame:
    """``{key}_a, {key}_b, n_a, n_b, n_overlap, jaccard`` for every ordered pair (a = b too) of
    the boolean columns of ``sets`` (``[neuron, set]``); ``empty``: the Jaccard index of two
    empty sets."""
    sets = sets.to(torch.float64)
    inter = (sets.T @ sets).round().to(torch.int64)  # [set, set]
    sizes = inter.diagonal()
    union = sizes[:, None] + sizes[None, :] - inter
    jaccard = inter.double() / union.clamp(min=1).double()
    jaccard[union == 0] = empty
    n = len(names)
    a = torch.arange(n).repeat_interleave(n)
    b = torch.arange(n).repeat(n)
    return pl.DataFrame(
        {
            f"{key}_a": [names[i] for i in a.tolist()],
            f"{key}_b": [names[i] for i in b.tolist()],
            "n_a": sizes[a].numpy(),
            "n_b": sizes[b].numpy(),
            "n_overlap": inter[a, b].numpy(),
            "jaccard": jaccard[a, b].numpy(),
        },
        schema={
            f"{key}_a": pl.String,
            f"{key}_b": pl.String,
            "n_a": pl.Int64,
            "n_b": pl.Int64,
            "n_overlap": pl.Int64,
            "jaccard": pl.Float64,
        },
    )


def overlap_table(
    act_prob: torch.Tensor, langs: Sequence[str], percentile: float = 0.99, ties: str = "keep"
) -> pl.DataFrame:
    """``lang_a, lang_b, n_a, n_b, n_overlap, jaccard`` for every ordered pair (a = b too), and
    lang_a's ``threshold`` (its ``percentile`` quantile) and ``n_at_threshold`` (its neurons
    with exactly that probability: all kept under ``ties="keep"``)."""
    cut = thresholds(act_prob, percentile)
    at = (act_prob == cut).flatten(0, 1).sum(0)
    table = pairwise_overlap(overlap_sets(act_prob, percentile, ties).flatten(0, 1), langs)
    extra = pl.DataFrame(
        {
            "lang_a": list(langs),
            "threshold": cut.double().numpy(),
            "n_at_threshold": at.numpy().astype("int64"),
        },
        schema={"lang_a": pl.String, "threshold": pl.Float64, "n_at_threshold": pl.Int64},
    )
    return table.join(extra, on="lang_a", how="left", maintain_order="left")


def overlap_neurons(
    act_prob: torch.Tensor, langs: Sequence[str], percentile: float = 0.99, ties: str = "keep"
) -> pl.DataFrame:
    """``layer, neuron, lang, act_prob``: each language's set of :func:`overlap_sets`, one row
    per (neuron, language), ordered by language (``langs``' order), layer and neuron."""
    sets = overlap_sets(act_prob, percentile, ties)
    frames = []
    for k, lang in enumerate(langs):
        layer, neuron = torch.nonzero(sets[..., k], as_tuple=True)
        frames.append(
            pl.DataFrame(
                {
                    "layer": layer.numpy().astype("int32"),
                    "neuron": neuron.numpy().astype("int32"),
                    "lang": [lang] * len(layer),
                    "act_prob": act_prob[layer, neuron, k].double().numpy(),
                },
                schema={
                    "layer": pl.Int32,
                    "neuron": pl.Int32,
                    "lang": pl.String,
                    "act_prob": pl.Float64,
                },
            )
        )
    return pl.concat(frames)
