"""HSIC bridge selection through Snakemake on a tiny model: outputs, caching, bad config."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
import yaml
from conftest import write_dictionaries
from safetensors import safe_open
from workflow_helpers import planned_jobs, snakemake, write_config

TARGET = "results/neurons/tiny-llama/bridges.parquet"


def config(model: Path) -> dict:
    return {
        "models": {"tiny-llama": {"source": str(model), "device": "cpu"}},
        "languages": ["en", "de", "fr", "ru"],
        "probes": {"muse": {"dir": "muse"}},
        "extraction": {"threads": 1},
        "bridges": {"targets": ["ru"], "percentile": 0.9},
    }


def update_config(workdir: Path, change) -> None:
    data = yaml.safe_load((workdir / "config.yaml").read_text(encoding="utf-8"))
    change(data)
    write_config(workdir, data)


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_models) -> Path:
    workdir = tmp_path_factory.mktemp("bridges")
    write_dictionaries(workdir / "muse")
    write_config(workdir, config(tiny_models["llama"]))
    snakemake(workdir, "--cores", "2", TARGET)
    return workdir


def test_every_candidate_is_scored_per_layer_and_one_is_chosen(built):
    table = pl.read_parquet(built / TARGET)
    assert set(table["target"]) == {"ru"} and set(table["candidate"]) == {"en", "de", "fr"}
    assert table.group_by("candidate").len()["len"].to_list() == [3, 3, 3]  # 3 layers each
    assert table.filter("selected")["candidate"].n_unique() == 1
    assert sorted(table.unique("candidate")["rank"].to_list()) == [1, 2, 3]
    # the 7 Russian words all have an English, German and French counterpart
    assert set(table["n_pairs"]) == {7}
    scored = table.filter(pl.col("n_neurons") > 0)
    assert scored.height > 0 and all(math.isfinite(s) for s in scored["score"])


def test_per_example_activations_have_one_row_per_probe(built):
    probes = pl.read_parquet(built / "results/probes/muse/ru.parquet")
    path = built / "results/activations/tiny-llama/muse/ru.examples.safetensors"
    with safe_open(str(path), framework="pt") as handle:
        tensor = handle.get_tensor("activations")
        assert handle.metadata()["split"] == "train"
    assert tensor.shape == (probes.height, 3, 48)
    assert tensor.abs().sum(dim=(1, 2)).min() > 0


def test_rerun_plans_nothing_and_a_bridge_setting_reruns_only_the_score(built):
    assert planned_jobs(built, TARGET) == {}
    update_config(built, lambda c: c["bridges"].update({"max_pairs": 5}))
    assert planned_jobs(built, TARGET) == {"score_bridges": 1}
    update_config(built, lambda c: c["bridges"].update({"max_pairs": 200}))


def test_unknown_bridge_language_is_named(built):
    update_config(built, lambda c: c["bridges"].update({"targets": ["sw"]}))
    result = snakemake(built, "--dry-run", check=False)
    assert result.returncode != 0
    assert "bridges.targets: 'sw' not among languages" in (result.stdout + result.stderr)
    update_config(built, lambda c: c["bridges"].update({"targets": ["ru"]}))
