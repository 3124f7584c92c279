"""The whole workflow's run time on a fresh results folder, and what each rule costs.

For each checkout (the baseline first, with ``--baseline``, then this one, back to back on the
same machine) it makes a fresh working folder, copies the config there as ``config.yaml`` and runs

    <this python> -m snakemake --snakefile <checkout>/Snakefile --directory <folder> --cores N

with ``PYTHONPATH=<checkout>/workflow`` in front (the job scripts import that checkout's
``polyneuron``, not the installed one) and ``TOKENIZERS_PARALLELISM=false``. Every rule writes a
Snakemake benchmark file per job under ``results/benchmarks/<rule>/...``; they are summed per rule.

    python benchmarks/workflow.py [--config config.yaml] [--cores 2] [--target T ...]
                                  [--baseline /path/to/other/checkout] [--keep DIR]

Prints, per checkout, a table of rule, jobs, wall s (sum), CPU s (sum) and peak memory (MB, the
largest max_rss of its jobs), slowest first, then the sum of the job wall times, the snakemake
run's own wall time and the rules that ran without a benchmark file.

Work ratios: both runs have ``POLYNEURON_WORK_RATIO=1`` in their environment, so each model job
of a checkout that has ``polyneuron.model.work`` ends by replaying the plain forward (or
generation, or forward and backward) passes it needs at minimum — its inputs once per
intervention and control — in its own process (see ``polyneuron.model.work`` and
docs/benchmarks.md), and logs ``work: job J s, minimum M s (...), ratio R; replay P s``. This script
reads those lines from the job logs and prints every model job's work ratio (J / M: the job's
time, imports and model loading included, over its minimum), slowest first. The replay is not
the job's work: it is taken off the job's wall time (``wall s`` and every total below are net
of it; ``replay s`` says how much). ``--no-work-ratios`` runs without the replays.

With ``--baseline``, also the per-rule wall s of both with their ratio (baseline / this) and
the ratio of the totals. Snakemake's output goes to ``snakemake.log`` in the working folder,
which is deleted unless ``--keep DIR`` (then the folders are DIR/baseline and DIR/this).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = Path("results/benchmarks")
# Snakemake's benchmark columns -> ours; "NA" (a job faster than the first sample) reads as null
COLUMNS = {"s": "wall_s", "cpu_time": "cpu_s", "max_rss": "peak_mb"}
SUMMARY_SCHEMA = {
    "rule": pl.String,
    "jobs": pl.UInt32,
    "wall_s": pl.Float64,
    "cpu_s": pl.Float64,
    "peak_mb": pl.Float64,
}
JOB_LINE = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$", flags=re.MULTILINE)
LOGS = Path("logs")
WORK_LINE = re.compile(
    r"work: job (?P<job_s>[\d.]+) s, minimum (?P<minimum_s>[\d.]+) s \((?P<what>[^)]*)\), "
    r"ratio (?P<ratio>[\d.]+|nan); replay (?P<replay_s>[\d.]+) s"
)
WORK_SCHEMA = {
    "rule": pl.String,
    "job": pl.String,
    "job_s": pl.Float64,
    "minimum_s": pl.Float64,
    "ratio": pl.Float64,
    "replay_s": pl.Float64,
    "what": pl.String,
}


def read_benchmark(path: Path) -> pl.DataFrame:
    """One benchmark file's rows (one per repeat) as wall_s, cpu_s and peak_mb."""
    frame = pl.read_csv(path, separator="\t", null_values=["NA", "-"], infer_schema=False)
    return frame.select(
        pl.col(source).cast(pl.Float64).alias(name) for source, name in COLUMNS.items()
    )


def rule_of(path: Path, bench_dir: Path) -> str:
    """results/benchmarks/<rule>/<wildcards...>.tsv, or results/benchmarks/<rule>.tsv."""
    parts = path.relative_to(bench_dir).parts
    return parts[0] if len(parts) > 1 else path.stem


