"""Task-specific neurons by gradient attribution.

The loss of a task is L = Σ −log p(target token | prefix), summed over the target tokens of every
training example (a sum, not a mean, so that batches add up exactly and the result does not
depend on batching). A neuron's attribution is R = |Σ_tokens ∂L/∂a · a|, the sum running over
every non-padding position of every example: the first-order change of L when the neuron is
scaled by (1 + ε) everywhere, divided by ε. The top share of neurons by R are the task's
neurons; :func:`overlap_frame` says how far tasks share them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import torch
from torch import nn
from tqdm import tqdm

from polyneuron import PolyneuronError
from polyneuron.model import work
from polyneuron.model.adapters import activation_modules, decoder_body, neurons_per_layer, unembed
from polyneuron.model.batches import Encoded, collate, encode, pad_token_id, plan_batches
from polyneuron.model.hooks import frozen
from polyneuron.neurons.overlap import pairwise_overlap
from polyneuron.tensors import read_tensors, write_tensors

ATTRIBUTION = "attribution"  # tensor name in the attribution files


@dataclass
class Attribution:
    """Σ ∂L/∂a · a per (layer, neuron) over a task's examples, with what it was summed over."""

    signed: torch.Tensor  # [layers, neurons] float64
    n_examples: int
    n_tokens: int  # target tokens in the loss

    @property
    def scores(self) -> torch.Tensor:
        """R = |signed|."""
        return self.signed.abs()


def encode_tasks(
    tokenizer,
    prompts: Sequence[str],
    targets: Sequence[str],
    max_length: int | None = None,
) -> list[Encoded]:
    """Tokenise ``prompt + " " + target`` with special tokens; ``counted`` marks the tokens whose
    characters overlap the target, i.e. the tokens the loss predicts.

    The first position is never counted (nothing before it predicts it). An example without a
    counted token (empty target, or truncated away by ``max_length``) is an error.
    """
    if len(prompts) != len(targets):
        raise ValueError(f"{len(prompts)} prompts but {len(targets)} targets")
    texts = [f"{p} {t}" for p, t in zip(prompts, targets, strict=True)]
    spans = [(len(p) + 1, len(p) + 1 + len(t)) for p, t in zip(prompts, targets, strict=True)]
    encoded = encode(tokenizer, texts, spans, max_length=max_length)
    for i, e in enumerate(encoded):
        if e.counted and e.counted[0]:
            e.counted = (False, *e.counted[1:])
        if not targets[i] or not any(e.counted):
            raise PolyneuronError(
                f"task example {i}: no token of its target {targets[i]!r} to predict "
                f"(empty target, or cut off by max_length={max_length})"
            )
    return encoded


class _Keeper:
    """Forward hooks that keep each activation module's output, with grad."""

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        self.modules = list(modules)
        self.acts: list[torch.Tensor | None] = [None] * len(self.modules)

    def _hook(self, layer: int):
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            if not output.requires_grad:
                # computed from inputs and weights without grad: a leaf, so this works in place
                output.requires_grad_()
            self.acts[layer] = output

        return hook

    @contextmanager
    def attached(self) -> Iterator[_Keeper]:
        handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(self.modules)]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()
            self.acts = [None] * len(self.modules)


def _working_dtype(dtype: torch.dtype) -> torch.dtype:
    """At least float32 (half-precision models), float64 stays float64."""
    return torch.promote_types(dtype, torch.float32)


