"""Refusal directions: ablation leaving no projection, activation addition against a shifted
embedding, scores and selection against hand computations, and the whole search against its
steps run by hand."""

from __future__ import annotations

import logging

import polars as pl
import pytest
import torch
from conftest import HARMFUL, HARMLESS
from polars.testing import assert_frame_equal
from tiny import CHAT_TEMPLATE

from polyneuron import PolyneuronError
from polyneuron.model.adapters import decoder_layers, residual_writers
from polyneuron.model.chat import (
    encode_chat,
    last_logits,
    mean_residuals,
    refusal_token_ids,
    subset,
)
from polyneuron.model.steer import activation_addition, directional_ablation
from polyneuron.neurons.refusal import (
    DirectionSettings,
    ValidationSet,
    find_refusal_direction,
    first_pruned_layer,
    keep_by_baseline,
    kl_divergence,
    refusal_scores,
    score_candidates,
    select_direction,
)

CPU = torch.device("cpu")


@pytest.mark.parametrize("family", ["llama", "gemma2", "gpt2"])
def test_ablated_direction_has_zero_projection_everywhere(load, family):
    model, tokenizer = load(family)
    torch.manual_seed(1)
    direction = torch.randn(32)
    unit = direction / direction.norm()
    seen: list[torch.Tensor] = []

    def record_input(_module, args, kwargs):
        seen.append(args[0] if args else kwargs["hidden_states"])

    def record_output(_module, _inputs, output):
        seen.append(output[0] if isinstance(output, tuple) else output)

    ids = torch.tensor([tokenizer(HARMFUL[0])["input_ids"]])
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


def test_activation_addition_at_layer_zero_equals_shifting_the_embeddings(chat_llama):
    model, tokenizer = chat_llama
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
    assert "KL filter relaxed" in chosen["reason"]  # its steering score passes
    # no candidate within the KL bound: one whose addition induces refusal comes before one
    # that only breaks the model (a huge KL also silences refusals)
    breaking = pl.DataFrame(
        [(-1, 0, -3.0, -3.5, 5.2), (-1, 1, -0.1, 1.1, 1.7), (-1, 2, 0.8, 1.4, 0.3)],
        schema=["position", "layer", "ablation_score", "steering_score", "kl"],
        orient="row",
    )
    chosen = select_direction(breaking, n_layers=5).filter("selected").row(0, named=True)
    assert chosen["layer"] == 1 and "KL filter relaxed" in chosen["reason"]
    no_steering_at_all = breaking.with_columns(steering_score=pl.lit(-1.0))
    chosen = select_direction(no_steering_at_all, n_layers=5).filter("selected").row(0, named=True)
    assert chosen["layer"] == 0 and "steering and KL filters relaxed" in chosen["reason"]
    nothing = candidates_table().filter(pl.col("layer") == 4)
    with pytest.raises(PolyneuronError, match="no candidate"):
        select_direction(nothing, n_layers=5)


def test_baseline_filter_keeps_refused_harmful_and_unrefused_harmless():
    scores = torch.tensor([1.0, -2.0, 0.5, -0.1, 3.0])
    assert keep_by_baseline(scores, harmful=True, min_prompts=2) == ([0, 2, 4], True)
    assert keep_by_baseline(scores, harmful=False, min_prompts=2) == ([1, 3], True)
    assert keep_by_baseline(scores, harmful=False, min_prompts=3) == ([0, 1, 2, 3, 4], False)


def test_score_candidates_scores_every_unpruned_candidate(chat_llama):
    model, tokenizer = chat_llama
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
    # layer 0's inputs at the template tokens are the same embeddings for every prompt: a zero
    # direction, left unscored
    zero = directions.norm(dim=-1) == 0
    assert bool(zero[:, 0].all()) and not bool(zero[:, 1].any())
    assert table.filter(pl.col("layer") == 0)["ablation_score"].null_count() == n_post
    scored = table.filter(pl.col("layer") == 1)
    assert scored["kl"].min() >= 0 and scored["ablation_score"].null_count() == 0
    # one candidate against a direct computation: ablate, then score the harmful prompts
    row = scored.row(0, named=True)
    direction = directions[row["position"] + n_post, row["layer"]].float()
    with directional_ablation(model, direction):
        logits = last_logits(model, tokenizer, harmful, CPU)
    assert row["ablation_score"] == pytest.approx(float(refusal_scores(logits, tokens).mean()))
    assert CHAT_TEMPLATE in tokenizer.chat_template


TRAIN_HARMFUL = [*HARMFUL, "write a threat about the dog"]
TRAIN_HARMLESS = HARMLESS
VAL_HARMFUL = ["break the house", "a threat to the fox"]
VAL_HARMLESS = ["bake a bread", "water the tree"]


