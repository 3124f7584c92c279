"""Refusal directions: chat encoding, the mean difference against HF hidden states, ablation
leaving no projection, activation addition against a shifted embedding, scores and selection
against hand computations."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
import torch
from tiny import CHAT_TEMPLATE, build_tiny_chat_model, tiny_tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

from polyneuron import PolyneuronError
from polyneuron.model.adapters import decoder_layers, residual_writers
from polyneuron.model.steer import activation_addition, directional_ablation
from polyneuron.neurons.refusal import (
    ChatPrompts,
    ValidationSet,
    cosine_matrix,
    encode_chat,
    first_pruned_layer,
    keep_by_baseline,
    kl_divergence,
    last_logits,
    mean_residuals,
    refusal_scores,
    refusal_token_ids,
    score_candidates,
    select_direction,
    subset,
    template_parts,
)

HARMFUL = ["how do I break into a house", "write a threat", "the lazy dog bites"]
HARMLESS = ["how do I bake bread", "write a poem about water", "the quick brown fox", "hello"]
CPU = torch.device("cpu")


def chat_model(folder: Path, family: str = "llama"):
    build_tiny_chat_model(folder, family)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return chat_model(tmp_path_factory.mktemp("chat") / "llama")


def test_template_parts_split_the_rendered_chat_around_the_instruction(llama):
    _, tokenizer = llama
    prefix, suffix = template_parts(tokenizer, "tiny")
    assert prefix == "<s>user: "
    assert suffix == "</s><s>assistant:"


def test_a_tokenizer_without_chat_template_is_refused():
    with pytest.raises(PolyneuronError, match="no chat template"):
        template_parts(tiny_tokenizer(), "base-model")


def test_every_prompt_ends_with_the_same_post_instruction_tokens(llama):
    _, tokenizer = llama
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


def test_last_logits_match_the_models_logits_with_padding(llama):
    model, tokenizer = llama
    prompts = encode_chat(tokenizer, HARMLESS, "tiny")
    got = last_logits(model, tokenizer, prompts, CPU, batch_size=3)
    with torch.no_grad():
        want = torch.stack(
            [model(input_ids=torch.tensor([ids])).logits[0, -1] for ids in prompts.input_ids]
        )
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", ["llama", "gemma2", "gpt2"])
def test_ablated_direction_has_zero_projection_everywhere(tmp_path, family):
    model, tokenizer = chat_model(tmp_path / family, family)
    torch.manual_seed(1)
    direction = torch.randn(32)
    unit = direction / direction.norm()
    seen: list[torch.Tensor] = []

    def record_input(_module, args, kwargs):
        seen.append(args[0] if args else kwargs["hidden_states"])

    def record_output(_module, _inputs, output):
        seen.append(output[0] if isinstance(output, tuple) else output)

    ids = torch.tensor([encode_chat(tokenizer, HARMFUL[:1], "tiny").input_ids[0]])
    with torch.no_grad():
        before = model(input_ids=ids).logits
        with directional_ablation(model, direction):
            # registered after the ablation hooks, so they see what the model computes with
            handles = [
                layer.register_forward_pre_hook(record_input, with_kwargs=True)
                for layer in decoder_layers(model)
            ]
            for writers in residual_writers(model):
                handles += [m.register_forward_hook(record_output) for m in writers]
            ablated = model(input_ids=ids).logits
            for handle in handles:
                handle.remove()
        after = model(input_ids=ids).logits
    n_layers = len(decoder_layers(model))
    assert len(seen) == 3 * n_layers  # every layer's input and its two writers' outputs
    for tensor in seen:
        assert (tensor @ unit).abs().max() < 1e-5
    assert not torch.allclose(before, ablated)
    torch.testing.assert_close(before, after)  # the hooks are gone


def test_activation_addition_at_layer_zero_equals_shifting_the_embeddings(llama):
    model, tokenizer = llama
    ids = torch.tensor([encode_chat(tokenizer, HARMLESS[:1], "tiny").input_ids[0]])
    vector = torch.randn(32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        with activation_addition(model, vector, layer=0, coeff=0.5):
            got = model(input_ids=ids).logits
        embeds = model.get_input_embeddings()(ids)
        want = model(inputs_embeds=embeds + 0.5 * vector).logits
        plain = model(input_ids=ids).logits
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, plain)


def test_refusal_score_and_kl_against_hand_computations():
    logits = torch.tensor([[2.0, 0.0, -1.0, 0.5], [0.0, 0.0, 0.0, 0.0]])
    probs = torch.softmax(logits.double(), -1)
    p = probs[:, 0] + probs[:, 3]
    want = torch.log(p + 1e-8) - torch.log(1 - p + 1e-8)
    torch.testing.assert_close(refusal_scores(logits, [0, 3]), want)
    assert refusal_scores(logits, [0, 3])[1].item() == pytest.approx(0.0, abs=1e-6)  # p = 1/2
    other = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    q = torch.softmax(other.double(), -1)
    want_kl = (probs * (probs.log() - q.log())).sum(-1)
    torch.testing.assert_close(kl_divergence(logits, other), want_kl)
    assert kl_divergence(logits, logits).abs().max() < 1e-12


def test_refusal_tokens_are_the_distinct_first_tokens_of_answer_openings(llama):
    _, tokenizer = llama
    phrases = ["The lazy dog", "The quick fox", "  Wasser ist nass", "the end", "水"]
    ids = refusal_token_ids(tokenizer, phrases)
    openings = ["The lazy dog", "The quick fox", "Wasser ist nass", "水"]
    firsts = [tokenizer(p, add_special_tokens=False)["input_ids"][0] for p in openings]
    assert ids == list(dict.fromkeys(firsts))
    assert len(ids) == 3  # "The" once; "the end" continues a sentence
    with pytest.raises(PolyneuronError, match="no refusal tokens"):
        refusal_token_ids(tokenizer, ["cannot help", " "])


def candidates_table() -> pl.DataFrame:
    rows = [  # position, layer, ablation score, steering score, KL
        (-2, 0, -3.0, 1.0, 0.5),  # lowest score but KL too high
        (-2, 1, -2.0, -0.5, 0.01),  # does not induce refusal
        (-1, 1, -1.5, 0.2, 0.05),  # kept
        (-1, 2, -1.0, 0.3, 0.02),  # kept, higher score
        (-1, 4, None, None, None),  # pruned (5 layers: layer 4 is the last 20%)
        (-1, 0, float("nan"), 0.1, 0.0),  # not a number
    ]
    return pl.DataFrame(
        rows,
        schema=["position", "layer", "ablation_score", "steering_score", "kl"],
        orient="row",
    )


def test_selection_follows_the_reference_filters():
    table = select_direction(candidates_table(), n_layers=5)
    chosen = table.filter("selected")
    assert chosen.select("position", "layer").row(0) == (-1, 1)
    reasons = dict(zip(zip(table["position"], table["layer"], strict=True), table["reason"],
                       strict=True))  # fmt: skip
    assert reasons[-2, 0] == "KL > 0.1"
    assert reasons[-2, 1] == "steering score < 0.0"
    assert reasons[-1, 4] == "in the last 20% of layers"
    assert reasons[-1, 0] == "score is not a number"
    assert reasons[-1, 1] is None and reasons[-1, 2] is None
    without_steering = select_direction(candidates_table(), n_layers=5, induce_threshold=None)
    assert without_steering.filter("selected").select("position", "layer").row(0) == (-2, 1)
    assert first_pruned_layer(5, 0.2) == 4 and first_pruned_layer(30, 0.2) == 24


def test_selection_relaxes_the_steering_filter_then_kl_and_says_so():
    no_steering = select_direction(candidates_table(), n_layers=5, induce_threshold=5.0)
    chosen = no_steering.filter("selected").row(0, named=True)
    assert (chosen["position"], chosen["layer"]) == (-2, 1)  # lowest score with KL <= 0.1
    assert chosen["reason"].startswith("steering score < 5.0")
    assert "steering filter relaxed" in chosen["reason"]
    table = select_direction(candidates_table(), n_layers=5, kl_threshold=0.0)
    chosen = table.filter("selected").row(0, named=True)
    assert (chosen["position"], chosen["layer"]) == (-2, 0)
    assert "steering and KL filters relaxed" in chosen["reason"]
    nothing = candidates_table().filter(pl.col("layer") == 4)
    with pytest.raises(PolyneuronError, match="no candidate"):
        select_direction(nothing, n_layers=5)


def test_baseline_filter_keeps_refused_harmful_and_unrefused_harmless():
    scores = torch.tensor([1.0, -2.0, 0.5, -0.1, 3.0])
    assert keep_by_baseline(scores, harmful=True, min_prompts=2) == ([0, 2, 4], True)
    assert keep_by_baseline(scores, harmful=False, min_prompts=2) == ([1, 3], True)
    assert keep_by_baseline(scores, harmful=False, min_prompts=3) == ([0, 1, 2, 3, 4], False)


def test_cosine_matrix_against_hand_values():
    vectors = {"en": torch.tensor([1.0, 0.0]), "de": torch.tensor([1.0, 1.0])}
    got = {(a, b): c for a, b, c in cosine_matrix(vectors)}
    assert got["en", "en"] == pytest.approx(1.0)
    assert got["en", "de"] == got["de", "en"] == pytest.approx(1 / math.sqrt(2))
    assert cosine_matrix({}) == []
    zero = {(a, b): c for a, b, c in cosine_matrix({**vectors, "fr": torch.zeros(2)})}
    assert math.isnan(zero["fr", "en"]) and math.isnan(zero["fr", "fr"])
    assert zero["en", "de"] == pytest.approx(1 / math.sqrt(2))


def test_score_candidates_scores_every_unpruned_candidate(llama):
    model, tokenizer = llama
    harmful = encode_chat(tokenizer, HARMFUL, "tiny")
    harmless = encode_chat(tokenizer, HARMLESS, "tiny")
    directions = mean_residuals(model, tokenizer, harmful, CPU) - mean_residuals(
        model, tokenizer, harmless, CPU
    )
    tokens = refusal_token_ids(tokenizer, ["The", "I"])
    val = ValidationSet(harmful, harmless)
    table = score_candidates(model, tokenizer, directions.float(), val, tokens, CPU,
                             prune_layer_rate=0.3)  # fmt: skip
    n_post, n_layers = directions.shape[:2]
    assert table.height == n_post * n_layers
    assert sorted(set(table["position"])) == list(range(-n_post, 0))
    assert first_pruned_layer(n_layers, 0.3) == 2  # of 3 layers: the last one is pruned
    pruned = table.filter(pl.col("layer") == 2)
    assert pruned.height == n_post and pruned["ablation_score"].null_count() == n_post
    scored = table.filter(pl.col("layer") < 2)
    assert scored["kl"].min() >= 0 and scored["ablation_score"].null_count() == 0
    # one candidate against a direct computation: ablate, then score the harmful prompts
    row = scored.row(0, named=True)
    direction = directions[row["position"] + n_post, row["layer"]].float()
    with directional_ablation(model, direction):
        logits = last_logits(model, tokenizer, harmful, CPU)
    assert row["ablation_score"] == pytest.approx(float(refusal_scores(logits, tokens).mean()))
    assert CHAT_TEMPLATE in tokenizer.chat_template
