"""MUSE-format bilingual dictionaries and the BridgeX-ICL translation probes built from them.

A MUSE dictionary ``{src}-{tgt}.txt`` has one ``source target`` pair per line, split on any
whitespace; a word on several lines has several gold translations. Real MUSE files contain a
few malformed lines, which are skipped or fatal per config.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from polyneuron import PolyneuronError
from polyneuron.probes.records import decoded_lines

PROMPT = '{src}: "{word}" → {tgt}:'
PROBE_SCHEMA = {
    "id": pl.String,
    "pair_id": pl.String,
    "lang": pl.String,
    "text": pl.String,
    "word": pl.String,
    "word_start": pl.Int32,
    "word_end": pl.Int32,
    "src_lang": pl.String,
    "tgt_lang": pl.String,
    "answers": pl.List(pl.String),
    "source": pl.String,
}


@dataclass
class Malformed:
    path: Path
    line_numbers: list[int] = field(default_factory=list)
    capitalised: list[int] = field(default_factory=list)  # lines lower-cased on reading

    def __bool__(self) -> bool:
        return bool(self.line_numbers)

    def describe(self) -> str:
        first = ", ".join(map(str, self.line_numbers[:5]))
        return (
            f"{self.path}: {len(self.line_numbers)} malformed line(s) "
            f"(expected 'source target'), first at line(s) {first}"
        )

    def describe_case(self) -> str:
        first = ", ".join(map(str, self.capitalised[:5]))
        return (
            f"{self.path}: {len(self.capitalised)} line(s) with capitals, lower-cased as MUSE's "
            f"dictionaries are (first at line(s) {first})"
        )


def _lines(path: Path, report: Malformed) -> Iterator[tuple[int, str, str]]:
    """``(line, source, target)`` of each well-formed line, lower-cased, streamed; malformed
    lines and lines with capitals go into ``report``."""
    for number, line in decoded_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            report.line_numbers.append(number)
            continue
        src, tgt = parts[0].lower(), parts[1].lower()
        if src != parts[0] or tgt != parts[1]:
            report.capitalised.append(number)
        yield number, src, tgt


def _checked(report: Malformed, on_malformed: str) -> Malformed:
    if report and on_malformed == "fail":
        raise PolyneuronError(report.describe())
    return report


def read_dictionary(path: str | Path, on_malformed: str = "skip") -> tuple[pl.DataFrame, Malformed]:
    """Read one MUSE file into ``(src, tgt, line)``; blank lines are ignored.

    ``on_malformed``: ``skip`` drops lines that are not exactly two tokens and reports them;
    ``fail`` raises, naming the file and the first line numbers. Words are lower-cased, as in
    MUSE's own files (``House Haus`` and ``house haus`` are one pair); the lines that had
    capitals are reported (:meth:`Malformed.describe_case`). Holds the whole file: the probe
    builders stream instead (:func:`language_pairs`, :func:`pivot_language_pairs`).
    """
    report = Malformed(Path(path))
    rows = list(_lines(Path(path), report))
    _checked(report, on_malformed)
    frame = pl.DataFrame(
        rows, schema={"line": pl.Int32, "src": pl.String, "tgt": pl.String}, orient="row"
    ).select("src", "tgt", "line")
    return frame, report


def _pivot_first(path: Path, pivot: str, lang: str, report: Malformed) -> Iterator[tuple[str, str]]:
    """``(pivot word, foreign word)`` of each well-formed line, in file order."""
    swapped = is_reversed(path, pivot, lang)
    for _, src, tgt in _lines(path, report):
        yield (tgt, src) if swapped else (src, tgt)


def _pairs_frame(rows: list[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"pivot": pl.String, "foreign": pl.String}, orient="row")


def language_pairs(
    path: str | Path,
    pivot: str,
    lang: str,
    max_words: int,
    drop_identical: bool = True,
    on_malformed: str = "skip",
) -> tuple[pl.DataFrame, Malformed]:
    """The ``(pivot, foreign)`` pairs of one dictionary that :func:`build_probes` needs for
    ``lang``'s probes, in one streaming pass: every pair up to the one that gives the
    ``max_words``-th probe word, then only the later pairs of those words (their other gold
    answers). :func:`build_probes` makes the same probes of them as of :func:`pivot_pairs` of
    the whole file, and memory stays flat in the file's size."""
    path = Path(path)
    report = Malformed(path)
    rows: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    pivots: set[str] = set()
    words: set[str] = set()  # foreign words of the probes so far
    full = False
    for pair in _pivot_first(path, pivot, lang, report):
        if pair in seen or (full and pair[1] not in words):
            continue
        seen.add(pair)
        rows.append(pair)
        word_pivot, foreign = pair
        if full or (drop_identical and word_pivot == foreign) or word_pivot in pivots:
            continue
        pivots.add(word_pivot)  # first use of a pivot word: a probe unless its foreign word
        words.add(foreign)  # was one already
        if len(words) == max_words:
            full = True
            seen = {p for p in seen if p[1] in words}
            pivots.clear()
    return _pairs_frame(rows), _checked(report, on_malformed)


