"""Task neurons switched off: results/evaluation/{model}/tasks.parquet, the mean target loss per
token (and first-token accuracy) of every task's test examples with each task's neurons off,
and with random sets of the same per-layer sizes over several seeds: the task × task matrix
of specialisation and generalisation (polyneuron.evaluate.matrix.ABLATION_SCHEMA)."""

import polars as pl

from polyneuron.evaluate.controls import load_controls
from polyneuron.evaluate.interventions import neuron_set_from_frame
from polyneuron.evaluate.matrix import summarize
from polyneuron.evaluate.tasks import task_matrix
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
    examples = {}
    for task, path in zip(p.tasks, snakemake.input.probes, strict=True):
        rows = read_split(path, "test").slice(0, p.max_examples)
        examples[task] = (rows["text"].to_list(), rows["target"].to_list())
    sets = {task: neuron_set_from_frame(neurons.filter(group=task)) for task in p.tasks}
    model, tokenizer, device = load_job_model(
        wc.model, snakemake.input.model, p.model, snakemake.threads
    )
    frame = task_matrix(
        model, tokenizer, sets, examples, p.seeds, pad_token_id(tokenizer), device,
        mode=p.mode, factor=p.factor, batch_tokens=p.batch_tokens,
        max_batch_size=p.max_batch_size, desc=f"{wc.model} tasks", controls=controls,
    )  # fmt: skip
    write_parquet(frame, snakemake.output[0])
    for row in summarize(frame).iter_rows(named=True):
        log.info("%s (%s, %d tasks): mean Δ%s own task %.4g, other tasks %.4g",
                 p.mode, row["control"], row["n_groups"], row["metric"], row["diagonal"],
                 row["off_diagonal"])  # fmt: skip
