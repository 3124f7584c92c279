"""Logit lens: decode the residual stream after every layer with the model's own final norm and
unembedding, at the position that predicts the answer of a translation or relation prompt.

Per example and layer we keep the probability of the gold target-language answer's first
token(s), that of its English counterpart, and the top-1 token; summaries give per-layer means
and the layer from which the top-1 token is in the target language's script (script-based
language identification: it cannot tell Latin-script languages from English).
"""

from __future__ import annotations

import bisect
import statistics
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import polars as pl
import torch
from tqdm import tqdm

from polyneuron.model.adapters import decoder_body, decoder_layers, final_norm, unembed
from polyneuron.model.batches import pad_token_id

# (first code point, last code point, script), sorted and disjoint
_SCRIPT_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x0041, 0x005A, "Latin"), (0x0061, 0x007A, "Latin"), (0x00AA, 0x00AA, "Latin"),
    (0x00BA, 0x00BA, "Latin"), (0x00C0, 0x024F, "Latin"), (0x0250, 0x02AF, "Latin"),
    (0x0370, 0x03FF, "Greek"), (0x0400, 0x052F, "Cyrillic"), (0x0590, 0x05FF, "Hebrew"),
    (0x0600, 0x06FF, "Arabic"), (0x0750, 0x077F, "Arabic"), (0x08A0, 0x08FF, "Arabic"),
    (0x0900, 0x097F, "Devanagari"), (0x0E00, 0x0E7F, "Thai"), (0x1100, 0x11FF, "Hangul"),
    (0x1C80, 0x1C8F, "Cyrillic"), (0x1E00, 0x1EFF, "Latin"), (0x1F00, 0x1FFF, "Greek"),
    (0x2C60, 0x2C7F, "Latin"), (0x2DE0, 0x2DFF, "Cyrillic"), (0x2E80, 0x2FDF, "Han"),
    (0x3005, 0x3007, "Han"), (0x3021, 0x3029, "Han"), (0x3038, 0x303B, "Han"),
    (0x3040, 0x309F, "Kana"), (0x30A0, 0x30FF, "Kana"), (0x3130, 0x318F, "Hangul"),
    (0x31F0, 0x31FF, "Kana"), (0x3400, 0x4DBF, "Han"), (0x4E00, 0x9FFF, "Han"),
    (0xA640, 0xA69F, "Cyrillic"), (0xA720, 0xA7FF, "Latin"), (0xA8E0, 0xA8FF, "Devanagari"),
    (0xA960, 0xA97F, "Hangul"), (0xAB30, 0xAB6F, "Latin"), (0xAC00, 0xD7FF, "Hangul"),
    (0xF900, 0xFAFF, "Han"), (0xFB00, 0xFB06, "Latin"), (0xFB1D, 0xFB4F, "Hebrew"),
    (0xFB50, 0xFDFF, "Arabic"), (0xFE70, 0xFEFF, "Arabic"), (0xFF21, 0xFF3A, "Latin"),
    (0xFF41, 0xFF5A, "Latin"), (0xFF66, 0xFF9F, "Kana"), (0xFFA0, 0xFFDC, "Hangul"),
    (0x1B000, 0x1B16F, "Kana"), (0x20000, 0x3134F, "Han"),
)  # fmt: skip
_RANGE_STARTS = [start for start, _, _ in _SCRIPT_RANGES]

SCRIPTS = (
    "Latin", "Cyrillic", "Greek", "Arabic", "Hebrew", "Devanagari", "Han", "Kana", "Hangul",
    "Thai", "Other", "None",
)  # fmt: skip

