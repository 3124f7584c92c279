"""Time and peak memory of the text probes at LAPE's scale: building and extracting them.

For each size N of ``--tokens`` it writes a synthetic monolingual corpus of N tokens (the
model's tokenizer, special tokens left out) in each of ``--langs`` (the shipped
``data/text/{lang}.txt`` lines in a seeded random order, repeated as needed) and builds the
probes of all of them the way the workflow does (``build_parallel_probes.py``: read line by
line, written in row groups), in one fresh process. For each size M of ``--extract-tokens`` it
builds the first language's probes of M tokens and runs ``extract_activations.py`` on them
(read row group by row group, tokenised and extracted in chunks), in a fresh process. Every
step prints wall seconds, tokens and its peak RSS (VmHWM): neither should grow with the size.

The extraction reads every weight once right after loading (the weights are memory-mapped, so
that the embedding rows a corpus happens to touch would otherwise add to RSS), and also prints
the RSS of the loaded model. ``--whole`` adds, per extraction size, the whole-shard path of
before (``read_split``, tokenise everything, ``collect_stats``) for comparison.

    python benchmarks/scale.py --model-dir resources/models/gemma3-270m \\
        --tokens 100000 1000000 --extract-tokens 20000 100000
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow" / "scripts"


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), which starts afresh in a child process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_corpus(lines: list[str], counts: list[int], tokens: int, path: Path, seed: int) -> int:
    """``lines`` in a seeded random order, repeated until they hold ``tokens`` tokens, one per
    line, into ``path``; returns the tokens written."""
    rng = random.Random(seed)
    order = list(range(len(lines)))
    written = 0
    with open(path, "w", encoding="utf-8") as handle:
        while written < tokens:
            rng.shuffle(order)
            for i in order:
                handle.write(lines[i] + "\n")
                written += counts[i]
                if written >= tokens:
                    break
    return written


class Corpora:
    """The shipped lines of each language and their token counts, read once."""

    def __init__(self, model_dir: Path, text_dir: Path) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.text_dir = text_dir
        self.cache: dict[str, tuple[list[str], list[int]]] = {}

    def write(self, lang: str, tokens: int, path: Path) -> int:
        if lang not in self.cache:
            lines = (self.text_dir / f"{lang}.txt").read_text(encoding="utf-8").splitlines()
            lines = [line.strip() for line in lines if line.strip()]
            ids = self.tokenizer(lines, add_special_tokens=False)["input_ids"]
            self.cache[lang] = (lines, [len(i) for i in ids])
        return write_corpus(*self.cache[lang], tokens, path, seed=sorted(self.cache).index(lang))


def tiny_model(model_dir: Path, folder: Path) -> Path:
    """A 2-layer random model of ``model_dir``'s architecture and tokenizer (hidden size 64),
    into ``folder``: the same reading, tokenising and batching at a fraction of the compute."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    text = getattr(config, "text_config", None) or config
    text.num_hidden_layers, text.hidden_size, text.intermediate_size = 2, 64, 128
    text.num_attention_heads, text.num_key_value_heads, text.head_dim = 2, 1, 32
    if hasattr(text, "layer_types"):
        text.layer_types = text.layer_types[:2]
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    for path in model_dir.glob("tokenizer*"):
        shutil.copy(path, folder / path.name)
    return folder


def build_params() -> SimpleNamespace:
    """probes.text's defaults but every line (``every: 1``): no pairs, no heldout split."""
    return SimpleNamespace(aligned=False, heldout_every=0, max_texts=None, every=1)


def child_build(args: argparse.Namespace) -> None:
    import pyarrow.parquet as pq

    folder = Path(args.folder)
    (folder / "logs").mkdir(exist_ok=True)
    start = time.perf_counter()
    groups = rows = 0
    for lang in args.langs:
        output = folder / "probes" / f"{lang}.parquet"
        snakemake = SimpleNamespace(
            input=SimpleNamespace(text=str(folder / f"{lang}.txt"), get=lambda k, d=None: None),
            output=[str(output)],
            log=[str(folder / "logs" / f"build-{lang}.log")],
            wildcards=SimpleNamespace(lang=lang),
            params=build_params(),
        )
        runpy.run_path(
            str(SCRIPTS / "build_parallel_probes.py"), init_globals={"snakemake": snakemake}
        )
        meta = pq.ParquetFile(output).metadata
        groups, rows = groups + meta.num_row_groups, rows + meta.num_rows
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {"seconds": seconds, "rows": rows, "row_groups": groups, "peak_mb": peak_rss_mb()}
        )
    )


