"""XTransplant: one language's FFN output transplanted into the parallel prompt of another.

For each fact of the relation probes, the source language's prompt runs plain and each layer's
FFN output at its last position is recorded; the target language's prompt of the same fact
then runs with one layer's FFN output at its last position replaced by that vector
(:func:`polyneuron.model.steer.ffn_transplant`). The metric is the object's prefix accuracy:
the greedy next token is the first token of one of the object's answers as it follows the
prompt (:func:`polyneuron.neurons.logit_lens.answer_token_ids`). The control transplants the
vector of
another fact's source prompt (a seeded derangement of the facts).

A transplant at the last position changes nothing before it, so every prompt's other
positions run once (:class:`LastStep` keeps their key-value cache) and each condition runs
only the last token: one token per prompt and layer instead of the whole prompt.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
from torch import nn
from tqdm import tqdm

from polyneuron import PolyneuronError
from polyneuron.evaluate.matrix import ABLATION_SCHEMA, mean_metric_rows
from polyneuron.model import work
from polyneuron.model.adapters import decoder_layers
from polyneuron.model.batches import pad_token_id
from polyneuron.model.greedy import left_pad
from polyneuron.model.steer import ffn_output_module, ffn_transplant
from polyneuron.neurons.logit_lens import answer_prefix_for, answer_token_ids, lens_prompt

__all__ = [
    "SCHEMA",
    "Facts",
    "LastStep",
    "best_layers",
    "derangement",
    "facts_of",
    "last_step",
    "parallel_facts",
    "spread_head",
    "step_hits",
    "transplanted_hits",
    "xtransplant_frame",
]

#: the ablation rows, ``intervened`` the language whose FFN output is transplanted,
#: ``evaluated`` the language of the prompt it goes into, and the layer
SCHEMA: dict[str, pl.DataType] = {**ABLATION_SCHEMA, "layer": pl.Int64()}


# --------------------------------------------------------------------------- facts


def spread_head(frame: pl.DataFrame, n: int | None, by: str = "label") -> pl.DataFrame:
    """The first ``n`` rows when the groups of ``by`` take turns (every group's first row,
    then every group's second, ...), in file order: a few prompts cover every relation.
    All rows for None."""
    if n is None:
        return frame
    return (
        frame.with_row_index("_row")
        .with_columns(_turn=pl.int_range(pl.len()).over(by))
        .sort("_turn", "_row")
        .head(n)
        .sort("_row")
        .drop("_row", "_turn")
    )


def parallel_facts(
    probes: pl.DataFrame, source: pl.DataFrame, n: int | None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The facts both probe frames have (by ``pair_id``), at most ``n`` spread over relations
    (:func:`spread_head` of ``probes``' order): ``probes``' rows and ``source``'s, aligned."""
    shared = probes.filter(pl.col("pair_id").is_in(source["pair_id"].implode()))
    chosen = spread_head(shared, n)
    index = {pair_id: i for i, pair_id in enumerate(source["pair_id"].to_list())}
    rows = [index[pair_id] for pair_id in chosen["pair_id"].to_list()]
    return chosen, source[rows]


def derangement(n: int, seed: int) -> torch.Tensor:
    """A permutation of ``range(n)`` that moves every index, uniform over such permutations:
    random permutations from ``torch.Generator().manual_seed(seed)`` until one has no fixed
    point (about e tries)."""
    if n < 2:
        raise ValueError(f"no derangement of {n} item(s): the control needs two facts or more")
    generator = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(n, generator=generator)
        if bool((perm != torch.arange(n)).all()):
            return perm


# --------------------------------------------------------------------------- last step


@dataclass
class LastStep:
    """Left-padded prompts split into the positions before the last (run once, their key-value
    cache kept) and the last token, which each condition runs again."""

    cache: object | None  # the prefix's transformers Cache; None for one-token prompts
    input_ids: torch.Tensor  # [batch, 1] the last tokens ([batch, width] without a cache)
    attention_mask: torch.Tensor  # [batch, width]
    position_ids: torch.Tensor  # positions of input_ids' tokens, counting real tokens only

    @property
    def width(self) -> int:
        return int(self.attention_mask.shape[1])


def _left_padded(tokenizer, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    encoded = [list(tokenizer(t, add_special_tokens=True)["input_ids"]) for t in texts]
    return left_pad(encoded, pad_token_id(tokenizer), torch.device("cpu"))


def last_step(
    model: nn.Module, tokenizer, texts: Sequence[str], device: torch.device, needed: int = 0
) -> LastStep:
    """Tokenise ``texts`` with special tokens, left-padded, and run all positions but the last.
    Position ids count each row's real tokens, so padding does not shift them. ``needed``: how
    many plain passes over the prompts the caller's conditions stand for
    (:func:`polyneuron.model.work.add`; they rerun only the last token)."""
    ids, mask = _left_padded(tokenizer, texts)
    work.add(ids, mask, needed, logits="last")
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    if ids.shape[1] < 2:
        return LastStep(None, ids, mask, positions)
    with torch.inference_mode():
        out = model(
            input_ids=ids[:, :-1],
            attention_mask=mask[:, :-1],
            position_ids=positions[:, :-1],
            use_cache=True,
            logits_to_keep=1,
        )
    return LastStep(out.past_key_values, ids[:, -1:], mask, positions[:, -1:])


def _run_last(model: nn.Module, step: LastStep, repeat: int = 1) -> torch.Tensor:
    """Next-token logits after the last token, on a copy of the cache: ``[batch * repeat,
    vocab]``, each prompt's row ``repeat`` times in a row (one per condition: a batch reads
    the weights once, which is most of a small batch's cost)."""
    cache = copy.deepcopy(step.cache)
    if cache is not None and repeat > 1:
        cache.batch_repeat_interleave(repeat)
    with torch.inference_mode():
        out = model(
            input_ids=step.input_ids.repeat_interleave(repeat, 0),
            attention_mask=step.attention_mask.repeat_interleave(repeat, 0),
            position_ids=step.position_ids.repeat_interleave(repeat, 0),
            past_key_values=cache,
            use_cache=cache is not None,
            logits_to_keep=1,
        )
    return out.logits[:, -1]


def _hits(logits: torch.Tensor, gold_ids: Sequence[Sequence[int]]) -> np.ndarray:
    top = logits.argmax(-1).tolist()
    return np.array([t in set(g) for t, g in zip(top, gold_ids, strict=True)], dtype=np.float64)


def step_hits(
    model: nn.Module,
    step: LastStep,
    gold_ids: Sequence[Sequence[int]],
    record: Sequence[int] = (),
) -> tuple[np.ndarray, dict[int, torch.Tensor]]:
    """Per prompt 1.0 when the greedy next token is one of its ``gold_ids``, else 0.0; and the
    FFN output (:func:`polyneuron.model.steer.ffn_output_module`) of each layer of
    ``record`` at the last position, ``[batch, hidden]``. Open intervention hooks apply."""
    seen: dict[int, torch.Tensor] = {}

    def hook_for(layer: int):
        def hook(_module, _inputs, output):
            hidden = output[0] if isinstance(output, tuple) else output
            seen[layer] = hidden[:, -1].detach().clone()

        return hook

    handles = [ffn_output_module(model, layer).register_forward_hook(hook_for(layer))
               for layer in record]  # fmt: skip
    try:
        logits = _run_last(model, step)
    finally:
        for handle in handles:
            handle.remove()
    return _hits(logits, gold_ids), seen


def transplanted_hits(
    model: nn.Module,
    step: LastStep,
    gold_ids: Sequence[Sequence[int]],
    layer: int,
    vectors: Sequence[torch.Tensor],
) -> list[np.ndarray]:
    """Per condition (``vectors``: one ``[batch, hidden]`` tensor each) the hits of
    :func:`step_hits` with layer ``layer``'s FFN output at the last position replaced by the
    condition's vector of the prompt; the conditions run as one batch."""
    k = len(vectors)
    stacked = torch.stack(list(vectors), dim=1).flatten(0, 1)  # [batch * k, hidden]
    positions = torch.full((len(stacked),), step.width - 1, dtype=torch.long)
    with ffn_transplant(model, layer, stacked, positions):
        logits = _run_last(model, step, repeat=k)
    gold = [g for g in gold_ids for _ in range(k)]
    hits = _hits(logits, gold).reshape(len(gold_ids), k)
    return [hits[:, j] for j in range(k)]


# --------------------------------------------------------------------------- the matrix


@dataclass(frozen=True)
class Facts:
    """One language's prompts (as the model reads them) and each one's gold first tokens."""

    lang: str
    texts: list[str]
    gold_ids: list[list[int]]


def facts_of(tokenizer, probes: pl.DataFrame, lang: str, answer_prefix: str) -> Facts:
    """The relation prompts of ``probes`` and their answers' first tokens after
    ``answer_prefix`` (:func:`polyneuron.neurons.logit_lens.answer_prefix_for` adapts it to
    ``lang``)."""
    prefix = answer_prefix_for(answer_prefix, lang)
    prompts = probes["text"].to_list()
    gold = [answer_token_ids(tokenizer, p, prefix, list(a))
            for p, a in zip(prompts, probes["answers"].to_list(), strict=True)]  # fmt: skip
    return Facts(lang, [lens_prompt(p, prefix) for p in prompts], gold)


@dataclass
class _Plain:
    """A language's prompts run plain: their last step, hits and FFN outputs per layer."""

    facts: Facts
    step: LastStep
    hits: np.ndarray
    vectors: dict[int, torch.Tensor]


def _plain(
    model, tokenizer, facts: Facts, layers: Sequence[int], device, conditions: int = 1
) -> _Plain:
    """``facts`` run plain; their prompts are needed ``conditions`` times at least (the plain
    run and each transplant or control into them would each be a plain pass)."""
    step = last_step(model, tokenizer, facts.texts, device, needed=conditions)
    hits, vectors = step_hits(model, step, facts.gold_ids, record=layers)
    return _Plain(facts, step, hits, vectors)


def _direction_rows(
    model: nn.Module,
    source: _Plain,
    target: _Plain,
    layers: Sequence[int],
    seeds: Sequence[int],
    boot: dict,
    bar: tqdm,
) -> list[pl.DataFrame]:
    """Rows of the source's FFN outputs transplanted into the target's prompts."""
    src, tgt = source.facts, target.facts
    conditions = [("none", None, None)]
    conditions += [("random", s, derangement(len(tgt.texts), s)) for s in seeds]
    frames = []
    for layer in layers:
        vectors = source.vectors[layer]
        chosen = [vectors if perm is None else vectors[perm] for _, _, perm in conditions]
        scored = transplanted_hits(model, target.step, tgt.gold_ids, layer, chosen)
        for (control, seed, _), hits in zip(conditions, scored, strict=True):
            rows = mean_metric_rows(
                src.lang, {tgt.lang: target.hits}, {tgt.lang: hits}, "accuracy", None,
                control, seed, **boot,
            )  # fmt: skip
            frames.append(rows.with_columns(layer=pl.lit(layer, dtype=pl.Int64)))
        bar.update(1)
    return frames


def xtransplant_frame(
    model: nn.Module,
    tokenizer,
    pairs: Mapping[str, tuple[Facts, Facts]],
    device: torch.device,
    layers: Sequence[int] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    n_boot: int = 1000,
    boot_seed: int = 0,
    alpha: float = 0.05,
    desc: str = "xtransplant",
) -> pl.DataFrame:
    """Prefix accuracy with the FFN output transplanted both ways between each language and
    the pivot: ``pairs[lang]`` = (the language's facts, the pivot's facts of the same
    pair ids, aligned). Per language, first the pivot's output into the language's prompts,
    then back; per direction and layer (``layers``; None: all), the transplant and one
    derangement control per seed. Rows: :data:`SCHEMA`, the baseline being the plain target
    prompt and ``n_neurons`` null."""
    n_layers = len(decoder_layers(model))
    layers = list(range(n_layers)) if layers is None else list(layers)
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad:
        raise PolyneuronError(
            f"xtransplant layers {bad}: the model has {n_layers} layers (0-{n_layers - 1})"
        )
    boot = {"n_boot": n_boot, "boot_seed": boot_seed, "alpha": alpha}
    frames: list[pl.DataFrame] = []
    total = 2 * len(pairs) * len(layers)
    with tqdm(total=total, desc=desc, unit="layer", mininterval=5.0) as bar:
        for lang, (facts, pivot_facts) in pairs.items():
            if len(facts.texts) != len(pivot_facts.texts):
                raise ValueError(f"{lang}: {len(facts.texts)} prompts but "
                                 f"{len(pivot_facts.texts)} pivot prompts")  # fmt: skip
            conditions = 1 + len(layers) * (1 + len(seeds))
            here = _plain(model, tokenizer, facts, layers, device, conditions)
            there = _plain(model, tokenizer, pivot_facts, layers, device, conditions)
            frames += _direction_rows(model, there, here, layers, seeds, boot, bar)
            frames += _direction_rows(model, here, there, layers, seeds, boot, bar)
    if not frames:
        return pl.DataFrame(schema=SCHEMA)
    return pl.concat(frames).select(list(SCHEMA))


def best_layers(frame: pl.DataFrame) -> pl.DataFrame:
    """Per direction (``intervened`` → ``evaluated``): the layer whose transplant raises the
    accuracy most (ties: the lowest layer), its ``delta``, and the random controls' mean delta
    at that layer (``random_delta``)."""
    own = (
        frame.filter(pl.col("control") == "none")
        .sort("delta", "layer", descending=[True, False], nulls_last=True)
        .unique(["intervened", "evaluated"], keep="first", maintain_order=True)
        .select("intervened", "evaluated", "layer", "delta")
    )
    random = (
        frame.filter(pl.col("control") == "random")
        .group_by("intervened", "evaluated", "layer")
        .agg(random_delta=pl.col("delta").mean())
    )
    order = frame.select("intervened", "evaluated").unique(maintain_order=True)
    return order.join(own.join(random, on=["intervened", "evaluated", "layer"], how="left"),
                      on=["intervened", "evaluated"], how="left")  # fmt: skip
