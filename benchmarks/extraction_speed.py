"""Extraction speed against plain forward passes, and extraction memory against corpus size.

Runs, in one process and interleaved round by round on the same length-grouped batches:
  extract  polyneuron's hooked statistics pass (decoder body, stops after the last hooked layer)
  full     a plain ``model(**batch)`` forward (with the LM head / unembedding)
  body     a plain forward of the decoder body alone (``model.model``)
and prints tokens/s of each and the ratios extract/full (target ≥ 2.0 on Gemma 3 270M on CPU)
and extract/body (target ≥ 0.95). With ``--memory N1 N2 ...`` it also runs one extraction per
corpus size in a fresh subprocess and prints its peak RSS: it should not grow with N.

    python benchmarks/extraction_speed.py --model-dir resources/models/gemma3-270m
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from polyneuron.model.adapters import activation_modules, decoder_body, neurons_per_layer  # noqa: E402
from polyneuron.model.batches import collate, encode, pad_token_id, plan_batches  # noqa: E402
from polyneuron.model.extract import collect_stats  # noqa: E402
from polyneuron.model.hooks import NeuronStats, StatsCollector  # noqa: E402
from polyneuron.model.load import ModelSpec, load_prepared  # noqa: E402
from polyneuron.plan.languages import LANGUAGE_NAMES  # noqa: E402
from polyneuron.probes.muse import build_probes, find_dictionary, pivot_pairs, read_dictionary  # noqa: E402


def probe_texts(muse_dir: Path, langs: list[str], per_lang: int) -> list[str]:
    """The workflow's MUSE probe prompts, built from the shipped dictionaries."""
    pairs, sources = {}, {}
    for lang in langs:
        if lang == "en":
            continue
        path, swapped = find_dictionary(muse_dir, "en", lang)
        pairs[lang] = pivot_pairs(read_dictionary(path)[0], swapped)
        sources[lang] = path.name
    probes = build_probes(pairs, sources, "en", langs, LANGUAGE_NAMES, per_lang)
    return [text for frame in probes.values() for text in frame["text"].to_list()]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def speed(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    model, tokenizer, device = load_prepared(
        ModelSpec("bench", str(args.model_dir)), args.model_dir
    )
    texts = probe_texts(args.muse_dir, args.langs, args.per_lang)
    encoded = encode(tokenizer, texts)
    batches = [
        collate([encoded[i] for i in b], pad_token_id(tokenizer), device)
        for b in plan_batches([len(e.input_ids) for e in encoded], args.batch_tokens, 512)
    ]
    n_tokens = sum(len(e.input_ids) for e in encoded)
    body = decoder_body(model)
    modules = activation_modules(model)
    stats = NeuronStats.zeros(len(modules), neurons_per_layer(model.config), device=device)
    collector = StatsCollector(modules, stats)

    def extract() -> None:
        with collector.attached():
            for batch, counted in batches:
                collector.set_mask(counted)
                collector.run(body, **batch)

    def full() -> None:
        for batch, _ in batches:
            model(**batch, use_cache=False)

    def plain_body() -> None:
        for batch, _ in batches:
            body(**batch, use_cache=False)

    modes = {"extract": extract, "full": full, "body": plain_body}
    times: dict[str, list[float]] = {name: [] for name in modes}
    print(f"{len(texts)} texts, {n_tokens} tokens, {len(batches)} batches, {args.threads} threads")
    with torch.inference_mode():
        extract()  # warm-up
        for round_ in range(args.rounds):
            names = list(modes)
            names = names[round_ % 3 :] + names[: round_ % 3]  # rotate who goes first
            for name in names:
                times[name].append(timed(modes[name]))
    rate = {name: n_tokens / statistics.median(t) for name, t in times.items()}
    for name, value in rate.items():
        print(f"{name:8s} {value:10.0f} tokens/s (median of {args.rounds} rounds)")
    print(f"extract / full forward : {rate['extract'] / rate['full']:.2f}x  (target >= 2.0)")
    print(f"extract / body forward : {rate['extract'] / rate['body']:.2f}x  (target >= 0.95)")


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Unlike getrusage's ru_maxrss, which Linux
    keeps across execve, it starts afresh in a child started by the benchmark."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    model, tokenizer, device = load_prepared(
        ModelSpec("bench", str(args.model_dir)), args.model_dir
    )
    # every size draws from the same mix of languages and lengths: the pool in a fixed random
    # order, repeated as needed (the first n texts of the unshuffled pool would be English
    # only for small n and add longer scripts for larger ones)
    texts = probe_texts(args.muse_dir, args.langs, 10**6)
    random.Random(0).shuffle(texts)
    texts = (texts * (args.memory_child // max(len(texts), 1) + 1))[: args.memory_child]
    # from_pretrained maps the safetensors file: a weight's pages count as resident only once
    # read, and the embedding matrix (168M of Gemma 3 270M's 268M parameters) is read one row
    # per distinct token, so RSS would grow with the vocabulary a corpus happens to touch.
    # Read every weight once, so that what follows measures extraction alone.
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.sum()
    loaded = peak_rss_mb()
    collect_stats(model, tokenizer, encode(tokenizer, texts), device, args.batch_tokens)
    peak = peak_rss_mb()
    print(json.dumps({"texts": len(texts), "after_load_mb": loaded, "peak_mb": peak}))


def memory(args: argparse.Namespace) -> None:
    for n in args.memory:
        cmd = [
            sys.executable,
            __file__,
            "--model-dir",
            str(args.model_dir),
            "--memory-child",
            str(n),
        ]
        cmd += ["--threads", str(args.threads), "--batch-tokens", str(args.batch_tokens)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        print(
            f"extraction over {result['texts']:6d} texts: peak RSS {result['peak_mb']:7.0f} MB "
            f"(model loaded, every weight resident: {result['after_load_mb']:7.0f} MB)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, default=REPO / "resources/models/gemma3-270m")
    parser.add_argument("--muse-dir", type=Path, default=REPO / "data/muse")
    parser.add_argument("--langs", nargs="+", default=["en", "de", "ru", "zh", "ar", "hi"])
    parser.add_argument("--per-lang", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-tokens", type=int, default=8192)
    parser.add_argument("--memory", type=int, nargs="*", default=[], help="corpus sizes")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args)
        return
    if args.rounds:
        speed(args)
    memory(args)


if __name__ == "__main__":
    main()
