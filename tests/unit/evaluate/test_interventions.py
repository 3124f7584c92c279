"""Interventions: deactivated neurons read as zero / the mean / scaled at the down projection,
random control sets, the FFN transplant against per-row hooks and a monkey-patched module
(also inside cached generation), and composition."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import polars as pl
import pytest
import torch
from tiny import FAMILIES
from torch import nn

from polyneuron.evaluate.interventions import (
    Operation,
    apply_operations,
    deactivate_neurons,
    neuron_set_from_frame,
    random_control,
    split_like,
)
from polyneuron.model.adapters import activation_modules, decoder_layers
from polyneuron.model.steer import (
    activation_addition,
    compose,
    ffn_output_module,
    ffn_transplant,
    record_mlp_output,
)

TEXTS = ['English: "water" → German:', "the quick brown fox", 'French: "eau" → English:']
OTHER = ["der schnelle braune Fuchs springt", "水", "le renard brun rapide saute"]
pytestmark = pytest.mark.usefixtures("one_thread")
N_NEURONS = 48  # tiny models: intermediate size 48, 3 layers, hidden 32


def encode(tokenizer, texts: list[str], side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    tokenizer.padding_side = side
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    return batch["input_ids"], batch["attention_mask"]


def down_projection(model: nn.Module, layer: int) -> nn.Module:
    mlp = decoder_layers(model)[layer].mlp
    return mlp.c_proj if model.config.model_type == "gpt2" else mlp.down_proj


@contextmanager
def recording_down_inputs(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Each layer's down-projection input, in layer order, of the forward passes run inside."""
    seen: list[torch.Tensor] = []
    handles = [
        down_projection(model, layer).register_forward_pre_hook(
            lambda _m, args: seen.append(args[0].detach().clone())
        )
        for layer in range(len(decoder_layers(model)))
    ]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def run(model, ids, mask) -> tuple[torch.Tensor, list[torch.Tensor]]:
    with torch.no_grad(), recording_down_inputs(model) as seen:
        logits = model(input_ids=ids, attention_mask=mask).logits
    return logits, seen


def others(index: list[int]) -> torch.Tensor:
    keep = torch.ones(N_NEURONS, dtype=torch.bool)
    keep[index] = False
    return keep


# --------------------------------------------------------------------------- neuron sets


def test_neuron_set_from_frame_keeps_selected_rows_sorted_and_distinct():
    frame = pl.DataFrame(
        {
            "layer": [2, 0, 2, 2, 1, 0],
            "neuron": [7, 3, 1, 7, 5, 9],
            "selected": [True, True, True, True, False, False],
        }
    )
    got = neuron_set_from_frame(frame)
    assert list(got) == [0, 2]
    assert got[0].tolist() == [3] and got[2].tolist() == [1, 7]
    assert got[2].dtype == torch.long
    everything = neuron_set_from_frame(frame.drop("selected"))
    assert {k: v.tolist() for k, v in everything.items()} == {0: [3, 9], 1: [5], 2: [1, 7]}
    with pytest.raises(ValueError, match="neuron"):
        neuron_set_from_frame(frame.drop("neuron"))


# --------------------------------------------------------------------------- deactivation


@pytest.mark.parametrize("family", FAMILIES)
def test_zeroed_neurons_read_zero_at_the_down_projection(load, family):
    model, tokenizer = load(family)
    ids, mask = encode(tokenizer, TEXTS)
    chosen = {1: [0, 5, 47], 2: [3, 10]}
    plain, before = run(model, ids, mask)
    with deactivate_neurons(model, {k: torch.tensor(v) for k, v in chosen.items()}):
        zeroed, during = run(model, ids, mask)
    after, _ = run(model, ids, mask)
    assert torch.equal(during[0], before[0])  # upstream of the first deactivated layer
    assert torch.equal(during[1][..., chosen[1]], torch.zeros_like(during[1][..., chosen[1]]))
    keep = others(chosen[1])
    assert torch.equal(during[1][..., keep], before[1][..., keep])
    assert (during[2][..., chosen[2]] == 0).all()
    assert (before[1][..., chosen[1]] != 0).any()  # the neurons were alive
    assert not torch.allclose(zeroed, plain)
    torch.testing.assert_close(after, plain, rtol=0, atol=0)  # the hooks are gone


