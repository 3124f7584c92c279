"""results/plots/{model}/refusal.pdf: cosine between languages' refusal directions, the
cross-lingual transfer of their ablation and activation addition on harmless prompts."""

import polars as pl

from polyneuron.logs import script_log
from polyneuron.plots.refusal import plot_refusal

with script_log(snakemake.log[0]):
    plot_refusal(
        pl.read_parquet(snakemake.input.ablation),
        pl.read_parquet(snakemake.input.cosine),
        snakemake.wildcards.model,
        snakemake.output[0],
    )