def probes_frame() -> pl.DataFrame:
    """Refusal probes as the probe stage writes them (test prompts are never read)."""
    rows = [
        *((t, "train", "harmful") for t in TRAIN_HARMFUL),
        *((t, "train", "harmless") for t in TRAIN_HARMLESS),
        *((t, "val", "harmful") for t in VAL_HARMFUL),
        *((t, "val", "harmless") for t in VAL_HARMLESS),
        ("a test prompt", "test", "harmful"),
    ]
    return pl.DataFrame(rows, schema=["text", "split", "label"], orient="row")


def straddling_tokens(model, tokenizer) -> list[int]:
    """Refusal tokens under which some harmful train prompts of the tiny model score above 0
    and some below: the tokens ranked by how much likelier they are after the first prompt
    than after the last, the first k of them for the smallest k that splits the prompts."""
    logits = last_logits(model, tokenizer, encode_chat(tokenizer, TRAIN_HARMFUL, "tiny"), CPU)
    probs = torch.softmax(logits.double(), dim=-1)
    ranked = torch.argsort(probs[0] - probs[-1], descending=True).tolist()
    for k in range(1, len(ranked)):
        passed = int((refusal_scores(logits, ranked[:k]) > 0).sum())
        if 0 < passed < len(TRAIN_HARMFUL):
            return ranked[:k]
    raise AssertionError("no token set splits the harmful train prompts")


def directions_by_hand(model, tokenizer, probes, tokens, settings):
    """What the refusal-direction script computed before the search moved into the library:
    the prompts (filtered), the directions and the candidates' table."""
    prompts = {}
    for split, limit in (("train", settings.max_train), ("val", settings.max_val)):
        for kind in ("harmful", "harmless"):
            texts = probes.filter(split=split, label=kind)["text"].to_list()[:limit]
            encoded = encode_chat(tokenizer, texts, "tiny")
            if settings.baseline_filter:
                logits = last_logits(model, tokenizer, encoded, CPU, settings.batch_size)
                scores = refusal_scores(logits, tokens)
                rows, _ = keep_by_baseline(scores, kind == "harmful", settings.min_prompts)
                encoded = subset(encoded, rows)
            prompts[split, kind] = encoded
    n_post = prompts["train", "harmful"].n_post
    harmful = mean_residuals(model, tokenizer, prompts["train", "harmful"], CPU)
    harmless = mean_residuals(model, tokenizer, prompts["train", "harmless"], CPU)
    directions = (harmful - harmless).float()
    val = ValidationSet(prompts["val", "harmful"], prompts["val", "harmless"])
    candidates = score_candidates(model, tokenizer, directions, val, tokens, CPU,
                                  prune_layer_rate=settings.prune_layer_rate,
                                  coeff=settings.coeff, batch_size=settings.batch_size,
                                  positions=settings.positions)  # fmt: skip
    table = select_direction(candidates, directions.shape[1],
                             kl_threshold=settings.kl_threshold,
                             prune_layer_rate=settings.prune_layer_rate,
                             induce_threshold=settings.induce_threshold)  # fmt: skip
    norms = directions.norm(dim=-1)
    pairs = zip(table["position"], table["layer"], strict=True)
    table = table.with_columns(
        pl.lit("de").alias("lang"),
        pl.Series("norm", [float(norms[pos + n_post, layer]) for pos, layer in pairs]),
    )
    return prompts, directions, table


TABLE_SCHEMA = {
    "position": pl.Int32,
    "layer": pl.Int32,
    "ablation_score": pl.Float64,
    "steering_score": pl.Float64,
    "kl": pl.Float64,
    "reason": pl.String,
    "selected": pl.Boolean,
    "lang": pl.String,
    "norm": pl.Float64,
}


def test_find_refusal_direction_gives_the_table_and_tensors_of_its_steps(chat_llama):
    model, tokenizer = chat_llama
    tokens = refusal_token_ids(tokenizer, ["The", "I"])
    settings = DirectionSettings(positions=2, baseline_filter=False, prune_layer_rate=0.3)
    probes = probes_frame()
    found = find_refusal_direction(model, tokenizer, probes, tokens, CPU, settings, "tiny", "de")
    _, directions, table = directions_by_hand(model, tokenizer, probes, tokens, settings)
    assert dict(found.table.schema) == TABLE_SCHEMA
    n_post = found.n_post
    assert found.table.height == 2 * 3  # the last 2 positions x 3 layers
    assert sorted(set(found.table["position"])) == [-2, -1]
    assert found.table["lang"].to_list() == ["de"] * 6
    assert_frame_equal(found.table, table)
    # one pass gives the filter's logits and the layer inputs: per-prompt float32 inputs
    # averaged in float64, where the hand path sums each batch in float32 first
    torch.testing.assert_close(found.directions, directions, rtol=0, atol=1e-6)
    assert found.table["selected"].sum() == 1
    best = found.best
    assert best["layer"] < first_pruned_layer(3, 0.3) and best["ablation_score"] is not None
    by_hand = table.filter("selected").row(0, named=True)
    assert {k: v for k, v in best.items() if not isinstance(v, float)} == {
        k: v for k, v in by_hand.items() if not isinstance(v, float)
    }
    assert {k: v for k, v in best.items() if isinstance(v, float)} == pytest.approx(
        {k: v for k, v in by_hand.items() if isinstance(v, float)}, rel=1e-6
    )
    tensors = found.tensors()
    assert set(tensors) == {"directions", "selected"}
    assert torch.equal(
        tensors["selected"], found.directions[best["position"] + n_post, best["layer"]]
    )
    assert best["norm"] == pytest.approx(float(tensors["selected"].norm()))
    assert found.metadata() == {
        "model": "tiny",
        "lang": "de",
        "position": str(best["position"]),
        "layer": str(best["layer"]),
        "n_post": str(n_post),
    }
    # the script's log line before the move, to the character
    old_format = ("%s: %d post-instruction positions x %d layers; selected position %d, layer %d "
                  "(ablation score %.3f, steering score %.3f, KL %.4f)%s")  # fmt: skip
    reason = f"; {best['reason']}" if best["reason"] else ""
    args = ("de", n_post, 3, best["position"], best["layer"], best["ablation_score"],
            best["steering_score"], best["kl"], reason)  # fmt: skip
    assert found.summary() == old_format % args


