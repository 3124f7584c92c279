"""benchmarks/workflow.py's per-rule summary of Snakemake benchmark files, and its ratio table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import polars as pl
import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "workflow.py"
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def load_script():
    spec = importlib.util.spec_from_file_location("benchmark_workflow", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


bench = load_script()


def write(path: Path, *rows: tuple[str, str, str]) -> None:
    """A Snakemake benchmark file; each row is (s, max_rss, cpu_time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(
        f"{s}\t0:00:00\t{rss}\t1.0\t1.0\t1.0\t0.1\t0.1\t50.0\t{cpu}\n" for s, rss, cpu in rows
    )
    path.write_text(HEADER + lines, encoding="utf-8")


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    root = tmp_path / "results" / "benchmarks"
    # 3 jobs in nested wildcard folders, one too short to be sampled (NA)
    write(root / "extract_activations/m1/muse/en/part-0.tsv", ("10.5", "1000.0", "12.0"))
    write(root / "extract_activations/m1/muse/de/part-0.tsv", ("20.25", "1500.5", "18.5"))
    write(root / "extract_activations/m2/flores/en/part-1.tsv", ("0.25", "NA", "NA"))
    # 2 jobs, one folder deep
    write(root / "prepare_model/m1.tsv", ("40.0", "900.0", "30.0"))
    write(root / "prepare_model/m2.tsv", ("5.0", "2500.0", "4.0"))
    # 1 job, never sampled
    write(root / "plot_overlap/heatmap.tsv", ("0.5", "NA", "NA"))
    return root


def test_summarise_counts_jobs_sums_times_and_takes_the_peak_memory(bench_dir: Path):
    summary = bench.summarise(bench_dir)
    assert summary.columns == ["rule", "jobs", "wall_s", "cpu_s", "peak_mb"]
    # slowest first: prepare_model 45.0 s, extract_activations 31.0 s, plot_overlap 0.5 s
    assert summary.to_dicts() == [
        {"rule": "prepare_model", "jobs": 2, "wall_s": 45.0, "cpu_s": 34.0, "peak_mb": 2500.0},
        {
            "rule": "extract_activations",
            "jobs": 3,
            "wall_s": 31.0,  # 10.5 + 20.25 + 0.25
            "cpu_s": 30.5,  # 12.0 + 18.5, the NA job left out
            "peak_mb": 1500.5,
        },
        # no job sampled: unknown, not zero
        {"rule": "plot_overlap", "jobs": 1, "wall_s": 0.5, "cpu_s": None, "peak_mb": None},
    ]


def test_repeated_measurements_in_one_file_are_one_job(tmp_path: Path):
    write(tmp_path / "score/m1.tsv", ("2.0", "100.0", "1.0"), ("3.0", "300.0", "2.0"))
    assert bench.summarise(tmp_path).row(0, named=True) == {
        "rule": "score",
        "jobs": 1,
        "wall_s": 5.0,
        "cpu_s": 3.0,
        "peak_mb": 300.0,
    }


def test_a_file_directly_in_the_folder_is_named_after_its_stem(tmp_path: Path):
    write(tmp_path / "all_done.tsv", ("1.0", "10.0", "1.0"))
    assert bench.summarise(tmp_path)["rule"].to_list() == ["all_done"]


def test_no_benchmark_files_give_an_empty_summary(tmp_path: Path):
    summary = bench.summarise(tmp_path)
    assert summary.is_empty()
    assert summary.columns == ["rule", "jobs", "wall_s", "cpu_s", "peak_mb"]


def test_compare_divides_the_baseline_by_this_per_rule(bench_dir: Path, tmp_path: Path):
    baseline = bench.summarise(bench_dir)
    faster = tmp_path / "faster"
    write(faster / "prepare_model/m1.tsv", ("9.0", "900.0", "8.0"))  # 45 s -> 9 s
    write(faster / "extract_activations/m1/muse/en/part-0.tsv", ("62.0", "900.0", "60.0"))
    write(faster / "new_rule/x.tsv", ("1.0", "10.0", "1.0"))  # only in this checkout
    table = bench.compare(baseline, bench.summarise(faster))
    assert table.columns == ["rule", "baseline_s", "this_s", "ratio"]
    assert table.to_dicts() == [
        {"rule": "prepare_model", "baseline_s": 45.0, "this_s": 9.0, "ratio": 5.0},
        {"rule": "extract_activations", "baseline_s": 31.0, "this_s": 62.0, "ratio": 0.5},
        {"rule": "plot_overlap", "baseline_s": 0.5, "this_s": None, "ratio": None},
        {"rule": "new_rule", "baseline_s": None, "this_s": 1.0, "ratio": None},
    ]


def test_ratio_of_totals_guards_against_zero():
    assert bench.ratio(76.5, 72.0) == pytest.approx(1.0625)
    assert bench.ratio(5.0, 0.0) is None


def test_rules_run_reads_the_job_headers_of_snakemakes_log():
    log = (
        "[Mon Dec  7 06:56:58 2026]\nlocalrule build_task_probes:\n    input: a\n"
        "[Mon Dec  7 06:56:59 2026]\nrule extract_activations:\n    jobid: 3\n"
        "rule extract_activations:\ncheckpoint split_probes:\nlocalrule all:\n"
        "Finished jobid: 3 (Rule: extract_activations)\n"
    )
    assert bench.rules_run(log) == [
        "build_task_probes",
        "extract_activations",
        "split_probes",
        "all",
    ]


def test_tables_render_every_rule_and_a_dash_for_unknowns(bench_dir: Path):
    text = bench.summary_table(bench.summarise(bench_dir))
    lines = text.splitlines()
    assert lines[0].split() == ["rule", "jobs", "wall", "s", "CPU", "s", "peak", "MB"]
    assert lines[2].split() == ["prepare_model", "2", "45.0", "34.0", "2,500"]
    assert lines[4].split() == ["plot_overlap", "1", "0.5", "-", "-"]
    frame = pl.DataFrame(
        {"rule": ["a"], "baseline_s": [3.0], "this_s": [2.0], "ratio": [1.5]},
    )
    assert bench.compare_table(frame).splitlines()[2].split() == ["a", "3.0", "2.0", "1.50"]


def test_work_lines_give_each_jobs_ratio_and_come_off_the_wall_times(tmp_path: Path):
    logs = tmp_path / "logs"
    (logs / "evaluate_lape").mkdir(parents=True)
    (logs / "evaluate_lape" / "m1.log").write_text(
        "2026 INFO something\n2026 INFO work: job 30.0 s, minimum 20.0 s (2 batches, 100 tokens, "
        "1,700 token passes), ratio 1.50; replay 2.5 s\n",
        encoding="utf-8",
    )
    (logs / "find_refusal_direction" / "m2").mkdir(parents=True)
    (logs / "find_refusal_direction" / "m2" / "en.log").write_text(
        "INFO work: job 90.0 s, minimum 30.0 s (4 batches, 9 tokens, 9 token passes, 5 "
        "generated tokens), ratio 3.00; replay 1.0 s\n",
        encoding="utf-8",
    )
    (logs / "plot_lape_layers.log").write_text("no work line\n", encoding="utf-8")
    work = bench.work_ratios(logs)
    assert work.select("rule", "job", "ratio", "replay_s").to_dicts() == [
        {"rule": "find_refusal_direction", "job": "m2/en", "ratio": 3.0, "replay_s": 1.0},
        {"rule": "evaluate_lape", "job": "m1", "ratio": 1.5, "replay_s": 2.5},
    ]
    summary = pl.DataFrame(
        {"rule": ["evaluate_lape", "plot_lape_layers"], "jobs": [1, 1], "wall_s": [33.0, 2.0]}
    )
    net = bench.net_of_replays(summary, work)
    assert net.select("rule", "wall_s", "replay_s").rows() == [
        ("evaluate_lape", 30.5, 2.5),
        ("plot_lape_layers", 2.0, 0.0),
    ]
    assert "3.00" in bench.work_table(work) and "m2/en" in bench.work_table(work)
