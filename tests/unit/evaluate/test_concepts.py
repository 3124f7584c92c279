"""Evaluations of value, task and relation neurons: the next-token scores against a full-logits
forward pass one prompt at a time, each metric (option probability, target loss and accuracy,
prefix accuracy) against a direct computation, the top-fraction subsets, and the matrices'
rows (plain, set off, random controls) against the same direct computation under the
intervention."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch
from conftest import minimal_config

import polyneuron.evaluate.concepts as concept_eval
import polyneuron.model.adapters as adapters
from polyneuron import PolyneuronError
from polyneuron.evaluate.concepts import (
    RELATION_SCHEMA,
    VALUE_SCHEMA,
    NextTokens,
    encode_questions,
    next_token_scores,
    option_labels,
    option_probabilities,
    prefix_accuracy,
    prefix_hits,
    relation_matrix,
    summarize,
    target_losses,
    task_matrix,
    top_fraction,
    value_matrix,
)
from polyneuron.evaluate.interventions import deactivate_neurons, random_control
from polyneuron.evaluate.matrix import ABLATION_SCHEMA
from polyneuron.model.batches import Encoded, encode, pad_token_id
from polyneuron.plan.config import check_config
from polyneuron.probes.values import QUESTION_FALLBACK, QUESTION_PROMPTS

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")
N_NEURONS = 48  # tiny models: intermediate size 48, 3 layers

TEXTS = [
    'English: "water" → German:',
    "the quick brown fox jumps over the lazy dog",
    "水",
    "der schnelle braune Fuchs springt über den faulen Hund, le renard brun rapide saute",
    "le chien",
]
SITUATIONS = [
    ("你们镇获得了一笔资金。", "建一所学校。", "放烟花。", "a"),
    ("公司今年赚了很多钱。", "全部发奖金。", "投资研究。", "b"),
    ("the quick brown fox", "jumps over", "the lazy dog", "a"),
    ("der schnelle Fuchs", "springt", "schläft", "b"),
    ("le renard brun", "saute", "dort", "a"),
]
TASKS = {
    "translate": (
        ['Translate into German:\n"water"\nAnswer:', "Translate into French:\ndog\nAnswer:",
         "Translate into German:\nthe house\nAnswer:"],
        ["Wasser", "chien", "das Haus"],
    ),
    "continue": (
        ["Continue:\nthe quick brown\nAnswer:", "Continue:\nder schnelle\nAnswer:"],
        ["fox jumps", "braune Fuchs"],
    ),
}  # fmt: skip


def full_logits(model, tokenizer, text: str) -> tuple[list[int], torch.Tensor]:
    """One text alone, no padding, the model's own LM head: ids and [positions, vocab] logits."""
    ids = tokenizer(text)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    return ids, logits


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


def direct_task_scores(model, tokenizer, prompts, targets) -> tuple[np.ndarray, np.ndarray]:
    """Mean −log p of the tokens overlapping the target's characters in ``prompt target``, and
    whether the argmax before the first of them is that token."""
    losses, hits = [], []
    for prompt, target in zip(prompts, targets, strict=True):
        text = f"{prompt} {target}"
        enc = tokenizer(text, return_offsets_mapping=True)
        start, end = len(prompt) + 1, len(text)
        positions = [
            q for q, (a, b) in enumerate(enc["offset_mapping"]) if q > 0 and a < end and b > start
        ]
        ids, logits = full_logits(model, tokenizer, text)
        logp = torch.log_softmax(logits, dim=-1)
        losses.append(float(np.mean([-float(logp[q - 1, ids[q]]) for q in positions])))
        hits.append(float(int(logits[positions[0] - 1].argmax()) == ids[positions[0]]))
    return np.array(losses), np.array(hits)


def direct_prefix_hits(model, tokenizer, prompts, answers, prefix: str) -> np.ndarray:
    """Argmax after ``prompt + prefix`` (its trailing space left to the answer) is the token
    after those ids in ``prompt + prefix + answer``."""
    out = []
    for prompt, accepted in zip(prompts, answers, strict=True):
        ids, logits = full_logits(model, tokenizer, prompt + prefix.rstrip())
        firsts = set()
        for answer in accepted:
            full = tokenizer(prompt + prefix + answer)["input_ids"]
            assert full[: len(ids)] == ids
            firsts.add(full[len(ids)])
        out.append(float(int(logits[-1].argmax()) in firsts))
    return np.array(out)


