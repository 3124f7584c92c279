"""Chat prompts: the template split around the instruction, the post-instruction tokens, the
refusal tokens, and the mean layer inputs and last logits against HF hidden states and
logits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import HARMFUL, HARMLESS
from tiny import build_tiny_chat_model, tiny_tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

from polyneuron import PolyneuronError
from polyneuron.model.chat import (
    ChatPrompts,
    encode_chat,
    last_logits,
    mean_residuals,
    refusal_token_ids,
    subset,
    template_parts,
)

CPU = torch.device("cpu")


def chat_model(folder: Path, family: str = "llama"):
    build_tiny_chat_model(folder, family)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(folder)


def test_template_parts_split_the_rendered_chat_around_the_instruction(chat_llama):
    _, tokenizer = chat_llama
    prefix, suffix = template_parts(tokenizer, "tiny")
    assert prefix == "<s>user: "
    assert suffix == "</s><s>assistant:"


def test_a_system_prompt_goes_before_every_instruction(chat_llama):
    _, tokenizer = chat_llama
    prefix, suffix = template_parts(tokenizer, "tiny", "Refuse harmful requests.")
    assert prefix == "<s>system: Refuse harmful requests.</s><s>user: "
    assert suffix == "</s><s>assistant:"
    plain = encode_chat(tokenizer, HARMFUL, "tiny")
    told = encode_chat(tokenizer, HARMFUL, "tiny", "Refuse harmful requests.")
    assert told.n_post == plain.n_post
    for a, b in zip(plain.input_ids, told.input_ids, strict=True):
        assert len(b) > len(a) and b[-plain.n_post :] == a[-plain.n_post :]


def test_a_template_that_drops_the_system_prompt_is_refused(chat_llama):
    _, tokenizer = chat_llama
    dropping = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    dropping.chat_template = (
        "{% for message in messages %}{% if message['role'] != 'system' %}<s>"
        "{{ message['content'] }}</s>{% endif %}{% endfor %}<s>assistant:"
    )
    with pytest.raises(PolyneuronError, match=r"drops the system prompt .*chat_models\.tiny"):
        template_parts(dropping, "tiny", "Be safe.")


def test_a_tokenizer_without_chat_template_is_refused():
    with pytest.raises(PolyneuronError, match="no chat template"):
        template_parts(tiny_tokenizer(), "base-model")


def test_every_prompt_ends_with_the_same_post_instruction_tokens(chat_llama):
    _, tokenizer = chat_llama
    prompts = encode_chat(tokenizer, HARMFUL, "tiny")
    post = tokenizer("</s><s>assistant:", add_special_tokens=False)["input_ids"]
    assert prompts.n_post == len(post) > 1
    for text, ids in zip(HARMFUL, prompts.input_ids, strict=True):
        assert ids[-prompts.n_post :] == post
        assert tokenizer.decode(ids[: -prompts.n_post]) == f"<s>user: {text}"
    assert subset(prompts, [2, 0]).input_ids == [prompts.input_ids[2], prompts.input_ids[0]]


def _direct_means(model, prompts: ChatPrompts) -> torch.Tensor:
    """Mean over prompts of hidden_states[layer] (the layer's input) at the last n_post
    positions, one prompt at a time (no padding)."""
    n_layers = model.config.num_hidden_layers
    total = 0
    for ids in prompts.input_ids:
        out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
        layer_inputs = torch.stack(out.hidden_states[:n_layers])  # [layer, 1, seq, d]
        total = total + layer_inputs[:, 0, -prompts.n_post :].transpose(0, 1).double()
    return total / len(prompts.input_ids)


@pytest.mark.parametrize("family", ["llama", "gemma2", "qwen2", "gpt2"])
def test_mean_residuals_match_hidden_states_and_give_the_mean_difference(tmp_path, family):
    model, tokenizer = chat_model(tmp_path / family, family)
    harmful = encode_chat(tokenizer, HARMFUL, "tiny")
    harmless = encode_chat(tokenizer, HARMLESS, "tiny")
    with torch.no_grad():
        want = _direct_means(model, harmful) - _direct_means(model, harmless)
    got = mean_residuals(model, tokenizer, harmful, CPU, batch_size=2) - mean_residuals(
        model, tokenizer, harmless, CPU, batch_size=3
    )
    assert got.shape == (harmful.n_post, model.config.num_hidden_layers, 32)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_last_logits_match_the_models_logits_with_padding(chat_llama):
    model, tokenizer = chat_llama
    prompts = encode_chat(tokenizer, HARMLESS, "tiny")
    got = last_logits(model, tokenizer, prompts, CPU, batch_size=3)
    with torch.no_grad():
        want = torch.stack(
            [model(input_ids=torch.tensor([ids])).logits[0, -1] for ids in prompts.input_ids]
        )
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_refusal_tokens_are_the_distinct_first_tokens_of_answer_openings(chat_llama):
    _, tokenizer = chat_llama
    phrases = ["The lazy dog", "The quick fox", "  Wasser ist nass", "the end", "水"]
    ids = refusal_token_ids(tokenizer, phrases)
    openings = ["The lazy dog", "The quick fox", "Wasser ist nass", "水"]
    firsts = [tokenizer(p, add_special_tokens=False)["input_ids"][0] for p in openings]
    assert ids == list(dict.fromkeys(firsts))
    assert len(ids) == 3  # "The" once; "the end" continues a sentence
    with pytest.raises(PolyneuronError, match="no refusal tokens"):
        refusal_token_ids(tokenizer, ["cannot help", " "])
