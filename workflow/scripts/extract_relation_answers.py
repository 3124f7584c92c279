"""Which relation prompts the model answers correctly: results/activations/{model}/relations/
{lang}.answers.parquet, per prompt of the extraction split (in file order) its relation (`label`)
and `correct`: its 2 greedy tokens form a prefix of an accepted object (the reference's test; the
positives of score_relations with relation_neurons.positives: correct)."""

import polars as pl

from polyneuron.evaluate.relations import prefix_accuracy
from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.model import work
from polyneuron.model.batches import pad_token_id
from polyneuron.model.extract import read_split
from polyneuron.model.load import load_job_model
from polyneuron.neurons.logit_lens import answer_prefix_for
from polyneuron.neurons.relations import ANSWER_TOKENS

with script_log(snakemake.log[0]) as log:
    p, wc = snakemake.params, snakemake.wildcards
    probes = read_split(snakemake.input.probes, p.split)
    model, tokenizer, device = load_job_model(
        wc.model, snakemake.input.model, p.model, snakemake.threads
    )
    with work.need(1, new_tokens=ANSWER_TOKENS):  # one greedy run of the prompts
        correct = prefix_accuracy(
            model, tokenizer, probes["text"].to_list(), probes["answers"].to_list(),
            answer_prefix_for(p.answer_prefix, wc.lang), pad_token_id(tokenizer), device,
            p.batch_tokens, p.max_batch_size, n_tokens=ANSWER_TOKENS,
        )  # fmt: skip
    frame = probes.select("label").with_columns(correct=pl.Series(correct > 0))
    write_parquet(frame, snakemake.output[0])
    counts = frame.group_by("label", maintain_order=True).agg(pl.len(), pl.col("correct").sum())
    for label, n, right in counts.iter_rows():
        log.info("%s %s: %d of %d prompts answered correctly", wc.lang, label, right, n)
