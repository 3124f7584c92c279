"""Config checks: the schema's violations as one short message naming the key (with the closest
known key for a typo), and every inconsistent key reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import minimal_config

from polyneuron import PolyneuronError
from polyneuron.plan.config import check_config, schema_problem

SCHEMA = yaml.safe_load(
    (Path(__file__).parents[3] / "workflow/schemas/config.schema.yaml").read_text()
)


def test_a_mistyped_top_level_key_is_named_with_the_key_it_resembles():
    config = yaml.safe_load((Path(__file__).parents[3] / "config.yaml").read_text())
    config["langauges"] = config.pop("languages")
    problem = schema_problem(config, SCHEMA)
    assert problem.startswith("config key langauges: unknown key; did you mean languages?")
    assert len(problem.splitlines()) == 1


def test_a_nested_typo_names_its_full_key():
    problem = schema_problem({**minimal_config(), "lape": {"top_rat": 0.1}}, SCHEMA)
    assert "config key lape.top_rat: unknown key; did you mean lape.top_rate?" in problem


def test_a_wrong_type_is_one_line_naming_the_key():
    config = yaml.safe_load((Path(__file__).parents[3] / "config.yaml").read_text())
    config["extraction"] = {"shards": "two"}
    problem = schema_problem(config, SCHEMA)
    assert problem.startswith("config key extraction.shards: 'two' is not of type 'integer'")
    assert "\n" not in problem and len(problem) < 300


def test_the_shipped_config_is_valid():
    config = yaml.safe_load((Path(__file__).parents[3] / "config.yaml").read_text())
    assert schema_problem(config, SCHEMA) is None


def test_every_inconsistent_language_key_is_reported_at_once():
    config = minimal_config(
        bridges={"targets": ["sw"], "candidates": None},
        ablation={"languages": ["en", "fr"]},
        evaluation={"overlap": {"languages": ["en", "de", "ru"]}, "bli": {"languages": ["fr"]}},
    )
    with pytest.raises(PolyneuronError) as raised:
        check_config(config)
    message = str(raised.value)
    assert message.startswith("4 problems:")
    for key, lang in [
        ("bridges.targets", "sw"),
        ("ablation.languages", "fr"),
        ("evaluation.overlap.languages", "ru"),
        ("evaluation.bli.languages", "fr"),
    ]:
        assert f"config key {key}: '{lang}' not among languages" in message


def test_one_problem_is_reported_alone():
    with pytest.raises(PolyneuronError, match=r"^config key evaluation.overlap.languages: 'ru'"):
        check_config(minimal_config(evaluation={"overlap": {"languages": ["ru"]}}))


@pytest.mark.parametrize("window", ["ref", [3], [1, "x"]])
def test_a_bad_bridge_window_is_one_line_naming_the_key(window):
    problem = schema_problem({**minimal_config(), "bridges": {"window": window}}, SCHEMA)
    assert problem.startswith("config key bridges.window")
    assert "\n" not in problem and len(problem) < 300


@pytest.mark.parametrize("window", ["reference", None, [6, 12]])
def test_the_bridge_window_takes_reference_null_or_two_layers(window):
    assert schema_problem({**minimal_config(), "bridges": {"window": window}}, SCHEMA) is None


def test_mean_ablation_of_projection_relation_neurons_is_refused_before_any_job():
    config = minimal_config(
        ablation={"languages": None, "mode": "mean"}, relation_neurons={"pool": "reference"}
    )
    with pytest.raises(PolyneuronError, match=r"config key ablation.mode: mean cannot .*pool"):
        check_config(config)
    check_config({**config, "relation_neurons": {"pool": "activation"}})
