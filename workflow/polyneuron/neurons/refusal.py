"""Refusal directions per language (PolyRefuse, after Arditi et al.'s ``refusal_direction``).

For each language: the mean residual stream (a decoder layer's input) at the post-instruction
positions of the chat template — the template tokens between the user's instruction and the
assistant's answer — over harmful minus harmless train prompts gives one candidate direction
per (position, layer). A candidate is scored on the validation prompts as the reference does:

- ``ablation_score``: the refusal score of harmful prompts when the direction is ablated from
  every layer's input and from every attention/MLP output (x ← x − (x·r̂)r̂);
- ``steering_score``: the refusal score of harmless prompts when the (unnormalised) direction is
  added to its own layer's input;
- ``kl``: KL(baseline ‖ ablated) of the next-token distribution on harmless prompts.

The refusal score of a prompt is log P(refusal token) − log(1 − P(refusal token)) at the last
position. Candidates in the last 20% of layers, with KL above 0.1 or a steering score below 0
are discarded; the lowest ablation score wins. :func:`find_refusal_direction` runs it all for
one model and language (the chat prompts and the model's readouts of them:
:mod:`polyneuron.model.chat`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
import torch
from torch import nn
from tqdm import tqdm

from polyneuron import PolyneuronError
from polyneuron.model import work
from polyneuron.model.chat import ChatPrompts, encode_chat, last_logits, readouts, subset
from polyneuron.model.steer import activation_addition, directional_ablation

EPS = 1e-8
log = logging.getLogger(__name__)


def refusal_scores(logits: torch.Tensor, token_ids: Sequence[int]) -> torch.Tensor:
    """log P − log(1 − P) per prompt, P = the probability of any refusal token."""
    probs = torch.softmax(logits.double(), dim=-1)
    p = probs[:, list(token_ids)].sum(-1)
    return torch.log(p + EPS) - torch.log(1 - p + EPS)


def kl_divergence(base: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """KL(softmax(base) ‖ softmax(other)) per prompt."""
    log_p = torch.log_softmax(base.double(), dim=-1)
    log_q = torch.log_softmax(other.double(), dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def first_pruned_layer(n_layers: int, prune_layer_rate: float) -> int:
    """Layers from this one on are the last ``prune_layer_rate`` of the model (reference:
    ``int(n_layers * (1 - 0.2))``)."""
    return int(n_layers * (1.0 - prune_layer_rate))


@dataclass(frozen=True)
class ValidationSet:
    harmful: ChatPrompts
    harmless: ChatPrompts


def score_candidates(
    model: nn.Module,
    tokenizer,
    directions: torch.Tensor,
    val: ValidationSet,
    token_ids: Sequence[int],
    device: torch.device,
    prune_layer_rate: float = 0.2,
    coeff: float = 1.0,
    batch_size: int = 32,
    positions: int | None = None,
    desc: str = "candidates",
    base_harmless: torch.Tensor | None = None,
) -> pl.DataFrame:
    """Ablation score, steering score and KL of every candidate ``directions[pos, layer]``
    below the pruned layers (those, and zero directions, get nulls): one row per (position,
    layer); position counts back from the prompt's end (−1 = the last token). ``positions``:
    only the last this many post-instruction positions are candidates (None: all of them, as
    the reference).
    ``base_harmless``: the plain model's logits of the harmless prompts when already known
    (else they are computed). Under an ablation the harmful and harmless prompts run as one
    set of length-grouped batches."""
    n_post, n_layers, _ = directions.shape
    cutoff = first_pruned_layer(n_layers, prune_layer_rate)
    if base_harmless is None:
        base_harmless = last_logits(model, tokenizer, val.harmless, device, batch_size)
    both = ChatPrompts(val.harmful.input_ids + val.harmless.input_ids, val.harmful.n_post)
    n_harmful = len(val.harmful.input_ids)
    rows = []
    first = 0 if positions is None else max(0, n_post - positions)
    candidates = [(p, layer) for p in range(first, n_post) for layer in range(n_layers)]
    # a zero direction (the same inputs for both kinds: layer 0's embeddings of the template
    # tokens) has no unit vector to ablate: unscored, as the pruned layers
    nonzero = directions.norm(dim=-1) > 0
    n_scored = sum(layer < cutoff and bool(nonzero[p, layer]) for p, layer in candidates)
    for p, layer in tqdm(candidates, desc=desc, mininterval=5.0):
        row = {"position": p - n_post, "layer": layer}
        if layer >= cutoff or not nonzero[p, layer]:
            rows.append(row | {"ablation_score": None, "steering_score": None, "kl": None})
            continue
        direction = directions[p, layer]
        # the least work: every scored candidate's passes as plain ones (recorded once)
        times, n_scored = n_scored, 0
        with work.need(times, logits="last"), directional_ablation(model, direction):
            ablated = last_logits(model, tokenizer, both, device, batch_size)
        harmful, harmless = ablated[:n_harmful], ablated[n_harmful:]
        with work.need(times, logits="last"), activation_addition(model, direction, layer, coeff):
            steered = last_logits(model, tokenizer, val.harmless, device, batch_size)
        rows.append(
            row
            | {
                "ablation_score": float(refusal_scores(harmful, token_ids).mean()),
                "steering_score": float(refusal_scores(steered, token_ids).mean()),
                "kl": float(kl_divergence(base_harmless, harmless).mean()),
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "position": pl.Int32,
            "layer": pl.Int32,
            "ablation_score": pl.Float64,
            "steering_score": pl.Float64,
            "kl": pl.Float64,
        },
    )


def select_direction(
    candidates: pl.DataFrame,
    n_layers: int,
    kl_threshold: float = 0.1,
    prune_layer_rate: float = 0.2,
    induce_threshold: float | None = 0.0,
) -> pl.DataFrame:
    """Add ``reason`` (why a candidate is discarded; null when it is kept) and ``selected``
    (the kept candidate with the lowest ablation score). When no candidate passes every filter,
    the filters are relaxed in turn — first the steering filter (KL kept), then the KL bound
    (steering kept), then both (the pruned layers and unscored candidates always stay out) —
    and the selected candidate's reason says which filter it failed and that it was kept
    anyway (the reference stops instead)."""
    cutoff = first_pruned_layer(n_layers, prune_layer_rate)
    score = pl.col("ablation_score")
    unscored = score.is_null() | score.is_nan() | pl.col("kl").is_null() | pl.col("kl").is_nan()
    reason = (
        pl.when(pl.col("layer") >= cutoff)
        .then(pl.lit(f"in the last {prune_layer_rate:.0%} of layers"))
        .when(unscored)
        .then(pl.lit("score is not a number"))
        .when(pl.col("kl") > kl_threshold)
        .then(pl.lit(f"KL > {kl_threshold}"))
    )
    if induce_threshold is not None:
        reason = reason.when(pl.col("steering_score") < induce_threshold).then(
            pl.lit(f"steering score < {induce_threshold}")
        )
    frame = candidates.with_columns(reason.otherwise(None).alias("reason"))
    eligible = (pl.col("layer") < cutoff) & ~unscored
    stages = [
        (pl.col("reason").is_null(), None),
        (eligible & (pl.col("kl") <= kl_threshold), "steering filter relaxed"),
    ]
    if induce_threshold is not None:
        # a direction whose addition induces refusal is about refusal, even where removing it
        # disturbs harmless prompts; without this stage the lowest score is often a candidate
        # that breaks the model (huge KL), which also silences refusals
        steers = pl.col("steering_score") >= induce_threshold
        stages.append((eligible & steers, "KL filter relaxed"))
    stages.append((eligible, "steering and KL filters relaxed"))
    found = [(frame.filter(cond), note) for cond, note in stages]
    kept, relaxed = next(((k, note) for k, note in found if k.height), (None, None))
    if kept is None:
        raise PolyneuronError("no candidate direction has a score")
    best = kept.sort(["ablation_score", "layer", "position"]).row(0, named=True)
    is_best = (pl.col("layer") == best["layer"]) & (pl.col("position") == best["position"])
    frame = frame.with_columns(is_best.alias("selected"))
    if relaxed:
        note = f" (no candidate passed every filter: {relaxed}, lowest score kept)"
        frame = frame.with_columns(
            pl.when(is_best)
            .then(pl.col("reason") + note)
            .otherwise(pl.col("reason"))
            .alias("reason")
        )
    return frame


def keep_by_baseline(
    scores: torch.Tensor, harmful: bool, min_prompts: int
) -> tuple[list[int], bool]:
    """The reference's filter: harmful prompts the model refuses (score > 0), harmless ones it
    does not (score < 0). When fewer than ``min_prompts`` pass, every prompt is kept:
    returns (rows, whether the filter applied)."""
    keep = scores > 0 if harmful else scores < 0
    rows = torch.nonzero(keep).flatten().tolist()
    if len(rows) < min_prompts:
        return list(range(len(scores))), False
    return rows, True


@dataclass(frozen=True)
class DirectionSettings:
    """How :func:`find_refusal_direction` picks its prompts and its candidate (config key
    ``refusal_directions``; the defaults are the reference's, ``max_val`` and ``positions``
    aside)."""

    max_train: int | None = 128  # train prompts per kind (None: all)
    max_val: int | None = 16  # validation prompts per kind
    positions: int | None = 1  # candidates at the last this many positions (None: all)
    baseline_filter: bool = True  # keep refused harmful and unrefused harmless prompts
    min_prompts: int = 8  # fewer pass the filter: keep all
    kl_threshold: float = 0.1
    prune_layer_rate: float = 0.2
    induce_threshold: float | None = 0.0
    coeff: float = 1.0  # activation addition's coefficient in the steering score
    batch_size: int = 32


@dataclass(frozen=True)
class RefusalDirection:
    """The candidates of one model and language and the one selected: ``directions``
    ``[post-instruction position, layer, hidden]`` float32 (mean harmful − mean harmless layer
    input), ``table`` every candidate's scores, why it was discarded, whether it was selected,
    its language and its direction's norm."""

    model_name: str
    lang: str
    directions: torch.Tensor
    table: pl.DataFrame

    @property
    def n_post(self) -> int:
        return int(self.directions.shape[0])

    @property
    def best(self) -> dict:
        """The selected candidate's row of :attr:`table`."""
        return self.table.filter("selected").row(0, named=True)

    def tensors(self) -> dict[str, torch.Tensor]:
        """``directions`` and the ``selected`` candidate, for a safetensors file."""
        best = self.best
        selected = self.directions[best["position"] + self.n_post, best["layer"]]
        return {"directions": self.directions.contiguous(), "selected": selected.contiguous()}

    def metadata(self) -> dict[str, str]:
        """The safetensors file's metadata: model, language, the selected candidate."""
        best = self.best
        return {
            "model": self.model_name,
            "lang": self.lang,
            "position": str(best["position"]),
            "layer": str(best["layer"]),
            "n_post": str(self.n_post),
        }

    def summary(self) -> str:
        """One line: the candidates' grid and the selected candidate's scores."""
        best = self.best
        reason = f"; {best['reason']}" if best["reason"] else ""
        return (
            f"{self.lang}: {self.n_post} post-instruction positions x "
            f"{self.directions.shape[1]} layers; selected position {best['position']}, layer "
            f"{best['layer']} (ablation score {best['ablation_score']:.3f}, steering score "
            f"{best['steering_score']:.3f}, KL {best['kl']:.4f}){reason}"
        )


