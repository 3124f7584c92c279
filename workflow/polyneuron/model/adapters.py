"""Where each model family keeps its FFN neurons.

A neuron is one coordinate of the FFN intermediate activation: ``act_fn(gate_proj(x))`` for
gated MLPs (Gemma, Llama, Qwen2, Mistral), the activation function's output for GPT-2-style
MLPs. Hooking the activation *module* gives exactly that quantity; a hook on the MLP's output
or on ``down_proj``'s input would give ``act_fn(gate) * up`` instead, which is not what LAPE
counts.

Relation-specific neurons (arXiv 2502.17355) draw on a wider pool, the outputs of the MLP's
projections (:func:`module_outputs`): ``gate_proj``, ``up_proj`` and ``down_proj`` of gated
MLPs; GPT-2-style MLPs have no gate, so their pool is the in-projection ``c_fc`` (called
``up``) and the out-projection ``c_proj`` (``down``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from polyneuron import PolyneuronError


@dataclass(frozen=True)
class FamilyAdapter:
    family: str
    model_types: tuple[str, ...]
    #: attribute paths, from the decoder body, to the list of blocks (first match wins)
    layers_paths: tuple[str, ...]
    #: attribute path, from one block, to the activation module
    act_path: str
    #: attribute paths, from one block, to the modules whose outputs are added to the
    #: residual stream (attention and MLP, after any post-norm): directional ablation hooks
    writer_paths: tuple[str, ...] = ("self_attn", "mlp")
    #: attribute paths, from the decoder body, to the final norm (first match wins)
    norm_paths: tuple[str, ...] = ("norm", "language_model.norm")
    #: (module name, attribute path from one block) of the MLP projections whose outputs are the
    #: relation neurons' pool, in the order the forward pass runs them
    pool_paths: tuple[tuple[str, str], ...] = (
        ("gate", "mlp.gate_proj"),
        ("up", "mlp.up_proj"),
        ("down", "mlp.down_proj"),
    )


ADAPTERS: tuple[FamilyAdapter, ...] = (
    FamilyAdapter("gemma", ("gemma",), ("layers",), "mlp.act_fn"),
    FamilyAdapter(
        "gemma2",
        ("gemma2",),
        ("layers",),
        "mlp.act_fn",
        writer_paths=("post_attention_layernorm", "post_feedforward_layernorm"),
    ),
    FamilyAdapter(
        "gemma3",
        ("gemma3_text", "gemma3"),
        ("layers", "language_model.layers"),
        "mlp.act_fn",
        writer_paths=("post_attention_layernorm", "post_feedforward_layernorm"),
    ),
    FamilyAdapter("llama", ("llama",), ("layers",), "mlp.act_fn"),
    FamilyAdapter("mistral", ("mistral",), ("layers",), "mlp.act_fn"),
    FamilyAdapter("qwen2", ("qwen2",), ("layers",), "mlp.act_fn"),
    FamilyAdapter("qwen3", ("qwen3",), ("layers",), "mlp.act_fn"),
    FamilyAdapter(
        "gpt2",
        ("gpt2",),
        ("h",),
        "mlp.act",
        ("attn", "mlp"),
        ("ln_f",),
        pool_paths=(("up", "mlp.c_fc"), ("down", "mlp.c_proj")),
    ),
)

SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(t for a in ADAPTERS for t in a.model_types)


def adapter_for(model_type: str) -> FamilyAdapter:
    """The adapter of a ``config.model_type``; unknown types fail naming the supported ones."""
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter
    raise PolyneuronError(
        f"unsupported model architecture {model_type!r}: polyneuron knows where the FFN "
        f"neurons are for model types {', '.join(SUPPORTED_MODEL_TYPES)}"
    )


def _get_path(obj: object, path: str) -> object:
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


def decoder_body(model: nn.Module) -> nn.Module:
    """The model without its LM head: maps input ids to hidden states.

    Statistics need no logits, and on small multilingual models the unembedding is most of the
    parameters (Gemma 3 270M: 168M of 268M).
    """
    return getattr(model, "base_model", model)


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    adapter = adapter_for(model.config.model_type)
    body = decoder_body(model)
    for path in adapter.layers_paths:
        try:
            layers = _get_path(body, path)
        except AttributeError:
            continue
        return list(layers)  # type: ignore[call-overload]
    raise PolyneuronError(
        f"{adapter.family} model {type(model).__name__} has none of the expected block lists "
        f"{adapter.layers_paths}"
    )


def activation_modules(model: nn.Module) -> list[nn.Module]:
    """One activation module per layer, in layer order; its output is the neuron vector."""
    adapter = adapter_for(model.config.model_type)
    modules = [_get_path(layer, adapter.act_path) for layer in decoder_layers(model)]
    if len({id(m) for m in modules}) != len(modules):
        # a shared activation module would mix the layers' statistics in one hook
        raise PolyneuronError(f"{adapter.family}: layers share one activation module")
    return modules  # type: ignore[return-value]


#: the activation module's output, the neurons of every method (:func:`activation_modules`)
ACT = "act"
#: every module name :func:`module_outputs` knows
MODULE_NAMES = (ACT, "gate", "up", "down")


def reference_pool(model: nn.Module) -> tuple[str, ...]:
    """The projections whose outputs are a relation neuron's pool, in forward order: gate, up,
    down (GPT-2-style MLPs: up = ``c_fc``, down = ``c_proj``)."""
    return tuple(name for name, _ in adapter_for(model.config.model_type).pool_paths)


def module_outputs(model: nn.Module, names: Sequence[str]) -> dict[str, list[nn.Module]]:
    """Per module name (:data:`MODULE_NAMES`), that module in every layer, in layer order; a
    name the family's MLP lacks (GPT-2 has no gate) fails naming the model and the ones it has."""
    adapter = adapter_for(model.config.model_type)
    paths = dict(adapter.pool_paths)
    out = {}
    for name in names:
        if name == ACT:
            out[name] = activation_modules(model)
            continue
        if name not in paths:
            raise PolyneuronError(
                f"{adapter.family} model {type(model).__name__} has no {name!r} projection "
                f"output: its MLP has {', '.join([ACT, *paths])}"
            )
        out[name] = [_get_path(layer, paths[name]) for layer in decoder_layers(model)]
    return out  # type: ignore[return-value]


