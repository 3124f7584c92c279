"""Bilingual lexicon induction (BLI): P@1 of word translation into the pivot language.

Each test word is prompted as a MUSE translation, ``German: "Hund" → English:``
(:data:`polyneuron.probes.muse.PROMPT`), and the model continues greedily. The continuation's first
word (:func:`first_word`) is a hit when it equals one of the word's gold translations, case
aside. Test pairs are dictionary pairs that are not probes: :func:`heldout_pairs` lists a
dictionary's pairs exactly as :func:`polyneuron.probes.muse.build_probes` does and keeps those after
the first ``max_words``, which the probes took. :func:`bli_matrix` runs the evaluation plain,
with neuron sets off, and with their random controls (:func:`polyneuron.evaluate.matrix.
intervention_matrix`); :func:`bridge_sets` gives each bridge target's overlap neurons with its
selected bridge language.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch import nn

from polyneuron import PolyneuronError
from polyneuron.evaluate.controls import Controls
from polyneuron.evaluate.interventions import NeuronSet
from polyneuron.evaluate.matrix import intervention_matrix, mean_metric_rows
from polyneuron.model.batches import pad_token_id
from polyneuron.model.greedy import greedy_batch
from polyneuron.neurons.overlap import overlap_sets
from polyneuron.probes.muse import Malformed, build_probes, language_pairs

__all__ = [
    "BliItems",
    "bli_hits",
    "bli_matrix",
    "bridge_sets",
    "dictionary_tests",
    "first_word",
    "greedy_continuations",
    "heldout_pairs",
    "is_hit",
]

# --------------------------------------------------------------------------- test pairs


def heldout_pairs(
    pairs: pl.DataFrame,
    source: str,
    lang: str,
    pivot: str,
    names: Mapping[str, str],
    max_words: int,
    max_pairs: int,
    drop_identical: bool = True,
) -> pl.DataFrame:
    """The first ``max_pairs`` test pairs of ``lang`` (rows of
    :data:`polyneuron.probes.muse.PROBE_SCHEMA`: ``text`` the prompt into ``pivot``, ``word``, and
    ``answers`` its gold translations): the entries that
    :func:`polyneuron.probes.muse.build_probes` would list after its first ``max_words``, which are
    the language's probes. Its list is deduplicated by pivot word and by foreign word, so a
    test word is neither a probe word nor a translation of one. Fewer rows (or none) when
    the dictionary runs out."""
    listed = build_probes(
        {lang: pairs}, {lang: source}, pivot, [lang], names, max_words + max_pairs, drop_identical
    )
    return listed[lang].slice(max_words)


def dictionary_tests(
    path: str | Path,
    lang: str,
    pivot: str,
    names: Mapping[str, str],
    max_words: int,
    max_pairs: int,
    drop_identical: bool = True,
    on_malformed: str = "skip",
) -> tuple[pl.DataFrame, Malformed]:
    """:func:`heldout_pairs` of a MUSE file (``{pivot}-{lang}`` or the reverse, as
    :func:`polyneuron.probes.muse.find_dictionary` finds it), read as the probes read it; and its
    malformed lines. Streamed (:func:`polyneuron.probes.muse.language_pairs`): only the pairs
    the first ``max_words + max_pairs`` entries need are kept, whatever the file's size."""
    pairs, malformed = language_pairs(path, pivot, lang, max_words + max_pairs, drop_identical,
                                      on_malformed)  # fmt: skip
    test = heldout_pairs(pairs, Path(path).name, lang, pivot, names, max_words, max_pairs,
                         drop_identical)  # fmt: skip
    return test, malformed


# --------------------------------------------------------------------------- answers

# quotes that open or close the word in a translation prompt's continuation
_QUOTES = frozenset("\"'`«»‹›“”„‟‘’‚‛「」『』〝〞＂＇")
# inside a word ("don't", "e-mail") these do not end it; trailing, they are dropped
_INSIDE = "'’-"


def _ends_word(ch: str) -> bool:
    """A character the first word stops at: whitespace (MUSE words never contain any: a
    dictionary line splits on it), a quote or punctuation, but not an apostrophe or a dash."""
    if ch in _INSIDE:
        return False
    if ch.isspace() or ch in _QUOTES:
        return True
    category = unicodedata.category(ch)
    return category.startswith("P") and category != "Pd"


