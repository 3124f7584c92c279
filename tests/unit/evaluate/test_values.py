"""The value evaluation: option labels of every template, the option probability against a
full forward pass, and the matrix's rows against the same direct computation under each
intervention."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch
from conftest import minimal_config
from unit.evaluate.helpers import SEEDS, SETS, conditions, full_logits

from polyneuron import PolyneuronError
from polyneuron.evaluate.interventions import (
    apply_operations,
    deactivate_neurons,
    random_control,
    split_like,
)
from polyneuron.evaluate.matrix import ABLATION_SCHEMA
from polyneuron.evaluate.values import (
    VALUE_SCHEMA,
    encode_questions,
    option_labels,
    option_probabilities,
    reference_operations,
    value_intervention,
    value_matrix,
)
from polyneuron.model.batches import pad_token_id
from polyneuron.plan.config import check_config
from polyneuron.probes.values import QUESTION_FALLBACK, QUESTION_PROMPTS

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")

SITUATIONS = [
    ("你们镇获得了一笔资金。", "建一所学校。", "放烟花。", "a"),
    ("公司今年赚了很多钱。", "全部发奖金。", "投资研究。", "b"),
    ("the quick brown fox", "jumps over", "the lazy dog", "a"),
    ("der schnelle Fuchs", "springt", "schläft", "b"),
    ("le renard brun", "saute", "dort", "a"),
]


def questions(lang: str = "zh") -> tuple[list[str], list[str]]:
    template = QUESTION_PROMPTS[lang]
    prompts = [template.format(situation=s, option_a=a, option_b=b) for s, a, b, _ in SITUATIONS]
    return prompts, [t for *_, t in SITUATIONS]


def direct_p_supported(model, tokenizer, prompts: list[str], targets: list[str]) -> np.ndarray:
    """Softmax over the whole vocabulary at the prompt's last token, then the target label's
    share of the two labels' probability (zh: the labels follow the prompt directly)."""
    a, b = tokenizer.convert_tokens_to_ids(["A", "B"])
    out = []
    for prompt, target in zip(prompts, targets, strict=True):
        ids, logits = full_logits(model, tokenizer, prompt)
        assert tokenizer(prompt + "A")["input_ids"] == [*ids, a]
        probs = torch.softmax(logits[-1], dim=-1)
        out.append(float(probs[a if target == "a" else b] / (probs[a] + probs[b])))
    return np.array(out)


def test_option_labels_are_read_from_every_question_template():
    for template in [*QUESTION_PROMPTS.values(), QUESTION_FALLBACK]:
        assert option_labels(template) == ("A", "B")
    assert option_labels("{situation}\n(1) {option_a}\n(2) {option_b}\n") == ("1", "2")
    with pytest.raises(PolyneuronError, match="no label before"):
        option_labels("{situation} {option_a}")


def test_option_probability_is_the_two_label_softmax_of_a_full_forward(load):
    model, tokenizer = load("gemma2")
    prompts, targets = questions("zh")
    want = direct_p_supported(model, tokenizer, prompts, targets)
    got = option_probabilities(
        model, tokenizer, prompts, targets, "zh", pad_token_id(tokenizer), CPU,
        batch_tokens=64, max_batch_size=2,
    )  # fmt: skip
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert not np.allclose(want, 0.5)


def test_options_whose_labels_share_a_first_token_are_read_after_the_space(load):
    # the tiny tokenizer has no " A" token: after "Answer:" both options start with " ", so
    # the space joins the prompt and the choice is read between "A" and "B" after it
    _, tokenizer = load("llama")
    prompts = questions("en")[0]
    encoded, candidates = encode_questions(tokenizer, prompts, "en")
    space = tokenizer(" ", add_special_tokens=False)["input_ids"]
    for enc, prompt, (ids,) in zip(encoded, prompts, candidates, strict=True):
        assert list(enc.input_ids) == tokenizer(prompt + " ")["input_ids"]
        assert list(enc.input_ids[-len(space) :]) == space
        a, b = (tokenizer(prompt + " " + label)["input_ids"][len(enc.input_ids)] for label in "AB")
        assert ids == [a, b] and a != b


