"""results/plots/{model}/bridges.pdf: HSIC layer scores of each target's candidate bridge
languages, the selected bridge highlighted."""

import polars as pl

from polyneuron.logs import script_log
from polyneuron.neurons.hsic import resolve_window
from polyneuron.plots.language import plot_bridges

with script_log(snakemake.log[0]):
    p = snakemake.params
    table = pl.read_parquet(snakemake.input[0])
    plot_bridges(
        table,
        snakemake.wildcards.model,
        snakemake.output[0],
        window=resolve_window(p.window, table["layer"].max() + 1),
        normalised=p.normalised,
    )