def pivot_language_pairs(
    paths: Mapping[str, str | Path],
    pivot: str,
    max_words: int,
    drop_identical: bool = True,
    on_malformed: str = "skip",
) -> tuple[dict[str, pl.DataFrame], dict[str, Malformed]]:
    """The ``(pivot, foreign)`` pairs of each language's dictionary (``paths``) that
    :func:`build_probes` needs for the pivot language's probes, streamed: a first pass reads
    each file up to its ``max_words``-th distinct pivot word (the ranks that choose the probe
    words), a second keeps, beyond that, only the pairs of the chosen words."""
    heads: dict[str, tuple[int, list[tuple[str, str]]]] = {}
    best: dict[str, int] = {}
    for lang, path in paths.items():
        rows: list[tuple[str, str]] = []
        seen: set[tuple[str, str]] = set()
        ranked: list[str] = []
        known: set[str] = set()
        consumed = 0
        for pair in _pivot_first(Path(path), pivot, lang, Malformed(Path(path))):
            consumed += 1
            if pair in seen:
                continue
            seen.add(pair)
            rows.append(pair)
            word = pair[0]
            if (drop_identical and word == pair[1]) or word in known:
                continue
            known.add(word)
            ranked.append(word)
            if len(ranked) == max_words:
                break
        heads[lang] = (consumed, rows)
        for rank, word in enumerate(ranked):
            best[word] = min(best.get(word, rank), rank)
    chosen = set(sorted(best, key=lambda w: (best[w], w))[:max_words])
    pairs, reports = {}, {}
    for lang, path in paths.items():
        consumed, rows = heads[lang]
        seen = set(rows)
        report = Malformed(Path(path))
        for i, pair in enumerate(_pivot_first(Path(path), pivot, lang, report)):
            if i < consumed or pair[0] not in chosen or pair in seen:
                continue
            seen.add(pair)
            rows.append(pair)
        pairs[lang], reports[lang] = _pairs_frame(rows), _checked(report, on_malformed)
    return pairs, reports


def find_dictionary(folder: str | Path, pivot: str, lang: str) -> tuple[Path, bool]:
    """The dictionary pairing ``pivot`` with ``lang``: ``(path, reversed)``.

    Looks for ``{pivot}-{lang}.txt``, then MUSE's train split ``{pivot}-{lang}.0-5000.txt``,
    then the reverse direction ``{lang}-{pivot}.txt`` (read with its columns swapped).
    """
    folder = Path(folder)
    names = (f"{pivot}-{lang}.txt", f"{pivot}-{lang}.0-5000.txt")
    names += (f"{lang}-{pivot}.txt", f"{lang}-{pivot}.0-5000.txt")
    candidates = [(folder / name, is_reversed(name, pivot, lang)) for name in names]
    for path, swapped in candidates:
        if path.is_file():
            return path, swapped
    names = ", ".join(p.name for p, _ in candidates)
    raise PolyneuronError(
        f"no dictionary for language {lang!r} in {folder} (looked for {names}); "
        f"add one or remove {lang!r} from the config key languages"
    )


def is_reversed(path: str | Path, pivot: str, lang: str) -> bool:
    """Whether a dictionary file goes from ``lang`` to ``pivot`` (``de-en.txt``)."""
    return Path(path).name.startswith(f"{lang}-{pivot}.")


def pivot_pairs(frame: pl.DataFrame, swapped: bool) -> pl.DataFrame:
    """``(pivot, foreign)`` pairs in file order, duplicates dropped."""
    cols = ("tgt", "src") if swapped else ("src", "tgt")
    return frame.select(pl.col(cols[0]).alias("pivot"), pl.col(cols[1]).alias("foreign")).unique(
        maintain_order=True
    )


def _prompt(src_name: str, word: str, tgt_name: str) -> tuple[str, int, int]:
    head = f'{src_name}: "'
    text = PROMPT.format(src=src_name, word=word, tgt=tgt_name)
    return text, len(head), len(head) + len(word)


