"""Refusal direction candidates of one chat model in one language (PolyRefuse):
results/directions/{model}/refusal/{lang}.safetensors (``directions``: mean harmful − mean
harmless layer input, [post-instruction position, layer, hidden], float32; ``selected``: the
chosen candidate) and {lang}.parquet (every candidate's scores, why it was discarded, which one
was selected)."""

import time

import polars as pl

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.model.chat import refusal_token_ids
from polyneuron.model.load import load_job_model
from polyneuron.neurons.refusal import DirectionSettings, find_refusal_direction
from polyneuron.probes.refusal import read_phrases
from polyneuron.tensors import write_tensors

with script_log(snakemake.log[0]) as log:
    p, wc, inp = snakemake.params, snakemake.wildcards, snakemake.input
    started = time.perf_counter()
    probes = pl.read_parquet(inp.probes)
    model, tokenizer, device = load_job_model(wc.model, inp.model, p.model, snakemake.threads)
    token_ids = refusal_token_ids(tokenizer, read_phrases(inp.phrases))
    log.info("%s: refusal tokens %s", wc.lang, tokenizer.convert_ids_to_tokens(token_ids))
    settings = DirectionSettings(
        max_train=p.max_train,
        max_val=p.max_val,
        positions=p.positions,
        baseline_filter=p.filter,
        min_prompts=p.min_prompts,
        kl_threshold=p.kl_threshold,
        prune_layer_rate=p.prune_layer_rate,
        induce_threshold=p.induce_refusal_threshold,
        coeff=p.addition_coeff,
        batch_size=p.batch_size,
    )
    found = find_refusal_direction(
        model, tokenizer, probes, token_ids, device, settings, wc.model, wc.lang, inp.probes,
        system_prompt=p.chat["system_prompt"],
    )  # fmt: skip
    write_tensors(snakemake.output.tensors, found.tensors(), metadata=found.metadata())
    write_parquet(found.table, snakemake.output.table)
    log.info("%s; %.1f s", found.summary(), time.perf_counter() - started)