# --------------------------------------------------------------------------- scoring


@pytest.mark.parametrize("family", ["llama", "gemma2", "gpt2"])
def test_next_token_scores_match_full_logits_one_prompt_at_a_time(load, family, monkeypatch):
    model, tokenizer = load(family)
    encoded = encode(tokenizer, TEXTS)
    rng = np.random.default_rng(0)
    marked, candidates = [], []
    for e in encoded:
        n = len(e.input_ids)
        scored = tuple(bool(x) for x in rng.random(n) < 0.5)
        if not any(scored):
            scored = (*scored[:-1], True)
        marked.append(Encoded(e.input_ids, scored))
        candidates.append([list(rng.integers(0, len(tokenizer), 3)) for _ in range(sum(scored))])
    # small batches with padding inside them, logits two positions at a time
    monkeypatch.setattr(adapters, "LOGIT_ELEMENTS", 2 * model.config.vocab_size)
    scores = next_token_scores(
        model, marked, candidates, pad_token_id(tokenizer), CPU, batch_tokens=48,
        max_batch_size=2,
    )  # fmt: skip
    want_lp, want_top, want_example = [], [], []
    for i, (text, e) in enumerate(zip(TEXTS, marked, strict=True)):
        _, logits = full_logits(model, tokenizer, text)
        logp = torch.log_softmax(logits, dim=-1)
        positions = [p for p, flag in enumerate(e.counted) if flag]
        for p, ids in zip(positions, candidates[i], strict=True):
            want_lp.append(logp[p, ids])
            want_top.append(int(logits[p].argmax()))
            want_example.append(i)
    assert scores.example.tolist() == want_example
    assert scores.top1.tolist() == want_top
    torch.testing.assert_close(scores.log_probs, torch.stack(want_lp), atol=1e-4, rtol=1e-5)


def test_next_token_scores_checks_candidates_against_scored_positions(load):
    model, tokenizer = load("llama")
    encoded = [Encoded(e.input_ids, (True,) * len(e.input_ids)) for e in encode(tokenizer, ["le"])]
    with pytest.raises(ValueError, match="scored positions but"):
        next_token_scores(model, encoded, [[[1]]], 0, CPU)
    n = len(encoded[0].input_ids)
    with pytest.raises(ValueError, match="differ in length"):
        next_token_scores(model, encoded, [[[1]] * (n - 1) + [[1, 2]]], 0, CPU)


# --------------------------------------------------------------------------- values


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


# --------------------------------------------------------------------------- tasks


def test_target_losses_reduce_positions_to_examples_by_hand():
    scores = NextTokens(
        example=torch.tensor([0, 0, 1, 2, 2, 2]),
        log_probs=torch.tensor([[-1.0], [-3.0], [-0.5], [-2.0], [-4.0], [-6.0]]).double(),
        top1=torch.tensor([7, 9, 4, 5, 8, 8]),
    )
    candidates = [[[7], [1]], [[3]], [[5], [8], [2]]]
    loss, correct = target_losses(scores, candidates)
    np.testing.assert_allclose(loss, [2.0, 0.5, 4.0])
    np.testing.assert_array_equal(correct, [1.0, 0.0, 1.0])  # the first position only


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_task_loss_and_accuracy_match_a_manual_log_softmax(load, family):
    model, tokenizer = load(family)
    prompts = [p for ps, _ in TASKS.values() for p in ps]
    targets = [t for _, ts in TASKS.values() for t in ts]
    # one target the model gets right: its own greedy token after the prompt and a space
    _, logits = full_logits(model, tokenizer, prompts[0] + " ")
    prompts.append(prompts[0])
    targets.append(tokenizer.decode([int(logits[-1].argmax())]).strip() or "x")
    want_loss, want_hit = direct_task_scores(model, tokenizer, prompts, targets)
    encoded, candidates = concept_eval.encode_targets(tokenizer, prompts, targets)
    scores = next_token_scores(model, encoded, candidates, pad_token_id(tokenizer), CPU, 64, 3)
    loss, hit = target_losses(scores, candidates)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    np.testing.assert_array_equal(hit, want_hit)
    assert 0 < want_hit.sum() < len(want_hit)


# --------------------------------------------------------------------------- relations


