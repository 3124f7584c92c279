"""Translations of the PolyRefuse pool into one language by one translator:
results/translations/refusal/{translator}/{lang}.parquet (id, text)."""

import polars as pl
from tqdm import tqdm

from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.probes.refusal import TRANSLATION_SCHEMA, read_precomputed

with script_log(snakemake.log[0]) as log:
    p, wc = snakemake.params, snakemake.wildcards
    source = pl.read_parquet(snakemake.input.source)
    if wc.translator == "precomputed":
        translated = read_precomputed(snakemake.input.files, source)
    else:
        import torch

        from polyneuron.probes.translate import check_translations

        torch.set_num_threads(snakemake.threads)
        texts = source["text"].to_list()
        bar = tqdm(total=len(texts), desc=f"{wc.translator} → {wc.lang}", unit="prompt")
        s = p.settings
        if wc.translator == "hf":
            from polyneuron.probes.translate import load_seq2seq, translate_seq2seq

            model, tokenizer = load_seq2seq(p.mt_model, s["dtype"], s["device"])
            out = translate_seq2seq(
                model,
                tokenizer,
                texts,
                p.source_lang,
                wc.lang,
                batch_size=s["batch_size"],
                max_new_tokens=s["max_new_tokens"],
                num_beams=s["num_beams"],
                codes=s["codes"],
                progress=bar.update,
            )
        else:
            from polyneuron.model.load import load_job_model
            from polyneuron.probes.translate import translate_causal

            model, tokenizer, _ = load_job_model(
                s["model"], snakemake.input.model, p.model, snakemake.threads
            )
            out = translate_causal(
                model,
                tokenizer,
                texts,
                p.names[p.source_lang],
                p.names[wc.lang],
                prompt=s["prompt"],
                batch_size=s["batch_size"],
                max_new_tokens=s["max_new_tokens"],
                progress=bar.update,
            )
        bar.close()
        check_translations(source["id"], out, wc.lang)
        translated = pl.DataFrame({"id": source["id"], "text": out}, schema=TRANSLATION_SCHEMA)
    log.info("%s: %d prompts translated by %s", wc.lang, translated.height, wc.translator)
    write_parquet(translated, snakemake.output[0])
