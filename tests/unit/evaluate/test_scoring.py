"""Next-token scoring: the scores against a full-logits forward pass one prompt at a time, and
the candidates checked against the scored positions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from unit.evaluate.helpers import full_logits

import polyneuron.model.adapters as adapters
from polyneuron.evaluate.scoring import next_token_scores
from polyneuron.model.batches import Encoded, encode, pad_token_id

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")

TEXTS = [
    'English: "water" → German:',
    "the quick brown fox jumps over the lazy dog",
    "水",
    "der schnelle braune Fuchs springt über den faulen Hund, le renard brun rapide saute",
    "le chien",
]


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
