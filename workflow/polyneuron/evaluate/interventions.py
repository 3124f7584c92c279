"""Interventions on a model's forward pass, for the evaluation stage.

Every intervention is a context manager that registers forward hooks on entry and removes them
on exit (also when the body raises); it composes with the steering hooks of
:mod:`polyneuron.model.steer` (:func:`polyneuron.model.steer.compose`).

- :func:`deactivate_neurons` sets chosen FFN neurons (the activation module's output, as
  :mod:`polyneuron.model.adapters` defines a neuron) to zero (LAPE), to their mean activation, or
  scales them (value neurons: ×5);
- :func:`random_control` draws a same-size random neuron set per layer, the control condition;
- :func:`neuron_set_from_frame` reads a :data:`NeuronSet` from a neuron table.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import polars as pl
import torch
from torch import nn

from polyneuron.model.adapters import (
    activation_modules,
    neurons_per_layer,
)

__all__ = [
    "MODES",
    "NeuronSet",
    "deactivate_neurons",
    "neuron_set_from_frame",
    "random_control",
]

#: layer -> int64 indices of that layer's neurons (sorted, distinct)
NeuronSet = dict[int, torch.Tensor]

MODES = ("zero", "mean", "scale")


# --------------------------------------------------------------------------- neuron sets


def neuron_set_from_frame(frame: pl.DataFrame) -> NeuronSet:
    """The neurons of a frame with ``layer`` and ``neuron`` columns; when it has a boolean
    ``selected`` column, only its true rows count. Layers without rows are left out; each
    layer's indices come back sorted and distinct."""
    missing = [c for c in ("layer", "neuron") if c not in frame.columns]
    if missing:
        raise ValueError(f"neuron frame lacks column(s) {', '.join(missing)}: {frame.columns}")
    if "selected" in frame.columns:
        if frame.schema["selected"] != pl.Boolean:
            raise ValueError(f"column 'selected' must be boolean, not {frame.schema['selected']}")
        frame = frame.filter(pl.col("selected"))
    frame = frame.select("layer", "neuron")
    nulls = frame.null_count().row(0, named=True)
    if any(nulls.values()):
        raise ValueError(f"neuron frame has nulls: {nulls}")
    out: NeuronSet = {}
    for layer, part in frame.group_by("layer"):
        neurons = torch.tensor(part["neuron"].to_list(), dtype=torch.long)
        out[int(layer[0])] = torch.unique(neurons)  # type: ignore[arg-type]
    return dict(sorted(out.items()))


def _as_index(neurons: torch.Tensor | Sequence[int]) -> torch.Tensor:
    return torch.as_tensor(neurons, dtype=torch.long).flatten().cpu()


def _check_set(
    neurons: Mapping[int, torch.Tensor | Sequence[int]], n_neurons: int, n_layers: int | None = None
) -> NeuronSet:
    """The set as flat int64 CPU indices, after checking every layer and neuron is in range."""
    checked: NeuronSet = {}
    for layer, idx in neurons.items():
        if int(layer) < 0 or (n_layers is not None and int(layer) >= n_layers):
            limit = "" if n_layers is None else f": the model has {n_layers} layers"
            raise ValueError(f"layer {layer} out of range{limit}")
        index = _as_index(idx)
        bad = index[(index < 0) | (index >= n_neurons)]
        if bad.numel():
            raise ValueError(
                f"layer {layer}: neuron index {int(bad[0])} out of range "
                f"[0, {n_neurons}) ({bad.numel()} such)"
            )
        checked[int(layer)] = index
    return checked


def random_control(
    neurons: Mapping[int, torch.Tensor | Sequence[int]],
    n_neurons: int,
    seed: int,
    exclude: bool = True,
) -> NeuronSet:
    """As many neurons per layer as ``neurons`` has, drawn uniformly without replacement from
    ``range(n_neurons)`` — and from outside ``neurons`` when ``exclude``.

    One ``torch.Generator`` seeded with ``seed`` draws the layers in ascending order (a random
    permutation of the candidates, its first k), so a seed gives the same set every time. A
    layer's count is that of its distinct indices; indices come back sorted."""
    checked = _check_set(neurons, n_neurons)
    generator = torch.Generator().manual_seed(seed)
    out: NeuronSet = {}
    for layer in sorted(checked):
        taken = torch.unique(checked[layer])
        k = taken.numel()
        pool = torch.arange(n_neurons)
        if exclude:
            keep = torch.ones(n_neurons, dtype=torch.bool)
            keep[taken] = False
            pool = pool[keep]
        if k > pool.numel():
            raise ValueError(
                f"layer {layer}: cannot draw {k} random neurons from {pool.numel()} "
                f"({n_neurons} per layer{', the selected ones excluded' if exclude else ''})"
            )
        pick = torch.randperm(pool.numel(), generator=generator)[:k]
        out[layer] = torch.sort(pool[pick]).values
    return out


# --------------------------------------------------------------------------- deactivation


@contextmanager
def deactivate_neurons(
    model: nn.Module,
    neurons: Mapping[int, torch.Tensor | Sequence[int]],
    mode: str = "zero",
    *,
    factor: float = 0.0,
    means: Mapping[int, torch.Tensor] | None = None,
) -> Iterator[None]:
    """Overwrite the chosen neurons' activations at every position while the context is open.

    ``mode``: ``"zero"`` sets them to 0 (LAPE's deactivation), ``"mean"`` to ``means[layer]``
    (a ``[neurons_per_layer]`` vector of mean activations, indexed by the set), ``"scale"``
    multiplies them by ``factor``. The hook is on each layer's activation module, so the
    down projection (GPT-2: ``c_proj``) reads the changed values; for gated MLPs it reads
    ``changed * up``."""
    if mode not in MODES:
        raise ValueError(f"unknown deactivation mode {mode!r}: expected one of {MODES}")
    modules = activation_modules(model)
    width = neurons_per_layer(model.config)
    checked = _check_set(neurons, width, len(modules))
    fills: dict[int, torch.Tensor] = {}
    if mode == "mean":
        if means is None:
            raise ValueError("mode 'mean' needs means: {layer: [neurons_per_layer] tensor}")
        for layer in checked:
            if layer not in means:
                raise ValueError(f"mode 'mean': no means for layer {layer}")
            vector = torch.as_tensor(means[layer]).flatten()
            if vector.numel() != width:
                raise ValueError(
                    f"mode 'mean': means for layer {layer} has {vector.numel()} values, "
                    f"expected {width} (one per neuron)"
                )
            fills[layer] = vector.detach()

    def hook_for(layer: int):
        mask_cpu = torch.zeros(width, dtype=torch.bool)
        mask_cpu[checked[layer]] = True
        cache: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

        def hook(_module, _inputs, output: torch.Tensor) -> torch.Tensor:
            key = (output.device, output.dtype)
            if key not in cache:
                fill = fills[layer] if mode == "mean" else torch.zeros(())
                cache[key] = (mask_cpu.to(output.device), fill.to(output.device, output.dtype))
            mask, fill = cache[key]
            if mode == "scale":
                return torch.where(mask, output * factor, output)
            return torch.where(mask, fill, output)

        return hook

    handles = []
    try:
        for layer, index in checked.items():
            if index.numel():
                handles.append(modules[layer].register_forward_hook(hook_for(layer)))
        yield
    finally:
        for handle in handles:
            handle.remove()
