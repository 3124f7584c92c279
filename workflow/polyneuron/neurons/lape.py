"""Language activation probability entropy (LAPE; Tang et al. 2024), as the reference code does.

The reference (``identify.py`` of Language-Specific-Neurons) computes, for
``act_prob[layer, neuron, lang]``:

1. ``p̂ = p / Σ_lang p`` with NaN (a neuron never active) set to 0, and the entropy
   ``H = -Σ p̂ log p̂`` (0 log 0 = 0);
2. ``τ`` = the ``round(numel · filter_rate)``-th smallest of all probabilities
   (``kthvalue``; filter_rate 0.95), and ``H = +inf`` for neurons whose largest probability
   is not above ``τ``;
3. the ``round(numel_neurons · top_rate)`` lowest-entropy neurons (top_rate 0.01);
4. each kept neuron is assigned to every language whose probability is above the
   ``activation_bar_ratio`` quantile, taken the same way (the reference uses 0.95 again).

Ties in entropy are broken by (layer, neuron) order, where the reference's ``topk`` leaves
them unspecified.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import torch


def kth_quantile(values: torch.Tensor, rate: float) -> float:
    """The reference's quantile: the ``round(n·rate)``-th smallest value (1-based, ≥ 1)."""
    flat = values.flatten()
    k = min(max(round(flat.numel() * rate), 1), flat.numel())
    return float(flat.kthvalue(k).values)


def lape_entropy(act_prob: torch.Tensor) -> torch.Tensor:
    """Entropy over languages of the normalised activation probabilities, ``[layer, neuron]``."""
    normed = act_prob / act_prob.sum(dim=-1, keepdim=True)
    normed = torch.nan_to_num(normed, nan=0.0)
    log = torch.where(normed > 0, normed.log(), torch.zeros_like(normed))
    return -(normed * log).sum(dim=-1)


def filtered_entropy(act_prob: torch.Tensor, filter_rate: float) -> torch.Tensor:
    """:func:`lape_entropy`, +inf for neurons whose largest probability is not above τ, the
    ``filter_rate`` quantile of all probabilities (:func:`kth_quantile`)."""
    entropy = lape_entropy(act_prob)
    tau = kth_quantile(act_prob, filter_rate)
    return torch.where(
        (act_prob > tau).any(dim=-1), entropy, torch.full_like(entropy, float("inf"))
    )


def lowest_entropy(entropy: torch.Tensor, top_rate: float) -> torch.Tensor:
    """Flat indices of the ``round(numel · top_rate)`` lowest entropies, lowest first, ties in
    (layer, neuron) order."""
    n_keep = round(entropy.numel() * top_rate)
    return torch.sort(entropy.flatten(), stable=True).indices[:n_keep]


def select_lape(
    act_prob: torch.Tensor,
    langs: Sequence[str],
    filter_rate: float = 0.95,
    top_rate: float = 0.01,
    activation_bar_ratio: float = 0.95,
) -> pl.DataFrame:
    """Language-specific neurons: one row per (selected neuron, language it is assigned to)."""
    _, n_neurons, n_langs = act_prob.shape
    if n_langs != len(langs):
        raise ValueError(f"{n_langs} language columns but {len(langs)} language names")
    entropy = filtered_entropy(act_prob, filter_rate)
    order = lowest_entropy(entropy, top_rate)
    layer, neuron = order // n_neurons, order % n_neurons
    bar = kth_quantile(act_prob, activation_bar_ratio)
    selected = act_prob[layer, neuron]  # [kept, lang]
    row, lang = torch.nonzero(selected > bar, as_tuple=True)
    return pl.DataFrame(
        {
            "layer": layer[row].to(torch.int32).numpy(),
            "neuron": neuron[row].to(torch.int32).numpy(),
            "lang": [langs[i] for i in lang.tolist()],
            "act_prob": selected[row, lang].double().numpy(),
            "entropy": entropy[layer[row], neuron[row]].double().numpy(),
        },
        schema={
            "layer": pl.Int32,
            "neuron": pl.Int32,
            "lang": pl.String,
            "act_prob": pl.Float64,
            "entropy": pl.Float64,
        },
    ).sort("layer", "neuron", "lang")
