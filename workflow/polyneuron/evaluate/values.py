"""The value evaluation (ValueExploration's): ``p_supported``, the probability of the option
the value supports, with each value's neurons switched off, beside random controls.

``p_supported`` is the next-token probability of the supported option's label (``A``/``B``,
as the question template presents the options) normalised over the two labels
(:func:`option_probabilities`); :func:`value_matrix` runs it plain, with each value's set off
and with its random controls into :data:`VALUE_SCHEMA` rows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
import torch
from torch import nn

from polyneuron import PolyneuronError
from polyneuron.evaluate.controls import Controls
from polyneuron.evaluate.interventions import NeuronSet, Operation, neuron_set_from_frame
from polyneuron.evaluate.matrix import ABLATION_SCHEMA
from polyneuron.evaluate.scoring import (
    NextTokens,
    _flatten,
    _last_only,
    _matrix,
    next_token_scores,
)
from polyneuron.model.batches import Encoded, encode
from polyneuron.neurons.logit_lens import answer_prefix_for, continuation_token
from polyneuron.probes.values import QUESTION_FALLBACK, QUESTION_PROMPTS

__all__ = [
    "VALUE_SCHEMA",
    "encode_questions",
    "option_labels",
    "option_probabilities",
    "option_probability",
    "reference_operations",
    "value_intervention",
    "value_matrix",
]

#: value rows: one matrix per language
VALUE_SCHEMA: dict[str, pl.DataType] = {**ABLATION_SCHEMA, "lang": pl.String()}


#: what separates the answer cue from an option's label in spaced languages ("Answer: A")
OPTION_PREFIX = " "


def option_labels(template: str) -> tuple[str, str]:
    """The labels a question template puts before its two options: ``("A", "B")`` from
    ``"...\\nA. {option_a}\\nB. {option_b}\\n..."`` (surrounding punctuation stripped)."""
    labels = []
    for field in ("option_a", "option_b"):
        match = re.search(r"(\S+)[ \t]*\{" + field + r"\}", template)
        label = match.group(1).strip(".):(（）：、") if match else ""
        if not label:
            raise PolyneuronError(f"question template {template!r}: no label before {{{field}}}")
        labels.append(label)
    if labels[0] == labels[1]:
        raise PolyneuronError(f"question template {template!r}: both options labelled {labels[0]}")
    return labels[0], labels[1]


def encode_questions(
    tokenizer, prompts: Sequence[str], lang: str
) -> tuple[list[Encoded], list[list[list[int]]]]:
    """Value questions of language ``lang`` scored at their last token, with the first tokens
    of the two option labels (``lang``'s question template's, :func:`option_labels`) as they
    follow the prompt: after a space, or directly in languages written without spaces. Where
    both labels open with the same token (a tokeniser that splits the space off), the space
    joins the prompt and the labels' first tokens after it are read."""
    labels = option_labels(QUESTION_PROMPTS.get(lang, QUESTION_FALLBACK))
    prefix = answer_prefix_for(OPTION_PREFIX, lang)
    candidates, texts = [], []
    for prompt in prompts:
        ids = [continuation_token(tokenizer, prompt, prefix, label) for label in labels]
        if ids[0] == ids[1] and prefix and not prefix.strip():
            # a tokeniser that splits the space off the label: read the choice after the space
            prompt = prompt + prefix
            ids = [continuation_token(tokenizer, prompt, "", label) for label in labels]
        if ids[0] == ids[1]:
            raise PolyneuronError(
                f"options {labels[0]!r} and {labels[1]!r} start with the same token after "
                f"{prompt[-40:]!r}: the model's choice between them cannot be read"
            )
        candidates.append([ids])
        texts.append(prompt)
    return _last_only(encode(tokenizer, texts)), candidates


def _target_columns(targets: Sequence[str]) -> torch.Tensor:
    bad = sorted({t for t in targets if t not in ("a", "b")})
    if bad:
        raise PolyneuronError(f"question targets must be 'a' or 'b', not {bad}")
    return torch.tensor([0 if t == "a" else 1 for t in targets], dtype=torch.long)


