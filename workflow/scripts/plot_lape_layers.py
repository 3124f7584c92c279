"""results/plots/{model}/lape_layers.pdf: language-specific neurons per layer and language."""

import json
from pathlib import Path

import polars as pl

from polyneuron.logs import script_log
from polyneuron.plots.language import plot_lape_layers

with script_log(snakemake.log[0]):
    info = json.loads(Path(snakemake.input.info).read_text())
    neurons = pl.read_parquet(snakemake.input.neurons)
    plot_lape_layers(
        neurons,
        snakemake.params.languages,
        info["n_layers"],
        snakemake.wildcards.model,
        snakemake.output[0],
    )
