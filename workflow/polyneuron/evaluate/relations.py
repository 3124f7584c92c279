"""The relation evaluation: prefix ``accuracy`` of each relation's cloze prompts with the top
10%, 50%, 100% of each relation's neurons switched off (do they act cumulatively?), beside
random controls.

``accuracy`` is whether the greedy token after the prompt is the first token of one of the
object's accepted answers (:func:`prefix_hits`); :func:`top_fraction` picks a relation's top
neurons (of the activation function, or of the MLP projections' outputs) and
:func:`relation_matrix` runs it all into :data:`RELATION_SCHEMA` rows. :func:`prefix_accuracy`
with ``n_tokens=2`` is the reference's test of a prompt the model answers correctly (its 2
greedy tokens, :func:`greedy_tokens`, form a prefix of an accepted object,
:func:`sequence_hits`), which picks the positives of relation neurons.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
import torch
from torch import nn

from polyneuron import PolyneuronError
from polyneuron.evaluate.controls import Controls
from polyneuron.evaluate.interventions import ModuleNeurons, NeuronSet, neuron_set_from_frame
from polyneuron.evaluate.matrix import ABLATION_SCHEMA
from polyneuron.evaluate.scoring import (
    NextTokens,
    _flatten,
    _last_only,
    _matrix,
)
from polyneuron.model.adapters import ACT, MODULE_NAMES, module_widths
from polyneuron.model.batches import Encoded, encode, plan_batches
from polyneuron.model.greedy import greedy_batch
from polyneuron.neurons.logit_lens import (
    answer_prefix_for,
    answer_token_ids,
    answer_token_sequences,
    lens_prompt,
)

__all__ = [
    "RELATION_SCHEMA",
    "encode_cloze",
    "greedy_tokens",
    "prefix_accuracy",
    "prefix_hits",
    "relation_matrix",
    "sequence_hits",
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


def sequence_hits(generated: torch.Tensor, gold: Sequence[Sequence[Sequence[int]]]) -> np.ndarray:
    """Per prompt, 1.0 when its greedy tokens (``generated[prompt, n]``) start with one of its
    ``gold`` token sequences cut to ``n`` tokens: the generated tokens form a prefix of an
    accepted answer (an answer of fewer tokens than ``n`` needs only its own)."""
    rows = generated.tolist()
    n = generated.shape[1] if generated.ndim == 2 else 0
    return np.array(
        [float(any(row[: len(s[:n])] == list(s[:n]) for s in g if len(s)))
         for row, g in zip(rows, gold, strict=True)]
    )  # fmt: skip


def prefix_hits(scores: NextTokens, gold: Sequence[Sequence[int]]) -> np.ndarray:
    """Per prompt (one scored position each): 1.0 when the greedy token is one of ``gold``'s."""
    return sequence_hits(scores.top1[:, None], [[(t,) for t in g] for g in gold])


def greedy_tokens(
    model: nn.Module,
    encoded: Sequence[Encoded],
    n_tokens: int,
    pad_id: int,
    device: torch.device,
    batch_tokens: int = 4096,
    max_batch_size: int = 64,
) -> torch.Tensor:
    """``[prompt, n_tokens]``: the model's greedy continuation of each prompt (the whole
    encoded prompt; :func:`encode_cloze` scores its last token), in length-grouped left-padded
    batches with a key-value cache (:func:`polyneuron.model.greedy.greedy_batch`): one pass
    over the prompt, then one token per step."""
    out = torch.zeros((len(encoded), n_tokens), dtype=torch.long)
    if n_tokens == 0:
        return out
    lengths = [len(e.input_ids) for e in encoded]
    with torch.inference_mode():
        for rows in plan_batches(lengths, batch_tokens, max_batch_size):
            step = [0]  # every row of the batch goes on to n_tokens: one count for all

            def choose(active: list[int], tokens: list[int], rows=rows, step=step) -> list[int]:
                out[[rows[slot] for slot in active], step[0]] = torch.tensor(tokens)
                step[0] += 1
                return list(range(len(active))) if step[0] < n_tokens else []

            greedy_batch(model, [encoded[i].input_ids for i in rows], pad_id, device, n_tokens,
                         choose)  # fmt: skip
    return out


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
    n_tokens: int = 1,
) -> np.ndarray:
    """Per cloze prompt, whether the model's ``n_tokens`` greedy tokens form a prefix of an
    accepted answer (:func:`sequence_hits`; 1: the next token starts one, the evaluation's
    accuracy; 2: the reference's test of a prompt the model answers correctly)."""
    if n_tokens < 1:
        raise ValueError(f"n_tokens must be positive, not {n_tokens}")
    encoded, _ = encode_cloze(tokenizer, prompts, answers, answer_prefix)
    gold = [
        answer_token_sequences(tokenizer, prompt, answer_prefix, list(accepted), n_tokens)
        for prompt, accepted in zip(prompts, answers, strict=True)
    ]
    generated = greedy_tokens(
        model, encoded, n_tokens, pad_id, device, batch_tokens, max_batch_size
    )
    return sequence_hits(generated, gold)


def top_fraction(
    frame: pl.DataFrame, fraction: float, widths: Mapping[str, int] | None = None
) -> NeuronSet | ModuleNeurons:
    """The top ``fraction`` of a group's selected neurons (``selected`` true; every row without
    that column): ``round(fraction · n)`` of them, at least one, by ``rank`` (the seeded order
    of :func:`polyneuron.neurons.relations.relation_neurons`, ties at random) where the frame
    has it, else by ``score`` with ties to the lower (layer, neuron). Smaller fractions give
    subsets of larger ones. A frame whose ``module`` column names projections (not only
    ``act``) gives :class:`~polyneuron.evaluate.interventions.ModuleNeurons` of those modules,
    whose output ``widths`` it then needs."""
    if not 0 < fraction <= 1:
        raise PolyneuronError(f"fraction must lie in (0, 1], not {fraction}")
    modules = frame["module"].unique().sort().to_list() if "module" in frame.columns else [ACT]
    if "selected" in frame.columns:
        frame = frame.filter(pl.col("selected"))
    if frame.is_empty():
        return {}
    k = max(1, round(fraction * frame.height))
    if "rank" in frame.columns:
        ranked = frame.sort("rank")
    else:
        ranked = frame.sort(["score", "layer", "neuron"], descending=[True, False, False])
    top = ranked.head(k)
    if modules == [ACT]:
        return neuron_set_from_frame(top.select("layer", "neuron"))
    if widths is None:
        raise ValueError(f"neurons of modules {modules} need the modules' output widths")
    return ModuleNeurons(
        {m: neuron_set_from_frame(top.filter(module=m).select("layer", "neuron")) for m in modules},
        {m: widths[m] for m in modules},
    )


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
    widths = module_widths(model, MODULE_NAMES)
    frames = []
    for fraction in fractions:
        sets = {
            relation: top_fraction(frame, fraction, widths) for relation, frame in neurons.items()
        }
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
