import math

import pytest
import torch

from polyneuron.neurons.lape import (
    filtered_entropy,
    kth_quantile,
    lape_entropy,
    lowest_entropy,
    select_lape,
)

# act_prob[layer, neuron, lang], two layers of five neurons, languages a and b
PROBS = torch.tensor(
    [
        [[0.9, 0.0], [0.5, 0.5], [0.0, 0.0], [0.8, 0.1], [0.2, 0.3]],
        [[0.1, 0.95], [0.6, 0.7], [0.05, 0.0], [0.4, 0.4], [0.3, 0.9]],
    ],
    dtype=torch.float64,
)


def entropy2(p: float, q: float) -> float:
    total = p + q
    return -sum(x / total * math.log(x / total) for x in (p, q) if x > 0)


def test_kth_quantile_is_the_reference_kthvalue():
    # 20 values; round(20 * 0.8) = 16th smallest. Sorted: 0 0 0 0 .05 .1 .1 .2 .3 .3 .4 .4
    # .5 .5 .6 .7 ...
    assert kth_quantile(PROBS, 0.8) == pytest.approx(0.7)
    assert kth_quantile(PROBS, 0.5) == pytest.approx(0.3)


def test_lape_entropy_matches_hand_computation_and_treats_silent_neurons_as_zero():
    entropy = lape_entropy(PROBS)
    assert entropy[0, 0] == pytest.approx(0.0)
    assert entropy[0, 1] == pytest.approx(math.log(2))
    assert entropy[0, 2] == pytest.approx(0.0)  # never active: NaN -> 0 as in the reference
    assert entropy[0, 3] == pytest.approx(entropy2(0.8, 0.1))
    assert entropy[1, 4] == pytest.approx(entropy2(0.3, 0.9))


def test_filtered_entropy_and_its_lowest_share():
    entropy = filtered_entropy(PROBS, 0.8)  # tau = 0.7
    above = [(0, 0), (0, 3), (1, 0), (1, 4)]
    for layer in range(2):
        for neuron in range(5):
            want = lape_entropy(PROBS)[layer, neuron] if (layer, neuron) in above else math.inf
            assert entropy[layer, neuron] == pytest.approx(want)
    assert lowest_entropy(entropy, 0.3).tolist() == [0, 5, 3]  # flat (0,0), (1,0), (0,3)
    ties = torch.tensor([[1.0, 0.5], [0.5, math.inf]])
    assert lowest_entropy(ties, 0.75).tolist() == [1, 2, 0]  # ties in (layer, neuron) order


def test_lape_keeps_lowest_entropy_neurons_above_tau():
    # tau = 0.7: only (0,0) (0,3) (1,0) (1,4) have a probability above it; (0,2) has entropy
    # 0 but is never active, so it gets +inf. Lowest three entropies: (0,0)=0,
    # (1,0)=H(.1,.95)≈0.314, (0,3)=H(.8,.1)≈0.349; (1,4)=H(.3,.9)≈0.562 is dropped.
    out = select_lape(PROBS, ["a", "b"], filter_rate=0.8, top_rate=0.3, activation_bar_ratio=0.8)
    assert out.select("layer", "neuron", "lang").rows() == [(0, 0, "a"), (0, 3, "a"), (1, 0, "b")]
    assert out["act_prob"].to_list() == pytest.approx([0.9, 0.8, 0.95])
    assert out["entropy"].to_list() == pytest.approx([0.0, entropy2(0.8, 0.1), entropy2(0.1, 0.95)])


def test_lape_assigns_neuron_to_every_language_above_tau():
    probs = torch.tensor([[[0.9, 0.8, 0.0], [0.1, 0.1, 0.1], [0.2, 0.0, 0.0]]], dtype=torch.float64)
    # 9 values, round(9 * 0.7) = 6th smallest: 0 0 0 0 .1 .1 -> bar = 0.1
    out = select_lape(
        probs, ["x", "y", "z"], filter_rate=0.7, top_rate=1 / 3, activation_bar_ratio=0.7
    )
    # kept: the single lowest-entropy neuron among those with p > 0.1: (0,2) has H=0 and p=.2
    assert out.select("neuron", "lang").rows() == [(2, "x")]
    out = select_lape(
        probs, ["x", "y", "z"], filter_rate=0.7, top_rate=2 / 3, activation_bar_ratio=0.7
    )
    # neuron 0 (H of [.9,.8,0]) is kept too and goes to both x and y, which are above 0.1
    assert out.select("neuron", "lang").rows() == [(0, "x"), (0, "y"), (2, "x")]


def test_lape_rejects_mismatched_language_names():
    with pytest.raises(ValueError, match="language"):
        select_lape(PROBS, ["a"])