@pytest.mark.parametrize("family", ["llama", "gemma2", "gpt2"])
def test_mean_mode_writes_the_means(load, family):
    model, tokenizer = load(family)
    ids, mask = encode(tokenizer, TEXTS)
    index = [2, 11, 30]
    means = {1: torch.linspace(-1.0, 1.0, N_NEURONS)}
    act = activation_modules(model)[1]
    mlp = decoder_layers(model)[1].mlp
    seen: dict[str, torch.Tensor] = {}

    def keep(name):
        return lambda _m, _i, out: seen.__setitem__(name, out.detach().clone())

    gated = family != "gpt2"
    with torch.no_grad():
        handles = [act.register_forward_hook(keep("plain_act"))]
        if gated:
            handles.append(mlp.up_proj.register_forward_hook(keep("up")))
        _, before = run(model, ids, mask)
        for handle in handles:
            handle.remove()
        with deactivate_neurons(model, {1: torch.tensor(index)}, "mean", means=means):
            handle = act.register_forward_hook(keep("act"))  # after the intervention's hook
            _, during = run(model, ids, mask)
            handle.remove()
    want = means[1][index].expand(*seen["act"].shape[:-1], len(index))
    assert torch.equal(seen["act"][..., index], want)
    rest = others(index)
    assert torch.equal(seen["act"][..., rest], seen["plain_act"][..., rest])
    down_want = want * seen["up"][..., index] if gated else want
    torch.testing.assert_close(during[1][..., index], down_want)
    assert torch.equal(during[1][..., rest], before[1][..., rest])


@pytest.mark.parametrize("family", ["llama", "gemma2", "gpt2"])
def test_scale_mode_multiplies_the_activations(load, family):
    model, tokenizer = load(family)
    ids, mask = encode(tokenizer, TEXTS)
    index = [1, 4, 40]
    _, before = run(model, ids, mask)
    with deactivate_neurons(model, {0: torch.tensor(index)}, "scale", factor=5.0):
        _, during = run(model, ids, mask)
    torch.testing.assert_close(during[0][..., index], before[0][..., index] * 5.0)
    rest = others(index)
    assert torch.equal(during[0][..., rest], before[0][..., rest])
    assert not torch.allclose(during[1], before[1])


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_mixed_operations_scale_one_part_and_zero_the_other(load, family):
    model, tokenizer = load(family)
    ids, mask = encode(tokenizer, TEXTS)
    support, conflict = [2, 7], [3, 30]
    _, before = run(model, ids, mask)
    operations = (
        Operation({0: torch.tensor(support)}, "scale", 5.0),
        Operation({0: torch.tensor(conflict)}, "zero"),
    )
    with apply_operations(model, operations):
        _, during = run(model, ids, mask)
    torch.testing.assert_close(during[0][..., support], before[0][..., support] * 5.0)
    assert torch.equal(during[0][..., conflict], torch.zeros_like(during[0][..., conflict]))
    rest = others(support + conflict)
    assert torch.equal(during[0][..., rest], before[0][..., rest])
    _, after = run(model, ids, mask)
    assert torch.equal(after[0], before[0])  # every hook is gone


