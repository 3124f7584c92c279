"""results/plots/{model}/bridges.pdf: HSIC layer scores of each target's candidate bridge
languages, the selected bridge highlighted."""

import polars as pl

from polyneuron.logs import script_log
from polyneuron.plots.language import plot_bridges

with script_log(snakemake.log[0]):
    p = snakemake.params
    plot_bridges(
        pl.read_parquet(snakemake.input[0]),
        snakemake.wildcards.model,
        snakemake.output[0],
        window=p.window,
        normalised=p.normalised,
    )
