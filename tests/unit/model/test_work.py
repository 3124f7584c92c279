"""The work meter: what a job needs at minimum is recorded inside need() scopes only (the
innermost scope counts), replayed plain, and logged as the job's work line."""

from __future__ import annotations

import logging

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from polyneuron.model import work


@pytest.fixture
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=64)  # fmt: skip
    return LlamaForCausalLM(config).eval()


def forward(model: torch.nn.Module, rows: int, width: int) -> None:
    ids = torch.randint(0, 50, (rows, width))
    with torch.inference_mode():
        model(input_ids=ids, attention_mask=torch.ones_like(ids))


def test_without_the_variable_nothing_is_recorded(model, monkeypatch, caplog):
    monkeypatch.delenv(work.ENV, raising=False)
    work.start(model)
    with work.need(5):
        forward(model, 2, 3)
    with caplog.at_level(logging.INFO):
        work.finish(logging.getLogger("polyneuron"))
    assert work._ACTIVE is None and "work:" not in caplog.text


def test_scopes_record_their_batches_and_the_line_reports_them(model, monkeypatch, caplog):
    monkeypatch.setenv(work.ENV, "1")
    work.start(model, pad_token_id=0)
    meter = work._ACTIVE
    assert meter is not None
    forward(model, 1, 4)  # outside any scope: not needed
    with work.need(3):
        forward(model, 2, 5)
        with work.need(1, new_tokens=2):  # the innermost scope counts, once
            forward(model, 1, 7)
        forward(model, 2, 6)
    with work.need(0):  # nothing needed
        forward(model, 4, 4)
    shapes = [(tuple(n.input_ids.shape), n.times, n.new_tokens) for n in meter.needed]
    assert shapes == [((2, 5), 3, 0), ((1, 7), 1, 2), ((2, 6), 3, 0)]
    assert meter.describe() == (
        "3 batches, 29 tokens, 73 token passes, 2 generated tokens"
    )  # 10 + 7 + 12 tokens; 30 + 7 + 36 passes
    with caplog.at_level(logging.INFO):
        work.finish(logging.getLogger("polyneuron"))
    line = [r.message for r in caplog.records if r.message.startswith("work:")]
    assert len(line) == 1 and "(3 batches, 29 tokens" in line[0] and ", ratio " in line[0]
    assert work._ACTIVE is None


def test_a_failing_replay_warns_and_never_fails_the_job(model, monkeypatch, caplog):
    monkeypatch.setenv(work.ENV, "1")
    work.start(model)
    with work.need(2):
        forward(model, 1, 3)

    def broken(*_args, **_kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(work._ACTIVE, "_run", broken)
    with caplog.at_level(logging.INFO):
        work.finish(logging.getLogger("polyneuron"))
    assert "replay of the job's minimum failed (out of memory)" in caplog.text
    assert ", ratio " not in caplog.text and work._ACTIVE is None


def test_add_records_a_batch_by_hand_only_under_an_open_meter(model, monkeypatch):
    monkeypatch.delenv(work.ENV, raising=False)
    work.start(model)
    work.add(torch.zeros(2, 3, dtype=torch.long), None, 4)  # no meter: nothing, no error
    monkeypatch.setenv(work.ENV, "1")
    work.start(model)
    meter = work._ACTIVE
    assert meter is not None
    mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
    work.add(torch.zeros(2, 3, dtype=torch.long), mask, 4, logits="last")
    work.add(torch.zeros(1, 2, dtype=torch.long), None, 2)  # no mask: every token counts
    work.add(torch.zeros(1, 2, dtype=torch.long), None, 0)  # not needed
    with pytest.raises(ValueError, match="logits must be one of"):
        work.add(torch.zeros(1, 2, dtype=torch.long), None, 1, logits="first")
    with pytest.raises(ValueError, match="targets go with"):
        work.add(torch.zeros(1, 2, dtype=torch.long), None, 1, logits="grad")
    assert [(n.times, n.logits, int(n.attention_mask.sum())) for n in meter.needed] == [
        (4, "last", 5),
        (2, "all", 2),
    ]
    assert meter.describe() == "2 batches, 7 tokens, 24 token passes"
    work._ACTIVE = None


def test_every_kind_of_minimum_replays(model, monkeypatch):
    monkeypatch.setenv(work.ENV, "1")
    work.start(model, pad_token_id=0)
    meter = work._ACTIVE
    assert meter is not None
    ids, mask = torch.randint(0, 50, (2, 5)), torch.tensor([[1] * 5, [1, 1, 1, 0, 0]])
    for logits in work.LOGITS:
        targets = mask.bool() if logits == "grad" else None
        work.add(ids, mask, 2, logits=logits, targets=targets)
    work.add(ids, mask, 1, new_tokens=3)
    calls = []
    final = work.final_norm(model)
    handle = final.register_forward_hook(lambda _m, args, _o: calls.append(args[0].shape))
    try:
        minimum, replay = meter.seconds()
    finally:
        handle.remove()
        work._ACTIVE = None
    assert minimum > 0 and replay > 0
    # the lens decodes layer 1's output at each row's last real token beside the model's own
    # final norm (2 layers); the plain forwards and the generation add their own calls
    assert [2, 16] in [list(shape) for shape in calls]


def test_a_gradient_minimum_differentiates_down_to_the_first_activation(model, monkeypatch):
    monkeypatch.setenv(work.ENV, "1")
    work.start(model)
    meter = work._ACTIVE
    assert meter is not None
    ids = torch.randint(0, 50, (2, 4))
    targets = torch.tensor([[False, False, True, True], [False, True, True, False]])
    work.add(ids, None, 1, logits="grad", targets=targets)
    grads = []
    real_grad = torch.autograd.grad

    def grad(outputs, inputs, **kwargs):
        result = real_grad(outputs, inputs, **kwargs)
        grads.extend(g.shape for g in result)
        return result

    monkeypatch.setattr(torch.autograd, "grad", grad)
    flags = [p.requires_grad for p in model.parameters()]
    try:
        meter.seconds()
    finally:
        work._ACTIVE = None
    assert grads and list(grads[-1]) == [2, 4, 32]  # layer 0's activation, every position
    assert [p.requires_grad for p in model.parameters()] == flags  # restored
    assert all(p.grad is None for p in model.parameters())  # no weight gradients