def _baseline_kept(
    logits: torch.Tensor,
    token_ids: Sequence[int],
    harmful: bool,
    settings: DirectionSettings,
    label: str,
) -> list[int]:
    """The rows :func:`keep_by_baseline` keeps of prompts whose plain next-token ``logits``
    are given, with a log line on how many passed."""
    scores = refusal_scores(logits, token_ids)
    rows, applied = keep_by_baseline(scores, harmful, settings.min_prompts)
    passed = int((scores > 0).sum() if harmful else (scores < 0).sum())
    log.info("%s: %d of %d prompts %s (mean refusal score %.2f)%s", label, passed,
             len(logits), "refused" if harmful else "not refused", float(scores.mean()),
             "" if applied else f"; fewer than {settings.min_prompts}: all kept")  # fmt: skip
    return rows


def find_refusal_direction(
    model: nn.Module,
    tokenizer,
    probes: pl.DataFrame,
    token_ids: Sequence[int],
    device: torch.device,
    settings: DirectionSettings,
    model_name: str,
    lang: str,
    source: str = "probes",
    system_prompt: str | None = None,
) -> RefusalDirection:
    """The refusal direction of one model in one language from its refusal probes (``text``,
    ``split``, ``label`` harmful/harmless): the first ``max_train``/``max_val`` prompts per
    kind of the train and validation splits in the chat template, kept by their baseline
    refusal score (``baseline_filter``), the mean differences of the train prompts' layer
    inputs as candidates, scored on the validation prompts and selected
    (:func:`score_candidates`, :func:`select_direction`). ``source`` names the probes in
    errors; ``system_prompt`` goes before every instruction (:func:`encode_chat`)."""
    prompts, logits, train = {}, {}, {}
    for split, limit in (("train", settings.max_train), ("val", settings.max_val)):
        for kind in ("harmful", "harmless"):
            texts = probes.filter(split=split, label=kind)["text"].to_list()[:limit]
            if not texts:
                raise PolyneuronError(f"{source}: no {kind} prompts in split {split!r}")
            encoded = encode_chat(tokenizer, texts, model_name, system_prompt)
            # one pass per prompt set: the baseline filter's logits and, for the train
            # prompts, the layer inputs the directions average
            with work.need(1, logits="last"):
                logits[split, kind], inputs = readouts(
                    model, tokenizer, encoded, device, settings.batch_size,
                    residuals=split == "train", desc=f"{model_name}/{lang} {split} {kind}",
                )  # fmt: skip
            rows = list(range(len(texts)))
            if settings.baseline_filter:
                rows = _baseline_kept(logits[split, kind], token_ids, kind == "harmful",
                                      settings, f"{lang} {split} {kind}")  # fmt: skip
            prompts[split, kind] = subset(encoded, rows)
            logits[split, kind] = logits[split, kind][rows]
            if inputs is not None:
                train[kind] = inputs[rows].double().mean(0)
    n_post = prompts["train", "harmful"].n_post
    directions = (train["harmful"] - train["harmless"]).float()
    n_layers = directions.shape[1]
    candidates = score_candidates(
        model,
        tokenizer,
        directions,
        ValidationSet(prompts["val", "harmful"], prompts["val", "harmless"]),
        token_ids,
        device,
        prune_layer_rate=settings.prune_layer_rate,
        coeff=settings.coeff,
        batch_size=settings.batch_size,
        positions=settings.positions,
        desc=f"{model_name}/{lang} candidates",
        base_harmless=logits["val", "harmless"],
    )
    table = select_direction(
        candidates,
        n_layers,
        kl_threshold=settings.kl_threshold,
        prune_layer_rate=settings.prune_layer_rate,
        induce_threshold=settings.induce_threshold,
    )
    norms = directions.norm(dim=-1)  # [position, layer]
    pairs = zip(table["position"], table["layer"], strict=True)
    table = table.with_columns(
        pl.lit(lang).alias("lang"),
        pl.Series("norm", [float(norms[pos + n_post, layer]) for pos, layer in pairs]),
    )
    return RefusalDirection(model_name, lang, directions, table)
