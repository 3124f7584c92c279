"""results/plots/{model}/ablation_{method}.pdf: intervened x evaluated change of the method's
metric with each group's neurons off, beside the random control."""

import polars as pl

from polyneuron.logs import script_log
from polyneuron.plots.ablation import plot_ablation_matrix

with script_log(snakemake.log[0]):
    p = snakemake.params
    plot_ablation_matrix(
        pl.read_parquet(snakemake.input[0]),
        p.metric,
        snakemake.wildcards.model,
        p.title,
        p.group,
        snakemake.output[0],
    )
