"""Refusal direction candidates of one chat model in one language (PolyRefuse):
results/directions/{model}/refusal/{lang}.safetensors (``directions``: mean harmful − mean
harmless layer input, [post-instruction position, layer, hidden], float32; ``selected``: the
chosen candidate) and {lang}.parquet (every candidate's scores, why it was discarded, which one
was selected)."""

import time

import polars as pl

from polyneuron import PolyneuronError
from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.model.load import load_job_model
from polyneuron.neurons.refusal import (
    ValidationSet,
    encode_chat,
    keep_by_baseline,
    last_logits,
    mean_residuals,
    refusal_scores,
    refusal_token_ids,
    score_candidates,
    select_direction,
    subset,
)
from polyneuron.probes.refusal import read_phrases
from polyneuron.tensors import write_tensors

with script_log(snakemake.log[0]) as log:
    p, wc, inp = snakemake.params, snakemake.wildcards, snakemake.input
    started = time.perf_counter()
    probes = pl.read_parquet(inp.probes)
    model, tokenizer, device = load_job_model(wc.model, inp.model, p.model, snakemake.threads)
    token_ids = refusal_token_ids(tokenizer, read_phrases(inp.phrases))
    log.info("%s: refusal tokens %s", wc.lang, tokenizer.convert_ids_to_tokens(token_ids))

    prompts = {}
    for split, limit in (("train", p.max_train), ("val", p.max_val)):
        for kind in ("harmful", "harmless"):
            texts = probes.filter(split=split, label=kind)["text"].to_list()[:limit]
            if not texts:
                raise PolyneuronError(f"{inp.probes}: no {kind} prompts in split {split!r}")
            encoded = encode_chat(tokenizer, texts, wc.model)
            if p.filter:
                logits = last_logits(model, tokenizer, encoded, device, p.batch_size)
                scores = refusal_scores(logits, token_ids)
                rows, applied = keep_by_baseline(scores, kind == "harmful", p.min_prompts)
                passed = int((scores > 0).sum() if kind == "harmful" else (scores < 0).sum())
                log.info("%s %s %s: %d of %d prompts %s (mean refusal score %.2f)%s", wc.lang,
                         split, kind, passed, len(texts),
                         "refused" if kind == "harmful" else "not refused", float(scores.mean()),
                         "" if applied else f"; fewer than {p.min_prompts}: all kept")  # fmt: skip
                encoded = subset(encoded, rows)
            prompts[split, kind] = encoded
    n_post = prompts["train", "harmful"].n_post

    harmful = mean_residuals(model, tokenizer, prompts["train", "harmful"], device, p.batch_size,
                             desc=f"{wc.model}/{wc.lang} harmful")  # fmt: skip
    harmless = mean_residuals(model, tokenizer, prompts["train", "harmless"], device,
                              p.batch_size, desc=f"{wc.model}/{wc.lang} harmless")  # fmt: skip
    directions = (harmful - harmless).float()
    n_layers = directions.shape[1]
    candidates = score_candidates(
        model,
        tokenizer,
        directions,
        ValidationSet(prompts["val", "harmful"], prompts["val", "harmless"]),
        token_ids,
        device,
        prune_layer_rate=p.prune_layer_rate,
        coeff=p.addition_coeff,
        batch_size=p.batch_size,
        positions=p.positions,
        desc=f"{wc.model}/{wc.lang} candidates",
    )
    table = select_direction(
        candidates,
        n_layers,
        kl_threshold=p.kl_threshold,
        prune_layer_rate=p.prune_layer_rate,
        induce_threshold=p.induce_refusal_threshold,
    )
    norms = directions.norm(dim=-1)  # [position, layer]
    pairs = zip(table["position"], table["layer"], strict=True)
    table = table.with_columns(
        pl.lit(wc.lang).alias("lang"),
        pl.Series("norm", [float(norms[pos + n_post, layer]) for pos, layer in pairs]),
    )
    best = table.filter("selected").row(0, named=True)
    write_tensors(
        snakemake.output.tensors,
        {
            "directions": directions.contiguous(),
            "selected": directions[best["position"] + n_post, best["layer"]].contiguous(),
        },
        metadata={
            "model": wc.model,
            "lang": wc.lang,
            "position": str(best["position"]),
            "layer": str(best["layer"]),
            "n_post": str(n_post),
        },
    )
    write_parquet(table, snakemake.output.table)
    log.info("%s: %d post-instruction positions x %d layers; selected position %d, layer %d "
             "(ablation score %.3f, steering score %.3f, KL %.4f)%s; %.1f s", wc.lang, n_post,
             n_layers, best["position"], best["layer"], best["ablation_score"],
             best["steering_score"], best["kl"],
             f"; {best['reason']}" if best["reason"] else "",
             time.perf_counter() - started)  # fmt: skip
