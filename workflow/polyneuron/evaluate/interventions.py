"""Interventions on a model's forward pass, for the evaluation stage.

Every intervention is a context manager that registers forward hooks on entry and removes them
on exit (also when the body raises); it composes with the steering hooks of
:mod:`polyneuron.model.steer` (:func:`polyneuron.model.steer.compose`).

- :func:`deactivate_neurons` sets chosen FFN neurons (the activation module's output, as
  :mod:`polyneuron.model.adapters` defines a neuron) to zero (LAPE), to their mean activation, or
  scales them (value neurons: ×5);
- :func:`random_control` draws a same-size random neuron set per layer, the control condition;
- :class:`ModuleNeurons`: a set over the outputs of named modules (the MLP projections of
  relation neurons), which :func:`deactivate_neurons` hooks, and :func:`module_control` its
  control, drawn per layer and module;
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
    ACT,
    activation_modules,
    module_outputs,
    neurons_per_layer,
)

__all__ = [
    "MODES",
    "ModuleNeurons",
    "NeuronSet",
    "Operation",
    "apply_operations",
    "deactivate_neurons",
    "merge_sets",
    "module_control",
    "neuron_set_from_frame",
    "random_control",
    "split_like",
]

#: layer -> int64 indices of that layer's neurons (sorted, distinct)
NeuronSet = dict[int, torch.Tensor]

MODES = ("zero", "mean", "scale")


@dataclass(frozen=True)
class ModuleNeurons:
    """A neuron set over the outputs of named modules
    (:func:`polyneuron.model.adapters.module_outputs`: ``gate``, ``up``, ``down``, ``act``):
    module -> :data:`NeuronSet`, with each module's output width (``widths``)."""

    sets: Mapping[str, NeuronSet]
    widths: Mapping[str, int]

    def __post_init__(self) -> None:
        for module, neurons in self.sets.items():
            if module not in self.widths:
                raise ValueError(f"no width for module {module!r}")
            _check_set(neurons, self.widths[module])


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
    generator: torch.Generator | None = None,
) -> NeuronSet:
    """As many neurons per layer as ``neurons`` has, drawn uniformly without replacement from
    ``range(n_neurons)`` — and from outside ``neurons`` when ``exclude``.

    One ``torch.Generator`` seeded with ``seed`` (or ``generator``, going on from its state)
    draws the layers in ascending order (a random permutation of the candidates, its first k),
    so a seed gives the same set every time. A layer's count is that of its distinct indices;
    indices come back sorted."""
    checked = _check_set(neurons, n_neurons)
    generator = generator or torch.Generator().manual_seed(seed)
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


def module_control(neurons: ModuleNeurons, seed: int, exclude: bool = True) -> ModuleNeurons:
    """As many neurons per layer *and module* as ``neurons`` has, each module's drawn as
    :func:`random_control` draws them (uniformly within that layer's output of the module);
    one generator seeded with ``seed`` draws the modules in name order."""
    generator = torch.Generator().manual_seed(seed)
    drawn = {}
    for module in sorted(neurons.sets):
        width = neurons.widths[module]
        drawn[module] = random_control(neurons.sets[module], width, seed, exclude, generator)
    return ModuleNeurons({m: drawn[m] for m in neurons.sets}, neurons.widths)


# --------------------------------------------------------------------------- deactivation


@contextmanager
def deactivate_neurons(
    model: nn.Module,
    neurons: Mapping[int, torch.Tensor | Sequence[int]] | ModuleNeurons,
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
    ``changed * up``. :class:`ModuleNeurons` hook each named module's output instead (a
    ``down`` neuron is one coordinate of the MLP's contribution to the residual stream);
    means exist only for ``act``."""
    if isinstance(neurons, ModuleNeurons):
        other = sorted(set(neurons.sets) - {ACT})
        if mode == "mean" and other:
            raise ValueError(
                "mode 'mean' needs each neuron's mean output, known only for the activation "
                f"module's neurons, not for {other}: use zero or scale"
            )
        hooked = module_outputs(model, list(neurons.sets))
        with ExitStack() as stack:
            for module, chosen in neurons.sets.items():
                stack.enter_context(_overwrite(hooked[module], neurons.widths[module], chosen,
                                               mode, factor, means))  # fmt: skip
            yield
        return
    with _overwrite(activation_modules(model), neurons_per_layer(model.config), neurons, mode,
                    factor, means):  # fmt: skip
        yield


@contextmanager
def _overwrite(
    modules: Sequence[nn.Module],
    width: int,
    neurons: Mapping[int, torch.Tensor | Sequence[int]],
    mode: str,
    factor: float,
    means: Mapping[int, torch.Tensor] | None,
) -> Iterator[None]:
    """:func:`deactivate_neurons` on the outputs (``width`` wide) of one module per layer."""
    if mode not in MODES:
        raise ValueError(f"unknown deactivation mode {mode!r}: expected one of {MODES}")
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

    neurons: NeuronSet | ModuleNeurons
    mode: str = "zero"
    factor: float = 0.0


def n_chosen(neurons: Mapping[int, torch.Tensor] | ModuleNeurons) -> int:
    """Indices in a set, over its layers (and modules), repeats counted."""
    if isinstance(neurons, ModuleNeurons):
        return sum(n_chosen(part) for part in neurons.sets.values())
    return sum(int(torch.as_tensor(v).numel()) for v in neurons.values())


def merge_sets(sets: Sequence[Mapping[int, torch.Tensor] | ModuleNeurons]) -> NeuronSet:
    """The union of neuron sets, each layer's indices sorted and distinct (of
    :class:`ModuleNeurons`: module by module)."""
    if sets and all(isinstance(neurons, ModuleNeurons) for neurons in sets):
        modules = dict.fromkeys(m for neurons in sets for m in neurons.sets)
        widths = {m: w for neurons in sets for m, w in neurons.widths.items()}
        return ModuleNeurons(  # type: ignore[return-value]
            {m: merge_sets([n.sets[m] for n in sets if m in n.sets]) for m in modules}, widths
        )
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
    control's, so each part's control sits at the levels that part sits at. :class:`ModuleNeurons`
    come in one part, which takes the whole control."""
    if isinstance(control, ModuleNeurons) or any(isinstance(op.neurons, ModuleNeurons)
                                                  for op in parts):  # fmt: skip
        if len(parts) != 1:
            raise ValueError("a set of module outputs' neurons is one part, not several")
        return (Operation(control, parts[0].mode, parts[0].factor),)  # type: ignore[arg-type]
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
            if n_chosen(op.neurons):
                stack.enter_context(
                    deactivate_neurons(model, op.neurons, op.mode, factor=op.factor, means=means)
                )
        yield
