"""Refusal directions over languages: cosine similarities against hand values, the combined
candidates table."""

import math

import polars as pl
import pytest
import torch

from polyneuron.neurons.refusal_languages import (
    candidates_table,
    cosine_matrix,
    direction_cosines,
)


def test_cosine_matrix_against_hand_values():
    vectors = {"en": torch.tensor([1.0, 0.0]), "de": torch.tensor([1.0, 1.0])}
    got = {(a, b): c for a, b, c in cosine_matrix(vectors)}
    assert got["en", "en"] == pytest.approx(1.0)
    assert got["en", "de"] == got["de", "en"] == pytest.approx(1 / math.sqrt(2))
    assert cosine_matrix({}) == []
    zero = {(a, b): c for a, b, c in cosine_matrix({**vectors, "fr": torch.zeros(2)})}
    assert math.isnan(zero["fr", "en"]) and math.isnan(zero["fr", "fr"])
    assert zero["en", "de"] == pytest.approx(1 / math.sqrt(2))


def test_direction_cosines_of_the_selected_and_the_last_positions_per_layer():
    selected = {"en": torch.tensor([1.0, 0.0]), "de": torch.tensor([1.0, 1.0])}
    last = {  # [layer, hidden]: layer 0 is zero (both means embed the same template tokens)
        "en": torch.tensor([[0.0, 0.0], [0.0, 2.0]]),
        "de": torch.tensor([[0.0, 0.0], [0.0, -1.0]]),
    }
    table = direction_cosines(selected, last)
    assert table.schema == pl.Schema(
        {"direction": pl.String, "layer": pl.Int32, "lang_a": pl.String, "lang_b": pl.String,
         "cosine": pl.Float64}
    )  # fmt: skip
    assert table.height == 3 * 4
    chosen = table.filter(pl.col("direction") == "selected")
    assert chosen["layer"].null_count() == 4
    assert chosen.filter(lang_a="en", lang_b="de")["cosine"][0] == pytest.approx(1 / math.sqrt(2))
    layer1 = table.filter(direction="last_position", layer=1)
    assert layer1.filter(lang_a="en", lang_b="de")["cosine"][0] == pytest.approx(-1.0)
    assert table.filter(direction="last_position", layer=0)["cosine"].is_nan().all()


def test_candidates_table_joins_the_languages_in_neuron_table_terms():
    def candidates(lang: str, score: float) -> pl.DataFrame:
        return pl.DataFrame(
            {"position": [-1], "layer": [0], "ablation_score": [score], "steering_score": [0.5],
             "kl": [0.01], "reason": [None], "selected": [True], "lang": [lang], "norm": [2.0]},
            schema_overrides={"position": pl.Int32, "layer": pl.Int32, "reason": pl.String},
        )  # fmt: skip

    table = candidates_table([candidates("en", -1.0), candidates("de", -2.0)])
    assert table.columns == ["layer", "position", "group", "score", "selected", "steering_score",
                             "kl", "norm", "reason"]  # fmt: skip
    assert table.select("group", "score").rows() == [("en", -1.0), ("de", -2.0)]
