"""tools/build_text_corpus.py: the cleaning functions, the readers, and the shipped corpus."""

from __future__ import annotations

import importlib.util
import struct
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "build_text_corpus.py"
spec = importlib.util.spec_from_file_location("build_text_corpus", TOOL)
corpus = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = corpus  # dataclasses look their module up
spec.loader.exec_module(corpus)

TEXT_DIR = REPO / "data" / "text"
MIN_SIZE = 20_000  # words, or characters for zh/ja (corpus.measure)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Open %s now", "Open now"),
        ("Copied %1$d of %2$d files", "Copied of files"),
        ("Hello %(name)s, welcome", "Hello , welcome"),
        ("Deleted {0} items in {folder}", "Deleted items in"),
        ("Blocked $1 on this site", "Blocked on this site"),
        ("Track %1 of %2", "Track of"),
        ("Period ~a to ~a", "Period to"),
        ("Progress: 50%% done", "Progress: 50% done"),
        ("50% of the disk is full", "50% of the disk is full"),
    ],
)
def test_strip_placeholders(raw: str, expected: str) -> None:
    assert corpus.collapse_whitespace(corpus.strip_placeholders(raw)) == expected


def test_texts_with_placeholders_are_dropped() -> None:
    assert corpus.count_placeholders("Open %s in {0} with $1") == 3
    assert corpus.clean_text("Open %s in a new window") is None
    assert corpus.clean_text("Open the file in a new window") == "Open the file in a new window"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("_Open the file", "Open the file"),
        ("Save _As…", "Save As…"),
        ("&Open the file", "Open the file"),
        ("Save && close", "Save & close"),
        ("Tom & Jerry", "Tom & Jerry"),
        ("ファイルを開く(_O)", "ファイルを開く"),
        ("ファイル(&F)", "ファイル"),
        ("Chapter (1) begins", "Chapter (1) begins"),
        ("_ New invoice", "New invoice"),
    ],
)
def test_strip_accelerators(raw: str, expected: str) -> None:
    assert corpus.collapse_whitespace(corpus.strip_accelerators(raw)) == expected


def test_clean_text_markup_entities_and_whitespace() -> None:
    raw = "<b>Bold</b> text &amp; more\n    <a href='x'>link</a> ."
    assert corpus.clean_text(raw) == "Bold text & more link."
    assert corpus.clean_text("\u200fمرحبا  بكم\u200e") == "مرحبا بكم"
    assert corpus.clean_text("&lt;none&gt;") == "<none>"


def test_mid_word_underscore_stays_and_reads_as_code() -> None:
    text = corpus.clean_text("nxy_Fehler zurückgegeben von Audacity")
    assert text == "nxy_Fehler zurückgegeben von Audacity"
    assert corpus.looks_like_code(text)


@pytest.mark.parametrize(
    "text",
    [
        "See https://example.org for details",
        "Write to someone@example.org today",
        "Use the --verbose option here",
        "Files in /usr/share are read",
        "Set value = 3 in the file",
        "Call register_node() first",
        "12345 67890 1234",
    ],
)
def test_looks_like_code(text: str) -> None:
    assert corpus.looks_like_code(text)


def test_prose_is_not_code() -> None:
    for text in ("Open the file in a new window.", "Öffnen Sie die Datei; danach schließen."):
        assert not corpus.looks_like_code(text)


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("Открыть файл в новом окне", "ru", True),
        ("Войти в Google", "ru", True),  # a Latin brand name in a Cyrillic sentence
        ("Open the file", "ru", False),
        ("Öffne die Datei jetzt", "de", True),
        ("Открыть файл", "de", False),
        ("Dosyayı şimdi aç", "tr", True),
        ("ファイルを開く", "ja", True),
        ("打开文件", "ja", False),  # no kana: Chinese, not Japanese
        ("打开文件", "zh", True),
        ("ファイルを開く", "zh", False),
        ("启动 Chromium 时打开", "zh", True),  # one Latin word counts once
        ("फ़ाइल खोलें", "hi", True),
        ("Open the file", "hi", False),
        ("افتح الملف", "ar", True),
        ("Fungua faili sasa", "sw", True),
    ],
)
def test_in_script(text: str, lang: str, expected: bool) -> None:
    assert corpus.in_script(text, lang) is expected


def test_long_enough_and_measure() -> None:
    assert not corpus.long_enough("Open file", "en")
    assert corpus.long_enough("Open the file", "en")
    assert not corpus.long_enough("打开", "zh")
    assert corpus.long_enough("打开文件", "zh")
    assert corpus.measure("Open the file", "en") == 3
    assert corpus.measure("打开 文件。", "zh") == 5


def test_accept_drops_english_and_untranslated() -> None:
    assert corpus.accept("Öffne die Datei jetzt", "de", "Open the file now")
    assert not corpus.accept("Open the file now", "de", "Open the file now")  # untranslated
    assert not corpus.accept("Please check that the file exists", "id", None)  # English
    assert corpus.accept("Please check that the file exists", "en", None)
    assert not corpus.accept(None, "de")
    assert not corpus.accept("Zu kurz", "de")