def _word_span(text: str) -> tuple[int, int]:
    """Where the first word lies: after leading characters that are not letters, digits or
    marks (spaces, the opening quote, an arrow), up to the first :func:`_ends_word`."""
    start = 0
    while start < len(text) and unicodedata.category(text[start])[0] not in "LNM":
        start += 1
    end = start
    while end < len(text) and not _ends_word(text[end]):
        end += 1
    return start, end


def first_word(continuation: str) -> str:
    """The translation a continuation gives: leading spaces, quotes and punctuation dropped,
    cut at the first whitespace, quote or punctuation (``' "dog". It'`` → ``'dog'``);
    apostrophes and hyphens inside the word stay, trailing ones go (``"'dog'"`` → ``'dog'``)."""
    start, end = _word_span(continuation)
    return continuation[start:end].rstrip(_INSIDE)


def _word_complete(continuation: str) -> bool:
    """Whether more text cannot change :func:`first_word`: the word has begun and a
    character after it has ended it."""
    start, end = _word_span(continuation)
    return start < end < len(continuation)


def is_hit(continuation: str, answers: Sequence[str]) -> bool:
    """Whether the continuation's :func:`first_word` is one of ``answers``, case-insensitive."""
    word = first_word(continuation).casefold()
    return bool(word) and word in {a.strip().casefold() for a in answers}


# --------------------------------------------------------------------------- generation


def _greedy_batch(
    model: nn.Module,
    tokenizer,
    encoded: Sequence[Sequence[int]],
    device: torch.device,
    max_new_tokens: int,
) -> list[str]:
    """Greedy continuations of one left-padded batch (:func:`polyneuron.model.greedy.
    greedy_batch`). A row leaves the batch (its key-value cache rows dropped) once its first
    word is complete — later tokens could not change it — or at an end-of-sequence token: most
    rows need three tokens of the eight allowed, and each token costs a row a pass through the
    262k-word unembedding of Gemma 3."""
    stop = set(_eos_ids(model, tokenizer))
    generated: list[list[int]] = [[] for _ in encoded]

    def choose(rows: list[int], tokens: list[int]) -> list[int]:
        keep = []
        for slot, (row, token) in enumerate(zip(rows, tokens, strict=True)):
            if token in stop:
                continue
            generated[row].append(token)
            if not _word_complete(tokenizer.decode(generated[row], skip_special_tokens=True)):
                keep.append(slot)
        return keep

    greedy_batch(model, encoded, pad_token_id(tokenizer), device, max_new_tokens, choose)
    return [tokenizer.decode(g, skip_special_tokens=True) for g in generated]


def _eos_ids(model: nn.Module, tokenizer) -> list[int]:
    """The end-of-sequence ids generate() stops at: the generation config's (one or a list),
    else the tokenizer's."""
    config = getattr(model, "generation_config", None)
    eos = getattr(config, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, list | tuple) else [eos])]


def greedy_continuations(
    model: nn.Module,
    tokenizer,
    prompts: Sequence[str],
    device: torch.device,
    max_new_tokens: int = 8,
    batch_size: int = 256,
) -> list[str]:
    """Each prompt's greedy continuation up to its first complete word, at most
    ``max_new_tokens`` tokens, decoded without special tokens, in prompt order: what
    ``model.generate`` gives one prompt at a time, cut once :func:`first_word` is settled.
    Prompts are tokenised with special tokens, batched by length and left-padded. Open
    intervention hooks apply."""
    encoded = [list(tokenizer(p, add_special_tokens=True)["input_ids"]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: (len(encoded[i]), i))
    out = [""] * len(prompts)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            texts = _greedy_batch(model, tokenizer, [encoded[i] for i in rows], device,
                                  max_new_tokens)  # fmt: skip
            for i, text in zip(rows, texts, strict=True):
                out[i] = text
    return out


@dataclass(frozen=True)
class BliItems:
    """One language's test prompts (as the model reads them) and their gold translations."""

    prompts: list[str]
    answers: list[list[str]]

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, answer_prefix: str = "") -> BliItems:
        """``frame``'s prompts (``text``) followed by ``answer_prefix`` (``' "'``: the opening
        quote the answer follows, so that the first token generated is the word's) and its
        ``answers``."""
        return cls(
            [t + answer_prefix for t in frame["text"].to_list()],
            [list(a) for a in frame["answers"].to_list()],
        )

    def __len__(self) -> int:
        return len(self.prompts)