def test_a_control_is_split_like_the_set_level_by_level():
    bins = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3], [0, 1, 2, 3, 0, 1, 2, 3]])
    parts = (
        Operation({0: torch.tensor([0, 4]), 1: torch.tensor([3])}, "scale", 5.0),
        Operation({0: torch.tensor([6])}, "zero"),
    )
    # a matched control: the same levels per layer (bins 0, 2 and 3 in layer 0; 3 in layer 1)
    control = {0: torch.tensor([1, 5, 7]), 1: torch.tensor([7])}
    split = split_like(parts, control, bins)
    assert [op.mode for op in split] == ["scale", "zero"] and split[0].factor == 5.0
    assert {k: v.tolist() for k, v in split[0].neurons.items()} == {0: [1, 5], 1: [7]}
    assert {k: v.tolist() for k, v in split[1].neurons.items()} == {0: [7]}
    with pytest.raises(ValueError, match="must not share neurons"):
        split_like((parts[0], Operation({0: torch.tensor([4])})), control, bins)
    with pytest.raises(ValueError, match="control has 2 neurons, the set 3"):
        split_like(parts, {0: torch.tensor([1, 5]), 1: torch.tensor([7])}, bins)


def test_deactivation_errors_name_the_fault_and_hooks_go_on_exceptions(load):
    model, tokenizer = load("llama")
    one = {1: torch.tensor([3])}
    with pytest.raises(ValueError, match="'half'"), deactivate_neurons(model, one, "half"):
        pass
    with pytest.raises(ValueError, match="needs means"), deactivate_neurons(model, one, "mean"):
        pass
    bad_means = {0: torch.zeros(N_NEURONS)}
    with (
        pytest.raises(ValueError, match="no means for layer 1"),
        deactivate_neurons(model, one, "mean", means=bad_means),
    ):
        pass
    with pytest.raises(ValueError, match="neuron index 48"), deactivate_neurons(model, {0: [48]}):
        pass
    with pytest.raises(ValueError, match="neuron index -1"), deactivate_neurons(model, {0: [-1]}):
        pass
    with pytest.raises(ValueError, match="layer 3"), deactivate_neurons(model, {3: [0]}):
        pass
    ids, mask = encode(tokenizer, TEXTS)
    plain, _ = run(model, ids, mask)
    with pytest.raises(RuntimeError, match="boom"), deactivate_neurons(model, one):
        raise RuntimeError("boom")
    assert all(not m._forward_hooks for m in activation_modules(model))
    torch.testing.assert_close(run(model, ids, mask)[0], plain, rtol=0, atol=0)


# --------------------------------------------------------------------------- random control


def test_random_control_matches_counts_avoids_the_set_and_is_seeded():
    chosen = {0: torch.tensor([1, 2, 3]), 2: torch.tensor([0, 47]), 1: torch.tensor([], dtype=int)}
    a = random_control(chosen, N_NEURONS, seed=7)
    assert {k: v.numel() for k, v in a.items()} == {0: 3, 1: 0, 2: 2}
    for layer, index in a.items():
        assert index.unique().numel() == index.numel()
        assert ((index >= 0) & (index < N_NEURONS)).all()
        assert not set(index.tolist()) & set(chosen[layer].tolist())
    again = random_control(chosen, N_NEURONS, seed=7)
    assert all(torch.equal(a[k], again[k]) for k in a)
    draws = [random_control(chosen, N_NEURONS, seed=s) for s in range(8)]
    assert len({tuple(d[0].tolist()) + tuple(d[2].tolist()) for d in draws}) > 1
    with pytest.raises(ValueError, match="cannot draw 30"):
        random_control({0: torch.arange(30)}, N_NEURONS, seed=0)
    whole = random_control({0: torch.arange(30)}, N_NEURONS, seed=0, exclude=False)
    assert whole[0].numel() == 30
    with pytest.raises(ValueError, match="neuron index 48"):
        random_control({0: torch.tensor([48])}, N_NEURONS, seed=0)


def test_random_control_is_uniform_over_the_other_neurons():
    counts = torch.zeros(10)
    for seed in range(3000):
        counts[random_control({0: torch.tensor([0, 1])}, 10, seed=seed)[0]] += 1
    assert counts[:2].sum() == 0
    # 6000 draws over 8 neurons: 750 expected each, sd ~ 26
    assert (counts[2:] - 750).abs().max() < 120


# --------------------------------------------------------------------------- FFN transplant


