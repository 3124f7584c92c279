"""Read dictd dictionaries and pull clean single-word translations out of FreeDict entries.

A dictd dictionary is a pair of files: ``<name>.index`` and ``<name>.dict.dz`` (FreeDict's
Debian packages install them under ``/usr/share/dictd``). Each index line is
``headword<TAB>offset<TAB>length``, where offset and length are byte positions in the
*uncompressed* ``.dict`` data, written as base-64 numbers in the dictd alphabet
(``A`` = 0 ... ``/`` = 63, most significant digit first). The ``.dict.dz`` file is dictzip,
which is gzip-compatible, so :mod:`gzip` reads it whole.

FreeDict definitions are rendered from TEI by ``dictfmt``; across the dictionaries they look
like::

    house /hˈaʊs/ <n>                    <- headword line: forms, pronunciation, grammar
    1. casa, habitação                   <- numbered sense: translations
    archetypal structure of an abode     <- (Wiktionary-derived dictionaries) sense gloss
          "build a house"  - ein Haus    <- indented example
       Synonym: {house music}            <- cross references
     see: {houses}, {open house}

:func:`extract_translations` keeps the translation lines (the first content line, every
numbered sense, or the line after a bare ``N.`` marker), strips grammar tags, notes in
brackets and numbering, and returns the items that are single words.
"""

from __future__ import annotations

import gzip
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

DICTD_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUE = {char: value for value, char in enumerate(DICTD_B64_ALPHABET)}

#: Index keys of the ``00-database-*`` metadata entries (dictd also stores them with the
#: hyphens stripped, e.g. ``00databaseinfo``).
METADATA_PREFIXES = ("00-database-", "00database")

_PRONUNCIATION = re.compile(r"/+[^/\n]*/+")
_ANGLE = re.compile(r"<[^<>]*>")
_SQUARE = re.compile(r"\[[^\[\]]*\]")
_BRACE = re.compile(r"\{[^{}]*\}")
_PAREN = re.compile(r"\([^()]*\)")
_NUMBERED = re.compile(r"^(\d+)\.(?:\s+(.*))?$")
_TRAILING_NUMBER = re.compile(r"\s+\d+\.$")
_ITEM_SEPARATORS = re.compile(r"[,;،؛、，；]")
_SENTENCE_END = re.compile(r"\.\s")
_MARKER = re.compile(
    r"^(?:see(?:\s+also)?|synonyms?|syn\.?|antonyms?|ant\.?|note|notes|cf\.?|compare|"
    r"also|usage|examples?|e\.g\.)\s*:",
    re.IGNORECASE,
)
# characters that, inside a translation, join the words of a phrase (eng-hin writes
# "रखा~जाना" for "रखा जाना")
_PHRASE_JOINERS = str.maketrans({"_": " ", "~": " "})
_EDGE_PUNCTUATION = '"“”„«»‹›!?¡¿.:…·*+=| '
_QUOTE_PAIRS = (("'", "'"), ("‘", "’"), ("’", "’"))
_WORD_INNER = frozenset("-'’")


@dataclass(frozen=True)
class IndexEntry:
    """One line of a ``.index`` file: the lookup key and where its definition lies."""

    headword: str
    offset: int
    length: int


@dataclass(frozen=True)
class Entry:
    """One definition: its index key, headword forms from its first line, and raw text."""

    key: str
    headwords: tuple[str, ...]
    text: str


def decode_number(digits: str) -> int:
    """Decode a dictd base-64 number (``"B"`` = 1, ``"BA"`` = 64)."""
    if not digits:
        raise ValueError("empty dictd base-64 number")
    value = 0
    for char in digits:
        try:
            value = value * 64 + _B64_VALUE[char]
        except KeyError:
            raise ValueError(f"{char!r} is not a dictd base-64 digit in {digits!r}") from None
    return value


