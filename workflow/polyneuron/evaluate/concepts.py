"""What value, task and relation neurons do: next-token scores of prompts with each group's
neurons switched off, beside random controls.

One scoring pass serves all three (:func:`next_token_scores`): the decoder body runs over
length-grouped, right-padded batches and the unembedding only at the positions a metric reads
(Gemma 3's 262k-token vocabulary makes logits at every position cost as much as the body).

- values (ValueExploration's evaluation): ``p_supported``, the probability of the option the
  value supports, the next-token probability of its label (``A``/``B``, as the question
  template presents the options) normalised over the two labels (:func:`option_probabilities`);
- tasks (task-specific neurons): ``loss``, the mean NLL per target token of the target after
  the prompt, teacher-forced as attribution scores it, and ``accuracy``, whether the greedy
  token after the prompt is the target's first token (:func:`target_losses`);
- relations: ``accuracy``, whether the greedy token after the prompt is the first token of
  one of the object's accepted answers (:func:`prefix_hits`), with the top 10%, 50%, 100% of
  each relation's neurons off (:func:`top_fraction`: do they act cumulatively?).

:func:`value_matrix`, :func:`task_matrix` and :func:`relation_matrix` run them through
:func:`polyneuron.evaluate.matrix.intervention_matrix` (intervened group × evaluated group, random
sets of the same per-layer counts per seed) into :data:`polyneuron.evaluate.matrix.ABLATION_SCHEMA`
rows with paired bootstrap intervals; :func:`summarize` condenses them to the change on the
group itself against that on the others.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import polars as pl
import torch
from torch import nn

from polyneuron import PolyneuronError
from polyneuron.evaluate.interventions import NeuronSet, neuron_set_from_frame
from polyneuron.evaluate.matrix import (
    ABLATION_SCHEMA,
    intervention_matrix,
    mean_metric_rows,
)
from polyneuron.model.adapters import decoder_body, logit_rows, unembed
from polyneuron.model.batches import Encoded, collate, encode, plan_batches
from polyneuron.neurons.logit_lens import (
    answer_prefix_for,
    answer_token_ids,
    continuation_token,
    lens_prompt,
)
from polyneuron.neurons.tasks import encode_tasks
from polyneuron.probes.values import QUESTION_FALLBACK, QUESTION_PROMPTS

__all__ = [
    "RELATION_SCHEMA",
    "VALUE_SCHEMA",
    "NextTokens",
    "encode_cloze",
    "encode_questions",
    "encode_targets",
    "next_token_scores",
    "option_labels",
    "option_probabilities",
    "option_probability",
    "prefix_accuracy",
    "prefix_hits",
    "relation_matrix",
    "summarize",
    "target_losses",
    "task_matrix",
    "top_fraction",
    "value_matrix",
]

#: value rows: one matrix per language
VALUE_SCHEMA: dict[str, pl.DataType] = {**ABLATION_SCHEMA, "lang": pl.String()}
#: relation rows: one matrix per language and share of each relation's neurons switched off
RELATION_SCHEMA: dict[str, pl.DataType] = {
    **ABLATION_SCHEMA,
    "lang": pl.String(),
    "fraction": pl.Float64(),
}

#: what separates the answer cue from an option's label in spaced languages ("Answer: A")
OPTION_PREFIX = " "


# --------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class NextTokens:
    """The model's next-token prediction at every scored position, examples in order and each
    example's positions ascending."""

    example: torch.Tensor  # [position] int64: the example the position belongs to
    log_probs: torch.Tensor  # [position, candidate] float64: log-softmax over the vocabulary
    top1: torch.Tensor  # [position] int64: the greedy token (the lowest id on ties)


