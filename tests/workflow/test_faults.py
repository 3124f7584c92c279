"""Hostile input and faults, each ending in the right place: a clear error naming the config
key, file and line (or a correct result with a console warning where a skip is documented), and
no partial output left behind. Model-free cases run only the probe builders or a dry run."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from workflow_helpers import SNAKEMAKE, assert_fails, snakemake, update_config

MUSE_DE = ("results/probes/muse/de.parquet",)
GERMAN = "results/activations/tiny-llama/muse/de"
EXTRACTION = (
    f"{GERMAN}/part-0.parquet",
    f"{GERMAN}/part-1.parquet",
    f"{GERMAN}.examples.safetensors",
)


# --- the config ---------------------------------------------------------------------------


def test_unknown_config_key_is_named(scratch):
    update_config(scratch, lambda c: c.update({"lape": {"top_rat": 0.1}}))
    assert_fails(scratch, "config key lape.top_rat: unknown key; did you mean lape.top_rate?")
    output = snakemake(scratch, "--dry-run", check=False)
    assert "additionalProperties" not in output.stdout + output.stderr  # no schema dump


def test_wrong_type_and_out_of_range_values_are_named(scratch):
    update_config(scratch, lambda c: c["extraction"].update({"shards": "two"}))
    assert_fails(scratch, "'two' is not of type 'integer'", "shards")
    update_config(scratch, lambda c: c["extraction"].update({"shards": 0}))
    assert_fails(scratch, "shards")
    update_config(
        scratch,
        lambda c: (c["extraction"].update({"shards": 1}), c.update({"lape": {"top_rate": 1.5}})),
    )
    assert_fails(scratch, "top_rate", "1.5")


def test_unknown_language_code_is_named(scratch):
    update_config(scratch, lambda c: c.update({"languages": ["en", "de", "xx"]}))
    assert_fails(scratch, "config key languages", "'xx'")


def test_missing_dictionary_names_language(scratch):
    (scratch / "muse/en-ru.txt").unlink()
    assert_fails(scratch, "no dictionary for language 'ru'", "en-ru.txt")
    assert not (scratch / "results/probes").exists()


def test_malformed_dictionary_lines_fail_when_configured(scratch):
    with (scratch / "muse/en-fr.txt").open("a", encoding="utf-8") as handle:
        handle.write("lonely\n")
    update_config(scratch, lambda c: c["probes"]["muse"].update({"on_malformed": "fail"}))
    assert_fails(scratch, "en-fr.txt: 1 malformed line(s)", "line(s) 8")
    assert not (scratch / "results/probes/muse/fr.parquet").exists()


def test_missing_model_path_is_named(scratch):
    update_config(
        scratch, lambda c: c["models"].update({"ghost": {"source": "/nonexistent/model"}})
    )
    assert_fails(scratch, "models.ghost.source", "/nonexistent/model", "does not exist")


def test_unsupported_architecture_fails_naming_supported_ones(scratch, tmp_path_factory):
    from transformers import BertConfig, BertLMHeadModel

    folder = tmp_path_factory.mktemp("bert") / "tiny-bert"
    BertLMHeadModel(
        BertConfig(
            vocab_size=50,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            is_decoder=True,
        )
    ).save_pretrained(folder)
    update_config(scratch, lambda c: c.update({"models": {"bert": {"source": str(folder)}}}))
    assert_fails(scratch, "unsupported model architecture 'bert'", "llama", "gemma3_text")
    assert not (scratch / "resources/models/bert").exists()


def test_a_mistyped_top_level_key_is_one_short_message(scratch):
    update_config(scratch, lambda c: c.update({"langauges": c.pop("languages")}))
    result = snakemake(scratch, "--dry-run", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "config key langauges: unknown key; did you mean languages?" in output, output
    assert len(output.splitlines()) < 40 and "additionalProperties" not in output, output


def test_every_inconsistent_key_is_reported_in_one_run(scratch):
    def shorten(config):  # the shipped keys still name languages no longer configured
        config["languages"] = ["en", "de"]
        config.setdefault("ablation", {})["languages"] = ["en", "de", "fr"]
        config.setdefault("bridges", {})["targets"] = ["ru"]
        config.setdefault("evaluation", {})["overlap"] = {"languages": ["en", "de", "ru"]}

    update_config(scratch, shorten)
    result = snakemake(scratch, "--dry-run", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for key, lang in [
        ("ablation.languages", "fr"),
        ("bridges.targets", "ru"),
        ("evaluation.overlap.languages", "ru"),  # an intervened language, no longer dropped
    ]:
        assert f"config key {key}: '{lang}' not among languages" in output, output


# --- dictionaries -------------------------------------------------------------------------


def probes_of(workdir: Path, lang: str = "de") -> pl.DataFrame:
    return pl.read_parquet(workdir / f"results/probes/muse/{lang}.parquet")


@pytest.fixture()
def clean_probes(scratch) -> pl.DataFrame:
    """The German probes of the clean tiny dictionaries (then removed again)."""
    snakemake(scratch, "--cores", "1", *MUSE_DE)
    probes = probes_of(scratch)
    shutil.rmtree(scratch / "results")
    return probes


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda text: "\ufeff" + text, id="byte-order mark"),
        pytest.param(lambda text: text.replace("\n", "\r\n"), id="CRLF"),
        pytest.param(lambda text: text.replace(" ", "\t"), id="tabs"),
        pytest.param(lambda text: text + text, id="every pair twice"),
        pytest.param(lambda text: text.upper(), id="capitals"),
    ],
)
def test_harmless_dictionary_variants_give_the_same_probes(scratch, clean_probes, spoil):
    path = scratch / "muse/en-de.txt"
    path.write_bytes(spoil(path.read_text(encoding="utf-8")).encode("utf-8"))
    result = snakemake(scratch, "--cores", "1", *MUSE_DE)
    assert_frame_equal(probes_of(scratch), clean_probes)
    if spoil(" a") != " a".upper():
        return
    # capitals are lower-cased as MUSE's files are, and said so on the console
    assert "polyneuron warning:" in result.stderr and "lower-cased" in result.stderr


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        pytest.param(
            "wasser water\n".encode("latin-1") + "straße street\n".encode("latin-1"),
            "en-de.txt:2: not valid UTF-8",
            id="Latin-1",
        ),
        pytest.param(bytes(range(256)) * 4, "en-de.txt:3: not valid UTF-8", id="binary"),
        pytest.param(b"\n\n", "en-de.txt: no en-de pairs in the file", id="empty"),
        pytest.param(b"radio radio\n", "no usable en-de pairs left", id="only loanwords"),
    ],
)
def test_unreadable_or_empty_dictionaries_are_named(scratch, content, needle):
    (scratch / "muse/en-de.txt").write_bytes(content)
    assert_fails(scratch, needle, target=MUSE_DE)
    assert not (scratch / MUSE_DE[0]).exists()


def test_skipped_malformed_lines_are_reported_on_the_console(scratch, clean_probes):
    with (scratch / "muse/en-de.txt").open("a", encoding="utf-8") as handle:
        handle.write("lonely\nthree words here\n")
    result = snakemake(scratch, "--cores", "1", *MUSE_DE)
    assert re.search(r"polyneuron warning: \S*en-de.txt: 2 malformed line\(s\)", result.stderr)
    assert_frame_equal(probes_of(scratch), clean_probes)


# --- files left behind, permissions -------------------------------------------------------


def test_a_killed_writers_temporary_is_removed_and_outputs_honour_the_umask(scratch):
    dead = subprocess.Popen(["true"])
    dead.wait()
    folder = scratch / "results/probes/muse"
    folder.mkdir(parents=True)
    left = folder / f".de.parquet.{socket.gethostname()}-{dead.pid}-x1y2.tmp"
    left.write_bytes(b"\0" * 4096)  # what a job killed mid-write leaves
    old = os.umask(0o027)
    try:
        snakemake(scratch, "--cores", "1", *MUSE_DE)
    finally:
        os.umask(old)
    assert not left.exists()
    assert stat.S_IMODE((scratch / MUSE_DE[0]).stat().st_mode) == 0o640  # not 0600


FULL_DISK = """
import errno, os
_mode = os.environ.get("POLYNEURON_FULL_DISK")
def _full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
if _mode == "mmap":  # reserving the space of a memory-mapped output
    os.posix_fallocate = _full
