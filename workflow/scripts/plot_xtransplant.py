"""results/plots/{model}/xtransplant.pdf: change of accuracy against the layer whose FFN output
is transplanted, per language pair direction, beside the random control."""

import polars as pl

from polyneuron.logs import script_log
from polyneuron.plots.language import plot_xtransplant

with script_log(snakemake.log[0]):
    table = pl.read_parquet(snakemake.input[0])
    plot_xtransplant(table, snakemake.wildcards.model, snakemake.output[0], snakemake.params.metric)