def test_dedupe_keeps_first_occurrence_case_insensitively() -> None:
    texts = ["Open the file", "Save the file", "open the  file", "Save the file", "Close it now"]
    assert corpus.dedupe(texts) == ["Open the file", "Save the file", "Close it now"]


def make_mo(entries: dict[bytes, bytes]) -> bytes:
    """A little-endian GNU .mo file with the given (already joined) msgid -> msgstr entries."""
    keys = sorted(entries)
    n = len(keys)
    header = 28
    ids_table, strs_table = header, header + 8 * n
    blob = bytearray()
    start = header + 16 * n
    id_index, str_index = [], []
    for key in keys:
        id_index.append((len(key), start + len(blob)))
        blob += key + b"\0"
    for key in keys:
        str_index.append((len(entries[key]), start + len(blob)))
        blob += entries[key] + b"\0"
    out = struct.pack("<7I", 0x950412DE, 0, n, ids_table, strs_table, 0, 0)
    out += b"".join(struct.pack("<2I", *x) for x in id_index)
    out += b"".join(struct.pack("<2I", *x) for x in str_index)
    return out + bytes(blob)


def test_read_mo() -> None:
    data = make_mo(
        {
            b"": b"Content-Type: text/plain; charset=UTF-8\nPlural-Forms: broken\n",
            b"Open the file": "Öffne die Datei".encode(),
            b"menu\x04Close": b"Schlie\xc3\x9fen",
            b"One file\x00%d files": b"Eine Datei\x00%d Dateien",
            b"translator-credits": b"Jemand <jemand@example.org>",
            b"Untranslated": b"",
        }
    )
    assert corpus.read_mo(data) == [
        ("Close", "Schließen"),
        ("One file", "Eine Datei"),
        ("Open the file", "Öffne die Datei"),
    ]


def test_read_pak_and_info() -> None:
    texts = [(5, b"Open the file"), (9, b"\x1f\x8bcompressed"), (12, "Ölçü".encode())]
    table_start = 12 + 6 * (len(texts) + 1)
    entries, blob = [], b""
    for rid, raw in texts:
        entries.append((rid, table_start + len(blob)))
        blob += raw
    entries.append((0, table_start + len(blob)))
    data = struct.pack("<IB3xHH", 5, 1, len(texts), 0)
    data += b"".join(struct.pack("<HI", *e) for e in entries) + blob
    assert corpus.read_pak(data) == {5: "Open the file", 12: "Ölçü"}
    info = "IDS_OPEN,5,../../chrome/app/generated_resources.grd\nbad line\n"
    assert corpus.read_pak_info(info) == {5: "generated_resources.grd"}


def test_dep5_licences() -> None:
    text = (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: someone\nLicense: GPL-2+\n\n"
        "Files: src/x.c\nLicense: MIT\n\n"
        "Files: po/*\nLicense: LGPL-2.1+\n\n"
        "License: GPL-2+\n text\n"
    )
    assert corpus.dep5_licences(text) == ["GPL-2+", "LGPL-2.1+"]
    with pytest.raises(ValueError):
        corpus.dep5_licences("This package was debianized by someone.\n")


def test_select_budgets_per_family_then_fills() -> None:
    def line(family: str, key: str, tokens: int) -> object:
        return corpus.Line(key, family, family, (0,), key, tokens)

    lines = [line("chromium", f"c{i}", 10) for i in range(10)]
    lines += [line("gettext", f"g{i}", 10) for i in range(3)]
    chosen = corpus.select(lines, budget=80, family_budget=40)
    assert [x.key for x in chosen] == [f"c{i}" for i in range(5)] + ["g0", "g1", "g2"]
    assert sum(x.tokens for x in chosen) == 80
    assert corpus.select(list(reversed(lines)), 80, 40) == list(reversed(chosen))


@pytest.mark.parametrize("lang", corpus.LANGS)
def test_shipped_corpus(lang: str) -> None:
    path = TEXT_DIR / f"{lang}.txt"
    text = path.read_bytes().decode("utf-8")  # raises on invalid UTF-8
    lines = text.splitlines()
    assert lines and all(lines)
    assert text.endswith("\n")
    assert len({corpus.dedupe_key(x) for x in lines}) == len(lines)
    assert sum(corpus.measure(x, lang) for x in lines) >= MIN_SIZE
    assert all(corpus.long_enough(x, lang) and corpus.in_script(x, lang) for x in lines)
    assert all(corpus.collapse_whitespace(x) == x for x in lines)


def test_shipped_sources_and_size() -> None:
    sources = (TEXT_DIR / "SOURCES.md").read_text(encoding="utf-8")
    for lang in corpus.LANGS:
        assert f"`{lang}.txt`" in sources
    for package in corpus.PACKAGES:
        assert f"| `{package}` |" in sources
    assert sum(p.stat().st_size for p in TEXT_DIR.iterdir()) < 8_000_000
