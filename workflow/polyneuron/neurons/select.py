"""Top-k selection of neurons: a boolean mask of the highest scores, by count or by share,
ties going to the lower flat (layer, neuron) index."""

from __future__ import annotations

import torch

from polyneuron import PolyneuronError


def top_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``k`` highest scores (ties broken by position)."""
    flat = scores.flatten()
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[torch.argsort(flat, descending=True, stable=True)[: min(k, flat.numel())]] = True
    return mask.reshape(scores.shape)


def top_share_mask(scores: torch.Tensor, rate: float) -> torch.Tensor:
    """Boolean mask, shaped like ``scores``, of the top ``rate`` share of all neurons
    (``round(rate · numel)``, at least 1); ties go to the lower flat index."""
    if not 0 < rate <= 1:
        raise PolyneuronError(f"top rate must be in (0, 1], not {rate}")
    return top_k_mask(scores, max(1, round(rate * scores.numel())))