def bli_hits(
    model: nn.Module,
    tokenizer,
    items: Mapping[str, BliItems],
    device: torch.device,
    max_new_tokens: int = 8,
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """Per language of ``items`` and prompt: 1.0 when the greedy translation is one of its
    answers (:func:`is_hit`), else 0.0. The languages' prompts are batched together."""
    prompts = [p for lang_items in items.values() for p in lang_items.prompts]
    continuations = iter(
        greedy_continuations(model, tokenizer, prompts, device, max_new_tokens, batch_size)
    )
    return {
        lang: np.array(
            [is_hit(next(continuations), answers) for answers in lang_items.answers],
            dtype=np.float64,
        )
        for lang, lang_items in items.items()
    }


def bli_matrix(
    model: nn.Module,
    tokenizer,
    sets: Mapping[str, NeuronSet],
    items: Mapping[str, BliItems],
    seeds: Sequence[int],
    device: torch.device,
    mode: str = "zero",
    factor: float = 0.0,
    max_new_tokens: int = 8,
    batch_size: int = 256,
    n_boot: int = 1000,
    boot_seed: int = 0,
    alpha: float = 0.05,
    desc: str = "bli",
    controls: Controls | None = None,
) -> pl.DataFrame:
    """P@1 (metric ``p_at_1``) of every language's ``items``, plain and with each set of
    ``sets`` off and its random controls per seed (:func:`polyneuron.evaluate.matrix.
    intervention_matrix`): :data:`polyneuron.evaluate.matrix.ABLATION_SCHEMA` rows ordered by
    intervened set, condition and evaluated language (``items``' order)."""

    def evaluate() -> dict[str, np.ndarray]:
        return bli_hits(model, tokenizer, items, device, max_new_tokens, batch_size)

    def rows(intervened, baseline, scored, n_neurons, control, seed) -> pl.DataFrame:
        return mean_metric_rows(
            intervened, baseline, scored, "p_at_1", n_neurons, control, seed,
            n_boot=n_boot, boot_seed=boot_seed, alpha=alpha,
        )  # fmt: skip

    return intervention_matrix(
        model, sets, evaluate, rows, seeds, mode, factor, desc=desc, controls=controls,
        new_tokens=max_new_tokens,
    )  # fmt: skip


# --------------------------------------------------------------------------- bridges


def bridge_sets(
    bridges: pl.DataFrame, act_prob: torch.Tensor, langs: Sequence[str], percentile: float
) -> dict[str, NeuronSet]:
    """Per bridge target, the overlap neurons of the target and its selected bridge language
    (``bridges``: the ranking of :func:`polyneuron.neurons.hsic.rank_bridges`, ``selected`` rows):
    the neurons in both languages' top sets of :func:`polyneuron.neurons.overlap.overlap_sets` over
    ``act_prob[layer, neuron, lang]`` — the neurons whose HSIC ranked the bridge. Keyed
    ``bridge:{bridge}/{target}``, in target order."""
    chosen = bridges.filter(pl.col("selected")).unique("target", maintain_order=True)
    if chosen.is_empty():
        return {}
    sets = overlap_sets(act_prob, percentile)  # [layer, neuron, lang]
    out: dict[str, NeuronSet] = {}
    for target, bridge in chosen.select("target", "candidate").iter_rows():
        missing = [lang for lang in (target, bridge) if lang not in langs]
        if missing:
            raise PolyneuronError(
                f"bridge {bridge} for {target}: no activation statistics for {', '.join(missing)}"
            )
        both = sets[..., langs.index(target)] & sets[..., langs.index(bridge)]
        _check_counts(bridges, target, bridge, both.sum(1))
        out[f"bridge:{bridge}/{target}"] = {
            layer: torch.nonzero(both[layer]).flatten()
            for layer in range(both.shape[0])
            if bool(both[layer].any())
        }
    return out


def _check_counts(bridges: pl.DataFrame, target: str, bridge: str, counts: torch.Tensor) -> None:
    """The overlap sets' sizes per layer must be those the bridges were scored on (its
    ``n_neurons``), else the statistics or the percentile changed since."""
    if "n_neurons" not in bridges.columns:
        return
    scored = bridges.filter(pl.col("target") == target, pl.col("candidate") == bridge)
    expected = dict(zip(scored["layer"].to_list(), scored["n_neurons"].to_list(), strict=True))
    found = {layer: int(n) for layer, n in enumerate(counts.tolist())}
    if any(found.get(layer) != n for layer, n in expected.items()):
        raise PolyneuronError(
            f"bridge {bridge} for {target}: the overlap sets per layer "
            f"({list(found.values())}) are not those the bridges were scored on "
            f"({list(expected.values())}); rerun score_bridges"
        )
