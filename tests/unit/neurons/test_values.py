"""Value neurons: entropy over support/conflict like LAPE, activation difference, selection."""

import math

import polars as pl
import pytest
import torch

from polyneuron.neurons.values import value_scores, value_table


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
    table = value_table(stats, "en", filter_rate=0.5, top_rate=0.25)
    assert table.columns == [
        "layer", "neuron", "group", "lang", "p_support", "p_conflict", "score", "act_diff",
        "selected",
    ]  # fmt: skip
    best = table.filter("selected")
    assert best.select("layer", "neuron").rows() == [(0, 0)]
    assert best["p_support"][0] == pytest.approx(0.9) and best["act_diff"][0] == pytest.approx(0.9)
    with pytest.raises(ValueError, match="no conflict stories"):
        value_table(grouped("integrity", "support", [1, 1, 1, 1]), "en", 0.5, 0.25)
