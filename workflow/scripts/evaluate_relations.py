"""Relation neurons switched off: results/evaluation/{model}/relations.parquet, per language the
prefix accuracy of every relation's test prompts (the greedy next token starts an accepted
object) with the top 10%, 50%, 100% of each relation's neurons off, and with random sets of the
same per-layer sizes over several seeds (polyneuron.evaluate.relations.RELATION_SCHEMA)."""

import polars as pl

from polyneuron.evaluate.controls import load_controls
from polyneuron.evaluate.matrix import summarize
from polyneuron.evaluate.relations import relation_matrix
from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.model.batches import pad_token_id
from polyneuron.model.extract import read_split
from polyneuron.model.load import load_job_model

with script_log(snakemake.log[0]) as log:
    p, wc = snakemake.params, snakemake.wildcards
    neurons = pl.read_parquet(snakemake.input.neurons)
    controls = load_controls(snakemake.input.levels, p.level_languages, p.level_shards,
                             p.control, p.control_bins, p.mode)  # fmt: skip
    model, tokenizer, device = load_job_model(
        wc.model, snakemake.input.model, p.model, snakemake.threads
    )
    frames = []
    for lang, path in zip(p.languages, snakemake.input.probes, strict=True):
        rows = read_split(path, "test")
        prompts = {}
        for relation in rows["label"].unique(maintain_order=True).to_list():
            part = rows.filter(label=relation).slice(0, p.max_examples)
            prompts[relation] = (part["text"].to_list(), part["answers"].to_list())
        sets = {relation: neurons.filter(group=relation, lang=lang) for relation in prompts}
        if all(frame.is_empty() for frame in sets.values()):
            log.warning("%s: no relation has neurons (with relation_neurons.positives: correct, "
                        "the model answered none of their training prompts)", lang)  # fmt: skip
        log.info("%s: %d relations, %d prompts", lang, len(prompts), sum(
            len(q[0]) for q in prompts.values()))  # fmt: skip
        frames.append(relation_matrix(
            model, tokenizer, sets, prompts, lang, p.fractions, p.answer_prefix, p.seeds,
            pad_token_id(tokenizer), device, mode=p.mode, factor=p.factor,
            batch_tokens=p.batch_tokens, max_batch_size=p.max_batch_size,
            desc=f"{wc.model} relations {lang}", controls=controls,
        ))  # fmt: skip
    frame = pl.concat(frames)
    write_parquet(frame, snakemake.output[0])
    for row in summarize(frame, by=["lang", "fraction"]).iter_rows(named=True):
        log.info("%s top %.0f%% (%s, %d relations, %.0f neurons): mean Δaccuracy own relation "
                 "%.4g, other relations %.4g", row["lang"], 100 * row["fraction"],
                 row["control"], row["n_groups"], row["n_neurons"], row["diagonal"],
                 row["off_diagonal"])  # fmt: skip
