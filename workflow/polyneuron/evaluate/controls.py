"""Comparable controls for neuron-set interventions, and what mean-ablation fills in.

A neuron set found by activation statistics is not a random sample of its layers: overlap sets
are by construction the most often active neurons, and neurons that fire on every token carry a
large constant into the down projection, so zeroing them breaks a model whatever their role. A
control must match that. :func:`matched_control` draws, per layer, as many neurons from each
activation-level bin as the set has there (``level_bins``: equal-count bins of the layer's
neurons ranked by activation probability, deciles by default) — the workflow's default,
``ablation.control: matched``; :func:`polyneuron.evaluate.interventions.random_control` draws
uniformly within the layer (``uniform``).

Levels and means come from the activation statistics shards (``n_active``, ``act_sum`` over
``n_tokens``), pooled over languages: :func:`pooled_levels`. :class:`Controls` carries the choice
to :func:`polyneuron.evaluate.matrix.intervention_matrix`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from polyneuron.evaluate.interventions import (
    ModuleNeurons,
    NeuronSet,
    _check_set,
    module_control,
    random_control,
)
from polyneuron.neurons.stats import read_language

__all__ = [
    "DRAWS",
    "Controls",
    "level_bins",
    "load_controls",
    "matched_control",
    "pooled_levels",
]

log = logging.getLogger("polyneuron")

DRAWS = ("matched", "uniform")


@dataclass(frozen=True)
class Controls:
    """How an intervention's random controls are drawn (``draw``: ``matched`` needs ``bins``,
    ``[layer, neuron]`` activation-level bins) and, for ``mode: mean``, each layer's
    ``[neurons]`` mean activations (``means``)."""

    draw: str = "uniform"
    bins: torch.Tensor | None = None
    means: Mapping[int, torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if self.draw not in DRAWS:
            raise ValueError(f"control draw must be one of {', '.join(DRAWS)}, not {self.draw!r}")
        if self.draw == "matched" and self.bins is None:
            raise ValueError("matched controls need activation-level bins")

    def draw_for(
        self, neurons: NeuronSet | ModuleNeurons, n_neurons: int, seed: int
    ) -> NeuronSet | ModuleNeurons:
        """The control set of ``neurons`` for ``seed``. :class:`ModuleNeurons` are drawn per
        layer and module (:func:`~polyneuron.evaluate.interventions.module_control`): activation
        levels exist only for the activation module's neurons."""
        if isinstance(neurons, ModuleNeurons):
            return module_control(neurons, seed)
        if self.draw == "matched":
            assert self.bins is not None
            return matched_control(neurons, self.bins, seed)
        return random_control(neurons, n_neurons, seed)

    def draw_name(self, neurons: NeuronSet | ModuleNeurons) -> str:
        """How :meth:`draw_for` draws the control of ``neurons`` (the ``control_draw`` column)."""
        return "uniform" if isinstance(neurons, ModuleNeurons) else self.draw


def level_bins(levels: torch.Tensor, n_bins: int = 10) -> torch.Tensor:
    """``[layer, neuron]`` int64: each neuron's bin among its layer's neurons ranked by
    ``levels`` (ties by index), ``n_bins`` equal-count bins, 0 the least active."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be positive, got {n_bins}")
    width = levels.shape[1]
    ranks = levels.argsort(dim=1, stable=True).argsort(dim=1)
    return ranks * min(n_bins, width) // width


def matched_control(
    neurons: Mapping[int, torch.Tensor | Sequence[int]],
    bins: torch.Tensor,
    seed: int,
    exclude: bool = True,
) -> NeuronSet:
    """As many neurons per layer *and activation-level bin* as ``neurons`` has, drawn uniformly
    without replacement from that layer's bin (outside ``neurons`` when ``exclude``); where a
    bin has too few, the rest come from the nearest bins (lower first), and the log says so.

    One ``torch.Generator`` seeded with ``seed`` draws layers in ascending order and bins in
    ascending order within a layer, so a seed gives the same set every time; indices come back
    sorted."""
    n_layers, width = bins.shape
    checked = _check_set(neurons, width, n_layers)
    generator = torch.Generator().manual_seed(seed)
    out: NeuronSet = {}
    short = 0
    for layer in sorted(checked):
        taken = torch.unique(checked[layer])
        free = torch.ones(width, dtype=torch.bool)
        if exclude:
            free[taken] = False
        layer_bins = bins[layer]
        if taken.numel() > int(free.sum()):
            raise ValueError(
                f"layer {layer}: cannot draw {taken.numel()} control neurons from "
                f"{int(free.sum())} ({width} per layer, the selected ones excluded)"
            )
        picked: list[torch.Tensor] = []
        wanted = torch.bincount(layer_bins[taken], minlength=int(layer_bins.max()) + 1)
        for b in torch.nonzero(wanted).flatten().tolist():
            need = int(wanted[b])
            for distance in range(int(layer_bins.max()) + 1):
                for candidate in dict.fromkeys((b - distance, b + distance)):
                    if need == 0 or candidate < 0:
                        continue
                    pool = torch.nonzero(free & (layer_bins == candidate)).flatten()
                    if pool.numel() == 0:
                        continue
                    pick = pool[torch.randperm(pool.numel(), generator=generator)[:need]]
                    free[pick] = False
                    picked.append(pick)
                    need -= pick.numel()
                    short += pick.numel() if distance else 0
                if need == 0:
                    break
        out[layer] = torch.sort(torch.cat(picked)).values if picked else taken[:0]
    if short:
        log.info("matched control (seed %d): %d neurons from a neighbouring bin", seed, short)
    return out


def pooled_levels(
    paths: Sequence[str | Path], languages: Sequence[str], shards: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(activation probability, mean activation), each ``[layer, neuron]`` float64, over every
    token of every language's shards (``paths`` language by language, ``shards`` each)."""
    if len(paths) != len(languages) * shards:
        raise ValueError(f"{len(paths)} shard files for {len(languages)} languages x {shards}")
    sums = torch.zeros(0)
    for i in range(len(languages)):
        frame = read_language(paths[i * shards : (i + 1) * shards])
        shape = (int(frame["layer"].max()) + 1, int(frame["neuron"].max()) + 1)  # type: ignore[operator]
        columns = [frame[c].to_numpy() for c in ("n_tokens", "n_active", "act_sum")]
        part = torch.tensor(np.stack(columns), dtype=torch.float64).reshape(3, *shape)
        sums = part if sums.numel() == 0 else sums + part
    n_tokens, n_active, act_sum = sums
    total = n_tokens.clamp(min=1)
    return n_active / total, act_sum / total


def load_controls(
    paths: Sequence[str | Path],
    languages: Sequence[str],
    shards: int,
    draw: str = "matched",
    n_bins: int = 10,
    mode: str = "zero",
) -> Controls:
    """:class:`Controls` from activation shards: level bins for ``matched`` draws and, for
    ``mode: mean``, the means (both from :func:`pooled_levels`)."""
    levels, means = pooled_levels(paths, languages, shards)
    return Controls(
        draw=draw,
        bins=level_bins(levels, n_bins) if draw == "matched" else None,
        means={layer: means[layer].float() for layer in range(means.shape[0])}
        if mode == "mean"
        else None,
    )
