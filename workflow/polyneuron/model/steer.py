"""Hooks that steer a forward pass: remove or add a residual-stream direction, and transplant
one input's FFN output into another's (XTransplant).

Every intervention is a context manager that registers forward hooks on entry and removes them
on exit (also when the body raises). They work on any sequence length and during
``model.generate`` with a KV cache, and they compose: hooks on the same module run in the
order the contexts were entered (:func:`compose` enters several at once).

- :func:`directional_ablation` removes a direction from every layer's input and every
  attention/MLP output, :func:`activation_addition` adds a vector to one layer's input
  (the refusal-direction interventions);
- :func:`record_mlp_output` and :func:`ffn_transplant` are XTransplant's FFN transplant: the
  output of a layer's FFN on one input is written over that of another input at one position.

The FFN output recorded and substituted is what the block adds to the residual stream: the
``mlp`` module's output for GPT-2, Llama, Mistral, Qwen2 and Gemma, and the output of
``post_feedforward_layernorm`` (which normalises the MLP's output before the residual add) for
Gemma 2 and Gemma 3 — the last of :func:`polyneuron.model.adapters.residual_writers` of a layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any

import torch
from torch import nn

from polyneuron.model.adapters import decoder_body, decoder_layers, residual_writers


def hidden_arg(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def replace_hidden(args: tuple, kwargs: dict, hidden: torch.Tensor) -> tuple[tuple, dict]:
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


def first_output(output):
    return output[0] if isinstance(output, tuple) else output


def with_first_output(output, value):
    return (value, *output[1:]) if isinstance(output, tuple) else value


@contextmanager
def directional_ablation(model: nn.Module, direction: torch.Tensor) -> Iterator[None]:
    """Remove ``direction`` from every layer's input and every attention/MLP output while the
    context is open: x ← x − (x·r̂)r̂."""
    layers = decoder_layers(model)
    first = next(model.parameters())
    unit = direction.to(first.device, torch.float32)
    unit = unit / unit.norm()

    def ablate(x: torch.Tensor) -> torch.Tensor:
        r = unit.to(x.dtype)
        return x - (x @ r)[..., None] * r

    def pre(_module, args, kwargs):
        return replace_hidden(args, kwargs, ablate(hidden_arg(args, kwargs)))

    def post(_module, _inputs, output):
        return with_first_output(output, ablate(first_output(output)))

    handles = [layer.register_forward_pre_hook(pre, with_kwargs=True) for layer in layers]
    for writers in residual_writers(model):
        handles += [module.register_forward_hook(post) for module in writers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def activation_addition(
    model: nn.Module, vector: torch.Tensor, layer: int, coeff: float = 1.0
) -> Iterator[None]:
    """Add ``coeff · vector`` to layer ``layer``'s input at every position."""
    first = next(model.parameters())
    add = (coeff * vector).to(first.device, torch.float32)

    def pre(_module, args, kwargs):
        hidden = hidden_arg(args, kwargs)
        return replace_hidden(args, kwargs, hidden + add.to(hidden.dtype))

    handle = decoder_layers(model)[layer].register_forward_pre_hook(pre, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def ffn_output_module(model: nn.Module, layer: int) -> nn.Module:
    """The module whose output is layer ``layer``'s FFN contribution to the residual stream:
    ``mlp``, or ``post_feedforward_layernorm`` for Gemma 2/3."""
    writers = residual_writers(model)
    if not 0 <= layer < len(writers):
        raise ValueError(f"layer {layer} out of range: the model has {len(writers)} layers")
    return writers[layer][-1]  # the adapters list the attention writer first, the FFN's last


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
        hidden = first_output(output)
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
        hidden = first_output(output)
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
        return with_first_output(output, hidden)

    handles = []
    try:
        handles.append(decoder_body(model).register_forward_pre_hook(body_pre, with_kwargs=True))
        handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def compose(*contexts: AbstractContextManager[Any]) -> Iterator[list[Any]]:
    """Enter ``contexts`` in order (their hooks on one module run in that order) and exit them
    in reverse; yields what each one yields."""
    with ExitStack() as stack:
        yield [stack.enter_context(context) for context in contexts]
