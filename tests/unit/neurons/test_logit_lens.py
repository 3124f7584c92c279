"""Logit lens: every layer's decode against a manual one from HF hidden states, the last layer
against the model's own logits; switch layers, continuation tokens."""

from pathlib import Path

import polars as pl
import pytest
import torch
from tiny import tiny_tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

from polyneuron.neurons.logit_lens import (
    LensResult,
    answer_prefix_for,
    answer_token_ids,
    continuation_token,
    first_stable_layer,
    layer_frame,
    lens_probs,
    lens_prompt,
    switch_frame,
)
from polyneuron.neurons.writing import TokenScripts

PROMPTS = [
    'English: "water" → German: "',
    "the quick brown fox",
    'English: "dog" → Russian: "',
    "le",
]
GOLD = [["Wasser"], [" jumps", " dog"], ["собака"], [" renard"]]
ENGLISH = [["water"], [" jumps"], ["dog"], []]


def _manual_decode(model, ids: list[int]) -> torch.Tensor:
    """``[layer, vocab]`` probabilities at the last token, from output_hidden_states."""
    out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    hidden = out.hidden_states  # embeddings, layers 0..L-2, then the normed last layer
    base = model.base_model
    norm = base.ln_f if hasattr(base, "ln_f") else base.norm
    cap = getattr(model.config, "final_logit_softcapping", None)
    rows = []
    for i in range(len(hidden) - 1):
        h = hidden[i + 1][0, -1]
        h = h if i == len(hidden) - 2 else norm(h)
        logits = model.lm_head(h)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        rows.append(torch.softmax(logits.float(), -1))
    return torch.stack(rows), torch.softmax(out.logits[0, -1].float(), -1)


@pytest.mark.parametrize("family", ["llama", "gemma2", "gemma3", "qwen2", "gpt2"])
def test_lens_matches_a_manual_decode_at_every_layer(tiny_models: dict[str, Path], family: str):
    folder = tiny_models[family]
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    gold = [answer_token_ids(tokenizer, p, "", a) for p, a in zip(PROMPTS, GOLD, strict=True)]
    english = [answer_token_ids(tokenizer, p, "", a) for p, a in zip(PROMPTS, ENGLISH, strict=True)]
    # batch_size 3: the longest and the shortest prompts share a padded batch
    result = lens_probs(model, tokenizer, PROMPTS, gold, english, torch.device("cpu"), 3)
    n_layers = model.config.num_hidden_layers
    assert result.p_gold.shape == result.top1.shape == (len(PROMPTS), n_layers)
    with torch.inference_mode():
        for i, prompt in enumerate(PROMPTS):
            ids = tokenizer(prompt)["input_ids"]
            probs, model_probs = _manual_decode(model, ids)
            assert torch.allclose(result.p_gold[i], probs[:, gold[i]].sum(1), atol=1e-5)
            expected_en = probs[:, english[i]].sum(1) if english[i] else torch.zeros(n_layers)
            assert torch.allclose(result.p_english[i], expected_en, atol=1e-5)
            assert result.top1[i].tolist() == probs.argmax(-1).tolist()
            # the last layer's lens is the model's own next-token distribution
            assert torch.allclose(probs[-1], model_probs, atol=1e-5)
            assert torch.allclose(result.p_gold[i, -1], model_probs[gold[i]].sum(), atol=1e-5)
            assert result.top1[i, -1].item() == model_probs.argmax().item()
    assert english[3] == [] and torch.all(result.p_english[3] == 0)


def test_padding_and_batch_size_do_not_change_the_lens(tiny_models: dict[str, Path]):
    folder = tiny_models["gemma3"]
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    gold = [answer_token_ids(tokenizer, p, "", a) for p, a in zip(PROMPTS, GOLD, strict=True)]
    one = lens_probs(model, tokenizer, PROMPTS, gold, gold, torch.device("cpu"), 1)
    all_ = lens_probs(model, tokenizer, PROMPTS, gold, gold, torch.device("cpu"), 8)
    assert torch.allclose(one.p_gold, all_.p_gold, atol=1e-5)
    assert torch.equal(one.top1, all_.top1)
    assert torch.equal(one.p_gold, one.p_english)


