"""Run a model over probe texts and stream neuron statistics (see :mod:`polyneuron.model.hooks`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import polars as pl
import torch
from tqdm import tqdm

from polyneuron import PolyneuronError
from polyneuron.model.adapters import (
    ACT,
    activation_modules,
    decoder_body,
    module_outputs,
    module_widths,
    neurons_per_layer,
)
from polyneuron.model.batches import Encoded, collate, pad_token_id, plan_batches
from polyneuron.model.hooks import ExampleMeans, NeuronStats, StatsCollector


def read_split(path: str | Path, split: str) -> pl.DataFrame:
    """A probe file's rows of ``split`` (every row of a file without splits): the rows that
    extraction and the methods reading its outputs use, in file order."""
    probes = pl.read_parquet(path)
    if "split" in probes.columns:
        probes = probes.filter(pl.col("split") == split)
    return probes


def collect_stats(
    model: torch.nn.Module,
    tokenizer,
    encoded: Sequence[Encoded],
    device: torch.device,
    batch_tokens: int = 4096,
    max_batch_size: int = 256,
    desc: str = "extract",
) -> NeuronStats:
    """Neuron statistics of ``model`` over ``encoded`` texts; padding never counts."""
    modules = activation_modules(model)
    stats = NeuronStats.zeros(len(modules), neurons_per_layer(model.config), device=device)
    _run_batches(model, tokenizer, encoded, device, stats, batch_tokens, max_batch_size, desc)
    return stats


def collect_example_means(
    model: torch.nn.Module,
    tokenizer,
    encoded: Sequence[Encoded],
    device: torch.device,
    out,
    batch_tokens: int = 4096,
    max_batch_size: int = 256,
    desc: str = "examples",
    modules: Sequence[str] = (ACT,),
) -> None:
    """Each text's mean output per neuron over its counted tokens, into
    ``out[text, layer, neuron]`` (an array or memory map, filled batch by batch). The neurons
    are the outputs of ``modules`` (:func:`polyneuron.model.adapters.module_outputs`; default
    the activation function's), side by side in that order within a layer's row."""
    hooked = module_outputs(model, modules)
    widths = module_widths(model, modules)
    n_layers = len(next(iter(hooked.values())))
    expected = (len(encoded), n_layers, sum(widths.values()))
    if tuple(out.shape) != expected:
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {expected}")
    starts = dict(zip(modules, np.cumsum([0, *widths.values()]).tolist(), strict=False))
    # layer by layer, each layer's modules in the forward pass's order: the last one runs last
    order = [(layer, name) for layer in range(n_layers) for name in modules]
    means = ExampleMeans(out, [(layer, starts[name]) for layer, name in order])
    _run_batches(
        model, tokenizer, encoded, device, means, batch_tokens, max_batch_size, desc,
        on_batch=means.set_rows, modules=[hooked[name][layer] for layer, name in order],
    )  # fmt: skip


def _run_batches(
    model: torch.nn.Module,
    tokenizer,
    encoded: Sequence[Encoded],
    device: torch.device,
    fold: NeuronStats | ExampleMeans,
    batch_tokens: int,
    max_batch_size: int,
    desc: str,
    on_batch: Callable[[list[int]], None] | None = None,
    modules: Sequence[torch.nn.Module] | None = None,
) -> None:
    """Length-grouped batches through the decoder body, the outputs of ``modules`` (default:
    each layer's activation module) folded into ``fold`` by hooks; the forward stops after the
    last hooked module."""
    batches = plan_batches([len(e.input_ids) for e in encoded], batch_tokens, max_batch_size)
    collector = StatsCollector(modules or activation_modules(model), fold)
    body = decoder_body(model)
    pad = pad_token_id(tokenizer)
    n_tokens = sum(len(e.input_ids) for e in encoded)
    with (
        torch.inference_mode(),
        collector.attached(),
        tqdm(total=n_tokens, desc=desc, unit="tok", mininterval=5.0) as bar,
    ):
        for number, indices in enumerate(batches, start=1):
            batch, counted = collate([encoded[i] for i in indices], pad, device)
            if on_batch:
                on_batch(indices)
            collector.set_mask(counted)
            collector.run(body, **batch)
            bad = fold.nonfinite_layers()
            if bad.any():  # one check per batch, never counted as "inactive"
                raise nonfinite_error(desc, model, int(bad.nonzero()[0]), number, len(batches),
                                      indices)  # fmt: skip
            bar.update(sum(len(encoded[i].input_ids) for i in indices))


def nonfinite_error(
    desc: str, model: torch.nn.Module, layer: int, number: int, n_batches: int, rows: list[int]
) -> PolyneuronError:
    """The error of an extraction that met a NaN or infinite activation."""
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    shown = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
    return PolyneuronError(
        f"{desc}: non-finite activations (NaN or inf) in layer {layer}, first in batch {number} "
        f"of {n_batches} (texts {shown}), with the model in {dtype}. Nothing was written. "
        "float16 overflows in many models (Gemma's among them): use bfloat16 on a GPU or "
        "float32 (models.<name>.dtype); otherwise check the weights for NaN."
    )
