"""Interventions on a model's forward pass, for the evaluation stage.

Every intervention is a context manager that registers forward hooks on entry and removes them
on exit (also when the body raises); it composes with the steering hooks of
:mod:`polyneuron.model.steer` (:func:`polyneuron.model.steer.compose`).

- :func:`deactivate_neurons` sets chosen FFN neurons (the activation module's output, as
  :mod:`polyneuron.model.adapters` defines a neuron) to zero (LAPE), to their mean activation, or
  scales them (value neurons: ×5);
- :func:`random_control` draws a same-size random neuron set per layer, the control condition;
- :func:`neuron_set_from_frame` reads a :data:`NeuronSet` from a neuron table;
- :class:`Operation` and :func:`apply_operations`: disjoint sets with operations of their own
  in one intervention (the value neurons' reference: support-only ×5, conflict-only zeroed), and
  :func:`split_like`, which gives a control the same split.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

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
    "Operation",
    "apply_operations",
    "deactivate_neurons",
    "merge_sets",
    "neuron_set_from_frame",
    "random_control",
    "split_like",
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


# --------------------------------------------------------------------------- mixed operations


@dataclass(frozen=True)
class Operation:
    """One part of an intervention: ``neurons`` under ``mode`` (and ``factor`` for ``scale``),
    as :func:`deactivate_neurons` takes them."""

    neurons: NeuronSet
    mode: str = "zero"
    factor: float = 0.0


def merge_sets(sets: Sequence[Mapping[int, torch.Tensor]]) -> NeuronSet:
    """The union of neuron sets, each layer's indices sorted and distinct."""
    out: dict[int, list[torch.Tensor]] = {}
    for neurons in sets:
        for layer, idx in neurons.items():
            out.setdefault(int(layer), []).append(_as_index(idx))
    return {layer: torch.unique(torch.cat(parts)) for layer, parts in sorted(out.items())}


def split_like(
    parts: Sequence[Operation], control: Mapping[int, torch.Tensor], bins: torch.Tensor | None
) -> tuple[Operation, ...]:
    """``control`` (a set of as many neurons per layer as ``parts`` together) split into parts
    with the same operations and per-layer counts: within a layer, the parts' neurons ordered by
    activation-level bin (``bins[layer, neuron]``; none: by index) are paired in order with the
    control's, so each part's control sits at the levels that part sits at."""
    merged = merge_sets([op.neurons for op in parts])
    if sum(sum(int(v.numel()) for v in op.neurons.values()) for op in parts) != sum(
        int(v.numel()) for v in merged.values()
    ):
        raise ValueError("the parts of a mixed intervention must not share neurons")
    chosen: list[dict[int, list[int]]] = [{} for _ in parts]
    for layer in merged:
        own = [
            (int(n), i)
            for i, op in enumerate(parts)
            for n in _as_index(op.neurons.get(layer, torch.zeros(0))).tolist()
        ]
        drawn = _as_index(control.get(layer, torch.zeros(0))).tolist()
        if len(drawn) != len(own):
            raise ValueError(f"layer {layer}: control has {len(drawn)} neurons, the set {len(own)}")

        def level(n: int, layer: int = layer) -> int:
            return 0 if bins is None else int(bins[layer, n])

        own.sort(key=lambda item: (level(item[0]), item[1], item[0]))
        drawn.sort(key=lambda n: (level(n), n))
        for (_, part), neuron in zip(own, drawn, strict=True):
            chosen[part].setdefault(layer, []).append(neuron)
    return tuple(
        Operation(
            {layer: torch.tensor(sorted(v), dtype=torch.long) for layer, v in picked.items()},
            op.mode,
            op.factor,
        )
        for op, picked in zip(parts, chosen, strict=True)
    )


@contextmanager
def apply_operations(
    model: nn.Module,
    operations: Sequence[Operation],
    means: Mapping[int, torch.Tensor] | None = None,
) -> Iterator[None]:
    """Every operation's :func:`deactivate_neurons` open at once (their hooks act on distinct
    neurons, so their order does not matter)."""
    with ExitStack() as stack:
        for op in operations:
            if any(int(v.numel()) for v in op.neurons.values()):
                stack.enter_context(
                    deactivate_neurons(model, op.neurons, op.mode, factor=op.factor, means=means)
                )
        yield
