"""XTransplant: seeded derangements, facts spread over relations and aligned by pair id, the
cached last step against full forwards and record_mlp_output, transplant accuracy against a
manual run with the recorded vector written over the FFN output, and the rows and best layers."""

from __future__ import annotations

import copy

import numpy as np
import polars as pl
import pytest
import torch

from polyneuron import PolyneuronError
from polyneuron.evaluate.xtransplant import (
    SCHEMA,
    Facts,
    best_layers,
    derangement,
    last_step,
    parallel_facts,
    spread_head,
    step_hits,
    transplanted_hits,
    xtransplant_frame,
)
from polyneuron.model.adapters import decoder_layers
from polyneuron.model.steer import ffn_output_module, record_mlp_output

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")
TARGET = ['German: "Wasser" → English:', "der schnelle braune Fuchs", "水", "le renard brun"]
SOURCE = ["the quick brown fox jumps", 'English: "water" → German:', "over the lazy dog", "eau"]


# --------------------------------------------------------------------------- facts


def test_derangement_moves_every_index_and_repeats_with_its_seed():
    for n in range(2, 8):
        for seed in range(20):
            perm = derangement(n, seed)
            assert sorted(perm.tolist()) == list(range(n))
            assert all(perm[i] != i for i in range(n))
            assert torch.equal(perm, derangement(n, seed))
    assert len({tuple(derangement(5, s).tolist()) for s in range(10)}) > 1
    with pytest.raises(ValueError, match="two facts or more"):
        derangement(1, 0)


def test_spread_head_takes_each_relation_in_turn_and_keeps_file_order():
    frame = pl.DataFrame({"label": ["a", "a", "a", "b", "b", "c"], "i": range(6)})
    assert spread_head(frame, 4)["i"].to_list() == [0, 1, 3, 5]  # a1, b1, c1, then a2
    assert spread_head(frame, 2)["i"].to_list() == [0, 3]
    assert spread_head(frame, None)["i"].to_list() == list(range(6))


def test_parallel_facts_keeps_shared_pair_ids_aligned():
    mine = pl.DataFrame(
        {"pair_id": ["p1", "p2", "p3"], "label": ["r", "r", "s"], "text": list("abc")}
    )
    english = pl.DataFrame({"pair_id": ["p3", "p1", "p4"], "label": ["s", "r", "r"],
                            "text": list("xyz")})  # fmt: skip
    x, en = parallel_facts(mine, english, None)
    assert x["pair_id"].to_list() == en["pair_id"].to_list() == ["p1", "p3"]
    assert en["text"].to_list() == ["y", "x"]
    x, en = parallel_facts(mine, english, 1)
    assert x["text"].to_list() == ["a"] and en["text"].to_list() == ["y"]


# --------------------------------------------------------------------------- last step


def recorded(model, tokenizer, layer: int, texts: list[str]) -> torch.Tensor:
    """record_mlp_output's vector of each prompt alone: ``[prompt, hidden]``."""
    ids = [tokenizer(t, return_tensors="pt")["input_ids"] for t in texts]
    return torch.cat([record_mlp_output(model, layer, i) for i in ids])


def full_logits(model, tokenizer, texts, edit=None) -> torch.Tensor:
    """Each prompt alone, whole; ``edit(row, output)`` may rewrite the FFN output in place."""
    rows = []
    for row, text in enumerate(texts):
        ids = tokenizer(text, return_tensors="pt")
        handle = None
        if edit is not None:
            module = ffn_output_module(model, edit[0])

            def hook(_m, _i, output, row=row):
                output = output.clone()
                output[0, -1] = edit[1][row]
                return output

            handle = module.register_forward_hook(hook)
        try:
            with torch.no_grad():
                rows.append(model(**ids).logits[0, -1])
        finally:
            if handle is not None:
                handle.remove()
    return torch.stack(rows)


