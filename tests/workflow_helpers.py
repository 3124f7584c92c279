"""Run the workflow through Snakemake's command line in a scratch folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]

TINY_CONFIG = REPO / ".test/tiny/config.yaml"  # the config users can copy


def base_config(models: dict[str, Path], chat: dict[str, Path] | None = None) -> dict:
    """.test/tiny/config.yaml with its model sources pointing at ``models`` (and ``chat``, or
    no chat models and refusal directions without)."""
    config = yaml.safe_load(TINY_CONFIG.read_text(encoding="utf-8"))
    config["models"] = {
        name: {"source": str(path), "device": "cpu"} for name, path in models.items()
    }
    if chat:
        config["chat_models"] = {
            name: {"source": str(path), "device": "cpu"} for name, path in chat.items()
        }
    else:
        del config["chat_models"], config["refusal_directions"]
    return config


def write_config(workdir: Path, config: dict) -> None:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        )
    return result


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Jobs a dry run would execute, by rule (empty when there is nothing to do)."""
    result = snakemake(workdir, "--dry-run", *args)
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1]
    counts = {}
    for line in table.splitlines()[3:]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not match:
            break
        counts[match[1]] = int(match[2])
    counts.pop("total", None)
    counts.pop("all", None)
    return counts


def update_config(workdir: Path, change) -> None:
    """Apply ``change`` (a function of the config dict) to ``workdir``'s config.yaml."""
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    change(config)
    write_config(workdir, config)


def assert_fails(workdir: Path, *needles: str, target: tuple[str, ...] = ()) -> str:
    """Run the workflow (or ``target``); it must fail, print every needle, and leave no final
    figure and no temporary file behind. Returns the output."""
    result = snakemake(workdir, "--cores", "2", *target, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for needle in needles:
        assert needle in output, output
    assert not (workdir / "results/overlap_heatmap.pdf").exists()
    leftovers = [p for p in workdir.rglob("*.tmp") if ".snakemake" not in p.parts]
    assert leftovers == []
    return output
