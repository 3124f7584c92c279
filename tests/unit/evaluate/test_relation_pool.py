"""Relation neurons beyond the activation function: the 2-token correctness test against a
manual greedy loop, neurons of the MLP projections switched off (a down_proj unit changes the
output only through that unit), their controls per layer and module, and the relation matrix
over them."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from unit.evaluate.helpers import SEEDS, full_logits

from polyneuron.evaluate.controls import Controls
from polyneuron.evaluate.interventions import ModuleNeurons, deactivate_neurons, module_control
from polyneuron.evaluate.relations import (
    prefix_accuracy,
    relation_matrix,
    sequence_hits,
    top_fraction,
)
from polyneuron.model.adapters import decoder_layers
from polyneuron.model.batches import pad_token_id

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")


def test_sequence_hits_by_hand():
    generated = torch.tensor([[4, 7], [4, 8], [5, 1], [6, 2]])
    gold = [[(4, 7, 9)], [(4, 7)], [(5,)], []]
    # prefix of a longer answer; second token wrong; a one-token answer needs one; no answer
    np.testing.assert_array_equal(sequence_hits(generated, gold), [1.0, 0.0, 1.0, 0.0])


def greedy_pair(model, tokenizer, text: str) -> list[int]:
    ids, logits = full_logits(model, tokenizer, text)
    first = int(logits[-1].argmax())
    with torch.no_grad():
        second = model(input_ids=torch.tensor([[*ids, first]])).logits[0, -1].argmax()
    return [first, int(second)]


def test_two_token_accuracy_is_a_greedy_loop_against_the_answers_first_two_tokens(load):
    model, tokenizer = load("gemma2")
    prompts = ["English: water → German:", "the quick brown", "Wasser rapide", "Wasser rapide"]
    answers = [["Wasser"], ["fox"], ["springt"], ["springt"]]
    pairs = [greedy_pair(model, tokenizer, p) for p in prompts]
    # the random model's greedy tokens are mostly stray bytes; this prompt's pair (" br br")
    # round-trips as text: its own two tokens, then its first token and another
    answers[2].append(tokenizer.decode(pairs[2]).removeprefix(" "))
    answers[3].append(tokenizer.decode(pairs[3][:1]).removeprefix(" ") + " zzq")
    want = []
    for prompt, accepted, pair in zip(prompts, answers, pairs, strict=True):
        ids = tokenizer(prompt)["input_ids"]
        seqs = []
        for answer in accepted:
            full = tokenizer(prompt + " " + answer)["input_ids"]
            assert full[: len(ids)] == ids
            seqs.append(full[len(ids) : len(ids) + 2])
        want.append(float(any(pair[: len(s)] == s for s in seqs)))
    got = prefix_accuracy(model, tokenizer, prompts, answers, " ", pad_token_id(tokenizer), CPU,
                          64, 2, n_tokens=2)  # fmt: skip
    np.testing.assert_array_equal(got, want)
    assert want == [0.0, 0.0, 1.0, 0.0]
    one = prefix_accuracy(model, tokenizer, prompts, answers, " ", pad_token_id(tokenizer), CPU,
                          64, 2)  # fmt: skip
    assert one[3] == 1.0  # the first token alone starts an accepted answer


def test_zeroing_a_down_proj_unit_changes_the_output_only_through_that_unit(load):
    model, tokenizer = load("llama")
    ids = torch.tensor([tokenizer("the quick brown fox")["input_ids"]])
    layers = decoder_layers(model)
    width = model.config.hidden_size

    def run(*hooks):
        seen = {}

        def keep(layer):
            return lambda _m, _i, out: seen.__setitem__(layer, out.clone())

        handles = [layers[i].mlp.down_proj.register_forward_hook(keep(i)) for i in range(3)]
        handles += [layers[1].mlp.down_proj.register_forward_hook(h) for h in hooks]
        try:
            with torch.no_grad():
                logits = model(input_ids=ids).logits
        finally:
            for handle in handles:
                handle.remove()
        return logits, seen

    plain, plain_seen = run()
    chosen = ModuleNeurons({"down": {1: torch.tensor([5])}}, {"down": width})
    with deactivate_neurons(model, chosen):
        # hooks registered inside the context run after the intervention's: they see its output
        off, off_seen = run()
    assert not layers[1].mlp.down_proj._forward_hooks  # the context removed its hook

    def by_hand(_m, _i, out):
        out = out.clone()
        out[..., 5] = 0
        return out

    manual, _ = run(by_hand)
    torch.testing.assert_close(off, manual)
    assert not torch.allclose(off, plain)
    torch.testing.assert_close(off_seen[0], plain_seen[0])  # upstream untouched
    changed = (off_seen[1] != plain_seen[1]).any(dim=(0, 1))
    assert changed.nonzero().flatten().tolist() == [5] and (off_seen[1][..., 5] == 0).all()
    with pytest.raises(ValueError, match="mode 'mean'"), deactivate_neurons(model, chosen, "mean"):
        pass


def test_module_controls_match_each_layer_and_module_outside_the_set():
    neurons = ModuleNeurons(
        {"gate": {0: torch.tensor([1, 2]), 2: torch.tensor([0])}, "down": {1: torch.tensor([3])}},
        {"gate": 48, "down": 32},
    )
    drawn = module_control(neurons, seed=0)
    assert list(drawn.sets) == ["gate", "down"] and drawn.widths == neurons.widths
    for module, per_layer in neurons.sets.items():
        assert {layer: idx.numel() for layer, idx in drawn.sets[module].items()} == {
            layer: idx.numel() for layer, idx in per_layer.items()
        }
        for layer, idx in per_layer.items():
            assert not set(idx.tolist()) & set(drawn.sets[module][layer].tolist())
    again = module_control(neurons, seed=0)
    assert all(torch.equal(again.sets[m][la], drawn.sets[m][la])
               for m in drawn.sets for la in drawn.sets[m])  # fmt: skip
    matched = Controls(draw="matched", bins=torch.zeros(3, 48, dtype=torch.long))
    assert matched.draw_name(neurons) == "uniform"  # no activation levels for projections


def module_rows(relation_seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(relation_seed)
    rows = []
    for rank, (module, width) in enumerate([("gate", 48), ("up", 48), ("down", 32)] * 3, start=1):
        rows.append((int(rng.integers(0, 3)), module, int(rng.integers(0, width)), rank, True))
    return pl.DataFrame(
        rows, schema={"layer": pl.Int32, "module": pl.String, "neuron": pl.Int32,
                      "rank": pl.Int64, "selected": pl.Boolean}, orient="row",
    ).unique(["layer", "module", "neuron"], keep="first", maintain_order=True).with_columns(
        score=1.0  # all tied: only the rank orders them
    )  # fmt: skip


def test_top_fraction_follows_the_rank_and_keeps_each_neurons_module():
    frame = module_rows(0)
    top = top_fraction(frame, 0.2, {"gate": 48, "up": 48, "down": 32})
    first = frame.sort("rank").head(max(1, round(0.2 * frame.height)))
    assert isinstance(top, ModuleNeurons)
    got = {(layer, m, int(n)) for m, s in top.sets.items() for layer, idx in s.items() for n in idx}
    assert got == set(first.select("layer", "module", "neuron").iter_rows())
    with pytest.raises(ValueError, match="widths"):
        top_fraction(frame, 0.2)


def test_relation_matrix_switches_off_projection_neurons_beside_per_module_controls(load):
    model, tokenizer = load("llama")
    prompts = {
        "capital": (["the quick brown", "le renard brun"], [["fox"], ["rapide"]]),
        "city": (["der Hund", "le chien"], [["x"], ["y"]]),
    }
    neurons = {"capital": module_rows(1), "city": module_rows(2)}
    frame = relation_matrix(
        model, tokenizer, neurons, prompts, "en", [0.5, 1.0], " ", SEEDS,
        pad_token_id(tokenizer), CPU, n_boot=20, batch_tokens=64, max_batch_size=2,
    )  # fmt: skip
    random = frame.filter(control="random")
    assert set(random["control_draw"]) == {"uniform"}
    assert (
        frame.filter(control="none")["control_draw"].null_count()
        == frame.filter(control="none").height
    )
    own = frame.filter(fraction=1.0, control="none", intervened="capital", evaluated="capital")
    assert own["n_neurons"].item() == neurons["capital"].height
    assert set(random.filter(fraction=1.0, intervened="capital")["n_neurons"]) == {
        neurons["capital"].height
    }
