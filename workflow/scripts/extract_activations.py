"""Neuron statistics of one model on one shard of one language's probes."""

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.model.batches import encode, shard_rows
from polyneuron.model.extract import collect_stats, read_split
from polyneuron.model.load import load_job_model

with script_log(snakemake.log[0]) as log:
    p, wc = snakemake.params, snakemake.wildcards
    probes = read_split(snakemake.input.probes, p.split)
    rows = shard_rows(probes.height, p.shards, int(wc.k))
    shard = probes.slice(rows.start, len(rows))
    model, tokenizer, device = load_job_model(
        wc.model, snakemake.input.model, p.model, snakemake.threads
    )
    spans = None
    if p.count_tokens == "word":
        spans = list(zip(shard["word_start"], shard["word_end"], strict=True))
    encoded = encode(tokenizer, shard["text"].to_list(), spans)
    stats = collect_stats(
        model,
        tokenizer,
        encoded,
        device,
        batch_tokens=p.batch_tokens,
        max_batch_size=p.max_batch_size,
        desc=f"{wc.model}/{wc.probe}/{wc.lang} part {wc.k}",
    )
    log.info(
        "%s: %d texts, %d counted tokens per layer on %s",
        wc.lang,
        shard.height,
        int(stats.n_tokens[0]),
        device,
    )
    write_parquet(stats.to_frame(), snakemake.output[0])
