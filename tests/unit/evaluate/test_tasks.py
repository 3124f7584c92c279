"""The task evaluation: target loss and accuracy by hand and against a manual log-softmax, and
the matrix's rows against the same direct computation under each intervention."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch
from unit.evaluate.helpers import SEEDS, SETS, conditions, full_logits

import polyneuron.evaluate.tasks as task_eval
from polyneuron.evaluate.interventions import deactivate_neurons
from polyneuron.evaluate.matrix import ABLATION_SCHEMA
from polyneuron.evaluate.scoring import NextTokens, next_token_scores
from polyneuron.evaluate.tasks import target_losses, task_matrix
from polyneuron.model.batches import pad_token_id

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")

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
    encoded, candidates = task_eval.encode_targets(tokenizer, prompts, targets)
    scores = next_token_scores(model, encoded, candidates, pad_token_id(tokenizer), CPU, 64, 3)
    loss, hit = target_losses(scores, candidates)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    np.testing.assert_array_equal(hit, want_hit)
    assert 0 < want_hit.sum() < len(want_hit)


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
