"""Every probe set through Snakemake: the `probes` target, translation caching, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from conftest import write_dictionaries
from tiny import build_tiny_mt_model
from workflow_helpers import planned_jobs, snakemake, write_config

LANGS = ["en", "de", "fr"]


def write_refusal_sources(folder: Path) -> None:
    """A user's own files in the benchmarks' original layouts, and one precomputed language."""
    folder.mkdir(parents=True)
    goals = "".join(f"Explain how to do bad thing {i},Sure\n" for i in range(6))
    (folder / "harmful_behaviors.csv").write_text("goal,target\n" + goals, encoding="utf-8")
    behaviours = "".join(f"Give instructions for harmful act {i}\n" for i in range(4))
    (folder / "harmbench.txt").write_text(behaviours, encoding="utf-8")
    harmless = [{"instruction": f"Describe a quiet walk number {i}"} for i in range(10)]
    (folder / "harmless.jsonl").write_text(
        "".join(json.dumps(item) + "\n" for item in harmless), encoding="utf-8"
    )
    translated = folder / "translations"
    translated.mkdir()
    items = [
        {"id": f"harmless-{i:04d}", "instruction": f"Beschreibe Spaziergang {i}"} for i in (1, 2)
    ]
    (translated / "harmless_train_translated_de.json").write_text(
        json.dumps(items), encoding="utf-8"
    )


def config(mt_model: Path, llm: Path) -> dict:
    return {
        "models": {"tiny-llama": {"source": str(llm), "device": "cpu"}},
        "languages": LANGS,
        "probes": {
            "muse": {"dir": "muse"},
            "tasks": {"names": ["sentiment"]},
            "refusal": {
                "advbench": "refusal/harmful_behaviors.csv",
                "harmbench": "refusal/harmbench.txt",
                "harmless": "refusal/harmless.jsonl",
                "languages": ["en", "de", "ko"],
                "translator_for": {"ko": "hf"},
            },
        },
        "translators": {
            "precomputed": {"dir": "refusal/translations"},
            "hf": {"model": str(mt_model), "max_new_tokens": 4, "device": "cpu"},
            "llm": {"model": "tiny-llama", "max_new_tokens": 3},
        },
        "extraction": {"threads": 1},
    }


def planned(workdir: Path) -> dict[str, int]:
    """Jobs a dry run of the probes target plans, without the target rule itself."""
    jobs = planned_jobs(workdir, "probes")
    jobs.pop("probes", None)
    return jobs


def update_config(workdir: Path, change) -> None:
    import yaml

    path = workdir / "config.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    write_config(workdir, data)


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_models) -> Path:
    workdir = tmp_path_factory.mktemp("probes")
    write_dictionaries(workdir / "muse", ("de", "fr"))
    write_refusal_sources(workdir / "refusal")
    mt = build_tiny_mt_model(tmp_path_factory.mktemp("mt") / "m2m", "m2m100")
    write_config(workdir, config(mt, tiny_models["llama"]))
    snakemake(workdir, "--cores", "2", "probes")
    return workdir


def test_every_probe_set_builds(built):
    for probe, names in {
        "muse": LANGS,
        "flores": LANGS,
        "values": ["en", "zh"],
        "relations": ["en", "de", "fr", "es", "zh"],
        "tasks": ["sentiment"],
        "refusal": ["en", "de", "ko"],
    }.items():
        for name in names:
            frame = pl.read_parquet(built / f"results/probes/{probe}/{name}.parquet")
            assert frame.height > 0 and {"id", "text"} <= set(frame.columns), (probe, name)


def test_refusal_languages_come_from_their_translators(built):
    en = pl.read_parquet(built / "results/probes/refusal/en.parquet")
    assert dict(en.group_by("label").len().iter_rows()) == {"harmful": 10, "harmless": 10}
    de = pl.read_parquet(built / "results/probes/refusal/de.parquet")
    assert de["text"].to_list() == ["Beschreibe Spaziergang 1", "Beschreibe Spaziergang 2"]
    assert (
        de["split"].to_list()
        == en.filter(pl.col("pair_id").is_in(de["pair_id"].to_list()))["split"].to_list()
    )
    ko = pl.read_parquet(built / "results/probes/refusal/ko.parquet")
    assert ko.height == 20 and ko["pair_id"].to_list() == en["pair_id"].to_list()
    assert (built / "results/translations/refusal/hf/ko.parquet").exists()


def test_rerun_plans_nothing(built):
    assert planned(built) == {}


def test_adding_a_language_reruns_only_its_probe_jobs(built):
    update_config(built, lambda c: c["probes"]["refusal"]["languages"].append("fr"))
    update_config(built, lambda c: c["probes"]["refusal"]["translator_for"].update({"fr": "llm"}))
    plan = planned(built)
    assert plan == {"prepare_model": 1, "translate_refusal": 1, "build_refusal_probes": 1}
    snakemake(built, "--cores", "2", "probes")
    fr = pl.read_parquet(built / "results/probes/refusal/fr.parquet")
    assert fr.height == 20 and (built / "results/translations/refusal/llm/fr.parquet").exists()
    assert planned(built) == {}


def test_changing_a_translator_setting_reruns_only_its_languages(built):
    update_config(built, lambda c: c["translators"]["hf"].update({"max_new_tokens": 5}))
    assert planned(built) == {"translate_refusal": 1, "build_refusal_probes": 1}
    update_config(built, lambda c: c["translators"]["hf"].update({"max_new_tokens": 4}))
    assert planned(built) == {}


def test_an_mt_model_without_a_code_for_the_language_fails_cleanly(built):
    update_config(
        built,
        lambda c: (
            c["probes"]["refusal"]["languages"].append("sw"),
            c["probes"]["refusal"]["translator_for"].update({"sw": "hf"}),
        ),
    )
    result = snakemake(built, "--cores", "1", "probes", check=False)
    assert result.returncode != 0
    assert "no code for target language 'sw'" in result.stdout + result.stderr
    assert not (built / "results/translations/refusal/hf/sw.parquet").exists()
    assert not (built / "results/probes/refusal/sw.parquet").exists()


def test_unknown_translator_and_llm_model_are_named(built):
    update_config(built, lambda c: c["probes"]["refusal"].update({"translator": "google"}))
    result = snakemake(built, "--dry-run", "probes", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "translator" in output and "google" in output
    update_config(
        built,
        lambda c: (
            c["probes"]["refusal"].update({"translator": "llm"}),
            c["translators"]["llm"].update({"model": "ghost"}),
        ),
    )
    result = snakemake(built, "--dry-run", "probes", check=False)
    assert result.returncode != 0
    assert "translators.llm.model: 'ghost'" in result.stdout + result.stderr