def test_prefix_hits_by_hand():
    scores = NextTokens(torch.arange(3), torch.zeros(3, 0, dtype=torch.float64),
                        torch.tensor([4, 5, 6]))  # fmt: skip
    np.testing.assert_array_equal(prefix_hits(scores, [[4, 9], [6], []]), [1.0, 0.0, 0.0])


@pytest.mark.parametrize("prefix", ["", " "])
def test_prefix_accuracy_is_the_argmax_against_the_answers_first_tokens(load, prefix):
    model, tokenizer = load("gemma2")
    prompts = ["English: water → German:", "English: Chinese:", "le renard brun", "Wasser rapide"]
    answers = [["Wasser", "wasser"], ["fox"], ["rapide"], ["springt"]]
    # make some hits: the odd prompts also accept their own greedy continuation (the random
    # model's greedy tokens are mostly stray bytes; these two prompts' greedy tokens
    # round-trip as text, one after each prefix)
    for i in (1, 3):
        _, logits = full_logits(model, tokenizer, prompts[i] + prefix.rstrip())
        greedy = tokenizer.decode([int(logits[-1].argmax())])
        answers[i].append(greedy.removeprefix(prefix))
    want = direct_prefix_hits(model, tokenizer, prompts, answers, prefix)
    got = prefix_accuracy(
        model, tokenizer, prompts, answers, prefix, pad_token_id(tokenizer), CPU, 64, 2
    )
    np.testing.assert_array_equal(got, want)
    assert 0 < want.sum() < len(want)


def neuron_rows(scores: dict[tuple[int, int], float], unselected=()) -> pl.DataFrame:
    rows = [(layer, neuron, score, True) for (layer, neuron), score in scores.items()]
    rows += [(layer, neuron, 9.0, False) for layer, neuron in unselected]
    return pl.DataFrame(
        rows, schema={"layer": pl.Int32, "neuron": pl.Int32, "score": pl.Float64,
                      "selected": pl.Boolean}, orient="row",
    )  # fmt: skip


def test_top_fraction_takes_the_top_ranked_selected_neurons_nested():
    frame = neuron_rows(
        {(0, 3): 0.9, (2, 1): 0.8, (1, 7): 0.8, (0, 0): 0.5, (2, 4): 0.4, (1, 2): 0.3,
         (0, 5): 0.2, (2, 2): 0.1, (1, 1): 0.05, (0, 9): 0.01},
        unselected=[(0, 1), (1, 0)],  # higher scores, but not in the set
    )  # fmt: skip
    as_pairs = lambda s: {(layer, int(n)) for layer, idx in s.items() for n in idx}  # noqa: E731
    assert as_pairs(top_fraction(frame, 0.1)) == {(0, 3)}
    # ties (0.8) go to the lower layer
    assert as_pairs(top_fraction(frame, 0.2)) == {(0, 3), (1, 7)}
    half = as_pairs(top_fraction(frame, 0.5))
    assert half == {(0, 3), (1, 7), (2, 1), (0, 0), (2, 4)}
    whole = as_pairs(top_fraction(frame, 1.0))
    assert len(whole) == 10 and (0, 1) not in whole and half <= whole
    assert as_pairs(top_fraction(frame, 0.01)) == {(0, 3)}  # at least one
    assert top_fraction(frame.filter(pl.col("score") > 5), 0.5) == {}
    with pytest.raises(PolyneuronError, match="fraction"):
        top_fraction(frame, 0.0)


# --------------------------------------------------------------------------- matrices

SETS = {
    "first": {0: torch.tensor([1, 2, 3]), 2: torch.tensor([5])},
    "second": {1: torch.tensor([0, 4])},
}
SEEDS = [0, 3]


def conditions(name: str):
    yield "none", None, SETS[name]
    for seed in SEEDS:
        yield "random", seed, random_control(SETS[name], N_NEURONS, seed)


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


