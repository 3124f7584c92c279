"""The relation evaluation: prefix ``accuracy`` of each relation's cloze prompts with the top
10%, 50%, 100% of each relation's neurons switched off (do they act cumulatively?), beside
random controls.

``accuracy`` is whether the greedy token after the prompt is the first token of one of the
object's accepted answers (:func:`prefix_hits`); :func:`top_fraction` picks a relation's top
neurons and :func:`relation_matrix` runs it all into :data:`RELATION_SCHEMA` rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
import torch
from torch import nn

from polyneuron import PolyneuronError
from polyneuron.evaluate.controls import Controls
from polyneuron.evaluate.interventions import NeuronSet, neuron_set_from_frame
from polyneuron.evaluate.matrix import ABLATION_SCHEMA
from polyneuron.evaluate.scoring import (
    NextTokens,
    _flatten,
    _last_only,
    _matrix,
    next_token_scores,
)
from polyneuron.model.batches import Encoded, encode
from polyneuron.neurons.logit_lens import answer_prefix_for, answer_token_ids, lens_prompt

__all__ = [
    "RELATION_SCHEMA",
    "encode_cloze",
    "prefix_accuracy",
    "prefix_hits",
    "relation_matrix",
    "top_fraction",
]

#: relation rows: one matrix per language and share of each relation's neurons switched off
RELATION_SCHEMA: dict[str, pl.DataType] = {
    **ABLATION_SCHEMA,
    "lang": pl.String(),
    "fraction": pl.Float64(),
}


def encode_cloze(
    tokenizer, prompts: Sequence[str], answers: Sequence[Sequence[str]], answer_prefix: str
) -> tuple[list[Encoded], list[list[int]]]:
    """Cloze prompts as the logit lens reads them (``prompt`` and ``answer_prefix`` without its
    trailing whitespace,
    :func:`polyneuron.neurons.logit_lens.lens_prompt`), scored at the last token,
    with each prompt's accepted first tokens: those of its answers as they follow the prefix
    (:func:`polyneuron.neurons.logit_lens.answer_token_ids`)."""
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answer lists")
    texts = [lens_prompt(prompt, answer_prefix) for prompt in prompts]
    gold = [
        answer_token_ids(tokenizer, prompt, answer_prefix, list(accepted))
        for prompt, accepted in zip(prompts, answers, strict=True)
    ]
    return _last_only(encode(tokenizer, texts)), gold


def prefix_hits(scores: NextTokens, gold: Sequence[Sequence[int]]) -> np.ndarray:
    """Per prompt (one scored position each): 1.0 when the greedy token is one of ``gold``'s."""
    top1 = scores.top1.tolist()
    return np.array([float(t in set(g)) for t, g in zip(top1, gold, strict=True)])


def prefix_accuracy(
    model: nn.Module,
    tokenizer,
    prompts: Sequence[str],
    answers: Sequence[Sequence[str]],
    answer_prefix: str,
    pad_id: int,
    device: torch.device,
    batch_tokens: int = 4096,
    max_batch_size: int = 64,
) -> np.ndarray:
    """Per cloze prompt, whether the model's greedy next token starts an accepted answer."""
    encoded, gold = encode_cloze(tokenizer, prompts, answers, answer_prefix)
    scores = next_token_scores(
        model, encoded, [[[]] for _ in encoded], pad_id, device, batch_tokens, max_batch_size
    )
    return prefix_hits(scores, gold)


def top_fraction(frame: pl.DataFrame, fraction: float) -> NeuronSet:
    """The top ``fraction`` of a group's selected neurons (``selected`` true; every row without
    that column) by ``score``, ties to the lower (layer, neuron): ``round(fraction · n)`` of
    them, at least one. Smaller fractions give subsets of larger ones."""
    if not 0 < fraction <= 1:
        raise PolyneuronError(f"fraction must lie in (0, 1], not {fraction}")
    if "selected" in frame.columns:
        frame = frame.filter(pl.col("selected"))
    if frame.is_empty():
        return {}
    k = max(1, round(fraction * frame.height))
    ranked = frame.sort(["score", "layer", "neuron"], descending=[True, False, False])
    return neuron_set_from_frame(ranked.head(k).select("layer", "neuron"))


def relation_matrix(
    model: nn.Module,
    tokenizer,
    neurons: Mapping[str, pl.DataFrame],
    prompts: Mapping[str, tuple[Sequence[str], Sequence[Sequence[str]]]],
    lang: str,
    fractions: Sequence[float],
    answer_prefix: str,
    seeds: Sequence[int],
    pad_id: int,
    device: torch.device,
    mode: str = "zero",
    factor: float = 0.0,
    batch_tokens: int = 4096,
    max_batch_size: int = 64,
    n_boot: int = 1000,
    desc: str = "relations",
    controls: Controls | None = None,
) -> pl.DataFrame:
    """Prefix ``accuracy`` of every relation's cloze prompts (relation -> (prompts, accepted
    answers)) of language ``lang``, plain and, per fraction, with the top ``fraction`` of each
    relation's neurons (relation -> its neuron rows, :func:`top_fraction`) off and their
    random controls: :data:`RELATION_SCHEMA` rows, by fraction in ``fractions``' order.
    ``answer_prefix`` leads an answer (config ``logit_lens.relations_prefix``), without its
    trailing space in languages written without spaces
    (:func:`polyneuron.neurons.logit_lens.answer_prefix_for`)."""
    texts, answers, keys = _flatten(prompts)
    prefix = answer_prefix_for(answer_prefix, lang)
    encoded, gold = encode_cloze(tokenizer, texts, answers, prefix)
    candidates = [[[]] for _ in encoded]
    frames = []
    for fraction in fractions:
        sets = {relation: top_fraction(frame, fraction) for relation, frame in neurons.items()}
        frame = _matrix(
            model, sets, encoded, candidates, keys,
            lambda scores: {"accuracy": prefix_hits(scores, gold)},
            seeds, pad_id, device, mode, factor, batch_tokens, max_batch_size, n_boot,
            f"{desc} top {fraction:g}", controls,
        )  # fmt: skip
        frames.append(frame.with_columns(lang=pl.lit(lang), fraction=pl.lit(float(fraction))))
    if not frames:
        return pl.DataFrame(schema=RELATION_SCHEMA)
    return pl.concat(frames).cast(RELATION_SCHEMA)
