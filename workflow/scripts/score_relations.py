"""Relation-specific neurons: results/neurons/{model}/relations.parquet (every neuron's AP per
relation and language, the top N selected) and relation_overlap.parquet (how far languages
share a relation's neurons)."""

import polars as pl
import torch

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.model.extract import read_split
from polyneuron.neurons.relations import relation_neurons, relation_overlap
from polyneuron.tensors import read_tensor

with script_log(snakemake.log[0]):
    p = snakemake.params
    torch.set_num_threads(snakemake.threads)
    frames, masks = [], {}
    for lang, probe_path, example_path in zip(
        p.languages, snakemake.input.probes, snakemake.input.examples, strict=True
    ):
        probes = read_split(probe_path, p.split)
        acts = read_tensor(example_path).float()  # [example, layer, neuron]
        frame, found = relation_neurons(acts, probes["label"].to_list(), lang, p.top_n,
                                        p.reference_neurons, p.negative_ratio, p.seed)  # fmt: skip
        frames.append(frame)
        masks.update({(relation, lang): mask for relation, mask in found.items()})
    write_parquet(pl.concat(frames), snakemake.output.neurons)
    write_parquet(relation_overlap(masks), snakemake.output.overlap)
