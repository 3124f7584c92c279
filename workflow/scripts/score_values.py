"""Value neurons (ValueExploration): results/neurons/{model}/values.parquet."""

import polars as pl

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.neurons.values import value_table

with script_log(snakemake.log[0]) as log:
    p = snakemake.params
    frames = []
    for lang, path in zip(p.languages, snakemake.input, strict=True):
        table = value_table(pl.read_parquet(path), lang, p.filter_rate, p.top_rate)
        chosen = table.filter("selected")
        support = chosen.filter(pl.col("p_support") > pl.col("p_conflict")).height
        log.info("%s: %d value neurons (%d fire more under support)", lang, chosen.height, support)
        frames.append(table)
    write_parquet(pl.concat(frames), snakemake.output[0])