elif _mode == "parquet":  # pyarrow's own error text for a full disk
    import polars
    def _full_parquet(*args, **kwargs):
        raise OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")
    polars.DataFrame.write_parquet = _full_parquet
"""


@pytest.mark.parametrize(
    ("mode", "target"),
    [("parquet", MUSE_DE[0]), ("mmap", EXTRACTION[2])],
    ids=["Parquet table", "memory-mapped activations"],
)
def test_a_full_disk_names_the_output_and_leaves_nothing(scratch, tmp_path_factory, monkeypatch,
                                                         mode, target):  # fmt: skip
    if mode == "mmap":
        snakemake(scratch, "--cores", "1", *EXTRACTION[:2])  # everything before it, disk free
    inject = tmp_path_factory.mktemp("full-disk")
    (inject / "sitecustomize.py").write_text(FULL_DISK)  # every job's Python starts with it
    monkeypatch.setenv("PYTHONPATH", str(inject))
    monkeypatch.setenv("POLYNEURON_FULL_DISK", mode)
    output = assert_fails(scratch, f"{target}: no space left on the device", target=(target,))
    assert "Traceback" not in output
    assert not (scratch / target).exists()


# --- models -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "needle"),
    [
        pytest.param({}, "has no config.json", id="no config"),
        pytest.param({"config.json": '{"model_type": "llama"}'}, "has no weights", id="no weights"),
        pytest.param(
            {"config.json": '{"model_type": "foobar"}', "model.safetensors": ""},
            "model type `foobar`",
            id="unknown model_type",
        ),
    ],
)
def test_a_broken_model_folder_is_named(scratch, tmp_path_factory, files, needle):
    folder = tmp_path_factory.mktemp("broken") / "model"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    update_config(scratch, lambda c: c.update({"models": {"mine": {"source": str(folder)}}}))
    output = assert_fails(scratch, "config key models.mine.source", needle,
                          target=("resources/model_info/mine.json",))  # fmt: skip
    assert "Traceback" not in output
    assert not (scratch / "resources/models/mine").exists()


def test_a_nan_weight_stops_extraction_naming_the_layer(scratch, tmp_path_factory, tiny_models):
    from safetensors.torch import load_file, save_file

    folder = tmp_path_factory.mktemp("nan") / "llama"
    shutil.copytree(tiny_models["llama"], folder)
    weights = load_file(folder / "model.safetensors")
    name = next(n for n in weights if "layers.1.mlp.gate_proj" in n)
    weights[name][0, 0] = float("nan")
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    update_config(scratch, lambda c: c["models"]["tiny-llama"].update({"source": str(folder)}))
    assert_fails(scratch, "non-finite activations (NaN or inf) in layer 1",
                 "with the model in float32", target=EXTRACTION)  # fmt: skip
    assert not list((scratch / "results/activations").rglob("*.*"))


# --- interrupted and concurrent runs ------------------------------------------------------


def test_kill_9_then_rerun_gives_the_tables_of_an_uninterrupted_run(scratch, tmp_path_factory):
    reference = tmp_path_factory.mktemp("reference")
    shutil.copytree(scratch, reference, dirs_exist_ok=True)
    snakemake(reference, "--cores", "1", *EXTRACTION)
    run = subprocess.Popen(
        [*SNAKEMAKE, "--directory", str(scratch), "--cores", "1", *EXTRACTION],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not (scratch / EXTRACTION[0]).exists() and run.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)  # the whole run, jobs included, mid-extraction
    run.wait()
    snakemake(scratch, "--unlock")
    snakemake(scratch, "--cores", "1", "--rerun-incomplete", *EXTRACTION)
    files = sorted(
        p.relative_to(reference)
        for p in (reference / "results").rglob("*")
        if p.suffix in (".parquet", ".safetensors")
    )
    assert len(files) >= 4  # the probes, two shards, the per-example means
    for path in files:
        if path.suffix == ".parquet":
            assert_frame_equal(pl.read_parquet(scratch / path), pl.read_parquet(reference / path))
        else:
            assert (scratch / path).read_bytes() == (reference / path).read_bytes(), path
    assert not [p for p in scratch.rglob("*.tmp") if ".snakemake" not in p.parts]


def test_a_second_run_on_the_same_folder_is_refused_while_the_first_goes_on(scratch):
    first = subprocess.Popen(
        [*SNAKEMAKE, "--directory", str(scratch), "--cores", "1", *EXTRACTION],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    locks = scratch / ".snakemake/locks"
    deadline = time.monotonic() + 300
    while not (locks.exists() and any(locks.iterdir())):
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    second = snakemake(scratch, "--cores", "1", *EXTRACTION, check=False)
    assert second.returncode != 0
    assert "LockException" in second.stdout + second.stderr
    assert first.wait() == 0, first.stdout.read()
    assert all((scratch / path).exists() for path in EXTRACTION)


def test_two_runs_racing_without_the_lock_both_prepare_the_model(scratch):
    """What two runs started after --unlock do: both prepare the same model at once."""
    target = "resources/model_info/tiny-llama.json"
    runs = [
        subprocess.Popen(
            [*SNAKEMAKE, "--directory", str(scratch), "--cores", "1", "--nolock", target],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    for run in runs:
        assert run.wait() == 0, run.stdout.read()
    folder = scratch / "resources/models/tiny-llama"
    assert (folder / "config.json").exists() and (folder / "model.safetensors").exists()
    assert not [p for p in (scratch / "resources").rglob("*") if p.name.endswith(".tmp")]
