"""Streaming neuron statistics, accumulated inside forward hooks on the model's device.

Per-token activations never leave the device: each hook folds its batch into preallocated
counters (tokens counted, tokens with act > 0, sum, sum of squares) and drops the tensor.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import polars as pl
import torch
from torch import nn


@dataclass(frozen=True)
class CountedPositions:
    """Which of a batch's ``[batch, seq]`` positions count, in the cheaper of two forms.

    Mostly-counted batches (whole prompts; padding and BOS left out) use 0/1 weights over all
    positions; sparse ones (only a word's tokens) gather the counted rows first.
    """

    count: int
    weights: torch.Tensor  # [1, batch*seq] float32, 1 where counted
    index: torch.Tensor | None  # counted flat positions, when gathering is cheaper

    @classmethod
    def of(cls, mask: torch.Tensor) -> CountedPositions:
        flat = mask.reshape(-1)
        count = int(flat.sum())
        sparse = 2 * count < flat.numel()
        index = torch.nonzero(flat).flatten() if sparse else None
        return cls(count, flat.to(torch.float32)[None], index)


@dataclass
class NeuronStats:
    """Counters per (layer, neuron); ``n_tokens[layer]`` is shared by a layer's neurons."""

    n_tokens: torch.Tensor  # [layers] int64
    n_active: torch.Tensor  # [layers, neurons] int64
    act_sum: torch.Tensor  # [layers, neurons] float64
    act_sqsum: torch.Tensor  # [layers, neurons] float64
    #: reused for the per-token temporaries (0/1 of act > 0, act²): a fresh [tokens, neurons]
    #: tensor per layer costs page faults on CPU (the allocator hands large blocks back)
    _scratch: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def zeros(
        cls, n_layers: int, n_neurons: int, device: torch.device | str = "cpu"
    ) -> NeuronStats:
        return cls(
            n_tokens=torch.zeros(n_layers, dtype=torch.int64, device=device),
            n_active=torch.zeros(n_layers, n_neurons, dtype=torch.int64, device=device),
            act_sum=torch.zeros(n_layers, n_neurons, dtype=torch.float64, device=device),
            act_sqsum=torch.zeros(n_layers, n_neurons, dtype=torch.float64, device=device),
        )

    def add_(self, layer: int, act: torch.Tensor, mask: torch.Tensor | CountedPositions) -> None:
        """Fold activations ``act[..., neurons]`` at the positions where ``mask`` is true."""
        where = mask if isinstance(mask, CountedPositions) else CountedPositions.of(mask)
        flat = act.reshape(-1, act.shape[-1])
        if where.index is not None:
            flat = flat.index_select(0, where.index)
        flat = flat.float()
        w = where.weights if where.index is None else None
        self.n_tokens[layer] += where.count
        # clamp+sign ran faster on CPU than (x > 0); the float sums of 0/1 are exact below 2^24
        # tokens per batch. A masked sum is one GEMV with the 0/1 weights, no gather needed.
        temp = self._temp(flat)
        active = torch.clamp(flat, min=0, out=temp).sign_()
        if w is None:
            self.n_active[layer] += active.sum(0).to(torch.int64)
            self.act_sum[layer] += flat.sum(0).to(torch.float64)
            self.act_sqsum[layer] += torch.mul(flat, flat, out=temp).sum(0).to(torch.float64)
        else:
            self.n_active[layer] += (w @ active)[0].round().to(torch.int64)
            self.act_sum[layer] += (w @ flat)[0].to(torch.float64)
            self.act_sqsum[layer] += (w @ torch.mul(flat, flat, out=temp))[0].to(torch.float64)

    def release_scratch(self) -> None:
        """Drop the scratch buffer (the forward passes are done)."""
        self._scratch = None

    def _temp(self, like: torch.Tensor) -> torch.Tensor:
        """A ``like``-shaped float32 tensor from the scratch buffer, grown when too small."""
        size = like.numel()
        scratch = self._scratch
        if (
            scratch is None
            or scratch.numel() < size
            or scratch.device != like.device
            # written in place: an inference tensor only takes that inside inference mode
            or (scratch.is_inference() and not torch.is_inference_mode_enabled())
        ):
            scratch = self._scratch = torch.empty(size, dtype=torch.float32, device=like.device)
        return scratch[:size].view(like.shape)

    def nonfinite_layers(self) -> torch.Tensor:
        """``[layers]`` bool: layers whose sums hold a NaN or infinity (any activation folded in
        so far was one: NaN and inf propagate through the sums)."""
        return ~torch.isfinite(self.act_sum).all(1)

    def to_frame(self) -> pl.DataFrame:
        """One row per (layer, neuron), with the shard schema of the activation files."""
        n_layers, n_neurons = self.n_active.shape
        layer = torch.arange(n_layers, dtype=torch.int32).repeat_interleave(n_neurons)
        neuron = torch.arange(n_neurons, dtype=torch.int32).repeat(n_layers)
        return pl.DataFrame(
            {
                "layer": layer.numpy(),
                "neuron": neuron.numpy(),
                "n_tokens": self.n_tokens.cpu().repeat_interleave(n_neurons).numpy(),
                "n_active": self.n_active.cpu().reshape(-1).numpy(),
                "act_sum": self.act_sum.cpu().reshape(-1).numpy(),
                "act_sqsum": self.act_sqsum.cpu().reshape(-1).numpy(),
            },
            schema={
                "layer": pl.Int32,
                "neuron": pl.Int32,
                "n_tokens": pl.Int64,
                "n_active": pl.Int64,
                "act_sum": pl.Float64,
                "act_sqsum": pl.Float64,
            },
        )


@contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Parameters without grad for the block (no weight gradients are built); the model's own
    ``requires_grad`` flags come back afterwards."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class _StopForward(Exception):
    """Raised after the last hooked layer: nothing downstream is needed."""


class StatsCollector:
    """Hooks that fold each layer's activations into a :class:`NeuronStats`.

    Call :meth:`set_mask` with the batch's ``[batch, seq]`` mask of counted tokens before each
    forward pass, and run the forward through :meth:`run`, which stops the model after the last
    hooked layer.
    """

    def __init__(self, modules: Sequence[nn.Module], stats: NeuronStats | ExampleMeans) -> None:
        self.modules = list(modules)
        self.stats = stats
        self._mask: CountedPositions | None = None

    def set_mask(self, mask: torch.Tensor) -> None:
        self._mask = CountedPositions.of(mask)

    def _hook(self, layer: int, last: bool):
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            assert self._mask is not None, "set_mask() before the forward pass"
            self.stats.add_(layer, output, self._mask)
            if last:
                raise _StopForward

        return hook

    @contextmanager
    def attached(self) -> Iterator[StatsCollector]:
        handles = [
            module.register_forward_hook(self._hook(i, i == len(self.modules) - 1))
            for i, module in enumerate(self.modules)
        ]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()
            if isinstance(self.stats, NeuronStats):
                self.stats.release_scratch()

    def run(self, body: nn.Module, **batch: torch.Tensor) -> None:
        with suppress(_StopForward):
            body(**batch, use_cache=False)


_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16}


