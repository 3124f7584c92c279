"""The task evaluation (task-specific neurons): ``loss`` and ``accuracy`` of each task's
examples with each task's neurons switched off, beside random controls.

``loss`` is the mean NLL per target token of the target after the prompt, teacher-forced as
attribution scores it, and ``accuracy`` whether the greedy token after the prompt is the
target's first token (:func:`target_losses`); :func:`task_matrix` runs them plain, with each
task's set off and with its random controls into
:data:`polyneuron.evaluate.matrix.ABLATION_SCHEMA` rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
import torch
from torch import nn

from polyneuron.evaluate.controls import Controls
from polyneuron.evaluate.interventions import NeuronSet
from polyneuron.evaluate.scoring import NextTokens, _flatten, _matrix
from polyneuron.model.batches import Encoded
from polyneuron.neurons.tasks import encode_tasks

__all__ = ["encode_targets", "target_losses", "task_matrix"]


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
    controls: Controls | None = None,
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
        controls,
    )  # fmt: skip
