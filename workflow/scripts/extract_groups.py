"""Neuron statistics per group of one language's probes (values: value/condition):
results/activations/{model}/{probe}/{lang}.groups.parquet."""

import polars as pl

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.model import work
from polyneuron.model.batches import encode
from polyneuron.model.extract import collect_stats, read_split
from polyneuron.model.load import load_job_model

with script_log(snakemake.log[0]) as log:
    p, wc = snakemake.params, snakemake.wildcards
    probes = read_split(snakemake.input.probes, p.split)
    probes = probes.with_columns(group=pl.concat_str(p.group_by, separator="/"))
    model, tokenizer, device = load_job_model(
        wc.model, snakemake.input.model, p.model, snakemake.threads
    )
    frames = []
    for group in sorted(probes["group"].unique()):
        rows = probes.filter(pl.col("group") == group)
        with work.need(1, logits="none"):
            stats = collect_stats(
                model,
                tokenizer,
                encode(tokenizer, rows["text"].to_list()),
                device,
                batch_tokens=p.batch_tokens,
                max_batch_size=p.max_batch_size,
                desc=f"{wc.model}/{wc.probe}/{wc.lang} {group}",
            )
        frames.append(stats.to_frame().with_columns(group=pl.lit(group)))
        log.info("%s %s: %d texts, %d tokens", wc.lang, group, rows.height, int(stats.n_tokens[0]))
    write_parquet(pl.concat(frames).select("group", pl.exclude("group")), snakemake.output[0])
