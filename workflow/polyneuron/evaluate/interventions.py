"""Interventions on a model's forward pass, for the evaluation stage.

Every intervention is a context manager that registers forward hooks on entry and removes them
on exit (also when the body raises). They work on any sequence length and during
``model.generate`` with a KV cache, and they compose: hooks on the same module run in the
order the contexts were entered (:func:`compose` enters several at once). The refusal-direction
interventions :func:`directional_ablation` and :func:`activation_addition` are re-exported from
:mod:`polyneuron.neurons.refusal` so that one import gives them all.

- :func:`deactivate_neurons` sets chosen FFN neurons (the activation module's output, as
  :mod:`polyneuron.model.adapters` defines a neuron) to zero (LAPE), to their mean activation, or
  scales them (value neurons: ×5);
- :func:`random_control` draws a same-size random neuron set per layer, the control condition;
- :func:`record_mlp_output` and :func:`ffn_transplant` are XTransplant's FFN transplant: the
  output of a layer's FFN on one input is written over that of another input at one position;
- :func:`bootstrap_ci` and :func:`paired_delta_ci` are percentile-bootstrap intervals of a mean
  over examples.

The FFN output recorded and substituted is what the block adds to the residual stream: the
``mlp`` module's output for GPT-2, Llama, Mistral, Qwen2 and Gemma, and the output of
``post_feedforward_layernorm`` (which normalises the MLP's output before the residual add) for
Gemma 2 and Gemma 3 — the last of :func:`polyneuron.model.adapters.residual_writers` of a layer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any

import numpy as np
import polars as pl
import torch
from torch import nn

from polyneuron.model.adapters import (
    activation_modules,
    decoder_body,
    neurons_per_layer,
    residual_writers,
)
from polyneuron.neurons.refusal import activation_addition, directional_ablation

__all__ = [
    "MODES",
    "NeuronSet",
    "activation_addition",
    "bootstrap_ci",
    "compose",
    "deactivate_neurons",
    "directional_ablation",
    "ffn_output_module",
    "ffn_transplant",
    "last_positions",
    "neuron_set_from_frame",
    "paired_delta_ci",
    "random_control",
    "record_mlp_output",
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


# --------------------------------------------------------------------------- FFN transplant


def ffn_output_module(model: nn.Module, layer: int) -> nn.Module:
    """The module whose output is layer ``layer``'s FFN contribution to the residual stream:
    ``mlp``, or ``post_feedforward_layernorm`` for Gemma 2/3."""
    writers = residual_writers(model)
    if not 0 <= layer < len(writers):
        raise ValueError(f"layer {layer} out of range: the model has {len(writers)} layers")
    return writers[layer][-1]  # the adapters list the attention writer first, the FFN's last


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def _with_first(output, value):
    return (value, *output[1:]) if isinstance(output, tuple) else value


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def last_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Each row's last position where ``attention_mask`` is 1 (left or right padding)."""
    seq = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
    return (attention_mask.to(torch.long) * seq).amax(-1)


class _Stop(Exception):
    """Raised by a recording hook to skip the layers after the one recorded."""


