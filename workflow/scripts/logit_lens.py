"""Logit lens over the MUSE translation prompts (English → each language, from the pivot file)
and the relation prompts: results/neurons/{model}/logit_lens.parquet (per probe, language and
layer) and logit_lens_switch.parquet (per probe and language: where the top-1 token turns into
the target language's script and into the gold answer)."""

import polars as pl

from polyneuron import PolyneuronError
from polyneuron.io import write_parquet
from polyneuron.logs import script_log
from polyneuron.model.extract import read_split
from polyneuron.model.load import load_job_model
from polyneuron.neurons.logit_lens import (
    LensItems,
    TokenScripts,
    answer_prefix_for,
    answer_token_ids,
    layer_frame,
    lens_probs,
    lens_prompt,
    muse_items,
    relation_items,
    switch_frame,
)

with script_log(snakemake.log[0]) as log:
    p, wc, inp = snakemake.params, snakemake.wildcards, snakemake.input
    model, tokenizer, device = load_job_model(wc.model, inp.model, p.model, snakemake.threads)
    scripts = TokenScripts(tokenizer)

    jobs: list[tuple[str, str, LensItems]] = []
    muse_en = pl.read_parquet(inp.muse_en)
    for lang in p.muse_languages:
        if lang != "en":
            jobs.append(("muse", lang, muse_items(muse_en, lang)))
    relation_paths = dict(zip(p.relation_languages, inp.relations, strict=True))
    if relation_paths:
        en_path = relation_paths.get("en") or inp.get("relations_en")
        if en_path is None:
            raise PolyneuronError(
                "logit lens on relations needs the English relation probes: list en among the "
                "relation languages"
            )
        relations_en = read_split(en_path, p.split)
        for lang, path in relation_paths.items():
            probes = read_split(path, p.split)
            items = relation_items(probes, relations_en)
            if len(items) < len(probes):
                log.warning("relations %s: %d of %d prompts have no English counterpart; "
                            "dropped", lang, len(probes) - len(items), len(probes))  # fmt: skip
            jobs.append(("relations", lang, items))

    layer_frames, switch_frames = [], []
    for probe, lang, all_items in jobs:
        items = all_items.head(p.max_examples)
        if not len(items):
            log.warning("%s %s: no prompts; skipped", probe, lang)
            continue
        prefix = answer_prefix_for(p.answer_prefix[probe], lang)
        gold = [answer_token_ids(tokenizer, t, prefix, a) for t, a in
                zip(items.prompts, items.gold, strict=True)]  # fmt: skip
        english = [answer_token_ids(tokenizer, t, prefix, a) for t, a in
                   zip(items.prompts, items.english, strict=True)]  # fmt: skip
        result = lens_probs(
            model,
            tokenizer,
            [lens_prompt(t, prefix) for t in items.prompts],
            gold,
            english,
            device,
            batch_size=p.batch_size,
            desc=f"{wc.model}/{probe}/{lang} logit lens",
        )
        layers = layer_frame(result, lang, probe, scripts)
        switch = switch_frame(result, lang, probe, scripts)
        layer_frames.append(layers)
        switch_frames.append(switch)
        final = layers.row(-1, named=True)
        log.info("%s %s: %d prompts; last layer p_gold %.3f, p_english %.3f; switch layer %s, "
                 "gold layer %s", probe, lang, len(items), final["p_gold"], final["p_english"],
                 switch["switch_layer"][0], switch["gold_layer"][0])  # fmt: skip
    if not layer_frames:
        raise PolyneuronError("logit lens: no probe had any prompt")
    write_parquet(pl.concat(layer_frames), snakemake.output.layers)
    write_parquet(pl.concat(switch_frames), snakemake.output.switch)
