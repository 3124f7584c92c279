"""Language overlap neurons (BridgeX-ICL): results/neurons/{model}/overlap.parquet (every pair's
overlap) and overlap_sets.parquet (each language's set: layer, neuron, lang, act_prob)."""

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.neurons.overlap import overlap_neurons, overlap_table
from polyneuron.neurons.stats import load_act_prob

with script_log(snakemake.log[0]) as log:
    p = snakemake.params
    act_prob, langs = load_act_prob(snakemake.input, p.languages, p.shards)
    table = overlap_table(act_prob, langs, p.percentile, p.ties)
    for lang, cut, n_at in (
        table.unique("lang_a", maintain_order=True)
        .select("lang_a", "threshold", "n_at_threshold")
        .iter_rows()
    ):
        log.info("%s: threshold p = %.4g, %d neurons at it (ties: %s)", lang, cut, n_at, p.ties)
    off = table.filter(table["lang_a"] != table["lang_b"])["jaccard"]
    log.info("off-diagonal Jaccard from %.3f to %.3f", off.min(), off.max())
    write_parquet(table, snakemake.output.table)
    sets = overlap_neurons(act_prob, langs, p.percentile, p.ties)
    log.info("%d neurons per language's set on average", sets.height / len(langs))
    write_parquet(sets, snakemake.output.sets)
