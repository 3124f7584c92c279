"""Value neurons: entropy over support/conflict like LAPE, activation difference, selection."""

import math

import polars as pl
import pytest
import torch

from polyneuron.neurons.values import (
    REFERENCE_MASKS,
    mask_layers,
    value_scores,
    value_table,
)


def test_a_neuron_firing_in_one_condition_only_has_the_lowest_entropy():
    # 1 layer x 4 neurons x (support, conflict)
    prob = torch.tensor([[[0.9, 0.0], [0.5, 0.5], [0.8, 0.7], [0.01, 0.0]]])
    mean = torch.tensor([[[2.0, -1.0], [0.5, 0.5], [1.0, 0.5], [0.0, 0.0]]])
    scores = value_scores(prob, mean, filter_rate=0.375, top_rate=0.25)
    # tau = the 3rd smallest of the 8 probabilities (round(8 x 0.375)) = 0.01: neuron 3, whose
    # larger probability is not above it, is filtered out
    assert scores["entropy"][0, 0].item() == 0.0
    assert scores["entropy"][0, 1].item() == pytest.approx(math.log(2))
    p = torch.tensor([0.8, 0.7]) / 1.5
    assert scores["entropy"][0, 2].item() == pytest.approx(float(-(p * p.log()).sum()))
    assert math.isinf(scores["entropy"][0, 3].item())
    assert scores["selected"].tolist() == [[True, False, False, False]]
    assert scores["act_diff"].tolist() == [[3.0, 0.0, 0.5, 0.0]]


def test_filtered_neurons_are_never_selected_even_if_few_remain():
    prob = torch.tensor([[[0.9, 0.0], [0.0, 0.0]]])
    scores = value_scores(prob, torch.zeros_like(prob), filter_rate=0.75, top_rate=1.0)
    assert scores["selected"].tolist() == [[True, False]]


def grouped(value: str, condition: str, n_active: list[int]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "group": f"{value}/{condition}",
            "layer": [0, 0, 1, 1],
            "neuron": [0, 1, 0, 1],
            "n_tokens": [10] * 4,
            "n_active": n_active,
            "act_sum": [float(n) for n in n_active],
            "act_sqsum": [0.0] * 4,
        }
    )


def test_value_table_reads_grouped_statistics():
    stats = pl.concat(
        [
            grouped("integrity", "support", [9, 5, 1, 0]),
            grouped("integrity", "conflict", [0, 5, 1, 0]),
        ]
    )
    table = value_table(stats, "en", {"decision": 0.5}, top_rate=0.25, layers="all")
    assert table.columns == [
        "layer", "neuron", "group", "lang", "mask", "p_support", "p_conflict", "score",
        "act_diff", "selected", "assigned", "acts",
    ]  # fmt: skip
    best = table.filter("selected")
    assert best.select("layer", "neuron").rows() == [(0, 0)]
    assert best["p_support"][0] == pytest.approx(0.9) and best["act_diff"][0] == pytest.approx(0.9)
    assert best["assigned"].to_list() == ["support"] and best["acts"].to_list() == [True]
    assert table.filter(~pl.col("selected"))["assigned"].null_count() == 3
    with pytest.raises(ValueError, match="no conflict stories"):
        value_table(grouped("integrity", "support", [1, 1, 1, 1]), "en", {"decision": 0.5}, 0.25)
    with pytest.raises(ValueError, match="masks is empty"):
        value_table(stats, "en", {}, 0.25)


def test_each_mask_is_scored_at_its_own_rate_and_acts_on_its_own_layers():
    stats = pl.concat(
        [
            grouped("integrity", "support", [9, 5, 1, 0]),
            grouped("integrity", "conflict", [0, 5, 1, 0]),
        ]
    )
    table = value_table(stats, "en", REFERENCE_MASKS, top_rate=0.25)
    assert table.group_by("mask").len().sort("mask").rows() == [("decision", 4), ("semantic", 4)]
    # two layers: too few for outer layers, so decision masks act nowhere, semantic everywhere
    assert not table.filter(mask="decision")["acts"].any()
    assert table.filter(mask="semantic")["acts"].all()


def test_mask_layers_scale_the_reference_ranges_to_the_depth():
    # the reference: decision <= 4 and >= 27 of 32 layers, semantic 5-26
    assert mask_layers("decision", 32) == [0, 1, 2, 3, 4, 27, 28, 29, 30, 31]
    assert mask_layers("semantic", 32) == list(range(5, 27))
    # Gemma 3 270M's 18 layers: round(5 x 18 / 32) = 3 at each end
    assert mask_layers("decision", 18) == [0, 1, 2, 15, 16, 17]
    assert mask_layers("semantic", 18) == list(range(3, 15))
    assert mask_layers("decision", 4) == [0, 3]  # at least one at each end
    assert mask_layers("decision", 2) == [] and mask_layers("semantic", 2) == [0, 1]
    assert mask_layers("anything", 5, "all") == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="only the masks 'decision' and 'semantic'"):
        mask_layers("custom", 32)
    with pytest.raises(ValueError, match="must be one of"):
        mask_layers("decision", 32, "outer")


def test_selected_neurons_are_assigned_to_the_conditions_above_the_bar():
    # 1 layer x 4 neurons: support only, conflict only, both, neither condition high
    prob = torch.tensor([[[0.9, 0.0], [0.0, 0.8], [0.7, 0.9], [0.05, 0.0]]])
    scores = value_scores(prob, torch.zeros_like(prob), filter_rate=0.5, top_rate=1.0)
    # bar = the 4th smallest of 8 = 0.05: neuron 3 is filtered, the rest are assigned
    assert scores["selected"].tolist() == [[True, True, True, False]]
    assert scores["support"].tolist() == [[True, False, True, False]]
    assert scores["conflict"].tolist() == [[False, True, True, False]]
