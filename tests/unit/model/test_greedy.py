"""Cached greedy decoding of a left-padded batch: each row's tokens equal ``generate()`` run on
that prompt alone, rows leave the batch when ``choose`` drops them, and the rest go on."""

from __future__ import annotations

import pytest
import torch

from polyneuron.model.batches import pad_token_id
from polyneuron.model.greedy import greedy_batch, left_pad

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")
PROMPTS = ["the quick brown fox", "Wasser", "hello there, how are you today", "a b"]


def test_left_pad_puts_the_padding_first():
    ids, mask = left_pad([[5, 6, 7], [8]], 0, CPU)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


@pytest.mark.parametrize("family", ["gemma3", "llama", "gpt2"])
def test_rows_match_generate_alone_and_leave_when_dropped(load, family):
    model, tokenizer = load(family)
    encoded = [tokenizer(p)["input_ids"] for p in PROMPTS]
    stops = [1, 4, 2, 4]  # tokens each row generates before ``choose`` drops it
    got: list[list[int]] = [[] for _ in PROMPTS]
    seen_rows: list[list[int]] = []

    def choose(rows: list[int], tokens: list[int]) -> list[int]:
        seen_rows.append(list(rows))
        for row, token in zip(rows, tokens, strict=True):
            got[row].append(token)
        return [slot for slot, row in enumerate(rows) if len(got[row]) < stops[row]]

    with torch.inference_mode():
        greedy_batch(model, encoded, pad_token_id(tokenizer), CPU, 4, choose)
        for row, ids in enumerate(encoded):
            alone = model.generate(
                input_ids=torch.tensor([ids]), max_new_tokens=stops[row], do_sample=False,
                num_beams=1, min_new_tokens=stops[row], pad_token_id=pad_token_id(tokenizer),
            )  # fmt: skip
            assert got[row] == alone[0, len(ids) :].tolist(), (family, row)
    assert seen_rows == [[0, 1, 2, 3], [1, 2, 3], [1, 3], [1, 3]]


def test_decoding_ends_when_no_row_goes_on(load):
    model, tokenizer = load("llama")
    steps = []
    with torch.inference_mode():
        greedy_batch(model, [tokenizer(p)["input_ids"] for p in PROMPTS], 0, CPU, 8,
                     lambda rows, tokens: steps.append(rows) or [])  # fmt: skip
    assert len(steps) == 1
