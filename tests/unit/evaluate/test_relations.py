"""The relation evaluation: prefix hits by hand and against the argmax of a full forward pass,
the top-fraction subsets, and the matrix's rows with the top fraction of each relation off."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch
from conftest import minimal_config
from unit.evaluate.helpers import N_NEURONS, SEEDS, full_logits

from polyneuron import PolyneuronError
from polyneuron.evaluate.interventions import deactivate_neurons
from polyneuron.evaluate.relations import (
    RELATION_SCHEMA,
    prefix_accuracy,
    prefix_hits,
    relation_matrix,
    top_fraction,
)
from polyneuron.evaluate.scoring import NextTokens
from polyneuron.model.batches import pad_token_id
from polyneuron.plan.config import check_config

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")


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


def test_relation_languages_must_have_relation_probes():
    config = minimal_config(evaluation={"relations": {"languages": ["en", "fr"]}})
    with pytest.raises(PolyneuronError, match=r"evaluation\.relations\.languages: 'fr'"):
        check_config(config)
    check_config(minimal_config(evaluation={"relations": {"languages": ["de"]}}))
