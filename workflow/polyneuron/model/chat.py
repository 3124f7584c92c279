"""Chat prompts through the model: instructions wrapped in a model's chat template as token
ids whose last ``n_post`` tokens are the post-instruction template tokens (and the first tokens
of refusal phrases), run in length-sorted, right-padded batches for their next-token logits or
their mean layer inputs at the post-instruction positions."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from polyneuron import PolyneuronError
from polyneuron.model.adapters import decoder_body, decoder_layers, unembed
from polyneuron.model.batches import pad_token_id
from polyneuron.model.greedy import left_pad
from polyneuron.model.steer import hidden_arg

SENTINEL = "<<polyneuron-instruction>>"


@dataclass(frozen=True)
class ChatPrompts:
    """Token ids of instructions wrapped in the chat template; the last ``n_post`` tokens of
    every prompt are the post-instruction template tokens."""

    input_ids: list[list[int]]
    n_post: int


def template_parts(tokenizer, model_name: str, system_prompt: str | None = None) -> tuple[str, str]:
    """The chat template's text before and after a single user instruction (with the
    assistant's generation prompt), after a system message ``system_prompt`` when given (else
    the template's own default, if it has one)."""
    if not getattr(tokenizer, "chat_template", None):
        raise PolyneuronError(
            f"model {model_name!r}: its tokenizer has no chat template; refusal directions need "
            "an instruction-tuned model (config key chat_models)"
        )
    messages = [{"role": "user", "content": SENTINEL}]
    if system_prompt is not None:
        messages.insert(0, {"role": "system", "content": system_prompt})
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    if system_prompt is not None and system_prompt not in rendered:
        raise PolyneuronError(
            f"model {model_name!r}: its chat template drops the system prompt (config key "
            f"chat_models.{model_name}.system_prompt)"
        )
    if rendered.count(SENTINEL) != 1:
        raise PolyneuronError(
            f"model {model_name!r}: its chat template does not place the user's message once"
        )
    prefix, suffix = rendered.split(SENTINEL)
    return prefix, suffix


def encode_chat(
    tokenizer, instructions: Sequence[str], model_name: str, system_prompt: str | None = None
) -> ChatPrompts:
    """Each instruction in the chat template (after ``system_prompt``, :func:`template_parts`).
    The post-instruction tokens are tokenised on their own and appended, so they are the same
    ids at the same offsets from the end in every prompt."""
    prefix, suffix = template_parts(tokenizer, model_name, system_prompt)
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
    """``rows`` in batches of ``batch_size``, shortest prompts first (ties by row)."""
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


def left_padded(
    prompts: ChatPrompts, rows: Sequence[int], pad: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and attention mask of ``rows`` (generation continues every row at the
    last position), on the CPU."""
    return left_pad([prompts.input_ids[i] for i in rows], pad, torch.device("cpu"))


def subset(prompts: ChatPrompts, rows: Sequence[int]) -> ChatPrompts:
    """The prompts of ``rows``, in that order."""
    return ChatPrompts([prompts.input_ids[i] for i in rows], prompts.n_post)


def mean_residuals(
    model: nn.Module,
    tokenizer,
    prompts: ChatPrompts,
    device: torch.device,
    batch_size: int = 32,
    desc: str = "residuals",
) -> torch.Tensor:
    """Mean over prompts of each layer's input at the post-instruction positions:
    ``[n_post, layers, hidden]`` float64 (of :func:`readouts`' float32 inputs)."""
    if not prompts.input_ids:
        raise PolyneuronError("no prompts to average")
    inputs = readouts(model, tokenizer, prompts, device, batch_size, residuals=True, desc=desc)[1]
    assert inputs is not None
    return inputs.double().mean(0)


def last_logits(
    model: nn.Module,
    tokenizer,
    prompts: ChatPrompts,
    device: torch.device,
    batch_size: int = 32,
) -> torch.Tensor:
    """Next-token logits after each prompt's last token, ``[prompts, vocab]`` float32, in
    prompt order (the unembedding runs on the last positions only)."""
    return readouts(model, tokenizer, prompts, device, batch_size)[0]


def readouts(
    model: nn.Module,
    tokenizer,
    prompts: ChatPrompts,
    device: torch.device,
    batch_size: int = 32,
    residuals: bool = False,
    desc: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One pass over ``prompts``: the next-token logits after each prompt's last token
    (``[prompts, vocab]`` float32, the unembedding on the last positions only) and, with
    ``residuals``, each prompt's layer inputs at the post-instruction positions
    (``[prompts, n_post, layers, hidden]`` float32; their mean is :func:`mean_residuals`'s
    up to summation order), in prompt order."""
    n = len(prompts.input_ids)
    if n == 0:
        raise PolyneuronError("no prompts to run")
    layers = decoder_layers(model)
    out: torch.Tensor | None = None
    kept: torch.Tensor | None = None
    if residuals:
        hidden_size = model.get_input_embeddings().weight.shape[1]
        kept = torch.empty(n, prompts.n_post, len(layers), hidden_size, dtype=torch.float32)
    offsets = torch.arange(-prompts.n_post, 0, device=device)
    positions = torch.zeros(0, dtype=torch.long)
    inputs: list[torch.Tensor] = [positions] * len(layers)  # the batch's, layer by layer

    def hook(layer: int):
        def pre(_module, args, kwargs):
            hidden = hidden_arg(args, kwargs)
            rows = torch.arange(hidden.shape[0], device=hidden.device)[:, None]
            inputs[layer] = hidden[rows, positions.to(hidden.device)]

        return pre

    handles = []
    if residuals:
        handles = [layer.register_forward_pre_hook(hook(i), with_kwargs=True)
                   for i, layer in enumerate(layers)]  # fmt: skip
    body, pad = decoder_body(model), pad_token_id(tokenizer)
    batches = list(_batches(prompts, range(n), batch_size))
    try:
        with torch.inference_mode():
            for rows in tqdm(batches, desc=desc, disable=desc is None):
                ids, attention, lengths = _collate(prompts, rows, pad, device)
                positions = lengths[:, None] + offsets[None, :]
                hidden = body(input_ids=ids, attention_mask=attention, use_cache=False)[0]
                last = hidden[torch.arange(len(rows), device=device), lengths - 1]
                logits = unembed(model, last).float().cpu()
                if out is None:
                    out = torch.empty(n, logits.shape[-1])
                out[rows] = logits
                if kept is not None:
                    kept[rows] = torch.stack(inputs, 2).float().cpu()
    finally:
        for handle in handles:
            handle.remove()
    assert out is not None, "no prompts"
    return out, kept