def test_task_matrix_rows_hold_loss_and_accuracy_per_task(load):
    model, tokenizer = load("llama")
    frame = task_matrix(
        model, tokenizer, SETS, TASKS, SEEDS, pad_token_id(tokenizer), CPU, n_boot=50,
        batch_tokens=64, max_batch_size=3,
    )  # fmt: skip
    assert frame.schema == pl.Schema(ABLATION_SCHEMA)
    assert frame.height == 2 * (1 + len(SEEDS)) * 2 * len(TASKS)
    plain = {t: direct_task_scores(model, tokenizer, *TASKS[t]) for t in TASKS}
    rows = iter(frame.iter_rows(named=True))
    for name in SETS:
        for control, seed, neurons in conditions(name):
            with deactivate_neurons(model, neurons, "zero"):
                off = {t: direct_task_scores(model, tokenizer, *TASKS[t]) for t in TASKS}
            for k, metric in enumerate(("loss", "accuracy")):
                for task in TASKS:
                    row = next(rows)
                    assert (row["intervened"], row["control"], row["seed"], row["metric"],
                            row["evaluated"]) == (name, control, seed, metric, task)  # fmt: skip
                    assert math.isclose(row["baseline"], plain[task][k].mean(), rel_tol=1e-5)
                    assert math.isclose(row["value"], off[task][k].mean(), rel_tol=1e-5)
    assert frame.filter(metric="loss")["delta"].abs().max() > 1e-4


def test_relation_matrix_switches_off_the_top_fraction_of_each_relation(load):
    model, tokenizer = load("gemma2")
    prompts = {
        "capital": (["English: water → German:", "the quick brown"], [["Wasser"], ["fox"]]),
        "city": (["le renard brun", "der Hund", "le chien"], [["rapide"], ["x"], ["y"]]),
    }
    rng = np.random.default_rng(1)
    neurons = {}
    for relation in prompts:
        layers, indices = rng.integers(0, 3, 8).tolist(), rng.permutation(N_NEURONS)[:8].tolist()
        scores = rng.random(8).tolist()
        pairs = zip(layers, indices, strict=True)
        neurons[relation] = neuron_rows(dict(zip(pairs, scores, strict=True)))
    fractions = [0.25, 1.0]
    frame = relation_matrix(
        model, tokenizer, neurons, prompts, "de", fractions, " ", SEEDS,
        pad_token_id(tokenizer), CPU, n_boot=50, batch_tokens=64, max_batch_size=2,
    )  # fmt: skip
    assert frame.schema == pl.Schema(RELATION_SCHEMA)
    assert frame.height == len(fractions) * 2 * (1 + len(SEEDS)) * 2
    assert frame["fraction"].unique(maintain_order=True).to_list() == fractions
    own = frame.filter(control="none", evaluated=pl.col("intervened"))
    for relation, rows in neurons.items():
        sizes = own.filter(intervened=relation).sort("fraction")["n_neurons"].to_list()
        assert sizes == [max(1, round(f * rows.height)) for f in fractions]
    row = frame.filter(fraction=0.25, intervened="capital", control="none", evaluated="city")
    with deactivate_neurons(model, top_fraction(neurons["capital"], 0.25), "zero"):
        off = direct_prefix_hits(model, tokenizer, *prompts["city"], " ")
    assert math.isclose(row["value"].item(), off.mean())
    plain = direct_prefix_hits(model, tokenizer, *prompts["capital"], " ")
    assert np.allclose(frame.filter(evaluated="capital")["baseline"], plain.mean())


def test_summarize_separates_own_group_from_the_others():
    frame = pl.DataFrame(
        {
            "intervened": ["a", "a", "b", "b", "a", "a"],
            "evaluated": ["a", "b", "a", "b", "a", "b"],
            "metric": ["loss"] * 6,
            "control": ["none"] * 4 + ["random"] * 2,
            "delta": [1.0, 0.2, 0.4, 3.0, 0.1, 0.3],
            "n_neurons": [4, 4, 6, 6, 4, 4],
            "lang": ["en"] * 6,
        }
    )
    out = summarize(frame, by=["lang"]).sort("control")
    assert out["diagonal"].to_list() == [2.0, 0.1]
    np.testing.assert_allclose(out["off_diagonal"].to_list(), [0.3, 0.3])
    assert out["n_groups"].to_list() == [2, 1]


def test_relation_languages_must_have_relation_probes():
    config = minimal_config(evaluation={"relations": {"languages": ["en", "fr"]}})
    with pytest.raises(PolyneuronError, match=r"evaluation\.relations\.languages: 'fr'"):
        check_config(config)
    check_config(minimal_config(evaluation={"relations": {"languages": ["de"]}}))


def test_value_languages_must_have_value_probes():
    config = minimal_config(evaluation={"values": {"languages": ["de"]}})
    config["probes"]["values"] = {"languages": ["en", "zh"]}
    with pytest.raises(PolyneuronError, match=r"evaluation\.values\.languages: 'de'"):
        check_config(config)
    config["evaluation"]["values"]["languages"] = ["zh"]
    check_config(config)
