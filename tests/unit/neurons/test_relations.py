"""Relation neurons: average precision against a hand count, sampling, top-N, every neuron's
scores per relation and the overlap of languages' relation neurons."""

import logging

import polars as pl
import pytest
import torch

from polyneuron.neurons.relations import (
    average_precision,
    classification_rows,
    relation_neurons,
    relation_overlap,
    scaled_top_n,
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


def test_top_n_is_scaled_to_the_model():
    assert scaled_top_n(3000, 32 * 11008) == 3000
    assert scaled_top_n(3000, 18 * 2048) == round(3000 * 36864 / 352256)
    assert scaled_top_n(3000, 10) == 1


def test_relation_neurons_score_every_neuron_and_select_the_top(caplog):
    labels = ["a", "a", "b", "b", "b"]
    acts = torch.zeros(5, 2, 3)  # [example, layer, neuron]
    acts[:, 0, 1] = torch.tensor([5.0, 4.0, 1.0, 0.0, 2.0])  # ranks a's prompts first
    acts[:, 1, 2] = torch.tensor([0.0, 1.0, 3.0, 4.0, 5.0])  # ranks b's prompts first
    with caplog.at_level(logging.INFO, logger="polyneuron"):
        frame, masks = relation_neurons(acts, labels, "de", top_n=1, reference=6, ratio=4)
    assert frame.schema == pl.Schema(
        {"layer": pl.Int32, "neuron": pl.Int32, "group": pl.String, "lang": pl.String,
         "score": pl.Float64, "selected": pl.Boolean}
    )  # fmt: skip
    assert frame.height == 2 * 6 and set(frame["lang"]) == {"de"}
    best = frame.filter("selected").select("group", "layer", "neuron").rows()
    assert best == [("a", 0, 1), ("b", 1, 2)]  # k = round(1 * 6 / 6) = 1 per relation
    scores = {(g, la, n): sc for g, la, n, sc in frame.select("group", "layer", "neuron",
                                                              "score").iter_rows()}  # fmt: skip
    assert scores["a", 0, 1] == scores["b", 1, 2] == pytest.approx(1.0)
    assert masks["a"].tolist() == [False, True, False, False, False, False]
    assert "de a: 5 prompts, top 1 neurons, best AP 1.000" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="polyneuron"):
        lonely, none = relation_neurons(acts, ["c"] * 5, "fr", top_n=1, reference=6)
    assert lonely.height == 0 and lonely.schema == frame.schema and none == {}
    assert "fr c: no other relation to contrast with; skipped" in caplog.text


def test_relation_overlap_compares_each_relations_languages():
    masks = {
        ("a", "de"): torch.tensor([True, True, False, False]),
        ("b", "de"): torch.tensor([False, False, True, False]),
        ("a", "en"): torch.tensor([False, True, True, False]),
    }
    table = relation_overlap(masks)
    assert table.columns == ["group", "lang_a", "lang_b", "n_a", "n_b", "n_overlap", "jaccard"]
    assert table.rows() == [  # in the masks' order: (a, de), (b, de), (a, en)
        ("a", "de", "de", 2, 2, 2, 1.0),
        ("a", "de", "en", 2, 2, 1, 1 / 3),
        ("b", "de", "de", 1, 1, 1, 1.0),
        ("a", "en", "de", 2, 2, 1, 1 / 3),
        ("a", "en", "en", 2, 2, 2, 1.0),
    ]
