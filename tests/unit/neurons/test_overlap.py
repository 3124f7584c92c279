import polars as pl
import pytest
import torch

from polyneuron.neurons.overlap import overlap_neurons, overlap_sets, overlap_table

# one layer, ten neurons, two languages
A = [0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 0.95]
B = [0.95, 0.90, 0.80, 0.10, 0.20, 0.30, 0.40, 0.50, 0.85, 0.60]
PROBS = torch.tensor([A, B], dtype=torch.float64).T.reshape(1, 10, 2)


def test_overlap_sets_use_each_languages_own_percentile():
    # round(10 * 0.8) = 8th smallest: a -> 0.80, b -> 0.85
    sets = overlap_sets(PROBS, percentile=0.8)
    assert torch.nonzero(sets[0, :, 0]).flatten().tolist() == [7, 8, 9]
    assert torch.nonzero(sets[0, :, 1]).flatten().tolist() == [0, 1, 8]


def test_overlap_table_counts_intersection_and_jaccard_for_every_ordered_pair():
    table = overlap_table(PROBS, ["a", "b"], percentile=0.8)
    expected = pl.DataFrame(
        {
            "lang_a": ["a", "a", "b", "b"],
            "lang_b": ["a", "b", "a", "b"],
            "n_a": [3, 3, 3, 3],
            "n_b": [3, 3, 3, 3],
            "n_overlap": [3, 1, 1, 3],  # shared: neuron 8 only
            "jaccard": [1.0, 0.2, 0.2, 1.0],  # 1 / (3 + 3 - 1)
        }
    )
    assert table.drop("jaccard").rows() == expected.drop("jaccard").rows()
    assert table["jaccard"].to_list() == pytest.approx(expected["jaccard"].to_list())


def test_overlap_neurons_list_each_languages_set_with_its_probabilities():
    frame = overlap_neurons(PROBS, ["a", "b"], percentile=0.8)
    assert frame.columns == ["layer", "neuron", "lang", "act_prob"]
    assert frame.select("lang", "layer", "neuron").rows() == [
        ("a", 0, 7), ("a", 0, 8), ("a", 0, 9), ("b", 0, 0), ("b", 0, 1), ("b", 0, 8),
    ]  # fmt: skip
    assert frame["act_prob"].to_list() == pytest.approx([0.80, 0.90, 0.95, 0.95, 0.90, 0.85])
