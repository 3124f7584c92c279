"""Refusal under interventions on the refusal directions (PolyRefuse's evaluation).

Each language's selected refusal direction (:mod:`polyneuron.neurons.refusal`) is tested
two ways, as the selection scores it:

- ablation: its unit vector is removed from every layer's input and every attention/MLP output
  (:func:`~polyneuron.neurons.refusal.directional_ablation`) while the model answers every
  language's harmful test prompts. The rows form the transfer matrix: does removing one
  language's direction stop refusal in the others?
- addition: the unnormalised direction (the mean difference, as the selection's steering score
  adds it) times ``coeff`` is added to its layer's input at every position
  (:func:`~polyneuron.neurons.refusal.activation_addition`) while the model answers every
  language's harmless test prompts: does it make the model refuse them?

Controls, one per seed: a random direction, the standard normal draw of a seeded
``torch.Generator`` (the same draw for every language). It is ablated as a unit vector (one
run per seed, the same for every language: its rows have no intervened language), and added at
each language's layer scaled to the norm of that language's direction.

Two metrics per prompt: ``refusal_rate``, whether the greedy completion contains one of the
evaluated language's refusal phrases (:func:`polyneuron.probes.refusal.is_refusal`), and
``refusal_score``, log P(refusal token) − log(1 − P) of the first answer token
(:func:`~polyneuron.neurons.refusal.refusal_scores`, the score the selection ranks by).
Rows follow :data:`REFUSAL_EVAL_SCHEMA`: :data:`polyneuron.evaluate.matrix.ABLATION_SCHEMA` with
paired-bootstrap intervals over prompts, ``n_neurons`` null, plus the intervention and the
kind of prompts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
from torch import nn
from tqdm import tqdm

from polyneuron.evaluate.matrix import ABLATION_SCHEMA, mean_metric_rows
from polyneuron.model import work
from polyneuron.model.batches import pad_token_id
from polyneuron.model.chat import ChatPrompts, left_padded
from polyneuron.model.steer import activation_addition, directional_ablation
from polyneuron.neurons.refusal import refusal_scores
from polyneuron.probes.refusal import is_refusal

__all__ = [
    "METRICS",
    "PROMPTS",
    "REFUSAL_EVAL_SCHEMA",
    "Direction",
    "RefusalPrompts",
    "Run",
    "greedy_completions",
    "plan_runs",
    "random_direction",
    "refusal_evaluation",
    "refusal_metrics",
    "summarize_refusal",
]

METRICS = ("refusal_rate", "refusal_score")
#: the prompts each intervention is evaluated on
PROMPTS = {"ablation": "harmful", "addition": "harmless"}

#: ABLATION_SCHEMA rows (``n_neurons`` null; ``intervened`` null for the random ablation
#: controls, which are the same for every language) plus what was done to which prompts
REFUSAL_EVAL_SCHEMA: dict[str, pl.DataType] = {
    **ABLATION_SCHEMA,
    "intervention": pl.String(),  # "ablation" | "addition"
    "prompts": pl.String(),  # "harmful" | "harmless"
}


@dataclass(frozen=True)
class Direction:
    """A language's selected refusal direction: the mean difference ``[hidden]`` (not
    normalised) and the layer whose input it was taken at."""

    vector: torch.Tensor
    layer: int


@dataclass(frozen=True)
class RefusalPrompts:
    """One language's chat-encoded test prompts and how its answers are judged: the refusal
    phrases (completions) and the refusal tokens (scores)."""

    harmful: ChatPrompts
    harmless: ChatPrompts
    phrases: Sequence[str]
    token_ids: Sequence[int]


@dataclass(frozen=True)
class Run:
    """One intervention: ``vector`` ablated at every layer, or added at ``layer``."""

    intervention: str  # "ablation" | "addition"
    intervened: str | None  # the language whose direction it is; None: a random ablation
    control: str  # "none" | "random"
    seed: int | None
    vector: torch.Tensor
    layer: int | None  # addition only


def random_direction(hidden_size: int, seed: int, norm: float = 1.0) -> torch.Tensor:
    """``torch.randn(hidden_size, generator=torch.Generator().manual_seed(seed))`` scaled to
    ``norm``, float32 (scaled in float64, so the norm holds to float32 precision)."""
    generator = torch.Generator().manual_seed(seed)
    vector = torch.randn(hidden_size, generator=generator).double()
    return (vector * (norm / vector.norm())).float()


def plan_runs(
    directions: Mapping[str, Direction], seeds: Sequence[int], hidden_size: int
) -> list[Run]:
    """Every intervention, in row order: each language's direction ablated, the random unit
    directions ablated (one per seed), then per language its direction added at its layer and
    the random directions scaled to its norm added there."""
    runs = [
        Run("ablation", lang, "none", None, d.vector.float(), None)
        for lang, d in directions.items()
    ]
    runs += [
        Run("ablation", None, "random", s, random_direction(hidden_size, s), None) for s in seeds
    ]
    for lang, d in directions.items():
        runs.append(Run("addition", lang, "none", None, d.vector.float(), d.layer))
        norm = float(d.vector.double().norm())
        runs += [
            Run("addition", lang, "random", s, random_direction(hidden_size, s, norm), d.layer)
            for s in seeds
        ]
    return runs


def greedy_completions(
    model: nn.Module,
    tokenizer,
    prompts: ChatPrompts,
    device: torch.device,
    max_new_tokens: int = 24,
    batch_size: int = 16,
) -> tuple[list[str], torch.Tensor]:
    """Each prompt's greedy continuation of at most ``max_new_tokens`` tokens (ending at the
    model's end-of-sequence token), decoded without special tokens, and the logits its first
    token was chosen from (the next-token logits after the prompt, ``[prompts, vocab]``
    float32), in prompt order. Prompts of similar length are batched, left-padded; open
    intervention hooks apply."""
    n = len(prompts.input_ids)
    order = sorted(range(n), key=lambda i: (len(prompts.input_ids[i]), i))
    pad = pad_token_id(tokenizer)
    texts = [""] * n
    first: torch.Tensor | None = None
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            ids, attention = left_padded(prompts, rows, pad)
            width = ids.shape[1]
            out = model.generate(
                input_ids=ids.to(device),
                attention_mask=attention.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=pad,
                return_dict_in_generate=True,
                output_logits=True,  # unprocessed: the prompt's own next-token logits
            )
            logits = out.logits[0].float().cpu()
            if first is None:
                first = torch.empty(n, logits.shape[-1])
            first[rows] = logits
            decoded = tokenizer.batch_decode(out.sequences[:, width:], skip_special_tokens=True)
            for i, text in zip(rows, decoded, strict=True):
                texts[i] = text
    assert first is not None, "no prompts"
    return texts, first


def refusal_metrics(
    model: nn.Module,
    tokenizer,
    prompts: ChatPrompts,
    phrases: Sequence[str],
    token_ids: Sequence[int],
    device: torch.device,
    max_new_tokens: int = 24,
    batch_size: int = 16,
) -> dict[str, np.ndarray]:
    """Per prompt: ``refusal_rate`` (1.0 when its greedy completion contains a refusal phrase,
    else 0.0) and ``refusal_score`` (of the next-token logits after the prompt: those the
    completion's first token was chosen from)."""
    completions, logits = greedy_completions(
        model, tokenizer, prompts, device, max_new_tokens, batch_size
    )
    return {
        "refusal_rate": np.array([is_refusal(t, phrases) for t in completions], dtype=np.float64),
        "refusal_score": refusal_scores(logits, token_ids).numpy(),
    }


def _intervene(model: nn.Module, run: Run, coeff: float):
    if run.intervention == "ablation":
        return directional_ablation(model, run.vector)
    assert run.layer is not None, "an addition needs a layer"
    return activation_addition(model, run.vector, run.layer, coeff)


def _run_rows(
    run: Run,
    baseline: Mapping[str, Mapping[str, np.ndarray]],
    scored: Mapping[str, Mapping[str, np.ndarray]],
    n_boot: int,
    boot_seed: int,
    alpha: float,
) -> pl.DataFrame:
    frames = [
        mean_metric_rows(
            run.intervened,  # type: ignore[arg-type]  # null: a random ablation control
            {lang: values[metric] for lang, values in baseline.items()},
            {lang: values[metric] for lang, values in scored.items()},
            metric,
            None,
            run.control,
            run.seed,
            n_boot=n_boot,
            boot_seed=boot_seed,
            alpha=alpha,
        )
        for metric in METRICS
    ]
    return pl.concat(frames).with_columns(
        intervention=pl.lit(run.intervention), prompts=pl.lit(PROMPTS[run.intervention])
    )


def refusal_evaluation(
    model: nn.Module,
    tokenizer,
    directions: Mapping[str, Direction],
    prompts: Mapping[str, RefusalPrompts],
    seeds: Sequence[int],
    device: torch.device,
    coeff: float = 1.0,
    max_new_tokens: int = 24,
    batch_size: int = 16,
    n_boot: int = 1000,
    boot_seed: int = 0,
    alpha: float = 0.05,
    desc: str = "refusal",
) -> pl.DataFrame:
    """Refusal of every language of ``prompts`` under each run of :func:`plan_runs`: its
    harmful prompts with each direction (and each random unit direction) ablated, its harmless
    prompts with each direction (and its random controls) added with ``coeff``; every run
    against the plain model's answers to the same prompts. Rows follow
    :data:`REFUSAL_EVAL_SCHEMA`, ordered as the runs, then by metric, then by evaluated
    language (``prompts``' order)."""
    if not directions:
        return pl.DataFrame(schema=REFUSAL_EVAL_SCHEMA)
    hidden_size = model.get_input_embeddings().weight.shape[1]
    runs = plan_runs(directions, seeds, hidden_size)

    def evaluate(kind: str) -> dict[str, dict[str, np.ndarray]]:
        scores = {}
        for lang, p in prompts.items():
            scores[lang] = refusal_metrics(
                model, tokenizer, getattr(p, kind), p.phrases, p.token_ids, device,
                max_new_tokens, batch_size,
            )  # fmt: skip
        return scores

    frames = []
    with tqdm(total=len(PROMPTS) + len(runs), desc=desc, unit="run", mininterval=5.0) as bar:
        baseline = {}
        for kind in PROMPTS.values():
            bar.set_postfix_str(f"baseline {kind}")
            times = 1 + sum(PROMPTS[run.intervention] == kind for run in runs)
            with work.need(times, new_tokens=max_new_tokens):
                baseline[kind] = evaluate(kind)
            bar.update(1)
        for run in runs:
            what = [run.intervention, run.intervened, run.control, run.seed]
            bar.set_postfix_str(" ".join(str(part) for part in what if part is not None))
            kind = PROMPTS[run.intervention]
            with _intervene(model, run, coeff):
                scored = evaluate(kind)
            bar.update(1)
            frames.append(_run_rows(run, baseline[kind], scored, n_boot, boot_seed, alpha))
    return pl.concat(frames).cast(REFUSAL_EVAL_SCHEMA)  # type: ignore[arg-type]


def summarize_refusal(frame: pl.DataFrame, metric: str = "refusal_rate") -> pl.DataFrame:
    """Per intervention and intervened language: ``metric`` on the language's own prompts
    (baseline, value, delta and its interval), the mean delta on the other languages
    (``others_delta``) and the mean delta of the random controls on the language's prompts
    over seeds (``random_delta``: the random ablations, or the random additions at this
    language's layer and norm)."""
    rows = frame.filter(pl.col("metric") == metric)
    own = rows.filter(
        pl.col("control") == "none", pl.col("intervened") == pl.col("evaluated")
    ).select("intervention", "intervened", "prompts", "baseline", "value", "delta",
             "ci_low", "ci_high")  # fmt: skip
    others = (
        rows.filter(pl.col("control") == "none", pl.col("intervened") != pl.col("evaluated"))
        .group_by("intervention", "intervened")
        .agg(others_delta=pl.col("delta").mean())
    )
    random = (
        rows.filter(
            pl.col("control") == "random",
            pl.col("intervened").is_null() | (pl.col("intervened") == pl.col("evaluated")),
        )
        .group_by("intervention", pl.col("evaluated").alias("intervened"))
        .agg(random_delta=pl.col("delta").mean())
    )
    keys = ["intervention", "intervened"]
    return own.join(others, on=keys, how="left").join(random, on=keys, how="left")