@pytest.mark.parametrize("family", ["gemma3", "gpt2", "llama"])
def test_last_step_predicts_and_records_as_full_forwards_do(load, family):
    model, tokenizer = load(family)
    step = last_step(model, tokenizer, TARGET, CPU)
    top = full_logits(model, tokenizer, TARGET).argmax(-1)
    gold = [[int(t)] if i % 2 else [int(t) + 1] for i, t in enumerate(top)]
    hits, vectors = step_hits(model, step, gold, record=[0, 2])
    assert hits.tolist() == [0.0, 1.0, 0.0, 1.0]
    for layer in (0, 2):
        alone = recorded(model, tokenizer, layer, TARGET)
        torch.testing.assert_close(vectors[layer], alone, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", ["gemma3", "gpt2", "llama"])
def test_transplant_accuracy_is_that_of_a_manual_run_with_the_vector_written_in(load, family):
    model, tokenizer = load(family)
    layer = 1
    # scaled up: a tiny random model's FFN outputs are too small to move its prediction
    source = recorded(model, tokenizer, layer, SOURCE) * 50
    perm = torch.tensor([2, 0, 3, 1])
    plain = full_logits(model, tokenizer, TARGET).argmax(-1)
    moved = full_logits(model, tokenizer, TARGET, edit=(layer, source)).argmax(-1)
    control = full_logits(model, tokenizer, TARGET, edit=(layer, source[perm])).argmax(-1)
    assert not torch.equal(moved, plain)  # the transplant changes some predictions
    gold = [[int(t)] for t in moved]
    step = last_step(model, tokenizer, TARGET, CPU)
    own, shuffled = transplanted_hits(model, step, gold, layer, [source, source[perm]])
    assert own.tolist() == [1.0] * 4
    assert shuffled.tolist() == (control == moved).double().tolist()
    baseline, _ = step_hits(model, step, gold)  # no hook left behind
    assert baseline.tolist() == (plain == moved).double().tolist()


# --------------------------------------------------------------------------- rows


def test_xtransplant_rows_cover_both_directions_each_layer_and_control(load):
    tiny, tokenizer = load("llama")
    model = copy.deepcopy(tiny)
    with torch.no_grad():
        for layer in decoder_layers(model):
            layer.mlp.down_proj.weight *= 50  # FFN outputs that move the prediction
    # the en → de transplant at layer 2 by hand, and gold tokens that tell it from the plain run
    vectors = recorded(model, tokenizer, 2, SOURCE)
    moved = full_logits(model, tokenizer, TARGET, edit=(2, vectors)).argmax(-1).tolist()
    plain = full_logits(model, tokenizer, TARGET).argmax(-1).tolist()
    gold = [moved[0], plain[1], moved[2], plain[3] + 1]
    value = np.mean([m == g for m, g in zip(moved, gold, strict=True)])
    baseline = np.mean([p == g for p, g in zip(plain, gold, strict=True)])
    assert value != baseline

    de = Facts("de", TARGET, [[g] for g in gold])
    en = Facts("en", SOURCE, [[5], [7], [9], [11]])
    frame = xtransplant_frame(model, tokenizer, {"de": (de, en)}, CPU, layers=[0, 2],
                              seeds=[0, 1], n_boot=50)  # fmt: skip
    assert frame.schema == pl.Schema(SCHEMA)
    assert frame.height == 2 * 2 * 3
    assert frame.select("intervened", "evaluated").unique(maintain_order=True).rows() == [
        ("en", "de"),
        ("de", "en"),
    ]
    assert frame["layer"].to_list() == [0, 0, 0, 2, 2, 2] * 2
    assert frame["control"].to_list() == ["none", "random", "random"] * 4
    assert frame["seed"].to_list() == [None, 0, 1] * 4
    assert frame["n_neurons"].null_count() == frame.height
    assert set(frame["metric"]) == {"accuracy"} and set(frame["n_texts"]) == {4}
    row = frame.filter(
        pl.col("intervened") == "en", pl.col("layer") == 2, pl.col("control") == "none"
    )
    assert row["value"][0] == pytest.approx(value)
    assert row["baseline"][0] == pytest.approx(baseline)
    assert row["delta"][0] == pytest.approx(value - baseline)
    with pytest.raises(PolyneuronError, match="the model has 3 layers"):
        xtransplant_frame(model, tokenizer, {"de": (de, en)}, CPU, layers=[3])


def test_best_layer_is_the_largest_gain_with_the_random_controls_there():
    frame = pl.DataFrame(
        {
            "intervened": ["en"] * 6 + ["de"] * 3,
            "evaluated": ["de"] * 6 + ["en"] * 3,
            "layer": [0, 0, 0, 1, 1, 1, 0, 1, 2],
            "control": ["none", "random", "random"] * 2 + ["none"] * 3,
            "delta": [0.1, -0.2, 0.0, 0.3, 0.1, -0.3, -0.1, -0.1, -0.2],
        }
    )
    best = best_layers(frame)
    assert best.rows() == [("en", "de", 1, 0.3, pytest.approx(-0.1)), ("de", "en", 0, -0.1, None)]
    assert np.isclose(best["random_delta"][0], -0.1)
