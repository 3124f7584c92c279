"""Shared by the value, task, relation and scoring tests: a full-logits forward pass of one
text, and the neuron sets, seeds and conditions of the matrix tests."""

from __future__ import annotations

import torch

from polyneuron.evaluate.interventions import random_control

N_NEURONS = 48  # tiny models: intermediate size 48, 3 layers


def full_logits(model, tokenizer, text: str) -> tuple[list[int], torch.Tensor]:
    """One text alone, no padding, the model's own LM head: ids and [positions, vocab] logits."""
    ids = tokenizer(text)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    return ids, logits


SETS = {
    "first": {0: torch.tensor([1, 2, 3]), 2: torch.tensor([5])},
    "second": {1: torch.tensor([0, 4])},
}


SEEDS = [0, 3]


def conditions(name: str):
    yield "none", None, SETS[name]
    for seed in SEEDS:
        yield "random", seed, random_control(SETS[name], N_NEURONS, seed)
