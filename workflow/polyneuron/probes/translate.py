"""Machine translation of probe prompts: Hugging Face seq2seq MT models and prompted causal LMs.

Three translators exist (config ``probes.refusal.translator``): ``precomputed`` (files, read by
:func:`polyneuron.probes.refusal.read_precomputed`), ``hf`` (an NLLB, M2M100 or Marian model by
id or
path, :func:`translate_seq2seq`) and ``llm`` (a causal LM from ``models:`` asked to translate,
:func:`translate_causal`). MT models name languages in their own code; :func:`target_code`
maps ISO 639-1 to it and fails for a language the model has no code for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from polyneuron import PolyneuronError
from polyneuron.probes.parallel import FLORES_CODES

TRANSLATORS = ("precomputed", "hf", "llm")
DEFAULT_PROMPT = (
    "Translate the following text from {source} into {target}.\n{source}: {text}\n{target}:"
)


@dataclass(frozen=True)
class LanguageCode:
    """How an MT model is told the languages: ``style`` is ``nllb`` (FLORES-200 codes such as
    ``deu_Latn``), ``m2m100`` (``__de__``), ``marian`` (a ``>>de<<`` prefix on the text) or
    ``pair`` (a single-pair model, e.g. opus-mt-en-de: no code at all)."""

    style: str
    source: str | None
    target: str | None


def _has(vocab: Mapping[str, int], token: str) -> bool:
    return token in vocab


def language_codes(
    vocab: Mapping[str, int], source: str, target: str, overrides: Mapping[str, str] | None = None
) -> LanguageCode:
    """The codes an MT model with this vocabulary uses for ISO 639-1 ``source``/``target``.

    ``overrides`` maps ISO 639-1 codes to the model's own codes (config
    ``translators.hf.codes``). Fails naming the language when the model has no code for it.
    """
    overrides = overrides or {}

    def nllb(lang: str) -> str:
        return overrides.get(lang) or FLORES_CODES.get(lang, "")

    def m2m(lang: str) -> str:
        return overrides.get(lang) or f"__{lang}__"

    if _has(vocab, "eng_Latn") or any(_has(vocab, nllb(x)) for x in (source, target) if nllb(x)):
        style, code = "nllb", nllb
    elif _has(vocab, m2m(source)) or _has(vocab, "__en__"):
        style, code = "m2m100", m2m
    elif any(token.startswith(">>") and token.endswith("<<") for token in vocab):
        style = "marian"

        def code(lang: str) -> str:
            wanted = overrides.get(lang)
            candidates = [wanted] if wanted else [lang, *_iso3(lang)]
            return next((c for c in candidates if _has(vocab, f">>{c}<<")), candidates[0])

        tgt = code(target)
        if not _has(vocab, f">>{tgt}<<"):
            raise PolyneuronError(
                f"the MT model has no code for language {target!r} (no >>{tgt}<< token); map it "
                f"under translators.hf.codes or pick another model (translators.hf.models)"
            )
        return LanguageCode("marian", None, tgt)
    else:
        return LanguageCode("pair", None, None)
    codes = {}
    for role, lang in (("source", source), ("target", target)):
        value = code(lang)
        if not value or not _has(vocab, value):
            raise PolyneuronError(
                f"the MT model ({style}-style codes) has no code for {role} language {lang!r}"
                f"{f' (no token {value!r})' if value else ''}; map it under "
                "translators.hf.codes or pick another model (translators.hf.models)"
            )
        codes[role] = value
    return LanguageCode(style, codes["source"], codes["target"])


def _iso3(lang: str) -> list[str]:
    flores = FLORES_CODES.get(lang)
    return [flores.split("_")[0]] if flores else []


def _by_length(texts: Sequence[str]) -> list[int]:
    return sorted(range(len(texts)), key=lambda i: -len(texts[i]))


def load_seq2seq(source: str, dtype: str = "float32", device: str = "auto"):
    """An MT model and its tokenizer by Hugging Face id or local folder, in eval mode."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from polyneuron.model.load import looks_like_path, resolve_device

    if looks_like_path(source) and not Path(source).expanduser().is_dir():
        raise PolyneuronError(f"config key translators.hf.model: no such folder {source!r}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForSeq2SeqLM.from_pretrained(source, dtype=getattr(torch, dtype))
    except (OSError, ValueError) as err:
        raise PolyneuronError(
            f"config key translators.hf.model: cannot load {source!r} as a seq2seq MT model: {err}"
        ) from None
    model.to(resolve_device(device)).eval()
    return model, tokenizer


def _run_sorted(
    texts: Sequence[str],
    batch_size: int,
    translate_batch: Callable[[list[str]], list[str]],
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    order = _by_length(texts)
    out: list[str] = [""] * len(texts)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        results = translate_batch([texts[i] for i in chunk])
        for i, result in zip(chunk, results, strict=True):
            out[i] = result
        if progress:
            progress(len(chunk))
    return out


def translate_seq2seq(
    model,
    tokenizer,
    texts: Sequence[str],
    source: str,
    target: str,
    *,
    batch_size: int = 16,
    max_new_tokens: int = 256,
    num_beams: int = 1,
    codes: Mapping[str, str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Translate ``texts`` from ISO 639-1 ``source`` into ``target`` with a seq2seq MT model."""
    import torch

    lang = language_codes(tokenizer.get_vocab(), source, target, codes)
    generate_kwargs: dict = {"max_new_tokens": max_new_tokens, "num_beams": num_beams}
    if lang.style in ("nllb", "m2m100"):
        if hasattr(tokenizer, "src_lang"):
            tokenizer.src_lang = lang.source
        generate_kwargs["forced_bos_token_id"] = tokenizer.convert_tokens_to_ids(lang.target)
    device = next(model.parameters()).device

    def translate_batch(chunk: list[str]) -> list[str]:
        if lang.style == "marian":
            chunk = [f">>{lang.target}<< {text}" for text in chunk]
        encoded = tokenizer(chunk, return_tensors="pt", padding=True, truncation=True)
        with torch.inference_mode():
            generated = model.generate(**encoded.to(device), **generate_kwargs)
        return [
            text.strip() for text in tokenizer.batch_decode(generated, skip_special_tokens=True)
        ]

    return _run_sorted(texts, batch_size, translate_batch, progress)


def translate_causal(
    model,
    tokenizer,
    texts: Sequence[str],
    source_name: str,
    target_name: str,
    *,
    prompt: str = DEFAULT_PROMPT,
    batch_size: int = 8,
    max_new_tokens: int = 128,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Translate by prompting a causal LM (greedy); the answer is the completion's first
    non-empty line. ``prompt`` has ``{source}``, ``{target}`` (language names) and ``{text}``."""
    import torch

    for field in ("{text}", "{target}"):
        if field not in prompt:
            raise PolyneuronError(f"config key translators.llm.prompt: needs {field}")
    device = next(model.parameters()).device
    pad_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    def translate_batch(chunk: list[str]) -> list[str]:
        prompts = [
            prompt.format(source=source_name, target=target_name, text=text) for text in chunk
        ]
        encoded = tokenizer(prompts, return_tensors="pt", padding=True).to(device)
        with torch.inference_mode():
            generated = model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                min_new_tokens=1,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        new = generated[:, encoded["input_ids"].shape[1] :]
        answers = tokenizer.batch_decode(new, skip_special_tokens=True)
        return [next((ln.strip() for ln in a.splitlines() if ln.strip()), "") for a in answers]

    try:
        return _run_sorted(texts, batch_size, translate_batch, progress)
    finally:
        tokenizer.padding_side = pad_side


def check_translations(ids: Sequence[str], texts: Sequence[str], lang: str) -> None:
    """Fail on an empty translation, naming the prompt."""
    for item_id, text in zip(ids, texts, strict=True):
        if not text.strip():
            raise PolyneuronError(
                f"the translator returned an empty translation into {lang!r} for {item_id!r}"
            )
