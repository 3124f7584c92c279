"""results/plots/{model}/values.pdf: shift of P(value-supported option) per value and language
with the value's own neurons off, beside the random control."""

import polars as pl

from polyneuron.logs import script_log
from polyneuron.plots.concepts import plot_value_shifts

with script_log(snakemake.log[0]):
    table = pl.read_parquet(snakemake.input[0])
    plot_value_shifts(
        table, snakemake.wildcards.model, snakemake.output[0], snakemake.params.metric
    )
