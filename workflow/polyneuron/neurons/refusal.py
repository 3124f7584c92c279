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
are discarded; the lowest ablation score wins.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import polars as pl
import torch
from torch import nn
from tqdm import tqdm

from polyneuron import PolyneuronError
from polyneuron.model.adapters import decoder_body, decoder_layers, unembed
from polyneuron.model.batches import pad_token_id
from polyneuron.model.steer import activation_addition, directional_ablation, hidden_arg

SENTINEL = "<<polyneuron-instruction>>"
EPS = 1e-8


@dataclass(frozen=True)
class ChatPrompts:
    """Token ids of instructions wrapped in the chat template; the last ``n_post`` tokens of
    every prompt are the post-instruction template tokens."""

    input_ids: list[list[int]]
    n_post: int


def template_parts(tokenizer, model_name: str) -> tuple[str, str]:
    """The chat template's text before and after a single user instruction (with the
    assistant's generation prompt)."""
    if not getattr(tokenizer, "chat_template", None):
        raise PolyneuronError(
            f"model {model_name!r}: its tokenizer has no chat template; refusal directions need "
            "an instruction-tuned model (config key chat_models)"
        )
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": SENTINEL}], add_generation_prompt=True, tokenize=False
    )
    if rendered.count(SENTINEL) != 1:
        raise PolyneuronError(
            f"model {model_name!r}: its chat template does not place the user's message once"
        )
    prefix, suffix = rendered.split(SENTINEL)
    return prefix, suffix


def encode_chat(tokenizer, instructions: Sequence[str], model_name: str) -> ChatPrompts:
    """Each instruction in the chat template. The post-instruction tokens are tokenised on
    their own and appended, so they are the same ids at the same offsets from the end in
    every prompt."""
    prefix, suffix = template_parts(tokenizer, model_name)
    post = tokenizer(suffix, add_special_tokens=False)["input_ids"]
    if not post:
        raise PolyneuronError(f"model {model_name!r}: empty post-instruction template")
    heads = tokenizer([prefix + text for text in instructions], add_special_tokens=False)
    return ChatPrompts([list(ids) + list(post) for ids in heads["input_ids"]], len(post))


def refusal_token_ids(tokenizer, phrases: Sequence[str]) -> list[int]:
    """The distinct first tokens of the refusal phrases that can open an answer: a phrase that
    starts with a lower-case letter ("cannot help with", "is illegal") continues a sentence
    and is left out; phrases in scripts without case are all kept."""
    ids = []
    for phrase in phrases:
        text = phrase.strip()
        if not text or text[0].islower():
            continue
        tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
        if tokens and tokens[0] not in ids:
            ids.append(int(tokens[0]))
    if not ids:
        raise PolyneuronError(
            "no refusal tokens: no refusal phrase can open an answer (every one is empty or "
            "starts with a lower-case letter)"
        )
    return ids


