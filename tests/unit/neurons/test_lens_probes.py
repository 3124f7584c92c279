"""The logit lens over probes: items from probe files, every job's tables against the lens
run by hand."""

import logging

import polars as pl
import pytest
import torch

from polyneuron import PolyneuronError
from polyneuron.neurons.lens_probes import LensItems, lens_tables, muse_items, relation_items
from polyneuron.neurons.logit_lens import (
    answer_token_ids,
    layer_frame,
    lens_probs,
    lens_prompt,
    switch_frame,
)
from polyneuron.neurons.writing import TokenScripts


def test_items_from_probe_files():
    muse = pl.DataFrame(
        {
            "text": ['English: "water" → German:', 'English: "water" → Russian:'],
            "word": ["water", "water"],
            "pair_id": ["water", "water"],
            "tgt_lang": ["de", "ru"],
            "answers": [["Wasser", "Gewässer"], ["вода"]],
        }
    )
    items = muse_items(muse, "ru")
    assert items.prompts == ['English: "water" → Russian:']
    assert items.gold == [["вода"]] and items.english == [["water"]]
    de = pl.DataFrame(
        {
            "text": ["Die Hauptstadt von Österreich ist", "Die Hauptstadt von Nirgendwo ist"],
            "pair_id": ["capital:AT", "capital:XX"],
            "answers": [["Wien"], ["Nix"]],
        }
    )
    en = pl.DataFrame(
        {"text": ["The capital of Austria is"], "pair_id": ["capital:AT"], "answers": [["Vienna"]]}
    )
    items = relation_items(de, en)
    assert items.prompts == ["Die Hauptstadt von Österreich ist"]
    assert items.gold == [["Wien"]] and items.english == [["Vienna"]]
    assert len(items.head(0)) == 0 and items.head(None) is items


def test_lens_tables_run_every_job_and_skip_empty_ones(load, caplog):
    model, tokenizer = load("llama")
    prompts = ['English: "water" → Russian: "', 'English: "dog" → Russian: "', "x"]
    ru = LensItems(prompts, [["вода"], ["собака"], ["y"]], [["water"], ["dog"], ["x"]],
                   ["w", "d", "x"])  # fmt: skip
    zh = LensItems(["水是"], [["湿"]], [["wet"]], ["wet"])
    jobs = [("muse", "ru", ru), ("muse", "fr", ru.head(0)), ("relations", "zh", zh)]
    prefixes = {"muse": "", "relations": " "}
    with caplog.at_level(logging.INFO, logger="polyneuron"):
        layers, switch = lens_tables(model, tokenizer, jobs, prefixes, torch.device("cpu"),
                                     max_examples=2, batch_size=1, name="tiny")  # fmt: skip
    assert "muse fr: no prompts; skipped" in caplog.text
    assert "muse ru: 2 prompts; last layer p_gold" in caplog.text
    want_layers, want_switch = [], []
    scripts = TokenScripts(tokenizer)
    for probe, lang, items, prefix in (("muse", "ru", ru.head(2), ""), ("relations", "zh", zh, "")):
        gold = [answer_token_ids(tokenizer, t, prefix, a) for t, a in
                zip(items.prompts, items.gold, strict=True)]  # fmt: skip
        english = [answer_token_ids(tokenizer, t, prefix, a) for t, a in
                   zip(items.prompts, items.english, strict=True)]  # fmt: skip
        result = lens_probs(model, tokenizer, [lens_prompt(t, prefix) for t in items.prompts],
                            gold, english, torch.device("cpu"), batch_size=1)  # fmt: skip
        want_layers.append(layer_frame(result, lang, probe, scripts))
        want_switch.append(switch_frame(result, lang, probe, scripts))
    # zh is written without spaces: the relations prefix " " loses its space (answer_prefix_for)
    assert layers.equals(pl.concat(want_layers)) and switch.equals(pl.concat(want_switch))
    assert switch.select("probe", "lang").rows() == [("muse", "ru"), ("relations", "zh")]
    with pytest.raises(PolyneuronError, match="no probe had any prompt"):
        lens_tables(model, tokenizer, jobs[1:2], prefixes, torch.device("cpu"))
