"""Comparable controls: activation-level bins, matched draws, pooled levels and means from the
activation shards, and the case they exist for — a constant neuron whose zeroing breaks the
model while its mean-ablation does not."""

from __future__ import annotations

import polars as pl
import pytest
import torch

from polyneuron.evaluate.controls import (
    Controls,
    level_bins,
    load_controls,
    matched_control,
    pooled_levels,
)
from polyneuron.evaluate.interventions import deactivate_neurons
from polyneuron.evaluate.matrix import ABLATION_SCHEMA, intervention_matrix, mean_metric_rows
from polyneuron.io import write_parquet


def test_level_bins_are_equal_count_ranks_within_each_layer():
    levels = torch.tensor([[0.9, 0.1, 0.5, 0.3], [0.0, 0.0, 1.0, 1.0]])
    assert level_bins(levels, 2).tolist() == [[1, 0, 1, 0], [0, 0, 1, 1]]
    assert level_bins(levels, 4).tolist() == [[3, 0, 2, 1], [0, 1, 2, 3]]  # ties by index
    assert level_bins(levels, 10).max() == 3  # never more bins than neurons
    with pytest.raises(ValueError, match="n_bins"):
        level_bins(levels, 0)


def test_a_matched_control_draws_each_neuron_s_stand_in_from_its_own_bin():
    bins = torch.arange(100).div(10, rounding_mode="floor").repeat(3, 1)  # 10 bins of 10 per layer
    chosen = {0: torch.tensor([95, 96, 3]), 2: torch.tensor([50])}
    for seed in range(5):
        control = matched_control(chosen, bins, seed)
        assert sorted(control) == [0, 2]
        assert sorted(bins[0, control[0]].tolist()) == [0, 9, 9]
        assert bins[2, control[2]].tolist() == [5]
        assert not set(control[0].tolist()) & {95, 96, 3}  # the set itself excluded
    assert torch.equal(matched_control(chosen, bins, 1)[0], matched_control(chosen, bins, 1)[0])
    assert not torch.equal(matched_control(chosen, bins, 1)[0], matched_control(chosen, bins, 2)[0])


def test_a_bin_with_too_few_neurons_lends_from_its_nearest_neighbour():
    bins = torch.tensor([[0, 0, 1, 1, 2, 2]])
    control = matched_control({0: torch.tensor([2, 3])}, bins, seed=0)  # all of bin 1 taken
    assert sorted(bins[0, control[0]].tolist()) in ([0, 0], [0, 2], [2, 2])
    assert bins[0, control[0]].min() == 0  # lower neighbour first
    with pytest.raises(ValueError, match="cannot draw 5 control neurons from 1"):
        matched_control({0: torch.tensor([0, 1, 2, 3, 4])}, bins, seed=0)


def test_controls_say_how_they_draw():
    with pytest.raises(ValueError, match="matched controls need activation-level bins"):
        Controls("matched")
    with pytest.raises(ValueError, match="one of matched, uniform"):
        Controls("similar")
    chosen = {0: torch.tensor([1])}
    assert Controls().draw_for(chosen, 4, seed=0)[0].tolist() != [1]


def shard(n_tokens: int, n_active: list[list[int]], act_sum: list[list[float]]) -> pl.DataFrame:
    layers, width = len(n_active), len(n_active[0])
    return pl.DataFrame(
        {
            "layer": [layer for layer in range(layers) for _ in range(width)],
            "neuron": list(range(width)) * layers,
            "n_tokens": [n_tokens] * layers * width,
            "n_active": [a for row in n_active for a in row],
            "act_sum": [s for row in act_sum for s in row],
            "act_sqsum": [0.0] * layers * width,
        },
        schema={"layer": pl.Int32, "neuron": pl.Int32, "n_tokens": pl.Int64,
                "n_active": pl.Int64, "act_sum": pl.Float64, "act_sqsum": pl.Float64},
    )  # fmt: skip