def _batches(prompts: ChatPrompts, rows: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    order = sorted(rows, key=lambda i: (len(prompts.input_ids[i]), i))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _collate(prompts: ChatPrompts, rows: Sequence[int], pad: int, device: torch.device):
    """Right-padded ids, attention mask and each row's length."""
    lengths = torch.tensor([len(prompts.input_ids[i]) for i in rows])
    ids = torch.full((len(rows), int(lengths.max())), pad, dtype=torch.long)
    attention = torch.zeros_like(ids)
    for row, i in enumerate(rows):
        ids[row, : lengths[row]] = torch.tensor(prompts.input_ids[i])
        attention[row, : lengths[row]] = 1
    return ids.to(device), attention.to(device), lengths.to(device)


def mean_residuals(
    model: nn.Module,
    tokenizer,
    prompts: ChatPrompts,
    device: torch.device,
    batch_size: int = 32,
    desc: str = "residuals",
) -> torch.Tensor:
    """Mean over prompts of each layer's input at the post-instruction positions:
    ``[n_post, layers, hidden]`` float64."""
    layers = decoder_layers(model)
    n = len(prompts.input_ids)
    if n == 0:
        raise PolyneuronError("no prompts to average")
    hidden_size = model.get_input_embeddings().weight.shape[1]
    total = torch.zeros(prompts.n_post, len(layers), hidden_size, dtype=torch.float64)
    total = total.to(device)
    offsets = torch.arange(-prompts.n_post, 0, device=device)
    positions: list[torch.Tensor] = []

    def hook(layer: int):
        def pre(_module, args, kwargs):
            hidden = hidden_arg(args, kwargs)
            rows = torch.arange(hidden.shape[0], device=device)[:, None]
            total[:, layer] += hidden[rows, positions[0]].sum(0).to(torch.float64)

        return pre

    handles = [
        layer.register_forward_pre_hook(hook(i), with_kwargs=True) for i, layer in enumerate(layers)
    ]
    body, pad = decoder_body(model), pad_token_id(tokenizer)
    try:
        with torch.inference_mode():
            for rows in tqdm(list(_batches(prompts, range(n), batch_size)), desc=desc):
                ids, attention, lengths = _collate(prompts, rows, pad, device)
                positions[:] = [lengths[:, None] + offsets[None, :]]
                body(input_ids=ids, attention_mask=attention, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    return (total / n).cpu()


def last_logits(
    model: nn.Module,
    tokenizer,
    prompts: ChatPrompts,
    device: torch.device,
    batch_size: int = 32,
) -> torch.Tensor:
    """Next-token logits after each prompt's last token, ``[prompts, vocab]`` float32, in
    prompt order (the unembedding runs on the last positions only)."""
    n = len(prompts.input_ids)
    out: torch.Tensor | None = None
    body, pad = decoder_body(model), pad_token_id(tokenizer)
    with torch.inference_mode():
        for rows in _batches(prompts, range(n), batch_size):
            ids, attention, lengths = _collate(prompts, rows, pad, device)
            hidden = body(input_ids=ids, attention_mask=attention, use_cache=False)[0]
            last = hidden[torch.arange(len(rows), device=device), lengths - 1]
            logits = unembed(model, last).float().cpu()
            if out is None:
                out = torch.empty(n, logits.shape[-1])
            out[rows] = logits
    assert out is not None, "no prompts"
    return out


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
) -> pl.DataFrame:
    """Ablation score, steering score and KL of every candidate ``directions[pos, layer]``
    below the pruned layers (those get nulls): one row per (position, layer); position counts
    back from the prompt's end (−1 = the last token). ``positions``: only the last this many
    post-instruction positions are candidates (None: all of them, as the reference)."""
    n_post, n_layers, _ = directions.shape
    cutoff = first_pruned_layer(n_layers, prune_layer_rate)
    base_harmless = last_logits(model, tokenizer, val.harmless, device, batch_size)
    rows = []
    first = 0 if positions is None else max(0, n_post - positions)
    candidates = [(p, layer) for p in range(first, n_post) for layer in range(n_layers)]
    for p, layer in tqdm(candidates, desc=desc, mininterval=5.0):
        row = {"position": p - n_post, "layer": layer}
        if layer >= cutoff:
            rows.append(row | {"ablation_score": None, "steering_score": None, "kl": None})
            continue
        direction = directions[p, layer]
        with directional_ablation(model, direction):
            harmful = last_logits(model, tokenizer, val.harmful, device, batch_size)
            harmless = last_logits(model, tokenizer, val.harmless, device, batch_size)
        with activation_addition(model, direction, layer, coeff):
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
    the filters are relaxed in turn — first the steering filter, then the KL bound (the pruned
    layers and unscored candidates always stay out) — and the selected candidate's reason
    says which filter it failed and that it was kept anyway (the reference stops instead)."""
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
        (eligible, "steering and KL filters relaxed"),
    ]
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


def cosine_matrix(vectors: dict[str, torch.Tensor]) -> list[tuple[str, str, float]]:
    """Cosine similarity of every ordered pair of named vectors; NaN where a vector is zero
    (a layer-0 direction at the post-instruction positions is: both means embed the same
    template tokens)."""
    names = list(vectors)
    if not names:
        return []
    stacked = torch.stack([vectors[n].double() for n in names])
    norms = stacked.norm(dim=-1, keepdim=True)
    unit = torch.where(norms > 0, stacked / norms, torch.full_like(stacked, float("nan")))
    sims = unit @ unit.T
    return [(a, b, float(sims[i, j])) for i, a in enumerate(names) for j, b in enumerate(names)]


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


def subset(prompts: ChatPrompts, rows: Sequence[int]) -> ChatPrompts:
    return ChatPrompts([prompts.input_ids[i] for i in rows], prompts.n_post)
