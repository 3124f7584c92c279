"""Value neurons switched off: results/evaluation/{model}/values.parquet, per language the
probability that the model picks the value-supported option of every value's evaluation
questions, with each value's neurons switched (reference: support-only x5, conflict-only off;
or one operation on all) and with random sets of the same per-layer sizes and levels over
several seeds (polyneuron.evaluate.values.VALUE_SCHEMA)."""

import polars as pl

from polyneuron.evaluate.controls import load_controls
from polyneuron.evaluate.matrix import summarize
from polyneuron.evaluate.values import reference_operations, value_intervention, value_matrix
from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.model.batches import pad_token_id
from polyneuron.model.load import load_job_model
from polyneuron.probes.values import VALUES

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
        rows = pl.read_parquet(path).filter(pl.col("condition") == "question")
        questions = {}
        for value in VALUES:
            part = rows.filter(pl.col("label") == value).slice(0, p.max_questions)
            if part.height:
                questions[value] = (part["text"].to_list(), part["target"].to_list())
        parts = {value: value_intervention(neurons.filter(group=value, lang=lang))
                 for value in questions}  # fmt: skip
        sets = {
            value: reference_operations(part, p.factor) if p.mode == "reference" else part["all"]
            for value, part in parts.items()
        }
        log.info("%s: %d values, %d questions", lang, len(questions), sum(
            len(q[0]) for q in questions.values()))  # fmt: skip
        frames.append(value_matrix(
            model, tokenizer, sets, questions, lang, p.seeds, pad_token_id(tokenizer), device,
            mode=p.mode, factor=p.factor, batch_tokens=p.batch_tokens,
            max_batch_size=p.max_batch_size, desc=f"{wc.model} values {lang}",
            controls=controls,
        ))  # fmt: skip
    frame = pl.concat(frames)
    write_parquet(frame, snakemake.output[0])
    for row in summarize(frame, by=["lang"]).iter_rows(named=True):
        log.info("%s %s (%s, %d values): mean Δp_supported own value %.4g, other values %.4g",
                 row["lang"], p.mode, row["control"], row["n_groups"], row["diagonal"],
                 row["off_diagonal"])  # fmt: skip
