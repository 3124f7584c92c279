"""Relation-specific neurons: results/neurons/{model}/relations.parquet (every neuron's AP per
relation and language, its rank and whether it is among the top N) and relation_overlap.parquet
(how far languages share a relation's neurons). The neurons are those of the per-example file's
modules (relation_neurons.pool); with relation_neurons.positives: correct only the prompts the
model answers correctly are positives."""

import polars as pl
import torch

from polyneuron import PolyneuronError
from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.model.extract import read_split
from polyneuron.neurons.relations import POOLS, relation_neurons, relation_overlap
from polyneuron.tensors import read_tensors

with script_log(snakemake.log[0]):
    p = snakemake.params
    torch.set_num_threads(snakemake.threads)
    reference = p.reference_neurons or POOLS[p.pool]
    correct_only = p.positives == "correct"
    answers = snakemake.input.answers if correct_only else [None] * len(p.languages)
    frames, masks = [], {}
    for lang, probe_path, example_path, answer_path in zip(
        p.languages, snakemake.input.probes, snakemake.input.examples, answers, strict=True
    ):
        labels = read_split(probe_path, p.split)["label"].to_list()
        tensors, meta = read_tensors(example_path)
        acts = tensors["activations"].float()  # [example, layer, neuron]
        modules = list(zip(meta.get("modules", "act").split(","),
                           map(int, meta.get("widths", str(acts.shape[2])).split(",")),
                           strict=True))  # fmt: skip
        correct = None
        if answer_path is not None:
            answered = pl.read_parquet(answer_path)
            if answered["label"].to_list() != labels:
                raise PolyneuronError(f"{answer_path}: not the prompts of {probe_path}")
            correct = answered["correct"].to_list()
        frame, found = relation_neurons(acts, labels, lang, p.top_n, reference, p.negative_ratio,
                                        p.seed, modules, correct)  # fmt: skip
        frames.append(frame)
        masks.update({(relation, lang): mask for relation, mask in found.items()})
    write_parquet(pl.concat(frames), snakemake.output.neurons)
    write_parquet(relation_overlap(masks), snakemake.output.overlap)