def test_first_stable_layer():
    flags = torch.tensor([[0, 1, 0, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [0, 0, 0, 0, 1]])
    assert first_stable_layer(flags.bool()) == [3, 0, None, 4]


class _Decoder:
    """A stand-in tokenizer: token id -> text."""

    def __init__(self, vocab: dict[int, str]) -> None:
        self.vocab = vocab
        self.calls: list[int] = []

    def decode(self, ids: list[int]) -> str:
        self.calls.extend(ids)
        return "".join(self.vocab[i] for i in ids)


def _hand_result() -> tuple[LensResult, _Decoder]:
    # ids: 0 " the", 1 " water", 2 " вод", 3 " вода", 4 " 1", 5 " на"
    vocab = {0: " the", 1: " water", 2: " вод", 3: " вода", 4: " 1", 5: " на"}
    top1 = torch.tensor(
        [
            [0, 1, 2, 3],  # script from layer 2, gold (3) from layer 3
            [2, 0, 5, 5],  # script from layer 2, never gold
            [0, 0, 1, 1],  # never in script
            [3, 3, 3, 3],  # script and gold from layer 0
        ]
    )
    p_gold = torch.tensor([[0.0, 0.1, 0.2, 0.6]] * 4)
    p_english = torch.tensor([[0.5, 0.4, 0.1, 0.0]] * 4)
    gold = [[3], [3, 2], [3], [3]]
    english = [[1], [1], [1], []]
    return LensResult(p_gold, p_english, top1, gold, english), _Decoder(vocab)


def test_switch_and_gold_layers_on_a_hand_made_result():
    result, decoder = _hand_result()
    row = switch_frame(result, "ru", "muse", decoder).row(0, named=True)
    # switch layers 2, 2, none, 0 -> median of [0, 2, 2] = 2; gold layers 3, none, none, 0
    assert row == {
        "probe": "muse", "lang": "ru", "target_lang": "ru", "n_examples": 4,
        "switch_layer": 2.0, "switch_fraction": 0.75, "gold_layer": 1.5, "gold_fraction": 0.5,
    }  # fmt: skip
    latin = switch_frame(result, "de", "muse", decoder).row(0, named=True)
    assert latin["switch_layer"] is None and latin["switch_fraction"] is None
    assert latin["gold_layer"] == 1.5


def test_layer_frame_on_a_hand_made_result():
    result, decoder = _hand_result()
    scripts = TokenScripts(decoder)
    frame = layer_frame(result, "ru", "relations", scripts)
    assert frame["layer"].dtype == pl.Int32 and frame["layer"].to_list() == [0, 1, 2, 3]
    assert frame["n_examples"].to_list() == [4] * 4
    assert frame["p_gold"].to_list() == pytest.approx([0.0, 0.1, 0.2, 0.6])
    assert frame["p_english"].to_list() == pytest.approx([0.5, 0.4, 0.1, 0.0])
    # top-1 gold: layer 0: ex 1 (id 2 in its set), ex 3; layer 2: ex 0; layer 3: ex 0 and 3
    assert frame["top1_gold"].to_list() == pytest.approx([0.5, 0.25, 0.25, 0.5])
    assert frame["top1_english"].to_list() == pytest.approx([0.0, 0.25, 0.25, 0.25])
    assert frame["top1_target_script"].to_list() == pytest.approx([0.5, 0.25, 0.75, 0.75])
    assert frame["top1_latin"].to_list() == pytest.approx([0.5, 0.75, 0.25, 0.25])
    # each distinct id decoded once, across both summaries
    switch_frame(result, "ru", "relations", scripts)
    assert sorted(decoder.calls) == sorted(set(result.top1.flatten().tolist()))


def test_continuation_token_on_the_tiny_tokenizer():
    tok = tiny_tokenizer()
    prompt = 'English: "water" → German:'
    full = tok(prompt + ' "Wasser')["input_ids"]
    head = tok(prompt + ' "')["input_ids"]
    assert full[: len(head)] == head
    assert continuation_token(tok, prompt, ' "', "Wasser") == full[len(head)]
    # the prefix's trailing space belongs to the answer: the model reads the bare prompt
    assert lens_prompt("the quick brown", " ") == "the quick brown"
    full = tok("the quick brown fox")["input_ids"]
    after = len(tok("the quick brown")["input_ids"])
    fox = continuation_token(tok, "the quick brown", " ", "fox")
    assert fox == full[after] and tok.decode([fox]) == " f"
    # a token spanning prompt and answer (" " + "f" is " f"): fall back to the answer alone
    alone = tok("fox", add_special_tokens=False)["input_ids"][0]
    assert continuation_token(tok, "the quick brown ", "", "fox") == alone != fox
    assert answer_prefix_for(" ", "zh") == "" and answer_prefix_for(' "', "ja") == ' "'
    assert answer_prefix_for(" ", "de") == " "
    ids = answer_token_ids(tok, "the quick brown", " ", ["fox", "fox jumps", "dog"])
    assert len(ids) == 2 and ids[0] == fox


@pytest.mark.parametrize("family", ["gemma3", "gpt2"])
def test_chunked_readout_equals_a_full_softmax(tiny_models: dict[str, Path], family: str):
    """Decoded a few vocabulary rows at a time (running log-sum-exp and argmax), the set
    probabilities and the top-1 token equal those of one softmax over the whole vocabulary,
    soft-capping included; ties keep the first token."""
    from polyneuron.model.adapters import unembed
    from polyneuron.neurons.logit_lens import lens_readout

    model = AutoModelForCausalLM.from_pretrained(tiny_models[family], dtype=torch.float32).eval()
    hidden = torch.randn(6, model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    vocab = model.get_output_embeddings().weight.shape[0]
    sets = [[1, 5], [], [vocab - 1], [0, 2, 3], [7], [4, vocab - 2]]
    with torch.inference_mode():
        (probs,), top1 = lens_readout(model, hidden, [sets], chunk=7)
        full = torch.softmax(unembed(model, hidden).float(), -1)
    expected = torch.stack([full[row, ids].sum() for row, ids in enumerate(sets)])
    torch.testing.assert_close(probs, expected, rtol=1e-5, atol=1e-7)
    assert top1.tolist() == full.argmax(-1).tolist()
    # a tie across chunks: the same weights at token 2 and at token 9 (another chunk)
    head = model.get_output_embeddings()
    with torch.no_grad():
        saved = head.weight[9].clone()
        head.weight[9] = head.weight[2]
        try:
            state = head.weight[2] * 50  # token 2 (and 9) is every row's clear top-1
            (_,), tied = lens_readout(model, state[None].repeat(2, 1), [[[], []]], chunk=7)
        finally:
            head.weight[9] = saved
    assert tied.tolist() == [2, 2]