def module_widths(model: nn.Module, names: Sequence[str]) -> dict[str, int]:
    """Per module name, the width of its output: the FFN width, the model width for down."""
    return {
        name: hidden_size(model.config) if name == "down" else neurons_per_layer(model.config)
        for name in names
    }


def residual_writers(model: nn.Module) -> list[list[nn.Module]]:
    """Per layer, the modules whose outputs the block adds to the residual stream."""
    adapter = adapter_for(model.config.model_type)
    layers = decoder_layers(model)
    return [[_get_path(layer, p) for p in adapter.writer_paths] for layer in layers]  # type: ignore[misc]


def final_norm(model: nn.Module) -> nn.Module:
    """The norm applied to the last layer's output before the unembedding."""
    adapter = adapter_for(model.config.model_type)
    body = decoder_body(model)
    for path in adapter.norm_paths:
        try:
            return _get_path(body, path)  # type: ignore[return-value]
        except AttributeError:
            continue
    raise PolyneuronError(f"{adapter.family} model {type(model).__name__} has no final norm")


def unembed(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Logits from final-normed hidden states: the output embedding, then the family's final
    logit soft-capping where its config sets one (Gemma 2/3)."""
    return softcap(model, model.get_output_embeddings()(hidden))


def softcap(model: nn.Module, logits: torch.Tensor) -> torch.Tensor:
    """The family's final logit soft-capping where its config sets one (Gemma 2/3), else
    ``logits`` as they are."""
    config = getattr(model.config, "text_config", None) or model.config
    cap = getattr(config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def neurons_per_layer(config: object) -> int:
    """FFN width from a model config (``intermediate_size``; GPT-2: ``n_inner`` or 4·d)."""
    config = getattr(config, "text_config", None) or config
    width = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None)
    if width is None and getattr(config, "n_embd", None):
        width = 4 * config.n_embd  # type: ignore[attr-defined]
    if not width:
        raise PolyneuronError(f"cannot tell the FFN width of {type(config).__name__}")
    return int(width)


def hidden_size(config: object) -> int:
    """Model (residual stream) width from a model config (``hidden_size``; GPT-2: ``n_embd``)."""
    config = getattr(config, "text_config", None) or config
    width = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None)
    if not width:
        raise PolyneuronError(f"cannot tell the model width of {type(config).__name__}")
    return int(width)


#: logits computed at once: at most this many elements (float32: 256 MiB)
LOGIT_ELEMENTS = 1 << 26


def vocab_size(model: nn.Module) -> int:
    """Rows of the unembedding (the logits' width)."""
    embeddings = model.get_output_embeddings()
    weight = getattr(embeddings, "weight", None)
    if weight is not None:
        return int(weight.shape[0])
    config = getattr(model.config, "text_config", None) or model.config
    return int(config.vocab_size)


def logit_rows(model: nn.Module) -> int:
    """Positions whose logits fit :data:`LOGIT_ELEMENTS` at once (at least one)."""
    return max(1, LOGIT_ELEMENTS // max(1, vocab_size(model)))