def test_value_matrix_rows_match_direct_probabilities_under_each_intervention(load):
    model, tokenizer = load("gemma3")
    prompts, targets = questions("zh")
    by_value = {"first": (prompts[:2], targets[:2]), "second": (prompts[2:], targets[2:])}
    frame = value_matrix(
        model, tokenizer, SETS, by_value, "zh", SEEDS, pad_token_id(tokenizer), CPU,
        mode="scale", factor=5.0, batch_tokens=64, max_batch_size=2, n_boot=50,
    )  # fmt: skip
    assert frame.schema == pl.Schema(VALUE_SCHEMA)
    assert list(frame.columns[: len(ABLATION_SCHEMA)]) == list(ABLATION_SCHEMA)
    assert frame.height == 2 * (1 + len(SEEDS)) * 2
    assert set(frame["lang"]) == {"zh"} and set(frame["metric"]) == {"p_supported"}
    plain = {v: direct_p_supported(model, tokenizer, *by_value[v]) for v in by_value}
    rows = iter(frame.iter_rows(named=True))
    for name in SETS:
        for control, seed, neurons in conditions(name):
            with deactivate_neurons(model, neurons, "scale", factor=5.0):
                off = {v: direct_p_supported(model, tokenizer, *by_value[v]) for v in by_value}
            for evaluated in by_value:
                row = next(rows)
                assert (row["intervened"], row["control"], row["seed"], row["evaluated"]) == (
                    name, control, seed, evaluated)  # fmt: skip
                assert row["n_neurons"] == sum(len(v) for v in neurons.values())
                assert row["n_texts"] == len(by_value[evaluated][0])
                assert math.isclose(row["baseline"], plain[evaluated].mean(), abs_tol=1e-6)
                assert math.isclose(row["value"], off[evaluated].mean(), abs_tol=1e-6)
                assert row["ci_low"] <= row["delta"] <= row["ci_high"]
    # the intervention changes something: scaling by 5 is not a no-op
    assert frame["delta"].abs().max() > 1e-4


def test_the_reference_intervention_amplifies_support_only_and_zeroes_conflict_only(load):
    model, tokenizer = load("gemma3")
    prompts, targets = questions("zh")
    by_value = {"first": (prompts[:2], targets[:2]), "second": (prompts[2:], targets[2:])}
    parts = {
        "first": {"support": {0: torch.tensor([1, 2])}, "conflict": {0: torch.tensor([3])}},
        "second": {"support": {1: torch.tensor([0])}, "conflict": {2: torch.tensor([4, 9])}},
    }
    sets = {name: reference_operations(p, 5.0) for name, p in parts.items()}
    frame = value_matrix(
        model, tokenizer, sets, by_value, "zh", SEEDS, pad_token_id(tokenizer), CPU,
        mode="reference", batch_tokens=64, max_batch_size=2, n_boot=50,
    )  # fmt: skip
    assert frame.height == 2 * (1 + len(SEEDS)) * 2
    rows = iter(frame.iter_rows(named=True))
    for name, operations in sets.items():
        union = {0: torch.tensor([1, 2, 3])} if name == "first" else {
            1: torch.tensor([0]), 2: torch.tensor([4, 9])}  # fmt: skip
        expected = [("none", None, operations)] + [
            ("random", seed, split_like(operations, random_control(union, 48, seed), None))
            for seed in SEEDS
        ]
        for control, seed, chosen in expected:
            assert chosen[0].mode == "scale" and chosen[0].factor == 5.0
            assert chosen[1].mode == "zero"
            with apply_operations(model, chosen):
                off = {v: direct_p_supported(model, tokenizer, *by_value[v]) for v in by_value}
            for evaluated in by_value:
                row = next(rows)
                assert (row["intervened"], row["control"], row["seed"]) == (name, control, seed)
                assert row["n_neurons"] == 3
                assert math.isclose(row["value"], off[evaluated].mean(), abs_tol=1e-6)
    assert frame["delta"].abs().max() > 1e-4


def test_value_languages_must_have_value_probes():
    config = minimal_config(evaluation={"values": {"languages": ["de"]}})
    config["probes"]["values"] = {"languages": ["en", "zh"]}
    with pytest.raises(PolyneuronError, match=r"evaluation\.values\.languages: 'de'"):
        check_config(config)
    config["evaluation"]["values"]["languages"] = ["zh"]
    check_config(config)


def test_the_reference_intervention_splits_support_only_from_conflict_only_neurons():
    frame = pl.DataFrame(
        {
            "layer": [0, 0, 0, 1, 1, 2],
            "neuron": [0, 1, 2, 0, 0, 5],
            "mask": ["decision", "decision", "decision", "semantic", "decision", "semantic"],
            "selected": [True, True, True, True, True, False],
            "assigned": ["support", "conflict", "both", "support", "conflict", None],
            "acts": [True, True, True, True, True, True],
        }
    )
    parts = value_intervention(frame)
    as_lists = {k: {layer: v.tolist() for layer, v in s.items()} for k, s in parts.items()}
    # layer 1 neuron 0 is support-only in one mask and conflict-only in the other: both
    assert as_lists["support"] == {0: [0]}
    assert as_lists["conflict"] == {0: [1]}
    assert as_lists["all"] == {0: [0, 1, 2], 1: [0]}
    # a mask that does not act on a layer contributes nothing there
    idle = value_intervention(frame.with_columns(acts=pl.col("layer") != 0))
    assert {layer: v.tolist() for layer, v in idle["all"].items()} == {1: [0]}
