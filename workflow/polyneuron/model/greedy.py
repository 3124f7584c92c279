"""Greedy decoding of left-padded prompt batches with a key-value cache.

Each step after the first runs one new token per prompt against the cache (what
``model.generate`` does), so a continuation of ``n`` tokens costs one pass over the prompt and
``n - 1`` one-token steps instead of ``n`` passes over the growing prompt. The caller decides
after every step which rows go on (:func:`greedy_batch`'s ``choose``); rows that stop leave the
batch with their cache rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


def left_pad(
    encoded: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[batch, width]`` ids and attention mask of ``encoded``, left-padded."""
    width = max(len(e) for e in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, tokens in enumerate(encoded):
        ids[row, width - len(tokens) :] = torch.tensor(list(tokens), dtype=torch.long)
        mask[row, width - len(tokens) :] = 1
    return ids.to(device), mask.to(device)


def greedy_batch(
    model: nn.Module,
    encoded: Sequence[Sequence[int]],
    pad_id: int,
    device: torch.device,
    max_new_tokens: int,
    choose: Callable[[list[int], list[int]], list[int]],
) -> None:
    """Greedy tokens after each of ``encoded``'s prompts (one left-padded batch), at most
    ``max_new_tokens``. After each step ``choose(rows, tokens)`` gets the rows (indices into
    ``encoded``) still in the batch and their greedy tokens, and returns the positions in
    ``rows`` that go on; decoding ends when none do. Positions count real tokens only, as
    ``generate()`` counts them. Open intervention hooks apply; call under ``inference_mode``."""
    ids, mask = left_pad(encoded, pad_id, device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    active = list(range(len(encoded)))
    cache = None
    step_ids, step_positions = ids, positions
    for _ in range(max_new_tokens):
        out = model(
            input_ids=step_ids,
            attention_mask=mask,
            position_ids=step_positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        cache = out.past_key_values
        tokens = out.logits[:, -1].argmax(-1)
        keep = choose(active, tokens.tolist())
        if not keep:
            return
        index = torch.tensor(keep, dtype=torch.long, device=device)
        if len(keep) < len(active):
            cache.batch_select_indices(index)
            mask = mask[index]
        active = [active[slot] for slot in keep]
        step_ids = tokens.to(device)[index].unsqueeze(1)
        step_positions = step_positions[index, -1:] + 1
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
