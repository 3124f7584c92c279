"""Extraction that reads its shard row group by row group and extracts it chunk by chunk."""

import runpy
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pyarrow.parquet as pq
import pytest
import torch

from polyneuron.io import write_parquet, write_parquet_groups
from polyneuron.model.batches import encode, shard_rows
from polyneuron.model.extract import (
    collect_stats,
    collect_stats_chunks,
    count_split,
    iter_split_rows,
    read_split,
)
from polyneuron.model.load import ModelSpec, load_prepared

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[3]
WORDS = ["the dog", "a lazy cat sleeps", "water", "der Hund bellt laut", "eau", "Katze"]
SCHEMA = {"id": pl.String, "text": pl.String, "split": pl.String}


def probes(n, heldout_every=0):
    return pl.DataFrame(
        {
            "id": [f"x-{i:05d}" for i in range(n)],
            "text": [f"{WORDS[i % len(WORDS)]} {i}" for i in range(n)],
            # the first 40 rows all train: a row group the statistics settle alone
            "split": [
                "heldout" if heldout_every and i >= 40 and i % heldout_every == 0 else "train"
                for i in range(n)
            ],
        },
        schema=SCHEMA,
    )


def grouped(frame, path, rows):
    frames = (frame.slice(start, rows) for start in range(0, frame.height, rows))
    write_parquet_groups(frames, path, frame.schema)
    return path


def test_shards_read_in_row_groups_and_chunks_are_read_splits_rows(tmp_path):
    frame = probes(250, heldout_every=4)
    path = grouped(frame, tmp_path / "p.parquet", 40)
    assert pq.ParquetFile(path).metadata.num_row_groups == 7
    whole = read_split(path, "train")
    assert count_split(path, "train") == whole.height == 250 - 53
    assert count_split(path, "heldout") == 53 and count_split(path, "test") == 0
    for shards in (1, 3):
        for k in range(shards):
            rows = shard_rows(whole.height, shards, k)
            for chunk_rows in (1, 7, 50, 1000):
                chunks = list(iter_split_rows(path, "train", rows, ["text"], chunk_rows))
                assert all(c.height == chunk_rows for c in chunks[:-1])
                assert all(c.columns == ["text"] for c in chunks)
                got = pl.concat(chunks) if chunks else whole.clear().select("text")
                assert got.equals(whole.slice(rows.start, len(rows)).select("text"))
    # a file without a split column: every row; chunks independent of the file's grouping
    bare = tmp_path / "bare.parquet"
    write_parquet(frame.drop("split"), bare)
    assert count_split(bare, "train") == 250
    chunks = [c["id"].to_list() for c in iter_split_rows(bare, "train", range(5, 100), None, 30)]
    assert chunks == [c["id"].to_list() for c in iter_split_rows(
        grouped(frame.drop("split"), tmp_path / "g.parquet", 11), "train", range(5, 100), None, 30
    )]  # fmt: skip
    assert [len(c) for c in chunks] == [30, 30, 30, 5]
    assert list(iter_split_rows(path, "train", range(0, 0))) == []


def load(folder):
    return load_prepared(ModelSpec("tiny", str(folder), device="cpu"), folder)


def test_chunked_extraction_equals_one_pass(tiny_models, tmp_path):
    model, tokenizer, device = load(tiny_models["llama"])
    path = grouped(probes(120, heldout_every=5), tmp_path / "p.parquet", 16)
    texts = read_split(path, "train")["text"].to_list()
    one = collect_stats(model, tokenizer, encode(tokenizer, texts), device, batch_tokens=64)
    chunks = (
        encode(tokenizer, chunk["text"].to_list())
        for chunk in iter_split_rows(path, "train", columns=["text"], chunk_rows=9)
    )
    chunked = collect_stats_chunks(model, tokenizer, chunks, device, batch_tokens=64)
    assert torch.equal(chunked.n_tokens, one.n_tokens)
    assert torch.equal(chunked.n_active, one.n_active)
    # batches differ, so float32 activations are summed in another order: rounding only
    scale = one.act_sqsum.abs().max()
    assert torch.allclose(chunked.act_sum, one.act_sum, rtol=1e-5, atol=1e-6 * scale)
    assert torch.allclose(chunked.act_sqsum, one.act_sqsum, rtol=1e-5, atol=1e-6 * scale)


def test_the_extraction_script_streams_a_shard_to_the_one_pass_statistics(tiny_models, tmp_path):
    folder = tiny_models["llama"]
    model, tokenizer, device = load(folder)
    path = grouped(probes(90, heldout_every=3), tmp_path / "p.parquet", 8)
    rows = shard_rows(count_split(path, "train"), 2, 1)
    shard = read_split(path, "train").slice(rows.start, len(rows))
    one = collect_stats(model, tokenizer, encode(tokenizer, shard["text"].to_list()), device)
    output = tmp_path / "part-1.parquet"
    snakemake = SimpleNamespace(
        input=SimpleNamespace(probes=str(path), model=str(folder)),
        output=[str(output)],
        log=[str(tmp_path / "part-1.log")],
        threads=1,
        wildcards=SimpleNamespace(model="tiny", probe="text", lang="de", k="1"),
        params=SimpleNamespace(
            model={"dtype": "float32", "device": "cpu"},
            shards=2,
            batch_tokens=4096,
            max_batch_size=256,
            split="train",
            count_tokens="prompt",
        ),
    )
    script = REPO / "workflow" / "scripts" / "extract_activations.py"
    runpy.run_path(str(script), init_globals={"snakemake": snakemake})
    got = pl.read_parquet(output)
    expected = one.to_frame()
    assert got.select("layer", "neuron", "n_tokens", "n_active").equals(
        expected.select("layer", "neuron", "n_tokens", "n_active")
    )
    for column in ("act_sum", "act_sqsum"):
        assert (got[column] - expected[column]).abs().max() < 1e-4
    log = (tmp_path / "part-1.log").read_text(encoding="utf-8")
    assert f"de: {len(rows)} texts" in log
