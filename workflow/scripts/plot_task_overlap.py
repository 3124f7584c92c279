"""results/plots/{model}/task_overlap.pdf: Jaccard between the tasks' neuron sets."""

import polars as pl

from polyneuron.logs import script_log
from polyneuron.plots.concepts import plot_task_overlap

with script_log(snakemake.log[0]):
    table = pl.read_parquet(snakemake.input[0])
    plot_task_overlap(table, snakemake.wildcards.model, snakemake.output[0])