def child_extract(args: argparse.Namespace) -> None:
    import polars as pl
    import torch

    import polyneuron.model.load as load

    folder = Path(args.folder)
    (folder / "logs").mkdir(exist_ok=True)
    state: dict[str, float] = {}
    job_model = load.load_job_model

    def loaded_whole(*a, **k):
        model, tokenizer, device = job_model(*a, **k)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.sum()
        state["after_load_mb"] = peak_rss_mb()
        state["loaded_at"] = time.perf_counter()
        return model, tokenizer, device

    load.load_job_model = loaded_whole
    params = SimpleNamespace(
        model={"dtype": "float32", "device": "cpu"},
        shards=1,
        batch_tokens=args.batch_tokens,
        max_batch_size=512,
        split="train",
        count_tokens="prompt",
    )
    output = folder / f"part-0.{args.child}.parquet"
    probes = folder / "probes" / f"{args.langs[0]}.parquet"
    if args.child == "extract":
        snakemake = SimpleNamespace(
            input=SimpleNamespace(probes=str(probes), model=str(args.model_dir)),
            output=[str(output)],
            log=[str(folder / "logs" / "extract.log")],
            threads=args.threads,
            wildcards=SimpleNamespace(model="bench", probe="text", lang=args.langs[0], k="0"),
            params=params,
        )
        runpy.run_path(
            str(SCRIPTS / "extract_activations.py"), init_globals={"snakemake": snakemake}
        )
    else:  # the whole shard at once, as before
        from polyneuron.io import write_parquet
        from polyneuron.model.batches import encode
        from polyneuron.model.extract import collect_stats, read_split

        texts = read_split(probes, "train")["text"].to_list()
        model, tokenizer, device = loaded_whole("bench", args.model_dir, params.model, args.threads)
        stats = collect_stats(
            model, tokenizer, encode(tokenizer, texts), device, args.batch_tokens, 512
        )
        write_parquet(stats.to_frame(), output)
    seconds = time.perf_counter() - state["loaded_at"]
    counted = int(pl.read_parquet(output, columns=["n_tokens"])["n_tokens"][0])
    print(
        json.dumps(
            {
                "seconds": seconds,
                "counted_tokens": counted,
                "after_load_mb": state["after_load_mb"],
                "peak_mb": peak_rss_mb(),
            }
        )
    )


def run_child(args: argparse.Namespace, mode: str, folder: Path, langs: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--folder", str(folder)]
    cmd += ["--model-dir", str(args.model_dir), "--threads", str(args.threads)]
    cmd += ["--batch-tokens", str(args.batch_tokens), "--langs", *langs]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, default=REPO / "resources/models/gemma3-270m")
    parser.add_argument("--text-dir", type=Path, default=REPO / "data/text")
    parser.add_argument("--langs", nargs="+", default=["en", "de", "zh", "ar"])
    parser.add_argument(
        "--tokens",
        type=int,
        nargs="*",
        default=[100_000, 1_000_000],
        help="build sizes, per language",
    )
    parser.add_argument(
        "--extract-tokens",
        type=int,
        nargs="*",
        default=[20_000, 100_000],
        help="extraction sizes (first language)",
    )
    parser.add_argument(
        "--tiny-model",
        action="store_true",
        help="extract with a 2-layer random model of --model-dir's architecture and tokenizer",
    )
    parser.add_argument(
        "--whole", action="store_true", help="also time the whole-shard extraction of before"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-tokens", type=int, default=8192)
    parser.add_argument("--child", choices=["build", "extract", "whole"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "workflow"))
    if args.child == "build":
        child_build(args)
        return
    if args.child:
        child_extract(args)
        return
    corpora = Corpora(args.model_dir, args.text_dir)
    with tempfile.TemporaryDirectory(prefix="polyneuron-scale-") as tmp:
        if args.tiny_model:
            args.model_dir = tiny_model(args.model_dir, Path(tmp) / "tiny-model")
        for n in args.tokens:
            folder = Path(tmp) / f"build-{n}"
            folder.mkdir()
            written = sum(corpora.write(lang, n, folder / f"{lang}.txt") for lang in args.langs)
            mb = sum((folder / f"{lang}.txt").stat().st_size for lang in args.langs) / 1e6
            r = run_child(args, "build", folder, args.langs)
            print(
                f"build   {len(args.langs)} x {n:>9,} tokens ({written:,} tokens, {mb:.1f} MB, "
                f"{r['rows']:,} rows in {r['row_groups']} row groups): {r['seconds']:6.1f} s, "
                f"peak RSS {r['peak_mb']:5.0f} MB",
                flush=True,
            )
        lang = args.langs[0]
        for n in args.extract_tokens:
            folder = Path(tmp) / f"extract-{n}"
            folder.mkdir()
            written = corpora.write(lang, n, folder / f"{lang}.txt")
            run_child(args, "build", folder, [lang])
            for mode in ["extract", "whole"] if args.whole else ["extract"]:
                r = run_child(args, mode, folder, [lang])
                print(
                    f"{mode:7s} {lang} {n:>9,} tokens ({written:,} tokens, {r['counted_tokens']:,} "
                    f"counted): {r['seconds']:6.1f} s ({r['counted_tokens'] / r['seconds']:.0f} "
                    f"tokens/s), peak RSS {r['peak_mb']:5.0f} MB (model loaded, every weight "
                    f"resident: {r['after_load_mb']:5.0f} MB)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
