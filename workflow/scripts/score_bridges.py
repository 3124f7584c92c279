"""HSIC bridge selection (BridgeX-ICL): results/neurons/{model}/bridges.parquet."""

import polars as pl
import torch

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.model.extract import read_split
from polyneuron.neurons.hsic import align_pairs, hsic_matrix, layer_score, rank_bridges
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
    rows = []
    for target, candidates in p.pairs.items():
        t = langs.index(target)
        for candidate in candidates:
            c = langs.index(candidate)
            t_rows, c_rows = align_pairs(pair_ids[target], pair_ids[candidate], p.max_pairs, p.seed)
            x_all, y_all = examples[target][t_rows], examples[candidate][c_rows]
            for layer in range(sets.shape[0]):
                neurons = torch.nonzero(sets[layer, :, t] & sets[layer, :, c]).flatten()
                score = float("nan")
                if len(neurons) and len(t_rows) > 1:
                    x = x_all[:, layer, neurons]
                    y = y_all[:, layer, neurons]
                    score = layer_score(hsic_matrix(x, y, p.normalised))
                rows.append((target, candidate, layer, len(neurons), len(t_rows), score))
            log.info("%s <- %s: %d aligned pairs", target, candidate, len(t_rows))
    scores = pl.DataFrame(
        rows,
        schema={
            "target": pl.String,
            "candidate": pl.String,
            "layer": pl.Int32,
            "n_neurons": pl.Int32,
            "n_pairs": pl.Int32,
            "score": pl.Float64,
        },
        orient="row",
    )
    table = rank_bridges(scores, p.window)
    for target, bridge, value in (
        table.filter("selected").unique(["target"]).select("target", "candidate", "window_score")
    ).iter_rows():
        log.info("bridge for %s: %s (mean HSIC layer score %.4g)", target, bridge, value)
    write_parquet(table, snakemake.output[0])