def option_probability(scores: NextTokens, targets: Sequence[str]) -> np.ndarray:
    """Per question (:func:`encode_questions`' scores), the probability of the ``target``
    option's label (``a``/``b``) normalised over the two labels."""
    p = torch.softmax(scores.log_probs, dim=-1)
    return p.gather(-1, _target_columns(targets)[:, None])[:, 0].numpy()


def option_probabilities(
    model: nn.Module,
    tokenizer,
    prompts: Sequence[str],
    targets: Sequence[str],
    lang: str,
    pad_id: int,
    device: torch.device,
    batch_tokens: int = 4096,
    max_batch_size: int = 64,
) -> np.ndarray:
    """``p_supported`` of each value question: :func:`option_probability` of the model's
    next token after the prompt."""
    encoded, candidates = encode_questions(tokenizer, prompts, lang)
    scores = next_token_scores(
        model, encoded, candidates, pad_id, device, batch_tokens, max_batch_size
    )
    return option_probability(scores, targets)


def value_intervention(neurons: pl.DataFrame) -> dict[str, NeuronSet]:
    """The neurons of one value's rows (every mask) that the reference's intervention touches,
    split by assignment: ``support`` (assigned only to the supporting condition: amplified),
    ``conflict`` (only to the conflicting one: zeroed) and ``all`` (every selected neuron of an
    acting mask, support-only, conflict-only and both). A neuron selected by two masks counts
    once; one support-only in one mask and conflict-only in another counts as both."""
    acting = neurons.filter(pl.col("selected") & pl.col("acts"))
    per_neuron = acting.group_by("layer", "neuron").agg(
        support=(pl.col("assigned") == "support").any() | (pl.col("assigned") == "both").any(),
        conflict=(pl.col("assigned") == "conflict").any() | (pl.col("assigned") == "both").any(),
    )
    return {
        "support": neuron_set_from_frame(
            per_neuron.filter(pl.col("support") & ~pl.col("conflict"))
        ),
        "conflict": neuron_set_from_frame(
            per_neuron.filter(pl.col("conflict") & ~pl.col("support"))
        ),
        "all": neuron_set_from_frame(per_neuron),
    }


def reference_operations(parts: Mapping[str, NeuronSet], factor: float) -> tuple[Operation, ...]:
    """The reference's value intervention from the parts
    :func:`value_intervention` returns: support-only neurons
    multiplied by ``factor`` (5), conflict-only neurons zeroed."""
    return (Operation(parts["support"], "scale", factor), Operation(parts["conflict"], "zero"))


def value_matrix(
    model: nn.Module,
    tokenizer,
    sets: Mapping[str, NeuronSet | Sequence[Operation]],
    questions: Mapping[str, tuple[Sequence[str], Sequence[str]]],
    lang: str,
    seeds: Sequence[int],
    pad_id: int,
    device: torch.device,
    mode: str = "zero",
    factor: float = 0.0,
    batch_tokens: int = 4096,
    max_batch_size: int = 64,
    n_boot: int = 1000,
    desc: str = "values",
    controls: Controls | None = None,
) -> pl.DataFrame:
    """``p_supported`` of every value's questions (value -> (prompts, targets ``a``/``b``)) of
    language ``lang``, plain and with each value's set switched (a neuron set under ``mode``,
    or the reference's parts, :func:`reference_operations`) and its random controls:
    :data:`VALUE_SCHEMA` rows."""
    prompts, targets, keys = _flatten(questions)
    encoded, candidates = encode_questions(tokenizer, prompts, lang)
    frame = _matrix(
        model, sets, encoded, candidates, keys,
        lambda scores: {"p_supported": option_probability(scores, targets)},
        seeds, pad_id, device, mode, factor, batch_tokens, max_batch_size, n_boot, desc,
        controls,
    )  # fmt: skip
    return frame.with_columns(lang=pl.lit(lang, pl.String())).cast(VALUE_SCHEMA)