def summarise(bench_dir: Path) -> pl.DataFrame:
    """Per rule: jobs (benchmark files), wall s and CPU s summed, peak memory (largest max_rss).

    Slowest rule first; a rule whose jobs all lack a measurement has null CPU s / peak memory.
    """
    frames = [
        read_benchmark(path).with_columns(
            rule=pl.lit(rule_of(path, bench_dir)), job=pl.lit(str(path))
        )
        for path in sorted(bench_dir.rglob("*.tsv"))
    ]
    if not frames:
        return pl.DataFrame(schema=SUMMARY_SCHEMA)
    return (
        pl.concat(frames)
        .group_by("rule")
        .agg(
            jobs=pl.col("job").n_unique().cast(pl.UInt32),
            wall_s=pl.col("wall_s").sum(),
            # sum() of only nulls is 0; keep "not measured" apart from "took no CPU"
            cpu_s=pl.when(pl.col("cpu_s").is_not_null().any()).then(pl.col("cpu_s").sum()),
            peak_mb=pl.col("peak_mb").max(),
        )
        .select(SUMMARY_SCHEMA.keys())
        .cast(SUMMARY_SCHEMA)
        .sort(["wall_s", "rule"], descending=[True, False])
    )


def work_ratios(log_dir: Path) -> pl.DataFrame:
    """Every job log's work line (logs/<rule>/<wildcards...>.log): rule, job (the log's path
    under logs/<rule>), job s, minimum s, ratio, replay s and what the minimum is; highest
    ratio first."""
    rows = []
    for path in sorted(log_dir.rglob("*.log")) if log_dir.is_dir() else []:
        found = WORK_LINE.search(path.read_text(encoding="utf-8", errors="replace"))
        if found is None:
            continue
        parts = path.relative_to(log_dir).parts
        rows.append(
            {
                "rule": parts[0],
                "job": "/".join(parts[1:]).removesuffix(".log") or parts[0],
                **{k: float(found[k]) for k in ("job_s", "minimum_s", "ratio", "replay_s")},
                "what": found["what"],
            }
        )
    frame = pl.DataFrame(rows, schema=WORK_SCHEMA)
    return frame.sort(["ratio", "rule", "job"], descending=[True, False, False])


def net_of_replays(summary: pl.DataFrame, work: pl.DataFrame) -> pl.DataFrame:
    """``summary`` with each rule's replay seconds (column ``replay_s``) taken off its wall s."""
    replays = work.group_by("rule").agg(replay_s=pl.col("replay_s").sum())
    return (
        summary.join(replays, on="rule", how="left")
        .with_columns(pl.col("replay_s").fill_null(0.0))
        .with_columns(wall_s=pl.col("wall_s") - pl.col("replay_s"))
        .sort(["wall_s", "rule"], descending=[True, False])
    )


def compare(baseline: pl.DataFrame, this: pl.DataFrame) -> pl.DataFrame:
    """Per rule: the wall s of both summaries and baseline / this (null where one lacks the rule).

    Rules of either side, slowest in the baseline first.
    """
    return (
        baseline.select("rule", baseline_s="wall_s")
        .join(this.select("rule", this_s="wall_s"), on="rule", how="full", coalesce=True)
        .with_columns(ratio=pl.col("baseline_s") / pl.col("this_s"))
        .sort(["baseline_s", "this_s", "rule"], descending=[True, True, False], nulls_last=True)
    )


def ratio(baseline: float, this: float) -> float | None:
    return baseline / this if this > 0 else None


def rules_run(log: str) -> list[str]:
    """The rules that Snakemake's log says it started a job of, in first-seen order."""
    return list(dict.fromkeys(JOB_LINE.findall(log)))