def record_mlp_output(
    model: nn.Module,
    layer: int,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Layer ``layer``'s FFN output (see :func:`ffn_output_module`) at each row's last
    non-padding position: ``[batch, hidden]``, on the model's device in its dtype. Position ids
    count each row's real tokens, so left and right padding give the same vectors. The forward
    pass stops after that module (no cache, no gradients, no logits)."""
    module = ffn_output_module(model, layer)
    device = _model_device(model)
    input_ids = input_ids.to(device)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    attention_mask = attention_mask.to(device)
    rows = torch.arange(input_ids.shape[0], device=device)
    last = last_positions(attention_mask)
    seen: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        hidden = _first(output)
        seen.append(hidden[rows.to(hidden.device), last.to(hidden.device)].detach().clone())
        raise _Stop

    # positions count real tokens only, as generate() counts them: with left padding, models
    # with absolute position embeddings (GPT-2) then see each row as if it were alone
    position_ids = (attention_mask.to(torch.long).cumsum(-1) - 1).clamp(min=0)
    handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            decoder_body(model)(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=False,
            )
    except _Stop:
        pass
    finally:
        handle.remove()
    if not seen:
        raise RuntimeError(f"layer {layer}'s FFN output module did not run")
    return seen[0].to(device)


def _past_length(args: tuple, kwargs: dict) -> int:
    """Tokens already in the KV cache passed to the decoder body (0 without one)."""
    cache = kwargs.get("past_key_values")
    if cache is None and len(args) > 1 and hasattr(args[1], "get_seq_length"):
        cache = args[1]  # GPT-2 style positional (input_ids, past_key_values, ...)
    if cache is None:
        return 0
    if not hasattr(cache, "get_seq_length"):
        raise TypeError(f"unsupported past_key_values {type(cache).__name__}: use a Cache")
    return int(cache.get_seq_length())


@contextmanager
def ffn_transplant(
    model: nn.Module, layer: int, vectors: torch.Tensor, positions: torch.Tensor
) -> Iterator[None]:
    """Write ``vectors[row]`` over layer ``layer``'s FFN output (the module of
    :func:`record_mlp_output`) at position ``positions[row]`` of each row.

    Positions index the (padded) input sequence as the model sees it. A forward pass covers the
    positions from the KV cache's length to that plus its sequence length, and substitutes only
    those rows whose position lies in that span: a plain forward or generation's first step
    (the whole prompt) substitutes, and later generation steps — one new token each, past the
    prompt — are left alone (the cached keys and values already carry the transplant). The
    batch must have ``len(vectors)`` rows (no beam search or several samples per prompt)."""
    module = ffn_output_module(model, layer)
    if vectors.ndim != 2 or positions.ndim != 1 or len(vectors) != len(positions):
        raise ValueError(
            f"vectors must be [batch, hidden] and positions [batch]: got "
            f"{tuple(vectors.shape)} and {tuple(positions.shape)}"
        )
    positions = positions.to(torch.long).cpu()
    if positions.numel() and int(positions.min()) < 0:
        raise ValueError(f"negative transplant position {int(positions.min())}")
    vectors = vectors.detach()
    state = {"offset": 0}

    def body_pre(_module, args, kwargs):
        state["offset"] = _past_length(args, kwargs)

    def hook(_module, _inputs, output):
        hidden = _first(output)
        batch, seq = hidden.shape[0], hidden.shape[1]
        if batch != len(positions):
            raise ValueError(
                f"ffn_transplant: forward batch of {batch} rows, but {len(positions)} "
                "vectors and positions"
            )
        local = positions - state["offset"]
        rows = torch.nonzero((local >= 0) & (local < seq)).flatten()
        if rows.numel() == 0:
            return None
        hidden = hidden.clone()
        source = vectors[rows].to(hidden.device, hidden.dtype)
        hidden[rows.to(hidden.device), local[rows].to(hidden.device)] = source
        return _with_first(output, hidden)

    handles = []
    try:
        handles.append(decoder_body(model).register_forward_pre_hook(body_pre, with_kwargs=True))
        handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


# --------------------------------------------------------------------------- composition


@contextmanager
def compose(*contexts: AbstractContextManager[Any]) -> Iterator[list[Any]]:
    """Enter ``contexts`` in order (their hooks on one module run in that order) and exit them
    in reverse; yields what each one yields."""
    with ExitStack() as stack:
        yield [stack.enter_context(context) for context in contexts]


# --------------------------------------------------------------------------- bootstrap

#: resampled means drawn per block, so that n_boot x n indices never all sit in memory
_BLOCK_ELEMENTS = 1 << 24


def _clean(values: torch.Tensor | np.ndarray | Sequence[float]) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[~np.isnan(array)]


def bootstrap_ci(
    values: torch.Tensor | np.ndarray | Sequence[float],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """(mean, low, high): the mean over examples and its percentile-bootstrap ``1 - alpha``
    interval. NaNs are dropped first; no values give NaNs.

    ``numpy.random.default_rng(seed).integers(0, n, (n_boot, n))`` resamples the examples (drawn
    in blocks of rows, the same stream); low and high are the ``alpha/2`` and ``1 - alpha/2``
    quantiles (numpy's linear interpolation) of the resampled means."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    data = _clean(values)
    n = data.size
    if n == 0:
        return (float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_ELEMENTS // n)
    boot = np.empty(n_boot)
    for start in range(0, n_boot, block):
        stop = min(n_boot, start + block)
        boot[start:stop] = data[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return (float(data.mean()), float(low), float(high))


def paired_delta_ci(
    base: torch.Tensor | np.ndarray | Sequence[float],
    other: torch.Tensor | np.ndarray | Sequence[float],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """(mean, low, high) of ``mean(other - base)`` over paired examples, both resampled with
    the same indices (which is the bootstrap of the per-example differences). Pairs with a NaN
    on either side are dropped."""

    def flat(values) -> np.ndarray:
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu().double().numpy()
        return np.asarray(values, dtype=np.float64).ravel()

    a, b = flat(base), flat(other)
    if a.shape != b.shape:
        raise ValueError(f"paired values differ in length: {a.size} base, {b.size} other")
    return bootstrap_ci(b - a, n_boot=n_boot, seed=seed, alpha=alpha)
