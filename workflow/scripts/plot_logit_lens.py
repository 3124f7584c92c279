"""results/plots/{model}/logit_lens.pdf: probability of the gold answer and of its English
counterpart per layer, language and probe set."""

import polars as pl

from polyneuron.logs import script_log
from polyneuron.plots.language import plot_logit_lens

with script_log(snakemake.log[0]):
    table = pl.read_parquet(snakemake.input[0])
    plot_logit_lens(table, snakemake.wildcards.model, snakemake.output[0])
