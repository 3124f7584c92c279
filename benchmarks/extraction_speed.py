"""Extraction speed against plain forward passes, and extraction memory against corpus size.

Runs, in one process and interleaved round by round on the same length-grouped batches:
  extract  polyneuron's hooked statistics pass (decoder body, stops after the last hooked layer)
  full     a plain ``model(**batch)`` forward (with the LM head / unembedding)
  body     a plain forward of the decoder body alone (``model.model``)
and prints tokens/s of each and the ratios extract/full (target ≥ 2.0 on Gemma 3 270M on CPU)
and extract/body (target ≥ 0.95). With ``--nnsight`` it also times nnsight's best form on the
same batches (``NNsight(model)``, one ``trace`` per batch reading every layer's activation module,
the same statistics folded inside the trace, ``tracer.stop()`` after the last layer), prints
extract/nnsight (target ≥ 1.2) and checks that both give the same statistics.

It then prints the matrix-multiply limit: the fp32 rate (FLOP/s) of ``F.linear`` at the decoder
body's own shapes (each linear layer of one decoder layer, with its real weight, on an input of
the benchmark's mean padded tokens per batch), the decoder body's FLOPs per token, and
extraction's tokens/s as a fraction of what that rate allows. FLOPs per token count the linear
layers of every decoder layer (2 × their weights' parameters, biases ignored) and attention's
scores and weighted values (2 × 2 × query heads × head dim × keys per layer, keys = the mean
padded sequence length of the batches, the full square the kernel computes); not counted: the
embedding lookup, norms, activation function, rotary embedding, softmax, residual adds, and the
last layer's down projection is counted although extraction stops before it. Padding tokens
are computed but not counted in tokens/s, so padding waste shows up as a gap to the limit.
A short torch.profiler profile of a few extraction batches follows: the top ops by self CPU
time with their share, and the shares by kind (matmul, attention, statistics inside the hooks,
norms/elementwise/other).

With ``--memory N1 N2 ...`` it also runs one extraction per corpus size in a fresh subprocess
and prints its peak RSS: it should not grow with N.

    python benchmarks/extraction_speed.py --model-dir resources/models/gemma3-270m --nnsight
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
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from polyneuron.model.adapters import (  # noqa: E402
    activation_modules,
    decoder_body,
    decoder_layers,
    neurons_per_layer,
)
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


def matmul_limit(model: torch.nn.Module, tokens: int, seq_len: float, reps: int = 5) -> dict:
    """fp32 ``F.linear`` FLOP/s at one decoder layer's weight shapes on ``[tokens, in]`` inputs,
    and the decoder body's FLOPs per token (see the module docstring for what is counted)."""
    layers = decoder_layers(model)
    linears = [m for m in layers[0].modules() if isinstance(m, torch.nn.Linear)]
    inputs = [torch.randn(tokens, m.in_features) for m in linears]
    flops = sum(2 * tokens * m.in_features * m.out_features for m in linears)
    with torch.inference_mode():
        for m, x in zip(linears, inputs, strict=True):  # warm-up
            F.linear(x, m.weight)
        start = time.perf_counter()
        for _ in range(reps):
            for m, x in zip(linears, inputs, strict=True):
                F.linear(x, m.weight)
        rate = flops * reps / (time.perf_counter() - start)
    config = model.config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    linear_params = sum(m.in_features * m.out_features for m in linears)
    attention = 2 * 2 * heads * head_dim * seq_len
    per_token = len(layers) * (2 * linear_params + attention)
    return {
        "flops": rate,
        "per_token": per_token,
        "attention_share": attention * len(layers) / per_token,
        "linears": [f"{m.in_features}x{m.out_features}" for m in linears],
    }


MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear")
ATTENTION_OPS = ("attention", "softmax", "aten::baddbmm")
STATS_LABEL = "polyneuron.statistics"


