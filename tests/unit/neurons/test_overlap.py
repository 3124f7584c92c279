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
    assert table.columns == [*expected.columns, "threshold", "n_at_threshold"]
    assert table.select(expected.columns).drop("jaccard").rows() == expected.drop("jaccard").rows()
    assert table["threshold"].to_list() == pytest.approx([0.80, 0.80, 0.85, 0.85])
    assert table["n_at_threshold"].to_list() == [1, 1, 1, 1]
    assert table["jaccard"].to_list() == pytest.approx(expected["jaccard"].to_list())


def test_overlap_neurons_list_each_languages_set_with_its_probabilities():
    frame = overlap_neurons(PROBS, ["a", "b"], percentile=0.8)
    assert frame.columns == ["layer", "neuron", "lang", "act_prob"]
    assert frame.select("lang", "layer", "neuron").rows() == [
        ("a", 0, 7), ("a", 0, 8), ("a", 0, 9), ("b", 0, 0), ("b", 0, 1), ("b", 0, 8),
    ]  # fmt: skip
    assert frame["act_prob"].to_list() == pytest.approx([0.80, 0.90, 0.95, 0.95, 0.90, 0.85])


def test_always_on_neurons_tie_at_the_threshold_and_are_all_kept_or_cut_to_the_exact_count():
    """The Gemma case: the 99th percentile is p = 1.0 and many neurons fire on every token."""
    probs = torch.full((2, 100, 1), 0.2, dtype=torch.float64)
    probs[0, :3, 0] = 1.0  # five always-on neurons, the 99th percentile of 200 is p = 1.0
    probs[1, 10:12, 0] = 1.0
    kept = overlap_sets(probs, percentile=0.99)
    assert int(kept.sum()) == 5  # the reference's >= keeps every tie
    exact = overlap_sets(probs, percentile=0.99, ties="exact")
    assert int(exact.sum()) == 2  # round(200 * 0.01)
    assert torch.nonzero(exact[..., 0]).tolist() == [[0, 0], [0, 1]]  # ties to the lower index
    table = overlap_table(probs, ["a"], percentile=0.99)
    assert table.row(0, named=True) | {"jaccard": None} == {
        "lang_a": "a", "lang_b": "a", "n_a": 5, "n_b": 5, "n_overlap": 5, "jaccard": None,
        "threshold": 1.0, "n_at_threshold": 5,
    }  # fmt: skip
    assert overlap_table(probs, ["a"], 0.99, ties="exact")["n_a"].to_list() == [2]
    with pytest.raises(ValueError, match="ties must be one of keep, exact"):
        overlap_sets(probs, ties="first")
