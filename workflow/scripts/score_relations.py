"""Relation-specific neurons: results/neurons/{model}/relations.parquet (every neuron's AP per
relation and language, the top N selected) and relation_overlap.parquet (how far languages
share a relation's neurons)."""

import polars as pl
import torch

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.model.extract import read_split
from polyneuron.neurons.relations import (
    average_precision,
    classification_rows,
    scaled_top_n,
    top_mask,
)
from polyneuron.tensors import read_tensor

with script_log(snakemake.log[0]) as log:
    p = snakemake.params
    torch.set_num_threads(snakemake.threads)
    frames, selected = [], {}
    for lang, probe_path, example_path in zip(
        p.languages, snakemake.input.probes, snakemake.input.examples, strict=True
    ):
        probes = read_split(probe_path, p.split)
        acts = read_tensor(example_path).float()  # [example, layer, neuron]
        n_layers, n_neurons = acts.shape[1], acts.shape[2]
        k = scaled_top_n(p.top_n, n_layers * n_neurons, p.reference_neurons)
        labels = probes["label"].to_list()
        for relation in sorted(set(labels)):
            rows, truth = classification_rows(labels, relation, p.negative_ratio, p.seed)
            if len(rows) == len(truth) and not any(not t for t in truth):
                log.warning("%s %s: no other relation to contrast with; skipped", lang, relation)
                continue
            ap = average_precision(acts[rows].flatten(1), torch.tensor(truth))
            mask = top_mask(ap, k)
            selected[relation, lang] = set(torch.nonzero(mask).flatten().tolist())
            frames.append(
                pl.DataFrame(
                    {
                        "layer": torch.arange(n_layers).repeat_interleave(n_neurons).numpy(),
                        "neuron": torch.arange(n_neurons).repeat(n_layers).numpy(),
                        "group": relation,
                        "lang": lang,
                        "score": ap.numpy(),
                        "selected": mask.numpy(),
                    },
                    schema_overrides={"layer": pl.Int32, "neuron": pl.Int32},
                )
            )
            log.info("%s %s: %d prompts, top %d neurons, best AP %.3f",
                     lang, relation, len(rows), k, float(ap.max()))  # fmt: skip
    overlap = []
    for (relation, a), set_a in selected.items():
        for (other, b), set_b in selected.items():
            if other == relation:
                shared = len(set_a & set_b)
                union = len(set_a | set_b)
                overlap.append((relation, a, b, len(set_a), len(set_b), shared, shared / union))
    write_parquet(pl.concat(frames), snakemake.output.neurons)
    write_parquet(
        pl.DataFrame(
            overlap,
            schema={
                "group": pl.String,
                "lang_a": pl.String,
                "lang_b": pl.String,
                "n_a": pl.Int64,
                "n_b": pl.Int64,
                "n_overlap": pl.Int64,
                "jaccard": pl.Float64,
            },
            orient="row",
        ),
        snakemake.output.overlap,
    )
