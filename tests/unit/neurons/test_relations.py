"""Relation neurons: average precision against a hand count, sampling, the pool and its top-N,
every neuron's scores per relation and module, positives limited to correctly answered prompts,
ties in a seeded order, and the overlap of languages' relation neurons."""

import logging

import polars as pl
import pytest
import torch

from polyneuron.neurons.relations import (
    POOLS,
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


def test_top_n_is_scaled_from_the_reference_pool_to_the_model_s():
    # LLaMA-2 7B: 32 layers x (gate 11008 + up 11008 + down 4096); act_fn(gate) alone: 32 x 11008
    assert POOLS == {"reference": 835584, "activation": 352256}
    assert scaled_top_n(3000, 835584) == 3000
    # Gemma 3 270M's pool: 18 x (2048 + 2048 + 640) = 85,248; 3000 x 85248 / 835584 = 306.06
    assert scaled_top_n(3000, 18 * (2048 + 2048 + 640)) == 306
    assert scaled_top_n(3000, 32 * 11008, POOLS["activation"]) == 3000
    assert scaled_top_n(3000, 18 * 2048, POOLS["activation"]) == 314  # 3000 x 36864 / 352256
    assert scaled_top_n(3000, 10) == 1


def test_relation_neurons_score_every_neuron_and_select_the_top(caplog):
    labels = ["a", "a", "b", "b", "b"]
    acts = torch.zeros(5, 2, 3)  # [example, layer, neuron]
    acts[:, 0, 1] = torch.tensor([5.0, 4.0, 1.0, 0.0, 2.0])  # ranks a's prompts first
    acts[:, 1, 2] = torch.tensor([0.0, 1.0, 3.0, 4.0, 5.0])  # ranks b's prompts first
    with caplog.at_level(logging.INFO, logger="polyneuron"):
        frame, masks = relation_neurons(acts, labels, "de", top_n=1, reference=6, ratio=4)
    assert frame.schema == pl.Schema(
        {"layer": pl.Int32, "module": pl.String, "neuron": pl.Int32, "group": pl.String,
         "lang": pl.String, "score": pl.Float64, "rank": pl.Int64, "selected": pl.Boolean}
    )  # fmt: skip
    assert set(frame["module"]) == {"act"}
    assert frame.filter("selected")["rank"].to_list() == [1, 1]
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


def test_each_neuron_row_names_its_module_and_index_within_it():
    # two layers of [gate 2 | up 2 | down 1] side by side; one neuron ranks a's prompts first
    labels = ["a", "a", "b", "b"]
    acts = torch.zeros(4, 2, 5)
    acts[:, 1, 4] = torch.tensor([3.0, 2.0, 1.0, 0.0])  # layer 1, down neuron 0
    modules = [("gate", 2), ("up", 2), ("down", 1)]
    frame, masks = relation_neurons(acts, labels, "en", top_n=1, reference=10, modules=modules)
    a = frame.filter(group="a")
    assert a.select("layer", "module", "neuron").rows() == [
        (layer, module, i) for layer in (0, 1) for module, w in modules for i in range(w)
    ]
    assert a.filter("selected").select("layer", "module", "neuron").rows() == [(1, "down", 0)]
    assert masks["a"].nonzero().flatten().tolist() == [9]  # flat over layer and pool
    with pytest.raises(ValueError, match="add up"):
        relation_neurons(acts, labels, "en", top_n=1, modules=[("gate", 2), ("down", 1)])


def test_only_correctly_answered_prompts_are_positives(caplog):
    labels = ["a", "a", "a", "b", "b", "b", "c", "c"]
    correct = [True, False, True, False, False, False, True, True]
    # neuron 0 ranks a's answered prompts (0, 2) first and a's unanswered one (1) last: AP 1
    # when prompt 1 is left out, below 1 when it counts
    acts = torch.zeros(8, 1, 2)
    acts[:, 0, 0] = torch.tensor([9.0, -9.0, 8.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    with caplog.at_level(logging.INFO, logger="polyneuron"):
        frame, masks = relation_neurons(acts, labels, "de", top_n=1, reference=2, correct=correct)
    assert frame.filter(group="a", neuron=0)["score"].item() == pytest.approx(1.0)
    assert "de a: 2 of 3 prompts answered correctly kept as positives" in caplog.text
    assert "de b: 0 of 3 prompts answered correctly kept as positives" in caplog.text
    assert "de b: no prompt answered correctly; no neurons" in caplog.text
    assert sorted(set(frame["group"])) == ["a", "c"] and sorted(masks) == ["a", "c"]
    # negatives come from every prompt of the other relations, answered or not: 4 x 2 of 5
    rows, truth = classification_rows(labels, "a", 4, 0, correct)
    assert rows[:2] == [0, 2] and truth == [True] * 2 + [False] * 5 and 1 not in rows
    everything, _ = relation_neurons(acts, labels, "de", top_n=1, reference=2)
    assert everything.filter(group="a", neuron=0)["score"].item() < 1


def test_tied_scores_are_selected_in_a_seeded_random_order_over_all_layers():
    labels = ["a"] * 4 + ["b"] * 4
    acts = torch.ones(8, 6, 10)  # every neuron ties with every other (AP 0.5)
    picks = {}
    for seed in (0, 1):
        frame, _ = relation_neurons(acts, labels, "en", top_n=12, reference=60, seed=seed)
        chosen = frame.filter(group="a", selected=True)
        picks[seed] = sorted(chosen.select("layer", "neuron").rows())
        again, _ = relation_neurons(acts, labels, "en", top_n=12, reference=60, seed=seed)
        assert (
            sorted(again.filter(group="a", selected=True).select("layer", "neuron").rows())
            == (picks[seed])
        )
        assert len(picks[seed]) == 12
        # a layer order would take layer 0's ten neurons and two of layer 1's
        assert len({layer for layer, _ in picks[seed]}) > 2
        assert sorted(frame.filter(group="a")["rank"].to_list()) == list(range(1, 61))
    assert picks[0] != picks[1]