class ExampleMeans:
    """Each example's mean activation per neuron over its counted tokens, written into
    ``out[example, layer, neuron]`` (e.g. a memory-mapped file; float32, or float16) batch by
    batch.

    Used in place of :class:`NeuronStats` in a :class:`StatsCollector`; call :meth:`set_rows`
    with the batch's example indices before each forward pass. An example with no counted
    token gets zeros. ``slots``, when given, places the collector's i-th hooked module at
    ``(layer, first column)`` of ``out`` (several modules' outputs side by side in one layer's
    row); without it the i-th module fills layer i from column 0.
    """

    def __init__(self, out, slots: Sequence[tuple[int, int]] | None = None) -> None:
        self.out = out
        self.slots = None if slots is None else list(slots)
        self.rows: Sequence[int] = ()
        self._bad: torch.Tensor | None = None  # [layers] bool, on the activations' device

    def set_rows(self, rows: Sequence[int]) -> None:
        self.rows = list(rows)

    def add_(self, module: int, act: torch.Tensor, mask: CountedPositions) -> None:
        layer, start = (module, 0) if self.slots is None else self.slots[module]
        batch, seq = act.shape[0], act.shape[1]
        weights = mask.weights.reshape(batch, seq)
        sums = torch.einsum("bs,bsn->bn", weights, act.float())
        means = sums / weights.sum(1, keepdim=True).clamp(min=1)
        stored = means.to(_TORCH_DTYPES[str(self.out.dtype)])
        if self._bad is None:
            self._bad = torch.zeros(self.out.shape[1], dtype=torch.bool, device=stored.device)
        # NaN, inf, or a mean beyond the stored dtype's range (float16: 65504) that became inf
        self._bad[layer] |= ~torch.isfinite(stored).all()
        self.out[self.rows, layer, start : start + stored.shape[1]] = stored.cpu().numpy()

    def nonfinite_layers(self) -> torch.Tensor:
        """``[layers]`` bool: layers where an example's mean so far was NaN or infinite, or
        beyond what the output's dtype stores."""
        if self._bad is None:
            return torch.zeros(self.out.shape[1], dtype=torch.bool)
        return self._bad
