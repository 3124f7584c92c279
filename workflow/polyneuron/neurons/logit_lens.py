"""Logit lens: decode the residual stream after every layer with the model's own final norm and
unembedding, at the position that predicts the answer of a translation or relation prompt.

Per example and layer we keep the probability of the gold target-language answer's first
token(s), that of its English counterpart, and the top-1 token; summaries give per-layer means
and the layer from which the top-1 token is in the target language's script (script-based
language identification, :mod:`polyneuron.neurons.writing`: it cannot tell Latin-script
languages from English).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import polars as pl
import torch
from tqdm import tqdm

from polyneuron.model import work
from polyneuron.model.adapters import decoder_body, decoder_layers, final_norm, softcap
from polyneuron.model.batches import pad_token_id
from polyneuron.neurons.writing import TokenScripts, language_scripts

#: languages written without spaces between words: an answer follows the prompt directly
UNSPACED_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "km", "my"})


def answer_prefix_for(answer_prefix: str, lang: str) -> str:
    """``answer_prefix`` for answers in ``lang``: without the trailing whitespace that would lead
    the answer where the language puts no space between words ("阿富汗的首都是" continues
    "喀布尔", not " 喀布尔")."""
    return answer_prefix.rstrip() if lang in UNSPACED_LANGUAGES else answer_prefix


def lens_prompt(prompt: str, answer_prefix: str) -> str:
    """The text the model reads: the prompt, then the answer prefix without its trailing
    whitespace (tokenisers attach a leading space to the word after it, so the space belongs
    to the answer: prefix ``" "`` reads the bare prompt and predicts ``" Kabul"``)."""
    return prompt + answer_prefix.rstrip()


def _ids(tokenizer, text: str, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def continuation_tokens(
    tokenizer, prompt: str, answer_prefix: str, answer: str, n: int
) -> list[int]:
    """The first ``n`` tokens of ``answer`` (fewer when it has fewer) as the model sees them
    after ``prompt + answer_prefix``.

    Tokenises the lens prompt (:func:`lens_prompt`) and the full text
    ``prompt + answer_prefix + answer`` with special tokens and returns the full text's tokens
    after the prompt's; where the prompt's tokens are not a prefix of the full text's (a token
    spans the boundary), the tokens of the answer (with the prefix's trailing whitespace)
    tokenised alone without special tokens.
    """
    if not answer:
        raise ValueError(f"empty answer after {prompt!r}")
    context = lens_prompt(prompt, answer_prefix)
    lead = answer_prefix[len(answer_prefix.rstrip()) :]
    head = _ids(tokenizer, context, special=True)
    full = _ids(tokenizer, context + lead + answer, special=True)
    if len(full) > len(head) and full[: len(head)] == head:
        return full[len(head) : len(head) + n]
    alone = _ids(tokenizer, lead + answer, special=False)
    if not alone:
        raise ValueError(f"answer {answer!r} tokenises to nothing")
    return alone[:n]


def continuation_token(tokenizer, prompt: str, answer_prefix: str, answer: str) -> int:
    """The first token of ``answer`` as the model sees it after ``prompt + answer_prefix``
    (:func:`continuation_tokens`)."""
    return continuation_tokens(tokenizer, prompt, answer_prefix, answer, 1)[0]


def answer_token_ids(
    tokenizer, prompt: str, answer_prefix: str, answers: Sequence[str]
) -> list[int]:
    """The distinct first tokens of ``answers`` after ``prompt`` (first-seen order)."""
    ids = [continuation_token(tokenizer, prompt, answer_prefix, a) for a in answers if a]
    return list(dict.fromkeys(ids))


def answer_token_sequences(
    tokenizer, prompt: str, answer_prefix: str, answers: Sequence[str], n: int
) -> list[tuple[int, ...]]:
    """The distinct first-``n``-token sequences of ``answers`` after ``prompt`` (first-seen
    order; an answer of fewer tokens gives a shorter one)."""
    seqs = [
        tuple(continuation_tokens(tokenizer, prompt, answer_prefix, a, n)) for a in answers if a
    ]
    return list(dict.fromkeys(seqs))


@dataclass(frozen=True)
class LensResult:
    """Per example (rows, in prompt order) and layer (columns): probabilities of the gold and
    English token sets and the top-1 token id; the token sets themselves per example."""

    p_gold: torch.Tensor  # [example, layer] float32
    p_english: torch.Tensor  # [example, layer] float32
    top1: torch.Tensor  # [example, layer] int64
    gold_ids: list[list[int]]
    english_ids: list[list[int]]

    @property
    def n_layers(self) -> int:
        return int(self.top1.shape[1])


def _hidden(output: object) -> torch.Tensor:
    return output[0] if isinstance(output, tuple | list) else output  # type: ignore[index,return-value]


def _id_matrix(id_sets: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[rows, width]`` token ids of each row's set (padded with 0) and a 0/1 mask of the
    real ones (width ≥ 1)."""
    width = max(1, max((len(s) for s in id_sets), default=0))
    index = torch.zeros((len(id_sets), width), dtype=torch.long)
    keep = torch.zeros((len(id_sets), width), dtype=torch.bool)
    for row, ids in enumerate(id_sets):
        index[row, : len(ids)] = torch.tensor(list(ids), dtype=torch.long)
        keep[row, : len(ids)] = True
    return index, keep


#: vocabulary rows decoded at once: bounds the logits held to rows x this many floats
VOCAB_CHUNK = 16384


def lens_readout(
    model: torch.nn.Module,
    normed: torch.Tensor,
    id_sets: Sequence[Sequence[Sequence[int]]],
    chunk: int = VOCAB_CHUNK,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The unembedding of final-normed ``[rows, hidden]`` states, never held whole: per id
    set list of ``id_sets`` (each one set per row) the softmax probability summed over each
    row's set, ``[rows]`` float32, and the top-1 token per row (the first on ties).

    The vocabulary goes through in chunks of ``chunk`` output rows (one product with every
    row at once, so the weights are read once), keeping a running log-sum-exp and argmax;
    each set's logits are products of the rows with those tokens' weights alone. Equals
    softmax over :func:`polyneuron.model.adapters.unembed` up to float32 summation order."""
    head = model.get_output_embeddings()
    weight, bias = head.weight, getattr(head, "bias", None)
    x = normed.to(weight.dtype)
    rows = x.shape[0]
    best = torch.full((rows,), float("-inf"), device=x.device)
    top1 = torch.zeros(rows, dtype=torch.long, device=x.device)
    lse = torch.full((rows,), float("-inf"), device=x.device)
    for start in range(0, weight.shape[0], chunk):
        logits = x @ weight[start : start + chunk].T
        if bias is not None:
            logits = logits + bias[start : start + chunk]
        logits = softcap(model, logits).float()
        value, where = logits.max(-1)
        top1 = torch.where(value > best, where + start, top1)  # strictly: earlier ties stay
        best = torch.maximum(best, value)
        lse = torch.logaddexp(lse, torch.logsumexp(logits, -1))
    probs = []
    for sets in id_sets:
        index, keep = _id_matrix(sets)
        index, keep = index.to(x.device), keep.to(x.device)
        picked = torch.einsum("rh,rwh->rw", x, weight[index])
        if bias is not None:
            picked = picked + bias[index]
        picked = torch.exp(softcap(model, picked).float() - lse[:, None])
        probs.append((picked * keep).sum(1))
    return probs, top1


def lens_probs(
    model: torch.nn.Module,
    tokenizer,
    prompts: Sequence[str],
    gold_ids: Sequence[Sequence[int]],
    english_ids: Sequence[Sequence[int]],
    device: torch.device,
    batch_size: int = 32,
    desc: str = "logit lens",
) -> LensResult:
    """Logit lens at each prompt's last token: every decoder layer's output, through the final
    norm and the unembedding (with soft-capping), softmax in float32.

    Prompts are tokenised with special tokens, grouped by length and right-padded; the last
    layer's decode is the model's own next-token distribution.
    """
    if not len(prompts) == len(gold_ids) == len(english_ids):
        raise ValueError("prompts, gold_ids and english_ids differ in length")
    layers = decoder_layers(model)
    norm = final_norm(model)
    body = decoder_body(model)
    head_device = model.get_output_embeddings().weight.device
    encoded = [_ids(tokenizer, p, special=True) for p in prompts]
    n, n_layers = len(prompts), len(layers)
    p_gold = torch.zeros((n, n_layers), dtype=torch.float32)
    p_english = torch.zeros((n, n_layers), dtype=torch.float32)
    top1 = torch.zeros((n, n_layers), dtype=torch.long)
    order = sorted(range(n), key=lambda i: (len(encoded[i]), i))
    pad = pad_token_id(tokenizer)
    captured: list[torch.Tensor | None] = [None] * n_layers
    last = torch.zeros(0, dtype=torch.long)

    def capture(layer: int) -> Callable:
        def hook(_module: torch.nn.Module, _args: object, output: object) -> None:
            h = _hidden(output)
            rows = torch.arange(h.shape[0], device=h.device)
            captured[layer] = h[rows, last.to(h.device)].to(head_device)

        return hook

    handles = [m.register_forward_hook(capture(i)) for i, m in enumerate(layers)]
    try:
        with (
            torch.inference_mode(),
            tqdm(total=n, desc=desc, unit="prompt", mininterval=5.0) as bar,
        ):
            for first in range(0, n, batch_size):
                batch = order[first : first + batch_size]
                width = max(len(encoded[i]) for i in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                attention = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    ids[row, : len(encoded[i])] = torch.tensor(encoded[i], dtype=torch.long)
                    attention[row, : len(encoded[i])] = 1
                last = attention.sum(1) - 1
                captured[:] = [None] * n_layers
                with work.need(1, logits="layers"):
                    body(input_ids=ids.to(device), attention_mask=attention.to(device),
                         use_cache=False)  # fmt: skip
                index = torch.tensor(batch, dtype=torch.long)
                if any(h is None for h in captured):
                    raise RuntimeError(f"decoder layer {captured.index(None)} did not run")
                # every layer's states at once: [layer * batch, hidden], layer-major
                states = norm(torch.cat(captured))  # type: ignore[arg-type]
                gold = [gold_ids[i] for i in batch] * n_layers
                english = [english_ids[i] for i in batch] * n_layers
                (p_g, p_e), top = lens_readout(model, states, [gold, english])
                shape = (n_layers, len(batch))
                p_gold[index] = p_g.reshape(shape).T.cpu()
                p_english[index] = p_e.reshape(shape).T.cpu()
                top1[index] = top.reshape(shape).T.cpu()
                bar.update(len(batch))
    finally:
        for handle in handles:
            handle.remove()
    return LensResult(
        p_gold, p_english, top1, [list(g) for g in gold_ids], [list(e) for e in english_ids]
    )


def _members(top1: torch.Tensor, id_sets: Sequence[Sequence[int]]) -> torch.Tensor:
    """``[example, layer]``: the top-1 token is in the example's token set."""
    out = torch.zeros(top1.shape, dtype=torch.bool)
    for row, ids in enumerate(id_sets):
        if ids:
            out[row] = torch.isin(top1[row], torch.tensor(list(ids), dtype=top1.dtype))
    return out


def first_stable_layer(flags: torch.Tensor) -> list[int | None]:
    """Per row of ``[example, layer]`` booleans: the first layer from which every later layer
    is True (None when the last layer is False)."""
    stable = flags.flip(1).to(torch.int64).cumprod(1).flip(1).bool()
    out: list[int | None] = []
    for row in stable:
        hits = torch.nonzero(row).flatten()
        out.append(int(hits[0]) if len(hits) else None)
    return out


def _scripts(tokenizer_or_scripts: object) -> TokenScripts:
    if isinstance(tokenizer_or_scripts, TokenScripts):
        return tokenizer_or_scripts
    return TokenScripts(tokenizer_or_scripts)


LAYER_SCHEMA = {
    "probe": pl.String,
    "lang": pl.String,
    "layer": pl.Int32,
    "n_examples": pl.Int64,
    "p_gold": pl.Float64,
    "p_english": pl.Float64,
    "top1_gold": pl.Float64,
    "top1_english": pl.Float64,
    "top1_target_script": pl.Float64,
    "top1_latin": pl.Float64,
}

SWITCH_SCHEMA = {
    "probe": pl.String,
    "lang": pl.String,
    "target_lang": pl.String,
    "n_examples": pl.Int64,
    "switch_layer": pl.Float64,
    "switch_fraction": pl.Float64,
    "gold_layer": pl.Float64,
    "gold_fraction": pl.Float64,
}


def _mean(x: torch.Tensor) -> torch.Tensor:
    return x.double().mean(0) if x.shape[0] else torch.full(x.shape[1:], float("nan"))


def layer_frame(
    result: LensResult,
    lang: str,
    probe: str,
    tokenizer,
    target_lang: str | None = None,
) -> pl.DataFrame:
    """One row per layer: mean p_gold and p_english, and the fractions of examples whose top-1
    token is gold, English, in the target language's script (``target_lang``, default
    ``lang``), in Latin script. ``tokenizer`` may be a :class:`TokenScripts` cache."""
    scripts = _scripts(tokenizer)
    target = target_lang or lang
    n = int(result.top1.shape[0])
    latin = torch.tensor(
        [scripts(int(t)) == "Latin" for t in result.top1.flatten().tolist()], dtype=torch.bool
    ).reshape(result.top1.shape)
    columns = {
        "p_gold": _mean(result.p_gold),
        "p_english": _mean(result.p_english),
        "top1_gold": _mean(_members(result.top1, result.gold_ids)),
        "top1_english": _mean(_members(result.top1, result.english_ids)),
        "top1_target_script": _mean(scripts.in_lang(result.top1, target)),
        "top1_latin": _mean(latin),
    }
    frame = {
        "probe": [probe] * result.n_layers,
        "lang": [lang] * result.n_layers,
        "layer": list(range(result.n_layers)),
        "n_examples": [n] * result.n_layers,
        **{k: v.tolist() for k, v in columns.items()},
    }
    return pl.DataFrame(frame, schema=LAYER_SCHEMA).with_columns(pl.col(pl.Float64).fill_nan(None))


def _median_and_fraction(layers: list[int | None]) -> tuple[float | None, float | None]:
    found = [x for x in layers if x is not None]
    if not layers:
        return None, None
    return (float(statistics.median(found)) if found else None), len(found) / len(layers)


def switch_frame(
    result: LensResult,
    lang: str,
    probe: str,
    tokenizer,
    target_lang: str | None = None,
) -> pl.DataFrame:
    """One row: the median over examples (those that have one) of the first layer from which
    the top-1 token stays in the target language's script through the last layer, and the
    fraction of examples that have such a layer (both null for Latin-script targets); the same
    for the top-1 token staying gold (``gold_layer``, ``gold_fraction``)."""
    scripts = _scripts(tokenizer)
    target = target_lang or lang
    switch, switch_fraction = None, None
    if "Latin" not in language_scripts(target):
        switch, switch_fraction = _median_and_fraction(
            first_stable_layer(scripts.in_lang(result.top1, target))
        )
    gold, gold_fraction = _median_and_fraction(
        first_stable_layer(_members(result.top1, result.gold_ids))
    )
    row = (probe, lang, target, int(result.top1.shape[0]), switch, switch_fraction, gold,
           gold_fraction)  # fmt: skip
    return pl.DataFrame([row], schema=SWITCH_SCHEMA, orient="row")
