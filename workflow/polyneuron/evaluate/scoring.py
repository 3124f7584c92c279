"""Next-token scoring shared by the value, task and relation evaluations.

One scoring pass serves all three (:func:`next_token_scores`): the decoder body runs over
length-grouped, right-padded batches and the unembedding only at the positions a metric reads
(Gemma 3's 262k-token vocabulary makes logits at every position cost as much as the body).
``_matrix`` runs such a pass per intervention through
:func:`polyneuron.evaluate.matrix.intervention_matrix`, each evaluation's metrics split by
evaluated group into :data:`polyneuron.evaluate.matrix.ABLATION_SCHEMA` rows with paired
bootstrap intervals; ``_flatten`` and ``_last_only`` prepare the examples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import polars as pl
import torch
from torch import nn

from polyneuron.evaluate.controls import Controls
from polyneuron.evaluate.interventions import NeuronSet, Operation
from polyneuron.evaluate.matrix import intervention_matrix, mean_metric_rows
from polyneuron.model.adapters import decoder_body, logit_rows, unembed
from polyneuron.model.batches import Encoded, collate, plan_batches

__all__ = ["Metrics", "NextTokens", "next_token_scores"]


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


#: per-example values of each metric (name -> values) from the scores of every example
Metrics = Callable[[NextTokens], Mapping[str, np.ndarray]]


def _matrix(
    model: nn.Module,
    sets: Mapping[str, NeuronSet | Sequence[Operation]],
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
    controls: Controls | None = None,
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

    return intervention_matrix(
        model, sets, evaluate, rows, seeds, mode, factor, desc=desc, controls=controls,
        logits="last",
    )  # fmt: skip


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