def _rows(
    lang: str, entries: Sequence[tuple[str, str, str, list[str], str]], names: Mapping[str, str]
) -> pl.DataFrame:
    """entries: (pair_id, word, target language, answers, source file)."""
    rows: dict[str, list] = {key: [] for key in PROBE_SCHEMA}
    for i, (pair_id, word, tgt_lang, answers, source) in enumerate(entries):
        text, start, end = _prompt(names[lang], word, names[tgt_lang])
        rows["id"].append(f"{lang}-{i:05d}")
        rows["pair_id"].append(pair_id)
        rows["lang"].append(lang)
        rows["text"].append(text)
        rows["word"].append(word)
        rows["word_start"].append(start)
        rows["word_end"].append(end)
        rows["src_lang"].append(lang)
        rows["tgt_lang"].append(tgt_lang)
        rows["answers"].append(answers)
        rows["source"].append(source)
    return pl.DataFrame(rows, schema=PROBE_SCHEMA)


def build_probes(
    pairs: Mapping[str, pl.DataFrame],
    sources: Mapping[str, str],
    pivot: str,
    languages: Sequence[str],
    names: Mapping[str, str],
    max_words: int,
    drop_identical: bool = True,
) -> dict[str, pl.DataFrame]:
    """Translation probes per language, BridgeX-ICL style: ``German: "Hund" → English:``.

    ``pairs[lang]`` holds ``(pivot, foreign)`` pairs for every non-pivot language, in
    dictionary order (frequent words first). A language's probes are its words, each prompted
    for translation into the pivot, keyed by ``pair_id`` = the pivot word so that probes of
    two languages align through their shared pivot word. The pivot language's probes are pivot
    words prompted into the other languages in turn. ``word_start``/``word_end`` are the
    word's character span in ``text``, for counting only the word's tokens.
    """
    others = [lang for lang in languages if lang != pivot]
    kept: dict[str, pl.DataFrame] = {}
    for lang in others:
        frame = pairs[lang]
        if frame.is_empty():
            raise PolyneuronError(
                f"{sources[lang]}: no {pivot}-{lang} pairs in the file (expected one "
                "'source target' pair per line)"
            )
        if drop_identical:
            # loanwords spelled alike ("radio radio") say nothing about the language
            frame = frame.filter(pl.col("pivot") != pl.col("foreign"))
        if frame.is_empty():
            raise PolyneuronError(
                f"{sources[lang]}: no usable {pivot}-{lang} pairs left after filtering "
                f"(drop_identical={drop_identical})"
            )
        kept[lang] = frame

    probes: dict[str, pl.DataFrame] = {}
    for lang in others:
        frame = kept[lang]
        answers = frame.group_by("foreign", maintain_order=True).agg(pl.col("pivot"))
        first = frame.unique("pivot", keep="first", maintain_order=True).unique(
            "foreign", keep="first", maintain_order=True
        )
        gold = dict(zip(answers["foreign"], answers["pivot"], strict=True))
        entries = [
            (p, f, pivot, list(gold[f]), sources[lang])
            for p, f in zip(first["pivot"], first["foreign"], strict=True)
        ][:max_words]
        probes[lang] = _rows(lang, entries, names)

    if pivot in languages:
        # pivot words by their best rank over all dictionaries, each prompted into the
        # other languages in turn so that no one target language dominates
        best: dict[str, tuple[int, str]] = {}
        for lang in others:
            for rank, word in enumerate(kept[lang]["pivot"].unique(maintain_order=True)):
                if word not in best or rank < best[word][0]:
                    best[word] = (rank, lang)
        order = sorted(best, key=lambda w: (best[w][0], w))[:max_words]
        translations = {
            lang: kept[lang].group_by("pivot", maintain_order=True).agg(pl.col("foreign"))
            for lang in others
        }
        lookup = {
            lang: dict(zip(t["pivot"], t["foreign"], strict=True))
            for lang, t in translations.items()
        }
        entries = []
        for i, word in enumerate(order):
            # the i-th word goes to the i-th language (cyclically) that translates it
            turn = others[i % len(others) :] + others[: i % len(others)]
            tgt = next(lang for lang in turn if word in lookup[lang])
            entries.append((word, word, tgt, list(lookup[tgt][word]), sources[tgt]))
        if not entries:
            raise PolyneuronError(f"no {pivot} probe words: configure at least one other language")
        probes[pivot] = _rows(pivot, entries, names)
    return probes
