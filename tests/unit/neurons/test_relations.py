"""Relation neurons: average precision against a hand count, sampling, top-N."""

import pytest
import torch

from polyneuron.neurons.relations import (
    average_precision,
    classification_rows,
    scaled_top_n,
    top_mask,
)


def test_average_precision_matches_a_hand_count():
    # ranked high to low: +, -, +, -, +   -> precision at the hits 1/1, 2/3, 3/5
    scores = torch.tensor([[0.9], [0.8], [0.7], [0.6], [0.5]])
    labels = torch.tensor([True, False, True, False, True])
    assert average_precision(scores, labels).item() == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)


def test_columns_are_independent_and_order_of_rows_does_not_matter():
    scores = torch.tensor([[0.1, 5.0], [0.4, 1.0], [0.3, 2.0], [0.2, 3.0]])
    labels = torch.tensor([False, True, True, False])
    # column 0 ranks the two positives first: AP 1; column 1 ranks them 3rd and 4th
    # (5, 3 are negatives): precision 1/3 at rank 3 and 2/4 at rank 4
    ap = average_precision(scores, labels)
    assert ap[0].item() == pytest.approx(1.0)
    assert ap[1].item() == pytest.approx((1 / 3 + 2 / 4) / 2)
    perm = torch.tensor([2, 0, 3, 1])
    assert torch.allclose(average_precision(scores[perm], labels[perm]), ap)


def test_tied_scores_share_one_threshold():
    # all tied: one threshold with precision 2/4 and recall 1 -> AP 0.5 (as scikit-learn)
    scores = torch.ones(4, 1)
    labels = torch.tensor([True, False, True, False])
    assert average_precision(scores, labels).item() == pytest.approx(0.5)
    # a positive tied with a negative at the top: precision 1/2 there, then 2/3
    scores = torch.tensor([[3.0], [3.0], [2.0], [1.0]])
    labels = torch.tensor([True, False, True, False])
    assert average_precision(scores, labels).item() == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)


def test_no_positive_is_an_error():
    with pytest.raises(ValueError, match="at least one positive"):
        average_precision(torch.ones(3, 1), torch.zeros(3, dtype=torch.bool))


def test_negatives_are_four_times_the_positives_from_other_relations():
    labels = ["capital"] * 3 + ["currency"] * 10 + ["continent"] * 10
    rows, truth = classification_rows(labels, "capital", ratio=4, seed=0)
    assert rows[:3] == [0, 1, 2] and truth == [True] * 3 + [False] * 12
    assert all(labels[i] != "capital" for i in rows[3:]) and len(set(rows)) == 15
    assert (rows, truth) == classification_rows(labels, "capital", ratio=4, seed=0)
    few, _ = classification_rows(["a"] * 5 + ["b"] * 2, "a")
    assert len(few) == 7  # fewer negatives than 4x: all of them


def test_top_n_is_scaled_to_the_model_and_masks_the_best():
    assert scaled_top_n(3000, 32 * 11008) == 3000
    assert scaled_top_n(3000, 18 * 2048) == round(3000 * 36864 / 352256)
    assert scaled_top_n(3000, 10) == 1
    mask = top_mask(torch.tensor([[0.1, 0.9], [0.5, 0.7]]), 2)
    assert mask.tolist() == [[False, True], [False, True]]