def render(headers: list[str], rows: list[list[str]]) -> str:
    """A plain text table: first column left-aligned, the rest right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        first, *rest = cells
        return "  ".join(
            [first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))]
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def summary_table(summary: pl.DataFrame) -> str:
    rows = [
        [
            row["rule"],
            str(row["jobs"]),
            number(row["wall_s"]),
            number(row["cpu_s"]),
            number(row["peak_mb"], 0),
        ]
        for row in summary.iter_rows(named=True)
    ]
    return render(["rule", "jobs", "wall s", "CPU s", "peak MB"], rows)


def work_table(work: pl.DataFrame) -> str:
    rows = [
        [
            f"{row['rule']} {row['job']}",
            number(row["job_s"]),
            number(row["minimum_s"]),
            number(row["ratio"], 2),
            row["what"],
        ]
        for row in work.iter_rows(named=True)
    ]
    return render(["job", "job s", "minimum s", "ratio", "minimum: plain passes"], rows)


def compare_table(table: pl.DataFrame) -> str:
    rows = [
        [
            row["rule"],
            number(row["baseline_s"]),
            number(row["this_s"]),
            number(row["ratio"], 2),
        ]
        for row in table.iter_rows(named=True)
    ]
    return render(["rule", "baseline s", "this s", "baseline/this"], rows)


@dataclass
class Run:
    label: str
    checkout: Path
    summary: pl.DataFrame
    wall_s: float
    unbenchmarked: list[str]
    work: pl.DataFrame

    @property
    def job_s(self) -> float:
        return float(self.summary["wall_s"].sum())


def run_workflow(
    label: str,
    checkout: Path,
    config: Path,
    cores: int,
    targets: list[str],
    workdir: Path,
    work: bool = True,
) -> Run:
    """Run the whole workflow of a checkout in an empty working folder and summarise it (with
    ``work``: the jobs' work ratios, their replays taken off the wall times)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        raise SystemExit(f"{workdir} is not empty; the benchmark needs a fresh results folder")
    shutil.copyfile(config, workdir / "config.yaml")
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    env.pop("POLYNEURON_WORK_RATIO", None)
    if work:
        env["POLYNEURON_WORK_RATIO"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(checkout / "workflow"), os.environ.get("PYTHONPATH")])
    )
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(checkout / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        str(cores),
        *targets,
    ]
    log_path = workdir / "snakemake.log"
    print(f"{label}: running {checkout} in {workdir} (log: {log_path})", flush=True)
    started = time.perf_counter()
    with log_path.open("w", encoding="utf-8") as log_file:
        result = subprocess.run(
            command, cwd=workdir, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    wall_s = time.perf_counter() - started
    log = log_path.read_text(encoding="utf-8", errors="replace")
    if result.returncode != 0:
        raise SystemExit(
            f"{label}: snakemake failed (exit {result.returncode}) after {wall_s:.1f} s:\n"
            f"{log[-5000:]}"
        )
    ratios = work_ratios(workdir / LOGS)
    summary = net_of_replays(summarise(workdir / BENCHMARKS), ratios)
    benchmarked = set(summary["rule"].to_list())
    unbenchmarked = [rule for rule in rules_run(log) if rule not in benchmarked]
    return Run(label, checkout, summary, wall_s, unbenchmarked, ratios)


def report(run: Run) -> None:
    print(f"\n== {run.label}: {run.checkout}")
    print(summary_table(run.summary))
    if run.summary.is_empty():
        print(f"(no benchmark files under {BENCHMARKS})")
    print(f"sum of job wall times: {run.job_s:,.1f} s ({run.summary['jobs'].sum()} jobs)")
    print(f"snakemake run wall time: {run.wall_s:,.1f} s")
    if run.unbenchmarked:
        print(f"ran without a benchmark file: {', '.join(run.unbenchmarked)}")
    if not run.work.is_empty():
        replay = float(run.work["replay_s"].sum())
        print(f"\nwork ratios ({run.label}; {replay:,.1f} s of replays taken off the wall times):")
        print(work_table(run.work))


def report_comparison(baseline: Run, this: Run) -> None:
    print(f"\n== baseline ({baseline.checkout}) against this ({this.checkout})")
    print(compare_table(compare(baseline.summary, this.summary)))
    job_ratio = ratio(baseline.job_s, this.job_s)
    wall_ratio = ratio(baseline.wall_s, this.wall_s)
    print(
        f"total job time: {baseline.job_s:,.1f} s -> {this.job_s:,.1f} s, "
        f"{number(job_ratio, 2)} x less total job time"
    )
    print(
        f"snakemake run wall time: {baseline.wall_s:,.1f} s -> {this.wall_s:,.1f} s, "
        f"{number(wall_ratio, 2)} x less"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--target", action="append", default=[], help="a target file or rule (repeatable)"
    )
    parser.add_argument("--baseline", type=Path, help="another checkout, run first")
    parser.add_argument("--keep", type=Path, help="keep the working folders under this folder")
    parser.add_argument("--no-work-ratios", action="store_true", help="no replays: no work ratios")
    args = parser.parse_args()

    config = args.config.resolve()
    if not config.is_file():
        raise SystemExit(f"no config file {config}")
    checkouts = [("this", REPO)]
    if args.baseline:
        baseline = args.baseline.resolve()
        if not (baseline / "Snakefile").is_file():
            raise SystemExit(f"no Snakefile in the baseline checkout {baseline}")
        checkouts.insert(0, ("baseline", baseline))

    root = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="polyneuron-wf-"))
    runs = []
    try:
        for label, checkout in checkouts:
            runs.append(
                run_workflow(
                    label,
                    checkout,
                    config,
                    args.cores,
                    args.target,
                    root / label,
                    work=not args.no_work_ratios,
                )
            )
            report(runs[-1])  # at once: a failing second run keeps the first one's numbers
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if len(runs) == 2:
        report_comparison(*runs)


if __name__ == "__main__":
    main()
