"""HSIC bridge selection (BridgeX-ICL): results/neurons/{model}/bridges.parquet."""

import torch

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.model.extract import read_split
from polyneuron.neurons.hsic import bridge_scores, rank_bridges, resolve_window
from polyneuron.neurons.overlap import overlap_sets
from polyneuron.neurons.stats import load_act_prob
from polyneuron.tensors import read_tensor

with script_log(snakemake.log[0]) as log:
    p = snakemake.params
    torch.set_num_threads(snakemake.threads)
    act_prob, langs = load_act_prob(snakemake.input.shards, p.languages, p.shards)
    sets = overlap_sets(act_prob, p.percentile)  # [layer, neuron, lang]
    pair_ids, examples = {}, {}
    for lang, probe_path, example_path in zip(
        p.languages, snakemake.input.probes, snakemake.input.examples, strict=True
    ):
        probes = read_split(probe_path, p.split)
        pair_ids[lang] = probes["pair_id"].to_list()
        examples[lang] = read_tensor(example_path)  # [example, layer, neuron]
    scores = bridge_scores(sets, langs, pair_ids, examples, p.pairs, p.max_pairs, p.seed,
                           p.normalised, p.sigma)  # fmt: skip
    window = resolve_window(p.window, sets.shape[0])
    log.info("HSIC sigma: %s; bridges ranked over layers %s", p.sigma, window or "all")
    table = rank_bridges(scores, window)
    for target, bridge, value in (
        table.filter("selected").unique(["target"]).select("target", "candidate", "window_score")
    ).iter_rows():
        log.info("bridge for %s: %s (mean HSIC layer score %.4g)", target, bridge, value)
    write_parquet(table, snakemake.output[0])