def test_levels_and_means_pool_every_token_of_every_language_and_shard(tmp_path):
    paths = []
    for name, frame in {
        "de-0": shard(10, [[10, 0]], [[30.0, -1.0]]),
        "de-1": shard(30, [[30, 3]], [[90.0, -3.0]]),
        "fr-0": shard(60, [[60, 3]], [[180.0, 0.0]]),
    }.items():
        paths.append(tmp_path / f"{name}.parquet")
        write_parquet(frame, paths[-1])
    with pytest.raises(ValueError, match="3 shard files for 2 languages x 2"):
        pooled_levels(paths, ["de", "fr"], shards=2)
    probability, mean = pooled_levels(paths, ["de", "de-again", "fr"], shards=1)
    assert probability.tolist() == [[1.0, 0.06]]  # 100 of 100 tokens; 6 of 100
    assert mean.tolist() == [[3.0, -0.04]]
    controls = load_controls(paths, ["de", "de-again", "fr"], 1, "matched", 2, mode="mean")
    assert controls.bins.tolist() == [[1, 0]] and controls.means[0].tolist() == [
        3.0,
        pytest.approx(-0.04),
    ]
    assert load_controls(paths, ["de", "de-again", "fr"], 1, "uniform").bins is None


def test_a_constant_neuron_zeroed_breaks_the_loss_mean_ablated_does_not(tiny_models):
    """The overlap sets' artefact in miniature: one neuron fixed at 3 feeds a large constant into
    the down projection; zeroing it moves the loss far more than replacing it by its mean, and
    its matched control comes from the neurons of its activation level."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from polyneuron.evaluate.perplexity import encoded_nll
    from polyneuron.model.adapters import activation_modules, decoder_layers
    from polyneuron.model.batches import encode, pad_token_id
    from polyneuron.model.extract import collect_stats

    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["llama"])
    cpu = torch.device("cpu")
    layer, neuron = 1, 5
    with torch.no_grad():
        decoder_layers(model)[layer].mlp.down_proj.weight[:, neuron] *= 1000

    def constant(_module, _inputs, output):
        output = output.clone()
        output[..., neuron] = 3.0
        return output

    activation_modules(model)[layer].register_forward_hook(constant)
    texts = ["the quick brown fox jumps over the lazy dog", "le chien mange", "water is wet"]
    encoded = encode(tokenizer, texts)
    stats = collect_stats(model, tokenizer, encoded, cpu)
    probability = stats.n_active.double() / stats.n_tokens[:, None]
    means = {i: (stats.act_sum[i] / stats.n_tokens[i]).float() for i in range(len(stats.act_sum))}
    assert probability[layer, neuron] == 1.0 and means[layer][neuron] == pytest.approx(3.0)

    def loss() -> float:
        nll, tokens = encoded_nll(model, encoded, pad_token_id(tokenizer), cpu)
        return float(nll.sum() / tokens.sum())

    plain = loss()
    chosen = {layer: torch.tensor([neuron])}
    with deactivate_neurons(model, chosen, "zero"):
        zeroed = loss()
    with deactivate_neurons(model, chosen, "mean", means=means):
        mean_ablated = loss()
    assert abs(zeroed - plain) > 20 * abs(mean_ablated - plain)
    assert abs(zeroed - plain) > 1e-3  # a near-uniform tiny model: small, but 20x the mean

    bins = level_bins(probability, 10)
    for seed in range(3):
        control = matched_control(chosen, bins, seed)
        assert bins[layer, control[layer]].tolist() == [bins[layer, neuron].item()]

    table = intervention_matrix(
        model,
        {"set": chosen},
        lambda: {"all": torch.tensor([loss()])},
        lambda i, base, now, n, control, seed: mean_metric_rows(
            i, base, now, "loss", n, control, seed
        ),
        seeds=[0, 1],
        mode="mean",
        controls=Controls("matched", bins, means),
    )
    assert table.schema == pl.Schema(ABLATION_SCHEMA)
    assert table["control_draw"].to_list() == [None, "matched", "matched"]
    assert abs(table["delta"][0]) < abs(zeroed - plain) / 20