def parse_index_line(line: str) -> IndexEntry:
    """Parse ``headword<TAB>offset<TAB>length``; extra trailing columns are ignored."""
    parts = line.rstrip("\r\n").split("\t")
    if len(parts) < 3:
        raise ValueError(f"dictd index line has {len(parts)} column(s), expected 3: {line!r}")
    return IndexEntry(parts[0], decode_number(parts[1]), decode_number(parts[2]))


def is_metadata(headword: str) -> bool:
    """True for the ``00-database-*`` entries that describe the dictionary itself."""
    return headword.startswith(METADATA_PREFIXES)


def parse_index(lines: Iterable[str]) -> Iterator[IndexEntry]:
    """Parse index lines, skipping blank lines."""
    for line in lines:
        if line.strip("\r\n"):
            yield parse_index_line(line)


def read_definition(data: bytes, entry: IndexEntry) -> str:
    """The definition text an index entry points at, from the uncompressed dictionary."""
    end = entry.offset + entry.length
    if end > len(data):
        raise ValueError(f"index entry {entry} runs past the end of the data ({len(data)} bytes)")
    return data[entry.offset : end].decode("utf-8")


def iter_definitions(
    index_lines: Iterable[str], data: bytes, *, include_metadata: bool = False
) -> Iterator[Entry]:
    """Yield each definition once, in index order, with the first index key pointing at it.

    dictd indexes one definition under several keys (every headword form, normalised
    spellings); duplicates by ``(offset, length)`` are dropped.
    """
    seen: set[tuple[int, int]] = set()
    for index_entry in parse_index(index_lines):
        if not include_metadata and is_metadata(index_entry.headword):
            continue
        position = (index_entry.offset, index_entry.length)
        if position in seen:
            continue
        seen.add(position)
        text = read_definition(data, index_entry)
        yield Entry(index_entry.headword, parse_headword_line(text.split("\n", 1)[0]), text)


def iter_entries(index_path: str | Path, dict_path: str | Path) -> Iterator[Entry]:
    """Yield the non-metadata definitions of an installed dictd dictionary."""
    with gzip.open(dict_path, "rb") as handle:
        data = handle.read()
    with open(index_path, encoding="utf-8") as index:
        yield from iter_definitions(index, data)


def read_metadata(index_path: str | Path, dict_path: str | Path, name: str) -> str | None:
    """The text of one ``00-database-<name>`` entry (``info``, ``short``, ``url``), if any."""
    keys = {f"00-database-{name}", f"00database{name}"}
    with gzip.open(dict_path, "rb") as handle:
        data = handle.read()
    with open(index_path, encoding="utf-8") as index:
        for index_entry in parse_index(index):
            if index_entry.headword in keys:
                return read_definition(data, index_entry)
    return None


def remove_bracketed(text: str) -> str:
    """Drop ``<grammar>``, ``[domain]``, ``{cross-reference}`` and (nested) ``(notes)``."""
    previous = None
    while previous != text:
        previous = text
        text = _ANGLE.sub(" ", text)
        text = _SQUARE.sub(" ", text)
        text = _BRACE.sub(" ", text)
        text = _PAREN.sub(" ", text)
    return text


def parse_headword_line(line: str) -> tuple[str, ...]:
    """Headword forms of a definition's first line, without pronunciation and tags.

    ``"house /hˈaʊs/ <n>"`` gives ``("house",)``; jpn-eng's
    ``" [ichi1]  家 /.../,  [ichi1] いえ /.../"`` gives ``("家", "いえ")``.
    """
    line = _PRONUNCIATION.sub(" ", line)
    line = remove_bracketed(line)
    forms = (" ".join(part.split()) for part in re.split(r"[,،、]", line))
    return tuple(form for form in forms if form)


def is_single_word(item: str) -> bool:
    """One token of letters (and combining marks), optionally joined by ``-`` or ``'``.

    Rejects whitespace, digits and punctuation-only strings.
    """
    if not item or not _is_letter(item[0]) or not _is_letter(item[-1]):
        return False
    return all(_is_letter(char) or char in _WORD_INNER for char in item)