def attribute(
    model: nn.Module,
    tokenizer,
    encoded: Sequence[Encoded],
    device: torch.device,
    batch_tokens: int = 2048,
    max_batch_size: int = 64,
    desc: str = "attribute",
) -> Attribution:
    """Σ ∂L/∂a · a per neuron over ``encoded`` (from :func:`encode_tasks`), streamed over
    length-grouped batches; padding never counts.

    Logits are computed only at the positions that predict a target token. The model's
    parameters get no gradients, and their ``requires_grad`` flags are left as they were.
    """
    modules = activation_modules(model)
    keeper = _Keeper(modules)
    body = decoder_body(model)
    pad = pad_token_id(tokenizer)
    batches = plan_batches([len(e.input_ids) for e in encoded], batch_tokens, max_batch_size)
    n_tokens = 0
    total = sum(len(e.input_ids) for e in encoded)
    with (
        torch.inference_mode(False),
        torch.enable_grad(),
        frozen(model),
        keeper.attached(),
        tqdm(total=total, desc=desc, unit="tok", mininterval=5.0) as bar,
    ):
        # made here, not under a caller's inference mode: it is updated in place
        signed = torch.zeros(
            len(modules), neurons_per_layer(model.config), dtype=torch.float64, device=device
        )
        for indices in batches:
            batch, counted = collate([encoded[i] for i in indices], pad, device)
            hidden = body(**batch, use_cache=False)[0]  # final-normed last hidden state
            predicts = torch.zeros_like(counted)
            predicts[:, :-1] = counted[:, 1:]  # position p predicts token p + 1
            work.add(batch["input_ids"], batch["attention_mask"], 1, logits="grad",
                     targets=predicts)  # fmt: skip
            labels = batch["input_ids"][:, 1:][counted[:, 1:]]
            logits = unembed(model, hidden[predicts.to(hidden.device)])
            logits = logits.to(_working_dtype(logits.dtype))
            loss = nn.functional.cross_entropy(logits, labels.to(logits.device), reduction="sum")
            acts = [a for a in keeper.acts if a is not None]
            if len(acts) != len(modules):
                raise PolyneuronError(
                    f"{len(modules) - len(acts)} of {len(modules)} activation modules did not run"
                )
            grads = torch.autograd.grad(loss, acts, allow_unused=True)
            real = batch["attention_mask"].bool()
            for layer, (act, grad) in enumerate(zip(acts, grads, strict=True)):
                if grad is None:  # the loss does not depend on this layer
                    continue
                where = real.to(act.device)
                dtype = _working_dtype(act.dtype)
                product = grad[where].to(dtype) * act.detach()[where].to(dtype)
                signed[layer] += product.sum(0).to(device=device, dtype=torch.float64)
            n_tokens += int(labels.numel())
            del hidden, logits, loss, acts, grads
            keeper.acts = [None] * len(modules)
            bar.update(sum(len(encoded[i].input_ids) for i in indices))
    return Attribution(signed.cpu(), n_examples=len(encoded), n_tokens=n_tokens)


def write_attribution(
    path: str | Path, attribution: Attribution, metadata: Mapping[str, str] | None = None
) -> None:
    """Save the signed sums as tensor ``attribution`` of a safetensors file, atomically; the
    counts and ``metadata`` go into its string metadata."""
    meta = {
        **(metadata or {}),
        "n_examples": str(attribution.n_examples),
        "n_tokens": str(attribution.n_tokens),
    }
    write_tensors(path, {ATTRIBUTION: attribution.signed}, meta)


def read_attribution(path: str | Path) -> tuple[Attribution, dict[str, str]]:
    """An attribution file's sums and its metadata."""
    tensors, meta = read_tensors(path)
    signed = tensors[ATTRIBUTION].to(torch.float64)
    return Attribution(signed, int(meta["n_examples"]), int(meta["n_tokens"])), meta


def overlap_frame(masks: Mapping[str, torch.Tensor]) -> pl.DataFrame:
    """One row per ordered pair of tasks (a task with itself included): each task's count of
    selected neurons, the count they share and the Jaccard index (NaN when both are empty)."""
    shapes = {tuple(m.shape) for m in masks.values()}
    if len(shapes) > 1:
        raise ValueError(f"task masks differ in shape: {sorted(shapes)}")
    sets = torch.stack([m.flatten().bool() for m in masks.values()], dim=1)
    return pairwise_overlap(sets, list(masks), key="task", empty=float("nan"))


def neuron_frame(signed: torch.Tensor, mask: torch.Tensor, task: str) -> pl.DataFrame:
    """One row per (layer, neuron) of a task: R (``score``), the signed sum and whether the
    neuron is among the task's top neurons."""
    n_layers, n_neurons = signed.shape
    return pl.DataFrame(
        {
            "layer": torch.arange(n_layers).repeat_interleave(n_neurons).numpy(),
            "neuron": torch.arange(n_neurons).repeat(n_layers).numpy(),
            "group": [task] * (n_layers * n_neurons),
            "score": signed.abs().double().flatten().numpy(),
            "signed": signed.double().flatten().numpy(),
            "selected": mask.bool().flatten().numpy(),
        },
        schema={
            "layer": pl.Int32,
            "neuron": pl.Int32,
            "group": pl.String,
            "score": pl.Float64,
            "signed": pl.Float64,
            "selected": pl.Boolean,
        },
    )
