"""Value neurons (ValueExploration): results/neurons/{model}/values.parquet."""

import polars as pl

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.neurons.values import value_table

with script_log(snakemake.log[0]) as log:
    p = snakemake.params
    frames = []
    for lang, path in zip(p.languages, snakemake.input, strict=True):
        table = value_table(pl.read_parquet(path), lang, p.masks, p.top_rate, p.layers)
        for mask in p.masks:
            chosen = table.filter(pl.col("selected") & (pl.col("mask") == mask))
            counts = chosen.group_by("assigned").len().rows()
            acting = chosen.filter("acts").height
            log.info("%s %s mask: %d value neurons, %d in its layers; assigned %s", lang, mask,
                     chosen.height, acting, dict(sorted(counts, key=str)))  # fmt: skip
        frames.append(table)
    write_parquet(pl.concat(frames), snakemake.output[0])