def next_token_scores(
    model: nn.Module,
    encoded: Sequence[Encoded],
    candidates: Sequence[Sequence[Sequence[int]]],
    pad_id: int,
    device: torch.device,
    batch_tokens: int = 4096,
    max_batch_size: int = 64,
) -> NextTokens:
    """Score the next token after every position ``p`` of an example with ``counted[p]``: the
    log-probabilities of that position's candidate tokens (``candidates[example]``, one list of
    ``k`` ids per scored position, ``k`` the same everywhere; 0 reads only the greedy token)
    and the greedy token.

    A plain forward pass under ``inference_mode`` (open interventions apply) through the
    decoder body, in length-grouped right-padded batches; the unembedding (with the family's
    soft-capping) and the float32 log-softmax run only at the scored positions, a chunk of them
    at a time."""
    if len(candidates) != len(encoded):
        raise ValueError(f"{len(encoded)} examples but {len(candidates)} candidate lists")
    n_scored = [sum(e.counted) for e in encoded]
    widths = {len(ids) for per_example in candidates for ids in per_example}
    if len(widths) > 1:
        raise ValueError(f"candidate lists differ in length: {sorted(widths)}")
    k = widths.pop() if widths else 0
    for i, (count, per_example) in enumerate(zip(n_scored, candidates, strict=True)):
        if len(per_example) != count:
            raise ValueError(
                f"example {i}: {count} scored positions but {len(per_example)} candidate lists"
            )
    offsets = np.concatenate([[0], np.cumsum(n_scored)]).astype(np.int64)
    total = int(offsets[-1])
    log_probs = torch.zeros((total, k), dtype=torch.float64)
    top1 = torch.zeros(total, dtype=torch.long)
    example = torch.repeat_interleave(torch.arange(len(encoded)), torch.tensor(n_scored))
    wanted = torch.tensor(
        [ids for per_example in candidates for ids in per_example], dtype=torch.long
    ).reshape(total, k)
    chunk = logit_rows(model)
    body = decoder_body(model)
    scored_examples = [i for i, count in enumerate(n_scored) if count]
    batches = plan_batches(
        [len(encoded[i].input_ids) for i in scored_examples], batch_tokens, max_batch_size
    )
    with torch.inference_mode():
        for batch_rows in batches:
            indices = [scored_examples[j] for j in batch_rows]
            batch, scored = collate([encoded[i] for i in indices], pad_id, device)
            hidden = body(**batch, use_cache=False)[0]  # final-normed last hidden state
            states = hidden[scored.to(hidden.device)]  # batch rows in order, positions ascending
            dest = torch.cat([torch.arange(int(offsets[i]), int(offsets[i + 1])) for i in indices])
            for start in range(0, len(dest), chunk):
                part = dest[start : start + chunk]
                logits = unembed(model, states[start : start + chunk]).float()
                top1[part] = logits.argmax(-1).cpu()
                if k:
                    picked = logits.gather(-1, wanted[part].to(logits.device))
                    picked = picked - torch.logsumexp(logits, dim=-1, keepdim=True)
                    log_probs[part] = picked.to("cpu", torch.float64)
    return NextTokens(example, log_probs, top1)


def _last_only(encoded: Sequence[Encoded]) -> list[Encoded]:
    """The same ids with only the last position scored (the prediction after the prompt)."""
    return [
        Encoded(e.input_ids, tuple(p == len(e.input_ids) - 1 for p in range(len(e.input_ids))))
        for e in encoded
    ]


# --------------------------------------------------------------------------- values


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


# --------------------------------------------------------------------------- tasks


def encode_targets(
    tokenizer, prompts: Sequence[str], targets: Sequence[str]
) -> tuple[list[Encoded], list[list[list[int]]]]:
    """``prompt + " " + target`` as task attribution reads it
    (:func:`polyneuron.neurons.tasks.encode_tasks`), scored at each position that predicts a
    target token, with that token as the candidate."""
    out, candidates = [], []
    for e in encode_tasks(tokenizer, prompts, targets):
        ids, counted = e.input_ids, e.counted
        predicts = tuple(counted[p + 1] if p + 1 < len(ids) else False for p in range(len(ids)))
        out.append(Encoded(ids, predicts))
        candidates.append([[ids[p + 1]] for p, flag in enumerate(predicts) if flag])
    return out, candidates


def _per_example(values: torch.Tensor, example: torch.Tensor, n: int) -> torch.Tensor:
    sums = torch.zeros(n, dtype=torch.float64).index_add_(0, example, values.double())
    counts = torch.zeros(n, dtype=torch.float64).index_add_(
        0, example, torch.ones_like(values, dtype=torch.float64)
    )
    return sums / counts


def target_losses(
    scores: NextTokens, candidates: Sequence[Sequence[Sequence[int]]]
) -> tuple[np.ndarray, np.ndarray]:
    """Per example (:func:`encode_targets`' scores and candidates): the mean NLL per target
    token, and whether the greedy token at the first target position is the target's first
    token (1.0 or 0.0)."""
    n = len(candidates)
    loss = _per_example(-scores.log_probs[:, 0], scores.example, n)
    first = torch.ones_like(scores.example, dtype=torch.bool)
    first[1:] = scores.example[1:] != scores.example[:-1]
    want = torch.tensor([c[0][0] for c in candidates], dtype=torch.long)
    correct = torch.full((n,), float("nan"), dtype=torch.float64)
    rows = scores.example[first]
    correct[rows] = (scores.top1[first] == want[rows]).double()
    return loss.numpy(), correct.numpy()


# --------------------------------------------------------------------------- relations


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


# --------------------------------------------------------------------------- matrices


#: per-example values of each metric (name -> values) from the scores of every example
Metrics = Callable[[NextTokens], Mapping[str, np.ndarray]]