#: scripts of each non-Latin-script language (ISO 639-1); any other code is Latin-script
LANG_SCRIPTS: dict[str, tuple[str, ...]] = {
    "zh": ("Han",), "ja": ("Kana", "Han"), "ko": ("Hangul",),
    "ru": ("Cyrillic",), "uk": ("Cyrillic",), "bg": ("Cyrillic",), "be": ("Cyrillic",),
    "mk": ("Cyrillic",), "kk": ("Cyrillic",), "ky": ("Cyrillic",), "mn": ("Cyrillic",),
    "ar": ("Arabic",), "fa": ("Arabic",), "ur": ("Arabic",), "ps": ("Arabic",),
    "hi": ("Devanagari",), "mr": ("Devanagari",), "ne": ("Devanagari",),
    "el": ("Greek",), "he": ("Hebrew",), "th": ("Thai",),
    # scripts token_script does not name: Ethiopic, Bengali, Gujarati, Armenian, Georgian,
    # Khmer, Kannada, Lao, Malayalam, Burmese, Gurmukhi, Sinhala, Tamil, Telugu
    "am": ("Other",), "bn": ("Other",), "gu": ("Other",), "hy": ("Other",), "ka": ("Other",),
    "km": ("Other",), "kn": ("Other",), "lo": ("Other",), "ml": ("Other",), "my": ("Other",),
    "pa": ("Other",), "si": ("Other",), "ta": ("Other",), "te": ("Other",),
}  # fmt: skip


def _char_script(ch: str) -> str | None:
    """The script of a letter or mark; None for any other character and for marks outside the
    named scripts (combining diacritics belong to whatever letter they follow)."""
    category = unicodedata.category(ch)
    if category[0] not in "LM":
        return None
    code = ord(ch)
    i = bisect.bisect_right(_RANGE_STARTS, code) - 1
    if i >= 0 and code <= _SCRIPT_RANGES[i][1]:
        return _SCRIPT_RANGES[i][2]
    return "Other" if category[0] == "L" else None


def token_script(text: str) -> str:
    """The majority script of a decoded token's letters (ties: the first seen); "None" when it
    has no letter (spaces, digits, punctuation, partial UTF-8 bytes)."""
    counts = Counter(s for s in map(_char_script, text) if s is not None)
    return counts.most_common(1)[0][0] if counts else "None"


def language_scripts(lang: str) -> tuple[str, ...]:
    """The scripts a language's words are written in (Latin unless LANG_SCRIPTS says)."""
    return LANG_SCRIPTS.get(lang, ("Latin",))


def in_language_script(script: str, lang: str) -> bool:
    return script in language_scripts(lang)


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


def continuation_token(tokenizer, prompt: str, answer_prefix: str, answer: str) -> int:
    """The first token of ``answer`` as the model sees it after ``prompt + answer_prefix``.

    Tokenises the lens prompt (:func:`lens_prompt`) and the full text
    ``prompt + answer_prefix + answer`` with special tokens and returns the full text's token
    after the prompt's; where the prompt's tokens are not a prefix of the full text's (a token
    spans the boundary), the first token of the answer (with the prefix's trailing whitespace)
    tokenised alone without special tokens.
    """
    if not answer:
        raise ValueError(f"empty answer after {prompt!r}")
    context = lens_prompt(prompt, answer_prefix)
    lead = answer_prefix[len(answer_prefix.rstrip()) :]
    head = _ids(tokenizer, context, special=True)
    full = _ids(tokenizer, context + lead + answer, special=True)
    if len(full) > len(head) and full[: len(head)] == head:
        return full[len(head)]
    alone = _ids(tokenizer, lead + answer, special=False)
    if not alone:
        raise ValueError(f"answer {answer!r} tokenises to nothing")
    return alone[0]


def answer_token_ids(
    tokenizer, prompt: str, answer_prefix: str, answers: Sequence[str]
) -> list[int]:
    """The distinct first tokens of ``answers`` after ``prompt`` (first-seen order)."""
    ids = [continuation_token(tokenizer, prompt, answer_prefix, a) for a in answers if a]
    return list(dict.fromkeys(ids))


