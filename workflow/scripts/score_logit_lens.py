"""Logit lens over the MUSE translation prompts (English → each language, from the pivot file)
and the relation prompts: results/neurons/{model}/logit_lens.parquet (per probe, language and
layer) and logit_lens_switch.parquet (per probe and language: where the top-1 token turns into
the target language's script and into the gold answer)."""

import polars as pl

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.model.extract import read_split
from polyneuron.model.load import load_job_model
from polyneuron.neurons.lens_probes import lens_jobs, lens_tables

with script_log(snakemake.log[0]) as log:
    p, wc, inp = snakemake.params, snakemake.wildcards, snakemake.input
    model, tokenizer, device = load_job_model(wc.model, inp.model, p.model, snakemake.threads)
    relations = {
        lang: read_split(path, p.split)
        for lang, path in zip(p.relation_languages, inp.relations, strict=True)
    }
    jobs = lens_jobs(pl.read_parquet(inp.muse_en), p.muse_languages, relations, relations.get("en"))
    layers, switch = lens_tables(model, tokenizer, jobs, p.answer_prefix, device, p.max_examples,
                                 p.batch_size, name=wc.model)  # fmt: skip
    write_parquet(layers, snakemake.output.layers)
    write_parquet(switch, snakemake.output.switch)
