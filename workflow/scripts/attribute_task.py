"""Gradient attribution of one model on one task's probes:
results/activations/{model}/tasks/{task}.attribution.safetensors (tensor ``attribution``:
Σ ∂L/∂a · a per [layer, neuron], float64, over the probe file's rows of the split)."""

import time

from polyneuron.logs import script_log
from polyneuron.model.extract import read_split
from polyneuron.model.load import load_job_model
from polyneuron.neurons.tasks import attribute, encode_tasks, write_attribution

with script_log(snakemake.log[0]) as log:
    p, wc = snakemake.params, snakemake.wildcards
    probes = read_split(snakemake.input.probes, p.split)
    model, tokenizer, device = load_job_model(
        wc.model, snakemake.input.model, p.model, snakemake.threads
    )
    encoded = encode_tasks(tokenizer, probes["text"].to_list(), probes["target"].to_list())
    started = time.perf_counter()
    result = attribute(
        model,
        tokenizer,
        encoded,
        device,
        batch_tokens=p.batch_tokens,
        max_batch_size=p.max_batch_size,
        desc=f"{wc.model}/{wc.task} attribution",
    )
    metadata = {"task": wc.task, "split": p.split, "model": wc.model}
    write_attribution(snakemake.output[0], result, metadata)
    log.info("%s: %d examples, %d target tokens, %.1f s", wc.task, result.n_examples,
             result.n_tokens, time.perf_counter() - started)  # fmt: skip
