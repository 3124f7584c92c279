"""How long Snakemake takes to plan polyneuron at cluster scale, and to find nothing to do.

1. A dry run (``snakemake -n``) of a config with 5 models × 16 languages × every per-language
   probe set (muse, flores, values, relations, refusal) × 8 shards, asking for every
   extraction shard plus the overlap heatmap; ``--shards 10`` plans as many extraction jobs
   (4,000) as 6 probe sets × 8 shards would (3,840). Nothing is loaded or downloaded: the
   models are Hugging Face ids that a dry run never opens.
2. With ``--finished DIR``: a dry run of ``results/overlap_heatmap.pdf`` in a working folder
   where the default workflow has finished (the repository after the README's first command),
   which should plan nothing.

    python benchmarks/planning.py [--shards 8] [--finished .]

Prints the wall time of each dry run (median of ``--rounds``) and the number of planned jobs.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
LANGS = [
    "en",
    "de",
    "fr",
    "es",
    "it",
    "pt",
    "ru",
    "zh",
    "ja",
    "ar",
    "hi",
    "id",
    "fi",
    "hu",
    "sw",
    "tr",
]
PROBES = ["muse", "flores", "values", "relations", "refusal"]
MODELS = {
    "qwen2.5-0.5b": "Qwen/Qwen2.5-0.5B",
    "qwen2.5-7b": "Qwen/Qwen2.5-7B",
    "llama-3.1-8b": "meta-llama/Llama-3.1-8B",
    "gemma-2-9b": "google/gemma-2-9b",
    "llama-3.1-70b": "meta-llama/Llama-3.1-70B",
}


def scale_config(shards: int) -> dict:
    per_language = {"languages": LANGS}
    return {
        "models": {
            name: {"source": source, "dtype": "bfloat16"} for name, source in MODELS.items()
        },
        "languages": LANGS,
        "probes": {
            "values": per_language,
            "relations": per_language,
            # the shipped translations cover 9 languages; the rest would be machine-translated
            "refusal": {**per_language, "translator": "hf"},
        },
        "extraction": {"shards": shards},
    }


def targets(shards: int) -> list[str]:
    return [
        "results/overlap_heatmap.pdf",
        *(
            f"results/activations/{model}/{probe}/{lang}/part-{k}.parquet"
            for model in MODELS
            for probe in PROBES
            for lang in LANGS
            for k in range(shards)
        ),
    ]


def dry_run(workdir: Path, args: list[str]) -> tuple[float, int]:
    started = time.perf_counter()
    result = subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), *args, "--dry-run", "--quiet", "rules"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise SystemExit(f"dry run failed:\n{output[-5000:]}")
    if "Nothing to be done" in output:
        return elapsed, 0
    total = re.search(r"^total\s+(\d+)", output, flags=re.MULTILINE)
    return elapsed, int(total[1]) if total else -1


def measure(workdir: Path, args: list[str], rounds: int) -> tuple[float, int]:
    runs = [dry_run(workdir, args) for _ in range(rounds)]
    return statistics.median(t for t, _ in runs), runs[0][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--finished", type=Path, help="a folder where the default run finished")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="polyneuron-plan-") as tmp:
        workdir = Path(tmp)
        config = scale_config(args.shards)
        (workdir / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        seconds, jobs = measure(workdir, targets(args.shards), args.rounds)
        extraction = len(MODELS) * len(PROBES) * len(LANGS) * args.shards
        print(
            f"scale dry run: {len(MODELS)} models x {len(LANGS)} languages x {len(PROBES)} "
            f"probe sets x {args.shards} shards = {extraction} extraction jobs, {jobs} jobs in "
            f"all: {seconds:.2f} s (median of {args.rounds})"
        )
    if args.finished:
        seconds, jobs = measure(
            args.finished.resolve(), ["results/overlap_heatmap.pdf"], args.rounds
        )
        state = "nothing to do" if jobs == 0 else f"{jobs} jobs planned (is the run finished?)"
        print(f"no-op dry run of the finished default: {seconds:.2f} s, {state}")


if __name__ == "__main__":
    main()