def _matrix(
    model: nn.Module,
    sets: Mapping[str, NeuronSet],
    encoded: Sequence[Encoded],
    candidates: Sequence[Sequence[Sequence[int]]],
    keys: Sequence[str],
    metrics: Metrics,
    seeds: Sequence[int],
    pad_id: int,
    device: torch.device,
    mode: str,
    factor: float,
    batch_tokens: int,
    max_batch_size: int,
    n_boot: int,
    desc: str,
) -> pl.DataFrame:
    """Every example scored in one pass per intervention; each metric's values split by the
    examples' evaluated ``keys`` (first-seen order) into rows, metrics in the order
    ``metrics`` returns them."""
    groups = {key: np.flatnonzero(np.asarray(keys) == key) for key in dict.fromkeys(keys)}

    def evaluate() -> dict[str, dict[str, np.ndarray]]:
        scores = next_token_scores(
            model, encoded, candidates, pad_id, device, batch_tokens, max_batch_size
        )
        return {
            name: {key: values[rows] for key, rows in groups.items()}
            for name, values in metrics(scores).items()
        }

    def rows(intervened, baseline, scored, n_neurons, control, seed) -> pl.DataFrame:
        frames = []
        for name in scored:
            frame = mean_metric_rows(
                intervened, baseline[name], scored[name], name, n_neurons, control, seed,
                n_boot=n_boot,
            )  # fmt: skip
            frames.append(frame)
        return pl.concat(frames)

    return intervention_matrix(model, sets, evaluate, rows, seeds, mode, factor, desc=desc)


_T = TypeVar("_T")


def _flatten(
    groups: Mapping[str, tuple[Sequence[str], Sequence[_T]]],
) -> tuple[list[str], list[_T], list[str]]:
    """Every group's prompts and targets (group -> (prompts, targets)) as flat lists in the
    groups' order, and each prompt's group."""
    prompts = [p for group_prompts, _ in groups.values() for p in group_prompts]
    targets = [t for _, group_targets in groups.values() for t in group_targets]
    keys = [group for group, (ps, _) in groups.items() for _ in ps]
    return prompts, targets, keys


def value_matrix(
    model: nn.Module,
    tokenizer,
    sets: Mapping[str, NeuronSet],
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
) -> pl.DataFrame:
    """``p_supported`` of every value's questions (value -> (prompts, targets ``a``/``b``)) of
    language ``lang``, plain and with each value's set off and its random controls:
    :data:`VALUE_SCHEMA` rows."""
    prompts, targets, keys = _flatten(questions)
    encoded, candidates = encode_questions(tokenizer, prompts, lang)
    frame = _matrix(
        model, sets, encoded, candidates, keys,
        lambda scores: {"p_supported": option_probability(scores, targets)},
        seeds, pad_id, device, mode, factor, batch_tokens, max_batch_size, n_boot, desc,
    )  # fmt: skip
    return frame.with_columns(lang=pl.lit(lang, pl.String())).cast(VALUE_SCHEMA)


def task_matrix(
    model: nn.Module,
    tokenizer,
    sets: Mapping[str, NeuronSet],
    examples: Mapping[str, tuple[Sequence[str], Sequence[str]]],
    seeds: Sequence[int],
    pad_id: int,
    device: torch.device,
    mode: str = "zero",
    factor: float = 0.0,
    batch_tokens: int = 4096,
    max_batch_size: int = 64,
    n_boot: int = 1000,
    desc: str = "tasks",
) -> pl.DataFrame:
    """``loss`` and ``accuracy`` of every task's examples (task -> (prompts, targets)), plain
    and with each task's set off and its random controls: :data:`ABLATION_SCHEMA` rows."""
    prompts, targets, keys = _flatten(examples)
    encoded, candidates = encode_targets(tokenizer, prompts, targets)

    def metrics(scores: NextTokens) -> dict[str, np.ndarray]:
        loss, accuracy = target_losses(scores, candidates)  # one pass gives both
        return {"loss": loss, "accuracy": accuracy}

    return _matrix(
        model, sets, encoded, candidates, keys, metrics,
        seeds, pad_id, device, mode, factor, batch_tokens, max_batch_size, n_boot, desc,
    )  # fmt: skip


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
            f"{desc} top {fraction:g}",
        )  # fmt: skip
        frames.append(frame.with_columns(lang=pl.lit(lang), fraction=pl.lit(float(fraction))))
    if not frames:
        return pl.DataFrame(schema=RELATION_SCHEMA)
    return pl.concat(frames).cast(RELATION_SCHEMA)


def summarize(frame: pl.DataFrame, by: Sequence[str] = ()) -> pl.DataFrame:
    """Per ``by`` columns, metric and control: the mean change on the intervened group's own
    examples (``diagonal``) and on the other groups' (``off_diagonal``), over intervened groups
    (and, for random controls, seeds); the groups and mean neurons switched off."""
    return (
        frame.with_columns(own=pl.col("evaluated") == pl.col("intervened"))
        .group_by([*by, "metric", "control"], maintain_order=True)
        .agg(
            diagonal=pl.col("delta").filter(pl.col("own")).mean(),
            off_diagonal=pl.col("delta").filter(~pl.col("own")).mean(),
            n_groups=pl.col("intervened").n_unique(),
            n_neurons=pl.col("n_neurons").mean(),
        )
    )
