"""The logit lens (:mod:`polyneuron.neurons.logit_lens`) over the probes: MUSE translation
prompts and relation prompts as lens items (prompts, gold answers and their English
counterparts), and the per-layer and switch tables of every (probe, language) job."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl
import torch

from polyneuron import PolyneuronError
from polyneuron.neurons.logit_lens import (
    answer_prefix_for,
    answer_token_ids,
    layer_frame,
    lens_probs,
    lens_prompt,
    switch_frame,
)
from polyneuron.neurons.writing import TokenScripts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LensItems:
    """Prompts with their gold answers and the answers' English counterparts."""

    prompts: list[str]
    gold: list[list[str]]
    english: list[list[str]]
    pair_ids: list[str]

    def head(self, n: int | None) -> LensItems:
        if n is None:
            return self
        return LensItems(self.prompts[:n], self.gold[:n], self.english[:n], self.pair_ids[:n])

    def __len__(self) -> int:
        return len(self.prompts)


def muse_items(en_probes: pl.DataFrame, lang: str) -> LensItems:
    """English → ``lang`` word translation prompts of the pivot MUSE probe file: gold answers
    are the dictionary's ``lang`` words, the English counterpart is the English word."""
    rows = en_probes.filter(pl.col("tgt_lang") == lang)
    return LensItems(
        prompts=rows["text"].to_list(),
        gold=rows["answers"].to_list(),
        english=[[w] for w in rows["word"].to_list()],
        pair_ids=rows["pair_id"].to_list(),
    )


def relation_items(probes: pl.DataFrame, probes_en: pl.DataFrame) -> LensItems:
    """Relation prompts of one language: gold answers are its answers, the English counterpart
    the answers of the English prompt with the same ``pair_id``. Prompts without an English
    counterpart are dropped."""
    english = dict(zip(probes_en["pair_id"].to_list(), probes_en["answers"].to_list(), strict=True))
    rows = probes.filter(pl.col("pair_id").is_in(list(english)))
    pair_ids = rows["pair_id"].to_list()
    return LensItems(
        prompts=rows["text"].to_list(),
        gold=rows["answers"].to_list(),
        english=[english[p] for p in pair_ids],
        pair_ids=pair_ids,
    )


def lens_jobs(
    muse_en: pl.DataFrame | None,
    muse_languages: Sequence[str],
    relations: Mapping[str, pl.DataFrame],
    relations_en: pl.DataFrame | None,
) -> list[tuple[str, str, LensItems]]:
    """The (probe, language, items) jobs of the lens: English → each non-English MUSE language
    from the pivot file ``muse_en``, then the relation prompts of each language in
    ``relations`` paired with ``relations_en`` (prompts without an English counterpart are
    dropped with a warning). Relations without English probes are an error."""
    jobs: list[tuple[str, str, LensItems]] = []
    for lang in muse_languages:
        if lang != "en" and muse_en is not None:
            jobs.append(("muse", lang, muse_items(muse_en, lang)))
    if relations and relations_en is None:
        raise PolyneuronError(
            "logit lens on relations needs the English relation probes: list en among the "
            "relation languages"
        )
    for lang, probes in relations.items():
        items = relation_items(probes, relations_en)
        if len(items) < len(probes):
            log.warning("relations %s: %d of %d prompts have no English counterpart; dropped",
                        lang, len(probes) - len(items), len(probes))  # fmt: skip
        jobs.append(("relations", lang, items))
    return jobs


def lens_tables(
    model: torch.nn.Module,
    tokenizer,
    jobs: Sequence[tuple[str, str, LensItems]],
    answer_prefix: Mapping[str, str],
    device: torch.device,
    max_examples: int | None = None,
    batch_size: int = 32,
    name: str = "",
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The logit lens over every job (probe, language, items): the first ``max_examples``
    prompts, read up to the probe's ``answer_prefix`` (:func:`answer_prefix_for` the language),
    their answers' first tokens; :func:`layer_frame` and :func:`switch_frame` of every job,
    each concatenated. A job without prompts is skipped with a warning; none with any is an
    error. ``name`` (the model) leads the progress bars."""
    scripts = TokenScripts(tokenizer)
    layer_frames, switch_frames = [], []
    for probe, lang, all_items in jobs:
        items = all_items.head(max_examples)
        if not len(items):
            log.warning("%s %s: no prompts; skipped", probe, lang)
            continue
        prefix = answer_prefix_for(answer_prefix[probe], lang)
        gold, english = (
            [answer_token_ids(tokenizer, t, prefix, a) for t, a in
             zip(items.prompts, answers, strict=True)]
            for answers in (items.gold, items.english)
        )  # fmt: skip
        result = lens_probs(model, tokenizer, [lens_prompt(t, prefix) for t in items.prompts],
                            gold, english, device, batch_size=batch_size,
                            desc=f"{name}/{probe}/{lang} logit lens")  # fmt: skip
        layer_frames.append(layer_frame(result, lang, probe, scripts))
        switch_frames.append(switch_frame(result, lang, probe, scripts))
        final, switch = layer_frames[-1].row(-1, named=True), switch_frames[-1]
        log.info("%s %s: %d prompts; last layer p_gold %.3f, p_english %.3f; switch layer %s, "
                 "gold layer %s", probe, lang, len(items), final["p_gold"], final["p_english"],
                 switch["switch_layer"][0], switch["gold_layer"][0])  # fmt: skip
    if not layer_frames:
        raise PolyneuronError("logit lens: no probe had any prompt")
    return pl.concat(layer_frames), pl.concat(switch_frames)
