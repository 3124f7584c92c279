"""LoRA adapters merged into a model's weights, without peft.

An adapter is one safetensors file. For each adapted ``nn.Linear`` (``out`` × ``in``) it holds
two tensors, named by the module's path in the Hugging Face model (``model.named_modules()``):

- ``<module path>.lora_A``: ``[r, in]``
- ``<module path>.lora_B``: ``[out, r]``

e.g. ``model.layers.0.self_attn.q_proj.lora_A``. Its string metadata must have ``scale``
(the LoRA ``alpha / r`` as a decimal number); the rest documents it, e.g. ``base_model`` (the
model source it was trained on), ``rank``, ``alpha``, ``targets``, ``train_split``, ``seed``
and how it was made. Merging adds ``scale · B @ A`` to each module's weight, so the model
computes ``W x + scale · B (A x)`` with no extra modules or hooks. Nothing but tensors is read
from the file (safetensors, never pickle).

The embedded one, ``data/adapters/smollm2-135m-instruct-refusal/adapter.safetensors``, plants
refusal of harmful requests in SmolLM2-135M-Instruct (a positive control for the refusal
directions; its README says how it was trained).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open
from torch import nn

from polyneuron import PolyneuronError

__all__ = ["SUFFIXES", "apply_lora", "read_lora"]

#: the tensor name suffixes: ``<module path>.lora_A`` and ``<module path>.lora_B``
SUFFIXES = (".lora_A", ".lora_B")


def read_lora(path: str | Path) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], float, dict]:
    """The adapter file's ``{module path: (A, B)}``, its ``scale`` and its metadata; fails on
    a tensor name without a ``.lora_A``/``.lora_B`` suffix, a module with only one of the two,
    a tensor that is not a matrix, ranks that disagree or a missing or bad ``scale``."""
    path = Path(path)
    if not path.is_file():
        raise PolyneuronError(f"{path}: no such LoRA adapter file")
    tensors: dict[str, dict[str, torch.Tensor]] = {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            for key in f.keys():  # noqa: SIM118  # safe_open is no Mapping
                module, dot, part = key.rpartition(".")
                if not module or f"{dot}{part}" not in SUFFIXES:
                    raise PolyneuronError(
                        f"{path}: tensor {key!r} is not named <module path>.lora_A or "
                        "<module path>.lora_B"
                    )
                tensors.setdefault(module, {})[part] = f.get_tensor(key)
    except SafetensorError as err:
        raise PolyneuronError(f"{path}: not a safetensors file ({err})") from None
    if "scale" not in metadata:
        raise PolyneuronError(f"{path}: no 'scale' in its metadata (alpha / rank)")
    try:
        scale = float(metadata["scale"])
    except ValueError:
        scale = math.nan
    if not math.isfinite(scale):
        raise PolyneuronError(f"{path}: metadata 'scale' {metadata['scale']!r} is not a number")
    if not tensors:
        raise PolyneuronError(f"{path}: no LoRA tensors")
    pairs = {}
    for module, parts in tensors.items():
        missing = [name for name in ("lora_A", "lora_B") if name not in parts]
        if missing:
            raise PolyneuronError(f"{path}: module {module!r} has no {missing[0]} tensor")
        a, b = parts["lora_A"], parts["lora_B"]
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1]:
            raise PolyneuronError(
                f"{path}: module {module!r}: lora_A {list(a.shape)} and lora_B {list(b.shape)} "
                "are not [r, in] and [out, r] matrices of one rank r"
            )
        pairs[module] = (a, b)
    return pairs, scale, metadata


def apply_lora(model: nn.Module, path: str | Path) -> dict[str, str]:
    """Merge the LoRA adapter file at ``path`` into ``model`` in place: each named module's
    weight ``W`` becomes ``W + scale · B @ A``, computed in float32 and stored in ``W``'s dtype
    (on its device). Every module is checked (it exists, is an ``nn.Linear``, ``A`` is
    ``[r, in_features]`` and ``B`` ``[out_features, r]``) before any weight changes. Returns
    the file's metadata."""
    path = Path(path)
    pairs, scale, metadata = read_lora(path)
    targets: list[tuple[nn.Linear, torch.Tensor, torch.Tensor]] = []
    for name, (a, b) in pairs.items():
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise PolyneuronError(
                f"{path}: the model has no module {name!r} (the adapter is for another model?)"
            ) from None
        if not isinstance(module, nn.Linear):
            raise PolyneuronError(
                f"{path}: module {name!r} is a {type(module).__name__}, not an nn.Linear"
            )
        expected = ([a.shape[0], module.in_features], [module.out_features, a.shape[0]])
        if [list(a.shape), list(b.shape)] != list(map(list, expected)):
            raise PolyneuronError(
                f"{path}: module {name!r} is a Linear {module.in_features} → "
                f"{module.out_features}, but lora_A is {list(a.shape)} and lora_B "
                f"{list(b.shape)} (expected [r, {module.in_features}] and "
                f"[{module.out_features}, r])"
            )
        targets.append((module, a, b))
    with torch.no_grad():
        for module, a, b in targets:
            weight = module.weight
            delta = scale * (b.float() @ a.float())
            merged = weight.float() + delta.to(weight.device)
            weight.copy_(merged.to(weight.dtype))
    return metadata