def _is_letter(char: str) -> bool:
    return unicodedata.category(char)[0] in "LM"


def clean_item(item: str, strip_prefixes: Iterable[str] = ()) -> str:
    """Normalise one comma-separated translation.

    NFC; ``_``/``~`` phrase joiners become spaces; text after a sentence end ``". "`` is
    dropped (eng-tur runs phrases on: ``"işemek. go a long way ..."``; ``"pack sth. in"``
    must not yield ``"in"``); then trailing sense numbers, edge punctuation and prefixes go.
    A phrase template with an ellipsis (``"the ... river"``) gives ``""``.
    """
    item = unicodedata.normalize("NFC", item).translate(_PHRASE_JOINERS)
    if "..." in item or "…" in item:  # a phrase template: "the ... river"
        return ""
    item = _SENTENCE_END.split(item, maxsplit=1)[0]
    item = " ".join(item.split())
    item = _TRAILING_NUMBER.sub("", item)
    item = item.strip(_EDGE_PUNCTUATION)
    for opening, closing in _QUOTE_PAIRS:  # quoted words, not elisions such as French j'
        if len(item) > 2 and item.startswith(opening) and item.endswith(closing):
            item = item[1:-1].strip(_EDGE_PUNCTUATION)
    for prefix in strip_prefixes:
        if item.startswith(prefix) and len(item) > len(prefix):
            item = item[len(prefix) :].strip()
    return item


def split_items(line: str, strip_prefixes: Iterable[str] = ()) -> list[str]:
    """The cleaned items of one translation line (bracketed notes removed first)."""
    prefixes = tuple(strip_prefixes)
    items = (clean_item(part, prefixes) for part in _ITEM_SEPARATORS.split(remove_bracketed(line)))
    return [item for item in items if item]


def translation_lines(text: str) -> list[str]:
    """The lines of a definition that hold translations (see the module docstring).

    The headword line is skipped. A line is a translation line if it is the first content
    line, a numbered sense ``N. ...`` at the start of the line, or the first content line
    after a bare ``N.``. Examples (``"..."``), ``see:``/``Synonym:``/``Note:`` lines,
    indented sub-numbers and unnumbered glosses that follow a sense are not. A line with
    nothing left after removing bracketed notes (a grammar label) does not use up the turn.
    """
    lines = text.split("\n")[1:]
    expect = True
    result: list[str] = []
    for line in lines:
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(('"', "“", "„")) or _MARKER.match(stripped):
            expect = False
            continue
        numbered = _NUMBERED.match(line)
        if numbered:
            content = numbered.group(2) or ""
            if _has_content(content):
                result.append(content)
                expect = False
            else:
                expect = True
            continue
        if _NUMBERED.match(stripped):  # indented sub-number: continuation of glosses
            expect = False
            continue
        if expect and _has_content(stripped):
            result.append(stripped)
            expect = False
    return result


def _has_content(line: str) -> bool:
    return any(_is_letter(char) for char in remove_bracketed(line))


def extract_senses(text: str, strip_prefixes: Iterable[str] = ()) -> list[list[str]]:
    """Single-word translations of one FreeDict definition, one list per translation line.

    ``strip_prefixes`` are removed from the start of each item before the single-word
    test (``("to ",)`` turns the English gloss ``"to go"`` into ``"go"``). Lines without a
    single-word translation are left out; order is kept, duplicates within a line dropped.
    """
    prefixes = tuple(strip_prefixes)
    senses = []
    for line in translation_lines(text):
        words = dict.fromkeys(item for item in split_items(line, prefixes) if is_single_word(item))
        if words:
            senses.append(list(words))
    return senses


def extract_translations(text: str, strip_prefixes: Iterable[str] = ()) -> list[str]:
    """Single-word translations of one FreeDict definition, in order, without duplicates."""
    words = dict.fromkeys(word for sense in extract_senses(text, strip_prefixes) for word in sense)
    return list(words)
