"""Refusal under the refusal directions: results/evaluation/{model}/refusal.parquet, every
language's harmful test prompts answered with each language's selected direction ablated and
its harmless ones with each direction added, beside random directions over several seeds
(polyneuron.evaluate.refusal.REFUSAL_EVAL_SCHEMA)."""

import json

import polars as pl

from polyneuron import PolyneuronError
from polyneuron.evaluate.refusal import (
    Direction,
    RefusalPrompts,
    refusal_evaluation,
    summarize_refusal,
)
from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.model.chat import encode_chat, refusal_token_ids
from polyneuron.model.load import load_job_model
from polyneuron.probes.refusal import KINDS, read_phrases
from polyneuron.tensors import read_tensors

with script_log(snakemake.log[0]) as log:
    p, inp, wc = snakemake.params, snakemake.input, snakemake.wildcards
    tensors, meta = read_tensors(inp.directions)
    layers = {lang: int(chosen["layer"]) for lang, chosen in json.loads(meta["selected"]).items()}
    directions = {
        lang: Direction(tensors[f"{lang}.selected"], layers[lang]) for lang in p.languages
    }
    model, tokenizer, device = load_job_model(wc.model, inp.model, p.model, snakemake.threads)
    prompts = {}
    for lang, probe_path, phrase_path in zip(p.languages, inp.probes, inp.phrases, strict=True):
        test = pl.read_parquet(probe_path).filter(split="test")
        encoded = {}
        for kind in KINDS:
            texts = test.filter(label=kind)["text"].to_list()[: p.max_prompts]
            if not texts:
                raise PolyneuronError(f"{probe_path}: no {kind} prompts in split 'test'")
            encoded[kind] = encode_chat(tokenizer, texts, wc.model, p.chat["system_prompt"])
        phrases = read_phrases(phrase_path)
        tokens = refusal_token_ids(tokenizer, phrases)
        prompts[lang] = RefusalPrompts(encoded["harmful"], encoded["harmless"], phrases, tokens)
    frame = refusal_evaluation(
        model, tokenizer, directions, prompts, p.seeds, device, coeff=p.addition_coeff,
        max_new_tokens=p.max_new_tokens, batch_size=p.batch_size, desc=f"{wc.model} refusal",
    )  # fmt: skip
    write_parquet(frame, snakemake.output[0])
    nan = float("nan")
    for row in summarize_refusal(frame).fill_null(nan).iter_rows(named=True):
        done = "ablated" if row["intervention"] == "ablation" else "added"
        log.info("%s direction (layer %d) %s, %s prompts: refusal rate %.2f -> %.2f (delta "
                 "%+.2f, 95%% CI [%+.2f, %+.2f]); other languages %+.2f; random directions %+.2f",
                 row["intervened"], layers[row["intervened"]], done, row["prompts"],
                 row["baseline"], row["value"], row["delta"], row["ci_low"], row["ci_high"],
                 row["others_delta"], row["random_delta"])  # fmt: skip
