"""results/overlap_heatmap.pdf: one Jaccard panel per configured model."""

import polars as pl

from polyneuron.logs import script_log
from polyneuron.plots.language import plot_overlap_heatmap

with script_log(snakemake.log[0]):
    p = snakemake.params
    tables = {m: pl.read_parquet(f) for m, f in zip(p.models, snakemake.input, strict=True)}
    plot_overlap_heatmap(tables, p.languages, p.probe, snakemake.output[0])