def test_the_ffn_output_is_what_the_block_adds_to_the_residual(load):
    for family in FAMILIES:
        model, _ = load(family)
        layer = decoder_layers(model)[1]
        post = getattr(layer, "post_feedforward_layernorm", None)
        want = post if family in ("gemma2", "gemma3") else layer.mlp
        assert ffn_output_module(model, 1) is want


@pytest.mark.parametrize("family", ["llama", "gemma2", "gemma3", "gpt2"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_recorded_mlp_output_is_each_rows_own_last_token_output(load, family, side):
    model, tokenizer = load(family)
    ids, mask = encode(tokenizer, TEXTS, side)
    got = record_mlp_output(model, 1, ids, mask)
    assert got.shape == (len(TEXTS), 32)
    outputs: list[torch.Tensor] = []
    handle = ffn_output_module(model, 1).register_forward_hook(
        lambda _m, _i, out: outputs.append(out[0, -1].clone())
    )
    with torch.no_grad():
        for row in range(len(TEXTS)):
            model(input_ids=ids[row, mask[row].bool()][None])
    handle.remove()
    torch.testing.assert_close(got, torch.stack(outputs), atol=1e-5, rtol=1e-4)
    whole = record_mlp_output(model, 1, ids[:1, mask[0].bool()])  # no mask: the last token
    torch.testing.assert_close(whole[0], outputs[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", ["llama", "gemma2", "gpt2"])
def test_transplant_writes_the_vector_and_equals_a_patched_module(load, family):
    model, tokenizer = load(family)
    source, source_mask = encode(tokenizer, OTHER)
    vectors = record_mlp_output(model, 1, source, source_mask)
    ids, mask = encode(tokenizer, TEXTS)
    positions = mask.sum(1) - 1  # right padding: each row's last token
    module = ffn_output_module(model, 1)
    outputs: list[torch.Tensor] = []
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=mask).logits
        handle = module.register_forward_hook(lambda _m, _i, out: outputs.append(out.clone()))
        model(input_ids=ids, attention_mask=mask)
        handle.remove()
        with ffn_transplant(model, 1, vectors, positions):
            # registered after the transplant's hook: sees what the block adds
            handle = module.register_forward_hook(lambda _m, _i, out: outputs.append(out.clone()))
            got = model(input_ids=ids, attention_mask=mask).logits
            handle.remove()

        original = module.forward

        def patched(*args, **kwargs):
            out = original(*args, **kwargs).clone()
            for row, position in enumerate(positions.tolist()):
                out[row, position] = vectors[row]
            return out

        module.forward = patched
        try:
            want = model(input_ids=ids, attention_mask=mask).logits
        finally:
            del module.forward
    before, during = outputs
    rows = torch.arange(len(TEXTS))
    assert torch.equal(during[rows, positions], vectors)
    untouched = torch.ones(during.shape[:2], dtype=torch.bool)
    untouched[rows, positions] = False
    assert torch.equal(during[untouched], before[untouched])
    assert not torch.allclose(got, plain)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).logits, plain)


@pytest.mark.parametrize("family", ["llama", "gemma2", "gpt2"])
def test_transplant_during_cached_generation_touches_only_the_prompt_pass(load, family):
    model, tokenizer = load(family)
    ids, mask = encode(tokenizer, TEXTS[:2], side="left")
    longest = int(mask.sum(1).argmax())
    assert mask[longest].all() and not mask[1 - longest].all()
    seq, new = ids.shape[1], 4
    vectors = record_mlp_output(model, 1, *encode(tokenizer, OTHER[:2]))
    # the longest row's first token, which a one-token step would wrongly hit at its index 0,
    # and the other row's last token
    positions = torch.full((2,), seq - 1)
    positions[longest] = 0
    module = ffn_output_module(model, 1)
    raw: list[torch.Tensor] = []
    final: list[torch.Tensor] = []
    settings = {"max_new_tokens": new, "min_new_tokens": new, "do_sample": False}
    settings |= {"pad_token_id": tokenizer.pad_token_id}
    first = module.register_forward_hook(lambda _m, _i, out: raw.append(out.clone()))
    try:
        with torch.no_grad(), ffn_transplant(model, 1, vectors, positions):
            last = module.register_forward_hook(lambda _m, _i, out: final.append(out.clone()))
            cached = model.generate(
                input_ids=ids, attention_mask=mask, use_cache=True, **settings,
                output_scores=True, return_dict_in_generate=True,
            )  # fmt: skip
            last.remove()
            uncached = model.generate(
                input_ids=ids, attention_mask=mask, use_cache=False, **settings,
                output_scores=True, return_dict_in_generate=True,
            )  # fmt: skip
        plain = model.generate(
            input_ids=ids, attention_mask=mask, **settings,
            output_scores=True, return_dict_in_generate=True,
        )  # fmt: skip
    finally:
        first.remove()
    assert cached.sequences.shape == (2, seq + new)
    assert [f.shape[1] for f in final] == [seq] + [1] * (new - 1)
    rows = torch.arange(2)
    assert torch.equal(final[0][rows, positions], vectors)
    untouched = torch.ones(2, seq, dtype=torch.bool)
    untouched[rows, positions] = False
    assert torch.equal(final[0][untouched], raw[0][untouched])
    for step in range(1, new):  # the one-token steps pass through unchanged
        assert torch.equal(final[step], raw[step])
    # with the cache, the transplanted prompt is remembered; without, every pass redoes it
    assert torch.equal(cached.sequences, uncached.sequences)
    for a, b in zip(cached.scores, uncached.scores, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(plain.scores[0], cached.scores[0])  # the transplant mattered


def test_transplant_checks_its_shapes(load):
    model, tokenizer = load("llama")
    ids, mask = encode(tokenizer, TEXTS)
    with (
        pytest.raises(ValueError, match="vectors must be"),
        ffn_transplant(model, 1, torch.zeros(3, 32), torch.zeros(2, dtype=torch.long)),
    ):
        pass
    with (
        pytest.raises(ValueError, match="forward batch of 3 rows"),
        ffn_transplant(model, 1, torch.zeros(2, 32), torch.zeros(2, dtype=torch.long)),
        torch.no_grad(),
    ):
        model(input_ids=ids, attention_mask=mask)
    with pytest.raises(ValueError, match="layer 5"):
        record_mlp_output(model, 5, ids, mask)
    assert not ffn_output_module(model, 1)._forward_hooks


# --------------------------------------------------------------------------- composition


def test_compose_applies_every_intervention_like_nested_contexts(load):
    model, tokenizer = load("llama")
    ids, mask = encode(tokenizer, TEXTS)
    vectors = record_mlp_output(model, 2, *encode(tokenizer, OTHER))
    positions = mask.sum(1) - 1
    steer = torch.randn(32, generator=torch.Generator().manual_seed(3))

    def contexts():
        return (
            deactivate_neurons(model, {1: torch.tensor([0, 7])}),
            ffn_transplant(model, 2, vectors, positions),
            activation_addition(model, steer, layer=0, coeff=0.5),
        )

    outputs: list[torch.Tensor] = []
    module = ffn_output_module(model, 2)
    with torch.no_grad():
        plain, _ = run(model, ids, mask)
        with compose(*contexts()) as entered:
            handle = module.register_forward_hook(lambda _m, _i, out: outputs.append(out))
            got, seen = run(model, ids, mask)
            handle.remove()
        a, b, c = contexts()
        with a, b, c:
            nested, _ = run(model, ids, mask)
        singles = []
        for context in contexts():
            with context:
                singles.append(run(model, ids, mask)[0])
    assert entered == [None, None, None]
    assert (seen[1][..., [0, 7]] == 0).all()
    assert torch.equal(outputs[0][torch.arange(3), positions], vectors)
    torch.testing.assert_close(got, nested, rtol=0, atol=0)
    for single in [plain, *singles]:
        assert not torch.allclose(got, single)
    torch.testing.assert_close(run(model, ids, mask)[0], plain, rtol=0, atol=0)
