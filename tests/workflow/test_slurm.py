"""profiles/slurm on a real single-node Slurm cluster that the test starts and stops.

The cluster (munge, MariaDB + slurmdbd, slurmctld, slurmd; .ci/slurm.sh) needs root and the
Debian packages that `.ci/slurm.sh install` puts in. Without them the cluster tests are skipped,
saying why; with POLYNEURON_REQUIRE_SLURM=1 (CI) they fail instead, so CI cannot skip silently.

The test cluster has no GPU: the run layers a small profile over profiles/slurm that turns the
GPU requests off (gpu: 0) and points every job at the test partition and account; everything
else (executor, per-rule memory and time, retries, logs) is the shipped profile's.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal
from tiny import build_tiny_model

REPO = Path(__file__).resolve().parents[2]
SLURM_SH = REPO / ".ci" / "slurm.sh"
PROFILE = REPO / "profiles" / "slurm"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
GPU_RULES = (
    "prepare_model",
    "extract_activations",
    "extract_examples",
    "extract_pool_examples",
    "extract_relation_answers",
    "extract_groups",
    "translate_refusal",
    "attribute_task",
    "find_refusal_direction",
    "score_logit_lens",
    "evaluate_lape",
    "evaluate_overlap",
    "evaluate_bli",
    "evaluate_xtransplant",
    "evaluate_values",
    "evaluate_tasks",
    "evaluate_relations",
    "evaluate_refusal",
)
COMMANDS = ("munged", "slurmctld", "slurmd", "slurmdbd", "mariadbd", "sbatch", "sacct")

LANGS = ["en", "de", "fr"]
NODE_CPUS = 2  # the CI machine; .ci/slurm.sh gives the node what slurmd -C finds
DICTIONARIES = {
    "de": [("water", "wasser"), ("house", "haus"), ("dog", "hund"), ("cat", "katze"),
           ("bread", "brot"), ("tree", "baum"), ("night", "nacht")],
    "fr": [("water", "eau"), ("house", "maison"), ("dog", "chien"), ("cat", "chat"),
           ("bread", "pain"), ("tree", "arbre"), ("night", "nuit")],
}  # fmt: skip
# the spine's outputs, asked for by name so that later additions to `rule all` (which may need
# other probe data) leave this test alone
TARGETS = [
    "results/overlap_heatmap.pdf",
    "results/plots/tiny-llama/lape_layers.pdf",
    "results/neurons/tiny-llama/lape.parquet",
    "results/neurons/tiny-llama/overlap.parquet",
]

SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def planned_jobs(output: str) -> int:
    """Jobs in the "Job stats" table Snakemake prints before running."""
    table = output.split("Job stats:", 1)[1]
    total = re.search(r"^total\s+(\d+)\s*$", table, flags=re.MULTILINE)
    assert total, table[:2000]
    return int(total[1])


def workflow_rules() -> dict[str, str]:
    """Each rule of the workflow with the text of its definition."""
    rules = {}
    for path in [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]:
        parts = re.split(
            r"^(?:rule|use rule \w+ as) (\w+)(?: with)?:", path.read_text(), flags=re.MULTILINE
        )
        rules |= dict(zip(parts[1::2], parts[2::2], strict=True))
    rules.pop("all", None)
    return rules


def test_slurm_profile_sizes_every_model_heavy_rule():
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    # rules the profile does not name get these
    assert {"mem_mb", "runtime"} <= set(profile["default-resources"])
    rules = workflow_rules()
    assert set(profile["set-resources"]) <= set(rules), "the profile names a rule that is gone"
    # a rule that loads or writes a model needs a decision on its resources
    heavy = {name for name, text in rules.items() if "resources/models/" in text or "gpu=" in text}
    assert set(GPU_RULES) <= heavy
    assert heavy <= set(profile["set-resources"])
    # Slurm GPU jobs get CPUs per GPU (a GPU job with only cpus-per-task is refused on many
    # clusters); the light rules need nothing from the model and ask for little
    assert profile["set-resources"]["extract_activations"]["cpus_per_gpu"] >= 1
    for rule, resources in profile["set-resources"].items():
        if rule not in heavy:
            assert resources["mem_mb"] <= 8000 and resources["runtime"] <= 30, rule


def profile_groups() -> dict[str, str]:
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    return dict(item.split("=") for item in profile["groups"])


def test_slurm_profile_groups_only_light_rules():
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    rules = workflow_rules()
    groups = profile_groups()
    assert set(groups) <= set(rules), "the profile groups a rule that is gone"
    heavy = {name for name, text in rules.items() if "resources/models/" in text or "gpu=" in text}
    assert not heavy & set(groups), "a model-heavy rule must not wait inside a group of light ones"
    light = {n for n in rules if n.startswith(("build_", "score_", "plot_"))} - heavy
    # see the profile's comment
    alone = {"build_refusal_source", "score_bridges", "score_relations", "score_values"}
    assert light - set(groups) == alone
    components = dict(item.split("=") for item in profile["group-components"])
    assert set(components) == set(groups.values()) and all(int(n) > 1 for n in components.values())
    # the CPU cap that makes a group of parallel jobs fit one node
    assert isinstance(profile["cores"], int) and profile["cores"] >= 1


def test_slurm_dry_run_plans_group_jobs(tmp_path):
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        skip_or_fail("pip package snakemake-executor-plugin-slurm is not installed")
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    result = subprocess.run(
        [*SNAKEMAKE, "--directory", str(tmp_path), "--profile", str(PROFILE), "-n", "probes",
         "results/overlap_heatmap.pdf"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    # 69 probe jobs in groups of at most 32, and the 4 scoring and plotting jobs in one
    assert len(re.findall(r"Group job probes \(", output)) == 3, output[-5000:]
    assert len(re.findall(r"Group job summarise \(", output)) == 1


# ---------------------------------------------------------------- the cluster run


def cannot_host_cluster() -> str | None:
    """Why this machine cannot start the test cluster, or None if it can."""
    if os.geteuid() != 0:
        return "starting a Slurm cluster needs root (munged runs as user munge)"
    missing = [cmd for cmd in COMMANDS if shutil.which(cmd) is None]
    if missing:
        how = "run .ci/slurm.sh install" if shutil.which("apt-get") else "no apt-get here"
        return f"Slurm packages missing ({', '.join(missing)}): {how}"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "pip package snakemake-executor-plugin-slurm is not installed"
    return None


def skip_or_fail(reason: str) -> None:
    if os.environ.get("POLYNEURON_REQUIRE_SLURM") == "1":
        pytest.fail(f"POLYNEURON_REQUIRE_SLURM=1 but the Slurm test cannot run: {reason}")
    pytest.skip(reason)


def started_pids(cluster_dir: Path) -> list[int]:
    pids_file = cluster_dir / "pids"
    if not pids_file.exists():
        pids_file = cluster_dir / "pids.stopped"
    if not pids_file.exists():
        return []
    return [int(line.split()[1]) for line in pids_file.read_text().splitlines()]


def running(pid: int) -> bool:
    """Alive and not a zombie (a daemon reparented to a pid 1 that does not reap)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[dict[str, str]]:
    """A single-node cluster (partition debug, account ci); yields the environment to use it."""
    reason = cannot_host_cluster()
    if reason:
        skip_or_fail(reason)
    # every parent must be searchable by user munge, so not under pytest's private tmp
    cluster_dir = Path(tempfile.mkdtemp(prefix="polyneuron-slurm-", dir="/tmp"))
    started = time.monotonic()
    start = subprocess.run(
        ["bash", str(SLURM_SH), "start", str(cluster_dir)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    try:
        if start.returncode == 3:
            skip_or_fail(start.stderr.strip())
        assert start.returncode == 0, f"cluster did not start:\n{start.stdout}\n{start.stderr}"
        print(f"cluster up in {time.monotonic() - started:.1f} s")
        yield {**os.environ, "SLURM_CONF": str(cluster_dir / "etc" / "slurm.conf")}
    finally:
        pids = started_pids(cluster_dir)
        stop = subprocess.run(
            ["bash", str(SLURM_SH), "stop", str(cluster_dir)],
            capture_output=True,
            text=True,
            timeout=180,
        )
        left = [pid for pid in pids if running(pid)]
        if stop.returncode == 0 and not left:
            shutil.rmtree(cluster_dir, ignore_errors=True)
        assert stop.returncode == 0, f"cluster did not stop:\n{stop.stdout}\n{stop.stderr}"
        assert not left, f"daemons still running after stop: {left} (files in {cluster_dir})"


def write_workdir(workdir: Path, model: Path) -> Path:
    muse = workdir / "muse"
    muse.mkdir(parents=True)
    for lang, pairs in DICTIONARIES.items():
        (muse / f"en-{lang}.txt").write_text("".join(f"{a} {b}\n" for a, b in pairs))
    config = {
        "models": {"tiny-llama": {"source": str(model), "device": "cpu"}},
        "languages": LANGS,
        "probes": {"muse": {"dir": str(muse)}},
        "extraction": {"shards": 1, "threads": 1},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return workdir


def overlay_profile(profile: dict) -> dict:
    """The shipped profile with what the test cluster needs on top (see the module docstring)."""
    set_resources = {rule: dict(resources) for rule, resources in profile["set-resources"].items()}
    for rule in GPU_RULES:
        set_resources[rule]["gpu"] = 0
    for resources in set_resources.values():
        resources.pop("slurm_partition", None)
        resources.pop("slurm_account", None)
    return {
        "default-resources": {
            **profile["default-resources"],
            "slurm_partition": "debug",
            "slurm_account": "ci",
        },
        "set-resources": set_resources,
        "cores": NODE_CPUS,  # a group job must fit the test node
        # the plugin's first status check comes after 40 s by default
        "slurm-init-seconds-before-status-checks": 1,
    }


def start_snakemake(workdir: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    env = {**env, "PYTHONWARNINGS": "ignore", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen(
        [*SNAKEMAKE, "--directory", str(workdir), *args],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def finish(run: subprocess.Popen[str], timeout: int) -> str:
    try:
        output, _ = run.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        run.kill()
        output, _ = run.communicate()
        raise AssertionError(f"{run.args} ran over {timeout} s:\n{output[-20000:]}") from None
    assert run.returncode == 0, f"{run.args} failed:\n{output[-20000:]}"
    return output


def sacct_jobs(env: dict[str, str]) -> dict[str, dict[str, str]]:
    fields = ["JobID", "State", "ReqMem", "Timelimit", "Partition", "Account", "AllocCPUS"]
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-a", "-o", ",".join(fields)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    rows = [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines()]
    return {row["JobID"]: row for row in rows}


@pytest.mark.slurm
def test_workflow_runs_through_slurm_like_locally(
    slurm_cluster: dict[str, str], tmp_path: Path
) -> None:
    model = build_tiny_model(tmp_path / "tiny-llama", "llama")
    local = write_workdir(tmp_path / "local", model)
    on_slurm = write_workdir(tmp_path / "slurm", model)
    overlay = tmp_path / "test-profile"
    overlay.mkdir()
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    (overlay / "config.yaml").write_text(yaml.safe_dump(overlay_profile(profile)))

    started = time.monotonic()
    # the local reference run shares the 2 cores with the cluster's jobs, which spend most of
    # their time starting Python and waiting for the next status check
    local_run = start_snakemake(local, "--cores", "1", *TARGETS, env=slurm_cluster)
    # the overlay as workflow profile: it wins over --profile and replaces profiles/default
    slurm_run = start_snakemake(
        on_slurm,
        "--profile",
        str(PROFILE),
        "--workflow-profile",
        str(overlay),
        *TARGETS,
        env=slurm_cluster,
    )
    output = finish(slurm_run, timeout=900)
    print(f"Slurm run {time.monotonic() - started:.1f} s (GPU requests off: no GPU here)")
    finish(local_run, timeout=600)
    print(f"both runs {time.monotonic() - started:.1f} s")

    # every job went through sbatch, ran to completion and left its Slurm log
    submitted = {jobid: Path(log) for jobid, log in SUBMITTED.findall(output)}
    accounted = sacct_jobs(slurm_cluster)
    for jobid, log in submitted.items():
        assert accounted[jobid]["State"] == "COMPLETED", accounted[jobid]
        assert accounted[jobid]["Partition"] == "debug"
        assert accounted[jobid]["Account"] == "ci"
        assert int(accounted[jobid]["AllocCPUS"]) <= NODE_CPUS
        assert log.is_file() and log.is_relative_to(on_slurm / ".snakemake" / "slurm_logs")
    by_rule: dict[str, list[str]] = {}
    for jobid, log in submitted.items():
        kind = log.relative_to(on_slurm / ".snakemake" / "slurm_logs").parts[0]
        # a group's log folder names the group and its rules: group_probes_build_muse_probes
        kind = next(
            (f"group_{g}" for g in ("probes", "summarise") if kind.startswith(f"group_{g}_")), kind
        )
        by_rule.setdefault(kind, []).append(jobid)
    # 11 jobs on today's workflow: prepare_model, build_muse_probes and extract_activations x3,
    # score_lape, score_overlap and the two plots; the 3 probe jobs travel as one group job, the
    # 4 scoring and plotting jobs as another
    assert planned_jobs(output) >= 11, output[-5000:]
    assert {kind: len(ids) for kind, ids in by_rule.items()} == {
        "rule_prepare_model": 1,
        "rule_extract_activations": 3,
        "group_probes": 1,
        "group_summarise": 1,
    }, output[-5000:]
    # the profile's per-rule requests reached Slurm: with 2 CPUs the two scores run side by side
    # (memory adds up), then the two plots (run time adds up over the two layers)
    res = profile["set-resources"]
    summarise = accounted[by_rule["group_summarise"][0]]
    assert summarise["ReqMem"] == f"{res['score_lape']['mem_mb'] + res['score_overlap']['mem_mb']}M"
    minutes = res["score_lape"]["runtime"] + res["plot_lape_layers"]["runtime"]
    assert summarise["Timelimit"] == f"{minutes // 60:02d}:{minutes % 60:02d}:00"
    assert int(summarise["AllocCPUS"]) == NODE_CPUS

    # and the results are the local run's
    tables = sorted(p.relative_to(local) for p in (local / "results/neurons").rglob("*.parquet"))
    assert [str(p) for p in tables] == [
        "results/neurons/tiny-llama/lape.parquet",
        "results/neurons/tiny-llama/overlap.parquet",
        "results/neurons/tiny-llama/overlap_sets.parquet",
    ]
    for table in tables:
        assert_frame_equal(pl.read_parquet(on_slurm / table), pl.read_parquet(local / table))
