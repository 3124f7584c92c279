"""Language-specific neurons by LAPE: results/neurons/{model}/lape.parquet."""

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.neurons.lape import select_lape
from polyneuron.neurons.stats import load_act_prob

with script_log(snakemake.log[0]) as log:
    p = snakemake.params
    act_prob, langs = load_act_prob(snakemake.input, p.languages, p.shards)
    neurons = select_lape(act_prob, langs, p.filter_rate, p.top_rate, p.activation_bar_ratio)
    counts = neurons.group_by("lang").len().sort("lang")
    log.info("language-specific neurons per language: %s", dict(counts.iter_rows()))
    write_parquet(neurons, snakemake.output[0])