@dataclass(frozen=True)
class LensItems:
    """Prompts with their gold answers and the answers' English counterparts."""

    prompts: list[str]
    gold: list[list[str]]
    english: list[list[str]]
    pair_ids: list[str]

    def head(self, n: int | None) -> LensItems:
        if n is None:
            return self
        return LensItems(self.prompts[:n], self.gold[:n], self.english[:n], self.pair_ids[:n])

    def __len__(self) -> int:
        return len(self.prompts)


def muse_items(en_probes: pl.DataFrame, lang: str) -> LensItems:
    """English → ``lang`` word translation prompts of the pivot MUSE probe file: gold answers
    are the dictionary's ``lang`` words, the English counterpart is the English word."""
    rows = en_probes.filter(pl.col("tgt_lang") == lang)
    return LensItems(
        prompts=rows["text"].to_list(),
        gold=rows["answers"].to_list(),
        english=[[w] for w in rows["word"].to_list()],
        pair_ids=rows["pair_id"].to_list(),
    )


def relation_items(probes: pl.DataFrame, probes_en: pl.DataFrame) -> LensItems:
    """Relation prompts of one language: gold answers are its answers, the English counterpart
    the answers of the English prompt with the same ``pair_id``. Prompts without an English
    counterpart are dropped."""
    english = dict(zip(probes_en["pair_id"].to_list(), probes_en["answers"].to_list(), strict=True))
    rows = probes.filter(pl.col("pair_id").is_in(list(english)))
    pair_ids = rows["pair_id"].to_list()
    return LensItems(
        prompts=rows["text"].to_list(),
        gold=rows["answers"].to_list(),
        english=[english[p] for p in pair_ids],
        pair_ids=pair_ids,
    )


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


def _set_probability(probs: torch.Tensor, id_sets: Sequence[Sequence[int]]) -> torch.Tensor:
    """``[batch]`` sums of ``probs[b, ids]`` over each row's token set (0 for an empty set)."""
    width = max((len(s) for s in id_sets), default=0)
    if width == 0:
        return torch.zeros(probs.shape[0], dtype=probs.dtype, device=probs.device)
    index = torch.zeros((len(id_sets), width), dtype=torch.long)
    keep = torch.zeros((len(id_sets), width), dtype=probs.dtype)
    for row, ids in enumerate(id_sets):
        index[row, : len(ids)] = torch.tensor(list(ids), dtype=torch.long)
        keep[row, : len(ids)] = 1
    picked = probs.gather(1, index.to(probs.device))
    return (picked * keep.to(probs.device)).sum(1)


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
                body(input_ids=ids.to(device), attention_mask=attention.to(device), use_cache=False)
                index = torch.tensor(batch, dtype=torch.long)
                batch_gold = [gold_ids[i] for i in batch]
                batch_english = [english_ids[i] for i in batch]
                for layer, h in enumerate(captured):
                    if h is None:
                        raise RuntimeError(f"decoder layer {layer} did not run")
                    logits = unembed(model, norm(h)).float()
                    probs = torch.softmax(logits, dim=-1)
                    p_gold[index, layer] = _set_probability(probs, batch_gold).cpu()
                    p_english[index, layer] = _set_probability(probs, batch_english).cpu()
                    top1[index, layer] = logits.argmax(-1).cpu()
                bar.update(len(batch))
    finally:
        for handle in handles:
            handle.remove()
    return LensResult(
        p_gold, p_english, top1, [list(g) for g in gold_ids], [list(e) for e in english_ids]
    )


class TokenScripts:
    """Each token id's decoded script, decoding every distinct id once."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self._cache: dict[int, str] = {}

    def __call__(self, token_id: int) -> str:
        script = self._cache.get(token_id)
        if script is None:
            script = token_script(self.tokenizer.decode([token_id]))
            self._cache[token_id] = script
        return script

    def in_lang(self, top1: torch.Tensor, lang: str) -> torch.Tensor:
        """Boolean tensor, like ``top1``: the token's script is one of ``lang``'s."""
        flat = [in_language_script(self(int(t)), lang) for t in top1.flatten().tolist()]
        return torch.tensor(flat, dtype=torch.bool).reshape(top1.shape)


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
