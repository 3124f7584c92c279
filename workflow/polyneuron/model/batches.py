"""Prompts to batches: tokenise texts (marking the positions whose activations count), group
them by length under a token budget, and right-pad a batch for the model."""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from polyneuron import PolyneuronError

COUNT_MODES = ("prompt", "word")


@dataclass(slots=True)
class Encoded:
    """One tokenised text: ids and the positions whose activations are counted.

    Stored compactly (int32 ids, a tuple of shared bools) so that a job's whole tokenised
    shard stays small next to the model: a few hundred bytes per text.
    """

    input_ids: array
    counted: tuple[bool, ...]


ENCODE_CHUNK = 1024  # texts tokenised at once: bounds the tokenizer's own temporary objects


def encode(
    tokenizer,
    texts: Sequence[str],
    spans: Sequence[tuple[int, int]] | None = None,
    max_length: int | None = None,
) -> list[Encoded]:
    """Tokenise ``texts``; count every non-special token, or only those inside ``spans``.

    With ``spans`` (character ranges, one per text), a token counts when its character offsets
    overlap the span, so a word split into several tokens counts all of them.
    """
    need_offsets = spans is not None
    if need_offsets and not getattr(tokenizer, "is_fast", False):
        raise PolyneuronError(
            "counting only the word's tokens needs a fast tokenizer (character offsets); "
            "set probes.muse.count_tokens: prompt"
        )
    out: list[Encoded] = []
    for first in range(0, len(texts), ENCODE_CHUNK):
        chunk = list(texts[first : first + ENCODE_CHUNK])
        enc = tokenizer(
            chunk,
            add_special_tokens=True,
            return_special_tokens_mask=True,
            return_offsets_mapping=need_offsets,
            truncation=max_length is not None,
            max_length=max_length,
        )
        for i, ids in enumerate(enc["input_ids"]):
            special = enc["special_tokens_mask"][i]
            if spans is None:
                counted = tuple(not s for s in special)
            else:
                start, end = spans[first + i]
                counted = tuple(
                    (not s) and a < end and b > start and b > a
                    for s, (a, b) in zip(special, enc["offset_mapping"][i], strict=True)
                )
            out.append(Encoded(array("i", ids), counted))
    return out


def plan_batches(lengths: Sequence[int], batch_tokens: int, max_batch_size: int) -> list[list[int]]:
    """Group example indices by length so that each padded batch has ≤ ``batch_tokens``.

    Sorting by length first keeps padding small; a single example longer than the budget
    gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # sorted ascending, so lengths[i] is the padded length if i joins the batch
        if current and (
            (len(current) + 1) * lengths[i] > batch_tokens or len(current) >= max_batch_size
        ):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def collate(
    examples: Sequence[Encoded], pad_id: int, device: torch.device
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Right-pad a batch: model inputs and the ``[batch, seq]`` mask of counted tokens."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    counted = torch.zeros((len(examples), width), dtype=torch.bool)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        attention[row, :n] = 1
        counted[row, :n] = torch.tensor(e.counted)
    batch = {"input_ids": ids.to(device), "attention_mask": attention.to(device)}
    return batch, counted.to(device)


def pad_token_id(tokenizer) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0


def shard_rows(n: int, shards: int, k: int) -> range:
    """Rows of shard ``k`` of ``shards``: contiguous, sizes differing by at most one."""
    if not 0 <= k < shards:
        raise PolyneuronError(f"shard {k} out of range 0..{shards - 1}")
    size, extra = divmod(n, shards)
    start = k * size + min(k, extra)
    return range(start, start + size + (1 if k < extra else 0))
