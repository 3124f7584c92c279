"""results/plots/{model}/relation_cumulativity.pdf: change of accuracy per relation as a
growing share of its neurons is switched off, beside the random control."""

import polars as pl

from polyneuron.logs import script_log
from polyneuron.plots.concepts import plot_relation_cumulativity

with script_log(snakemake.log[0]):
    table = pl.read_parquet(snakemake.input[0])
    plot_relation_cumulativity(
        table, snakemake.wildcards.model, snakemake.output[0], snakemake.params.metric
    )