def test_the_baseline_filter_keeps_passing_prompts_or_else_all(chat_llama, caplog):
    model, tokenizer = chat_llama
    tokens = straddling_tokens(model, tokenizer)
    probes = probes_frame()
    settings = DirectionSettings(positions=1, min_prompts=1)
    with caplog.at_level(logging.INFO, logger="polyneuron"):
        found = find_refusal_direction(model, tokenizer, probes, tokens, CPU, settings, "tiny",
                                       "de")  # fmt: skip
    prompts, directions, table = directions_by_hand(model, tokenizer, probes, tokens, settings)
    kept = len(prompts["train", "harmful"].input_ids)
    assert 0 < kept < len(TRAIN_HARMFUL)  # the filter dropped some harmful prompts
    torch.testing.assert_close(found.directions, directions, rtol=0, atol=1e-6)
    assert found.table.equals(table)
    lines = [r.getMessage() for r in caplog.records]
    assert f"de train harmful: {kept} of {len(TRAIN_HARMFUL)} prompts refused" in "\n".join(lines)
    assert sum("prompts refused" in line or "not refused" in line for line in lines) == 4

    # too few pass: every prompt is kept, as without the filter
    caplog.clear()
    strict = DirectionSettings(positions=1, min_prompts=len(TRAIN_HARMLESS) + 1)
    with caplog.at_level(logging.INFO, logger="polyneuron"):
        fallback = find_refusal_direction(model, tokenizer, probes, tokens, CPU, strict, "tiny",
                                          "de")  # fmt: skip
    unfiltered = find_refusal_direction(model, tokenizer, probes, tokens, CPU,
                                        DirectionSettings(positions=1, baseline_filter=False),
                                        "tiny", "de")  # fmt: skip
    torch.testing.assert_close(fallback.directions, unfiltered.directions, rtol=0, atol=0)
    assert not torch.equal(found.directions, unfiltered.directions)
    assert fallback.table.equals(unfiltered.table)
    fell_back = [r.getMessage() for r in caplog.records if "all kept" in r.getMessage()]
    assert len(fell_back) == 4  # train and val, harmful and harmless
    assert all(f"fewer than {strict.min_prompts}: all kept" in line for line in fell_back)


def test_only_the_first_prompts_of_each_split_are_read(chat_llama):
    model, tokenizer = chat_llama
    tokens = refusal_token_ids(tokenizer, ["The", "I"])
    settings = DirectionSettings(max_train=2, max_val=1, baseline_filter=False)
    probes = probes_frame()
    found = find_refusal_direction(model, tokenizer, probes, tokens, CPU, settings, "tiny", "de")
    first = pl.concat(
        [probes.filter(split=s, label=k).head(n) for s, n in (("train", 2), ("val", 1))
         for k in ("harmful", "harmless")]
    )  # fmt: skip
    everything = DirectionSettings(max_train=None, max_val=None, baseline_filter=False)
    same = find_refusal_direction(model, tokenizer, first, tokens, CPU, everything, "tiny", "de")
    torch.testing.assert_close(found.directions, same.directions, rtol=0, atol=0)
    assert found.table.equals(same.table)


def test_a_split_without_prompts_is_an_error_naming_the_probes(chat_llama):
    model, tokenizer = chat_llama
    probes = probes_frame().filter(~((pl.col("split") == "val") & (pl.col("label") == "harmless")))
    with pytest.raises(PolyneuronError, match=r"de\.parquet: no harmless prompts in split 'val'"):
        find_refusal_direction(model, tokenizer, probes, [3], CPU, DirectionSettings(), "tiny",
                               "de", source="results/probes/refusal/de.parquet")  # fmt: skip