def profile_extract(collector: StatsCollector, body, batches, top: int = 8) -> None:
    """Where an extraction batch's time goes: top ops by self CPU time, and shares by kind
    (ops run inside the statistics hooks count as statistics, whatever they are)."""
    from torch.profiler import ProfilerActivity, profile, record_function

    fold = collector.stats.add_

    def labelled(*a, **k):
        with record_function(STATS_LABEL):
            return fold(*a, **k)

    collector.stats.add_ = labelled
    try:
        with (
            torch.inference_mode(),
            profile(activities=[ProfilerActivity.CPU]) as prof,
            collector.attached(),
        ):
            for batch, counted in batches:
                collector.set_mask(counted)
                collector.run(body, **batch)
    finally:
        del collector.stats.add_
    by_op: dict[str, float] = {}
    by_kind: dict[str, float] = {}
    for event in prof.events():
        if event.name == STATS_LABEL:
            continue
        parent, in_stats = event.cpu_parent, False
        while parent is not None:
            if parent.name == STATS_LABEL:
                in_stats = True
                break
            parent = parent.cpu_parent
        name = event.name
        if in_stats:
            kind = "statistics (hooks)"
        elif name in MATMUL_OPS:
            kind = "matmul"
        elif any(a in name for a in ATTENTION_OPS):
            kind = "attention"
        else:
            kind = "norms/elementwise/other"
        time_us = event.self_cpu_time_total
        key = f"{name} [{kind}]"
        by_op[key] = by_op.get(key, 0.0) + time_us
        by_kind[kind] = by_kind.get(kind, 0.0) + time_us
    total = sum(by_op.values())
    print(f"profile of {len(batches)} extraction batch(es), {total / 1e6:.2f} s CPU self time:")
    for key, value in sorted(by_op.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {100 * value / total:5.1f}%  {key}")
    shares = ", ".join(
        f"{kind} {100 * value / total:.1f}%"
        for kind, value in sorted(by_kind.items(), key=lambda kv: -kv[1])
    )
    print(f"  by kind: {shares}")


def nnsight_runner(model: torch.nn.Module, modules, batches, stats: NeuronStats):
    """nnsight 0.8's best form of the same extraction: one ``trace`` per batch, every layer's
    activation module read and folded into ``stats`` inside the trace, then ``tracer.stop()``."""
    try:
        from nnsight import NNsight
    except ImportError as error:
        raise SystemExit(
            f"--nnsight needs nnsight: pip install -r requirements-bench.txt ({error})"
        ) from error

    traced = NNsight(model)
    names = {module: name for name, module in model.named_modules()}
    envoys = []
    for module in modules:
        envoy = traced
        for part in names[module].split("."):
            envoy = envoy[int(part)] if part.isdigit() else getattr(envoy, part)
        envoys.append(envoy)

    def run() -> None:
        for batch, counted in batches:
            with traced.trace(**batch, use_cache=False) as tracer:
                for layer, envoy in enumerate(envoys):
                    act = envoy.output[counted].float()  # [counted tokens, neurons]
                    stats.n_tokens[layer] += act.shape[0]
                    stats.n_active[layer] += (act > 0).sum(0)
                    stats.act_sum[layer] += act.sum(0).double()
                    stats.act_sqsum[layer] += act.square().sum(0).double()
                tracer.stop()

    return run


def zero_(stats: NeuronStats) -> None:
    for tensor in (stats.n_tokens, stats.n_active, stats.act_sum, stats.act_sqsum):
        tensor.zero_()


def compare(ours: NeuronStats, theirs: NeuronStats) -> None:
    counts = torch.equal(ours.n_tokens, theirs.n_tokens) and torch.equal(
        ours.n_active, theirs.n_active
    )
    diff = max(
        float((ours.act_sum - theirs.act_sum).abs().max()),
        float((ours.act_sqsum - theirs.act_sqsum).abs().max()),
    )
    close = torch.allclose(ours.act_sum, theirs.act_sum, rtol=1e-5, atol=1e-3) and (
        torch.allclose(ours.act_sqsum, theirs.act_sqsum, rtol=1e-5, atol=1e-3)
    )
    relative = max(
        float(((ours.act_sum - theirs.act_sum).abs() / theirs.act_sum.abs().clamp(min=1)).max()),
        float(((ours.act_sqsum - theirs.act_sqsum).abs() / theirs.act_sqsum.clamp(min=1)).max()),
    )
    active = int((ours.n_active - theirs.n_active).abs().max())
    print(
        f"statistics polyneuron vs nnsight: counts {'equal' if counts else 'DIFFER'} "
        f"(max |n_active diff| {active}), sums {'allclose' if close else 'NOT close'} "
        f"(max abs diff {diff:.3g}, relative to max(|value|, 1) {relative:.2g})"
    )


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
    if args.nnsight:
        theirs = NeuronStats.zeros(len(modules), neurons_per_layer(model.config), device=device)
        modes["nnsight"] = nnsight_runner(model, modules, batches, theirs)
    times: dict[str, list[float]] = {name: [] for name in modes}
    padded = sum(batch["input_ids"].numel() for batch, _ in batches)
    widths = [batch["input_ids"].shape[1] for batch, _ in batches]
    print(
        f"{len(texts)} texts, {n_tokens} tokens ({padded} padded), {len(batches)} batches, "
        f"{args.threads} threads"
    )
    with torch.inference_mode():
        extract()  # warm-up
        if args.nnsight:
            modes["nnsight"]()
        for round_ in range(args.rounds):
            names = list(modes)
            names = names[round_ % len(names) :] + names[: round_ % len(names)]  # who goes first
            for name in names:
                times[name].append(timed(modes[name]))
    rate = {name: n_tokens / statistics.median(t) for name, t in times.items()}
    for name, value in rate.items():
        print(f"{name:8s} {value:10.0f} tokens/s (median of {args.rounds} rounds)")
    print(f"extract / full forward : {rate['extract'] / rate['full']:.2f}x  (target >= 2.0)")
    print(f"extract / body forward : {rate['extract'] / rate['body']:.2f}x  (target >= 0.95)")
    if args.nnsight:
        print(f"extract / nnsight      : {rate['extract'] / rate['nnsight']:.2f}x  (target >= 1.2)")
        with torch.inference_mode():
            zero_(stats)
            zero_(theirs)
            extract()
            modes["nnsight"]()
        compare(stats, theirs)

    # the matrix-multiply limit at the decoder body's own shapes
    seq_len = sum(w * b["input_ids"].numel() for w, (b, _) in zip(widths, batches, strict=True))
    seq_len /= padded  # keys per query, averaged over the padded tokens
    limit = matmul_limit(model, round(padded / len(batches)), seq_len)
    allowed = limit["flops"] / limit["per_token"]
    print(
        f"fp32 matmul rate at the body's shapes ({round(padded / len(batches))} tokens x "
        f"{', '.join(limit['linears'])}): {limit['flops'] / 1e9:.1f} GFLOP/s"
    )
    print(
        f"decoder body FLOPs per token: {limit['per_token'] / 1e6:.1f} MFLOP (attention "
        f"{100 * limit['attention_share']:.1f}% at {seq_len:.1f} keys) -> limit {allowed:.0f} "
        f"tokens/s; extract reaches {rate['extract'] / allowed:.2f} of it "
        f"(padded tokens: {rate['extract'] * padded / n_tokens / allowed:.2f})"
    )
    profile_extract(collector, body, batches[: args.profile_batches])


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
    parser.add_argument("--nnsight", action="store_true", help="also time nnsight 0.8")
    parser.add_argument("--profile-batches", type=int, default=2, help="batches profiled")
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
