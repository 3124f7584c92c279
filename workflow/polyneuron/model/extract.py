"""Run a model over probe texts and stream neuron statistics (see :mod:`polyneuron.model.hooks`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.compute as pc
import pyarrow.parquet as pq
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


EXTRACT_CHUNK_ROWS = 8192  # texts read, tokenised and extracted at once by iter_split_rows


def split_counts(path: str | Path, split: str) -> list[int]:
    """Rows of ``split`` in each row group of a probe file (every row of a file without
    splits), read from the row groups' statistics where they settle it (one value in the
    group), else from the ``split`` column alone: never the texts."""
    parquet = pq.ParquetFile(path)
    meta = parquet.metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    if "split" not in names:
        return [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    column = names.index("split")
    counts = []
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        stats = group.column(column).statistics
        if group.num_rows == 0:
            counts.append(0)
        elif stats is not None and stats.has_min_max and stats.min == stats.max:
            counts.append(group.num_rows - stats.null_count if stats.min == split else 0)
        else:
            values = parquet.read_row_group(g, columns=["split"])["split"]
            counts.append(int(pc.sum(pc.equal(values, split)).as_py() or 0))
    return counts


def count_split(path: str | Path, split: str) -> int:
    """How many rows :func:`read_split` returns, without reading the texts."""
    return sum(split_counts(path, split))


def iter_split_rows(
    path: str | Path,
    split: str,
    rows: range | None = None,
    columns: Sequence[str] | None = None,
    chunk_rows: int = EXTRACT_CHUNK_ROWS,
) -> Iterator[pl.DataFrame]:
    """``read_split(path, split)[rows]`` (all rows by default; ``columns`` only), in frames of
    ``chunk_rows`` rows (the last one shorter), read one row group at a time and only from the
    groups that hold them: memory holds a row group and a chunk, whatever the file's size.
    The chunks depend on the row numbers alone, not on how the file is grouped."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    counts = split_counts(path, split)
    rows = range(sum(counts)) if rows is None else rows
    parquet = pq.ParquetFile(path)
    has_split = "split" in parquet.schema_arrow.names
    wanted = list(columns) if columns is not None else parquet.schema_arrow.names
    read = wanted + (["split"] if has_split and "split" not in wanted else [])
    pending: pl.DataFrame | None = None
    first = 0  # index, among the split's rows, of the group's first one
    for group, count in enumerate(counts):
        start, stop = max(rows.start, first), min(rows.stop, first + count)
        first += count
        if start >= stop:
            continue
        frame = pl.from_arrow(parquet.read_row_group(group, columns=read))
        if has_split:
            frame = frame.filter(pl.col("split") == split)
        frame = frame.slice(start - (first - count), stop - start).select(wanted)
        if pending is not None:
            frame = pl.concat([pending, frame])
        while frame.height >= chunk_rows:
            yield frame.slice(0, chunk_rows)
            frame = frame.slice(chunk_rows)
        pending = frame if frame.height else None
    if pending is not None:
        yield pending


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
    return collect_stats_chunks(
        model, tokenizer, [encoded], device, batch_tokens, max_batch_size, desc
    )


def collect_stats_chunks(
    model: torch.nn.Module,
    tokenizer,
    chunks: Iterable[Sequence[Encoded]],
    device: torch.device,
    batch_tokens: int = 4096,
    max_batch_size: int = 256,
    desc: str = "extract",
) -> NeuronStats:
    """:func:`collect_stats` over texts that come chunk by chunk (each tokenised when its turn
    comes, e.g. from :func:`iter_split_rows`), folded into one set of statistics: memory holds
    one chunk. Batches are length-grouped within a chunk, so sums can differ from one pass's
    in float rounding only."""
    modules = activation_modules(model)
    stats = NeuronStats.zeros(len(modules), neurons_per_layer(model.config), device=device)
    done = 0
    for number, encoded in enumerate(chunks, start=1):
        where = desc if number == 1 else f"{desc} chunk {number} (texts from {done})"
        _run_batches(model, tokenizer, encoded, device, stats, batch_tokens, max_batch_size, where)
        done += len(encoded)
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
