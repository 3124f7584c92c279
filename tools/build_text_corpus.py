#!/usr/bin/env python3
"""Build the shipped monolingual text corpus ``data/text/{lang}.txt`` for the 16 default languages.

Every line is one human-written (or human-translated) user-interface text: a sentence or phrase
from the translations that Debian packages ship, cleaned of markup, keyboard accelerators and
format placeholders. Nothing is machine-generated and nothing is padded.

Sources (binary ``.deb`` files fetched with ``apt-get download``; nothing is installed):

* Chromium's UI translations, ``chromium-l10n`` (``usr/lib/chromium/locales/<locale>.pak``) and
  the English originals in ``chromium-common`` (``en-US.pak``). One resource id is one message
  in every locale, so a translation is compared with its English original by id. Messages of
  two Chromium source files that are lists rather than prose (``CHROMIUM_EXCLUDED``: omnibox
  search synonyms, paper-size names) are left out, found by id in ``en-US.pak.info``.
* gettext message catalogs ``usr/share/locale/<locale>/LC_MESSAGES/*.mo`` of the desktop
  packages in ``GETTEXT_PACKAGES`` (GTK, Cinnamon, Pidgin, VLC, GnuCash, Audacity, Minetest,
  Tux Paint, Sugar). Translations are the ``msgstr`` (the first plural form only); English text
  is the ``msgid`` (the original) of the same catalogs. Compiled catalogs hold no fuzzy entries.

Locales: ``pt`` is Brazilian Portuguese (``pt-BR``/``pt_BR``) and ``zh`` simplified Chinese
(``zh-CN``/``zh_CN``); every other language uses its ISO 639-1 code.

Cleaning (pure functions below, tested in ``tests/unit/test_build_text_corpus.py``):
HTML/XML tags are removed and entities decoded; accelerators (``_File``, ``&File``, ``(_F)``)
are removed; bidi marks dropped and whitespace collapsed. A text with more than
``MAX_PLACEHOLDERS`` (0) format placeholders (``%s``, ``%1$d``, ``%(name)s``, ``{0}``, ``$1``,
``%1``, ``~a``, ...) is dropped: with the placeholder cut out the sentence is broken ("Local
files will be deleted on ."), and all 16 languages reach the cap without such texts
(``strip_placeholders`` serves a looser setting). A text is also dropped when it looks like
code (URLs, e-mail addresses, paths, command-line options, identifiers, brackets/``=``/``|``,
mostly digits), is short (fewer than 3 whitespace-separated words; for zh/ja fewer than 4 CJK
characters), is not in the language's script (``in_script``), is identical to its English
original or to any English text of the sources (untranslated), reads as English
(``looks_english``, Latin-script languages), or repeats an earlier line (case-insensitive,
after cleaning).

Selection: each language is capped at ``TOTAL_BUDGET`` Gemma 3 tokens, at most
``FAMILY_BUDGET`` from each source family (Chromium, gettext) first, the rest filled from
whichever family still has lines. Inside a family lines are taken in the order of
``sha256(package, English original)``, the same order for every language, so the languages
cover largely the same messages (a roughly parallel corpus). The files list the chosen lines
in source order (Chromium by resource id, then the gettext packages in ``GETTEXT_PACKAGES``
order, each catalog in ``msgid`` order).

Measures reported in ``SOURCES.md``: words = whitespace-separated tokens; for zh and ja,
characters = non-whitespace characters. Gemma tokens = tokens of the Gemma 3 tokenizer
(``--tokenizer``, a Hugging Face folder) per line, without special tokens.

Rebuild (repository root, the project's virtual environment, as root for ``apt-get``)::

    apt-get update
    python tools/build_text_corpus.py --tokenizer resources/models/gemma3-270m --out data/text

The ``.deb`` files are kept in ``--deb-dir`` (default ``resources/debs``, ignored by git); a package
already there is not downloaded again. Debian's versions are recorded in ``SOURCES.md``; a newer
version of a package in the archive may change the output.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import itertools
import re
import struct
import subprocess
import sys
import tarfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LANGS = ("en", "de", "zh", "ja", "hi", "id", "ru", "fi", "hu", "tr", "it", "es", "pt", "fr",
         "ar", "sw")  # fmt: skip
CJK_LANGS = frozenset({"zh", "ja"})
CHROMIUM_LOCALE = {"en": "en-US", "pt": "pt-BR", "zh": "zh-CN"}
GETTEXT_LOCALE = {"pt": "pt_BR", "zh": "zh_CN"}
CHROMIUM_PACKAGES = ("chromium-common", "chromium-l10n")  # en-US.pak / the other locales
GETTEXT_PACKAGES = (
    "libgtk-3-common", "cinnamon-l10n", "pidgin-data", "vlc-l10n", "gnucash-common",
    "audacity-data", "minetest-data", "tuxpaint-data", "sugar-session",
)  # fmt: skip
PACKAGES = CHROMIUM_PACKAGES + GETTEXT_PACKAGES
CHROMIUM = "chromium"
# Chromium message files that are lists, not prose: omnibox search synonyms, paper sizes
CHROMIUM_EXCLUDED = frozenset({"omnibox_pedal_synonyms.grd", "print_media_strings.grdp"})
GETTEXT = "gettext"
FAMILIES = (CHROMIUM, GETTEXT)
FAMILY_BUDGET = 30_000
TOTAL_BUDGET = 60_000
MAX_PLACEHOLDERS = 0
MIN_WORDS = 3
MIN_CJK_CHARS = 4
# Unicode character-name prefixes of each language's script
SCRIPT_NAMES = {
    "ru": ("CYRILLIC",),
    "ar": ("ARABIC",),
    "hi": ("DEVANAGARI",),
    "zh": ("CJK UNIFIED IDEOGRAPH",),
    "ja": ("CJK UNIFIED IDEOGRAPH", "HIRAGANA", "KATAKANA"),
}
KANA = ("HIRAGANA", "KATAKANA")
LATIN_SHARE = 0.95  # share of a Latin-script text's letters that must be Latin
SCRIPT_SHARE = 0.5  # ... of another script's text (brand names such as "Google" are Latin)
# English function words that are not words of the other Latin-script languages here
ENGLISH_WORDS = frozenset({
    "the", "and", "of", "are", "this", "that", "with", "you", "your", "from", "have", "has",
    "which", "these", "those", "should", "would", "could", "been", "there", "their", "they",
    "what", "when", "please", "cannot", "can't", "don't", "it's", "isn't", "doesn't", "will",
    "into", "about",
})  # fmt: skip
ENGLISH_MIN_HITS = 2
ENGLISH_SHARE = 0.2
SKIPPED_MSGIDS = frozenset({"translator-credits", "translator_credits", "TRANSLATORS"})

TAG = re.compile(r"</?[A-Za-z][^<>]*>|<!--.*?-->", re.DOTALL)
PLACEHOLDER = re.compile(
    r"%(?:\d+\$)?[-+#0']*(?:\*|\d+)?(?:\.(?:\*|\d+))?(?:hh|h|ll|l|L|q|j|z|t|I64|I)?[diouxXeEfFgGcsp]"
    r"|%\([A-Za-z_]\w*\)[-+#0 ]*\d*(?:\.\d+)?[diouxXeEfFgGcsr]"  # %(name)s
    r"|%\{[^{}]*\}"  # %{name}
    r"|\$\{[^{}]*\}"  # ${name}
    r"|\{\{[^{}]*\}\}"  # {{name}}
    r"|\{[A-Za-z0-9_.:,!-]*\}"  # {0} {name} {0:d}
    r"|\$\d+"  # Chromium $1
    r"|%\d+"  # Qt %1
    r"|@[A-Z][A-Z0-9_]*@"  # @NAME@
    r"|%[A-Za-z]|% s(?!\w)"  # strftime %B, GLib %Id ..., a translator's "% s"
    r"|~[A-Za-z%]"  # Scheme/Nyquist format directives ~a ~%
    r"|\$[A-Za-z](?![A-Za-z])"  # VLC meta codes $a
)
# bidirectional marks and embeddings, soft hyphen, zero-width space, byte-order mark
INVISIBLE = re.compile("[\u00ad\u061c\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
CJK_ACCELERATOR = re.compile(r"[(（]\s*[_&][A-Za-z0-9]\s*[)）]")  # ファイル(_F)
AMPERSAND_ACCELERATOR = re.compile(r"&(?!#?\w+;)(?=[^\s&])")
UNDERSCORE_ACCELERATOR = re.compile(r"(?<!\w)_(?=[^\W_])")
WHITESPACE = re.compile(r"\s+")
CODE = re.compile(
    r"https?://|\bwww\.|\S@\S+\.\w"  # URLs, e-mail
    r"|(?:^|\s)[~.]{0,2}/\w|\\"  # paths
    r"|(?:^|\s)--?[A-Za-z]"  # options
    r"|[^\W_]_[^\W_]"  # identifiers (after the one accelerator is gone)
    r"|\(\)|[{}\[\]<>=|`^]"  # calls, brackets, operators
)


# ---------------------------------------------------------------- cleaning (pure functions)


def strip_markup(text: str) -> str:
    """Drop HTML/XML tags and comments; decode character entities."""
    return html.unescape(TAG.sub(" ", text))


def strip_accelerators(text: str) -> str:
    """Drop keyboard accelerators: ``(_F)``/``(&F)`` after CJK labels, ``&File``, ``_File``."""
    text = CJK_ACCELERATOR.sub("", text)
    text = AMPERSAND_ACCELERATOR.sub("", text).replace("&&", "&")
    text = UNDERSCORE_ACCELERATOR.sub("", text, count=1)
    return re.sub(r"^_\s+", "", text)  # "_ New" (an accelerator cut off by a space)


def count_placeholders(text: str) -> int:
    return len(PLACEHOLDER.findall(text))


def strip_placeholders(text: str) -> str:
    return PLACEHOLDER.sub(" ", text).replace("%%", "%")


def collapse_whitespace(text: str) -> str:
    """Single spaces, no bidi marks (Arabic UI strings start with U+200F), trimmed."""
    return WHITESPACE.sub(" ", INVISIBLE.sub("", text)).strip()


def clean_text(text: str) -> str | None:
    """The cleaned text, or None for a format string (more than MAX_PLACEHOLDERS placeholders).

    Accelerators go before entities are decoded (``&amp;`` is no accelerator), placeholders
    before tags (``<b>%s</b>``), whitespace last.
    """
    if count_placeholders(text) > MAX_PLACEHOLDERS:
        return None
    text = strip_accelerators(strip_placeholders(text))
    text = strip_markup(text)
    text = collapse_whitespace(text)
    return re.sub(r"\s+([,.;:!?،。、，！？])", r"\1", text)  # "Open ." after a placeholder


def looks_like_code(text: str) -> bool:
    digits = sum(ch.isdigit() for ch in text)
    return bool(CODE.search(text)) or digits > 0.3 * max(1, len(text.replace(" ", "")))


def script_of(ch: str) -> str:
    """The first word of the character's Unicode name (LATIN, CYRILLIC, CJK, HIRAGANA...)."""
    name = unicodedata.name(ch, "")
    if name.startswith("CJK UNIFIED IDEOGRAPH"):
        return "CJK UNIFIED IDEOGRAPH"
    return name.split(" ", 1)[0]


def script_share(text: str, scripts: tuple[str, ...]) -> float:
    """Share of the text's letters in ``scripts``; a run of letters of another script counts
    once when the target is CJK (one ideograph is a word; "Chromium" is one word too)."""
    inside = outside = 0
    cjk = any(s.startswith("CJK") for s in scripts)
    previous_outside = False
    for ch in text:
        if not unicodedata.category(ch).startswith("L"):
            previous_outside = False
            continue
        if script_of(ch) in scripts:
            inside += 1
            previous_outside = False
        elif not (cjk and previous_outside):
            outside += 1
            previous_outside = True
    total = inside + outside
    return inside / total if total else 0.0


def in_script(text: str, lang: str) -> bool:
    """Whether ``text`` is written in ``lang``'s script (Japanese needs kana, Chinese none)."""
    if lang not in SCRIPT_NAMES:
        return script_share(text, ("LATIN",)) >= LATIN_SHARE
    kana = any(script_of(ch) in KANA for ch in text)
    if (lang == "ja" and not kana) or (lang == "zh" and kana):
        return False
    return script_share(text, SCRIPT_NAMES[lang]) >= SCRIPT_SHARE


def cjk_chars(text: str) -> int:
    return sum(script_of(ch) in SCRIPT_NAMES["ja"] for ch in text)


def long_enough(text: str, lang: str) -> bool:
    if lang in CJK_LANGS:
        return cjk_chars(text) >= MIN_CJK_CHARS
    return len(text.split()) >= MIN_WORDS


def measure(text: str, lang: str) -> int:
    """Words (whitespace-separated tokens), or for zh/ja non-whitespace characters."""
    if lang in CJK_LANGS:
        return sum(not ch.isspace() for ch in text)
    return len(text.split())


def words_of(text: str) -> list[str]:
    return re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)?", text.casefold())


def looks_english(text: str) -> bool:
    words = words_of(text)
    hits = sum(w in ENGLISH_WORDS for w in words)
    return hits >= ENGLISH_MIN_HITS and hits >= ENGLISH_SHARE * len(words)


def dedupe_key(text: str) -> str:
    return collapse_whitespace(text).casefold()


def accept(text: str | None, lang: str, english: str | None = None) -> bool:
    """Whether a cleaned text belongs in ``lang``'s corpus; ``english``: its cleaned original."""
    if not text or looks_like_code(text) or not long_enough(text, lang):
        return False
    if not in_script(text, lang):
        return False
    if lang != "en":
        if english is not None and dedupe_key(english) == dedupe_key(text):
            return False
        if lang not in SCRIPT_NAMES and looks_english(text):
            return False
    return True


def dedupe(texts: Iterable[str]) -> list[str]:
    """The texts without repeats (case-insensitive), first occurrence kept, order kept."""
    seen: set[str] = set()
    out = []
    for text in texts:
        key = dedupe_key(text)
        if key not in seen:
            seen.add(key)
            out.append(text)
    return out


def selection_key(package: str, english: str) -> str:
    return hashlib.sha256(f"{package}\0{english}".encode()).hexdigest()


def select(
    lines: list[Line], budget: int = TOTAL_BUDGET, family_budget: int = FAMILY_BUDGET
) -> list[Line]:
    """Up to ``family_budget`` tokens from each family (key order), then fill up to ``budget``."""
    chosen: set[int] = set()
    total = 0
    by_family = {f: sorted((x for x in lines if x.family == f), key=lambda x: x.key)
                 for f in FAMILIES}  # fmt: skip

    def take(candidates: list[Line], limit: int) -> None:
        nonlocal total
        used = 0
        for line in candidates:
            if id(line) in chosen:
                continue
            if used + line.tokens > limit or total + line.tokens > budget:
                break
            chosen.add(id(line))
            used += line.tokens
            total += line.tokens

    for family in FAMILIES:
        take(by_family[family], family_budget)
    for family in FAMILIES:
        take(by_family[family], budget)
    return [x for x in lines if id(x) in chosen]


# ---------------------------------------------------------------- reading the packages


@dataclass
class Line:
    text: str
    family: str
    package: str
    order: tuple[int, ...]  # source order within the package
    key: str  # selection order, shared by the translations of one English original
    tokens: int = 0


@dataclass
class Package:
    name: str
    version: str
    licences: list[str]
    mo: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)  # locale -> catalogs
    pak: dict[str, bytes] = field(default_factory=dict)  # Chromium locale -> .pak
    pak_sources: dict[int, str] = field(default_factory=dict)  # resource id -> .grd(p) file


def download(package: str, deb_dir: Path) -> Path:
    found = sorted(deb_dir.glob(f"{package}_*.deb"))
    if not found:
        subprocess.run(["apt-get", "download", package], cwd=deb_dir, check=True)
        found = sorted(deb_dir.glob(f"{package}_*.deb"))
    if len(found) != 1:
        sys.exit(f"expected one {package}_*.deb in {deb_dir}, found {found}")
    return found[0]


def deb_field(deb: Path, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), name], check=True, capture_output=True, text=True
    ).stdout.strip()


def dep5_licences(copyright_text: str) -> list[str]:
    """``License:`` names of the ``Files: *`` and translation (``po/*``) stanzas of a DEP-5
    copyright file, in file order."""
    if not copyright_text.startswith("Format:"):
        raise ValueError("not a machine-readable (DEP-5) copyright file")
    found: list[str] = []
    for stanza in re.split(r"\n\s*\n", copyright_text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            match = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if match:
                fields[match.group(1)] = match.group(2).strip()
        files = fields.get("Files", "").split()
        if ("*" in files or "po/*" in files) and fields.get("License"):
            name = fields["License"]
            if name not in found:
                found.append(name)
    if not found:
        raise ValueError("no License for Files: *")
    return found


def gettext_locales() -> dict[str, str]:
    return {GETTEXT_LOCALE.get(lang, lang): lang for lang in LANGS if lang != "en"}


def chromium_locales() -> dict[str, str]:
    return {CHROMIUM_LOCALE.get(lang, lang): lang for lang in LANGS}


def member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    if handle is None:
        raise ValueError(f"{member.name} is not a regular file")
    return handle.read()


def read_package(name: str, deb: Path) -> Package:
    """Version, licences and the catalogs/paks of the 16 languages' locales in one .deb."""
    mo_locales = gettext_locales()
    pak_locales = chromium_locales()
    package = Package(name, deb_field(deb, "Version"), [])
    copyright_text = None
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as p:
        assert p.stdout is not None
        with tarfile.open(fileobj=p.stdout, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                path = member.name.removeprefix("./")
                mo = re.fullmatch(r"usr/share/locale/([^/]+)/LC_MESSAGES/([^/]+)\.mo", path)
                pak = re.fullmatch(r"usr/lib/chromium/locales/([^/_]+)\.pak", path)
                info = path == "usr/lib/chromium/locales/en-US.pak.info"
                if mo and mo.group(1) in mo_locales:
                    package.mo.setdefault(mo_locales[mo.group(1)], []).append(
                        (mo.group(2), member_bytes(tar, member))
                    )
                elif pak and pak.group(1) in pak_locales:
                    package.pak[pak_locales[pak.group(1)]] = member_bytes(tar, member)
                elif info:
                    package.pak_sources = read_pak_info(member_bytes(tar, member).decode())
                elif path == f"usr/share/doc/{name}/copyright":
                    copyright_text = member_bytes(tar, member).decode("utf-8")
    if p.returncode:
        sys.exit(f"dpkg-deb failed on {deb}")
    if copyright_text is None:
        sys.exit(f"{deb} has no usr/share/doc/{name}/copyright")
    package.licences = dep5_licences(copyright_text)
    for catalogs in package.mo.values():
        catalogs.sort()
    return package


def read_pak(data: bytes) -> dict[int, str]:
    """Resource id -> text of a Chromium .pak (format version 5, UTF-8); compressed or
    undecodable resources are skipped."""
    version, encoding = struct.unpack_from("<IB", data, 0)
    if version != 5 or encoding != 1:
        raise ValueError(f"unsupported .pak version {version} encoding {encoding}")
    count, _aliases = struct.unpack_from("<HH", data, 8)
    entries = [struct.unpack_from("<HI", data, 12 + 6 * i) for i in range(count + 1)]
    out = {}
    for (rid, start), (_next, end) in itertools.pairwise(entries):
        raw = data[start:end]
        if raw[:2] in (b"\x1f\x8b", b"\x1e\x9b"):
            continue
        try:
            out[rid] = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return out


def read_pak_info(text: str) -> dict[int, str]:
    """Resource id -> source file from a ``.pak.info`` (``IDS_NAME,id,../../path.grd``)."""
    out = {}
    for line in text.splitlines():
        parts = line.split(",")
        if len(parts) == 3 and parts[1].isdigit():
            out[int(parts[1])] = parts[2].rsplit("/", 1)[-1]
    return out


def read_mo(data: bytes) -> list[tuple[str, str]]:
    """(msgid, msgstr) of a compiled gettext catalog in msgid order: the singular forms only,
    the context dropped, the header and untranslated entries skipped.

    A small reader of the GNU .mo format rather than ``gettext.GNUTranslations``, which stops
    on catalogs with a malformed ``Plural-Forms`` header (some of Tux Paint's)."""
    magic = struct.unpack_from("<I", data, 0)[0]
    order = {0x950412DE: "<", 0xDE120495: ">"}.get(magic)
    if order is None:
        raise ValueError("not a gettext .mo file")
    _revision, count, originals, translations = struct.unpack_from(f"{order}4I", data, 4)

    def string(table: int, i: int) -> bytes:
        length, offset = struct.unpack_from(f"{order}2I", data, table + 8 * i)
        return data[offset : offset + length]

    raw = [(string(originals, i), string(translations, i)) for i in range(count)]
    charset = "utf-8"
    for msgid, msgstr in raw:
        if msgid == b"":
            match = re.search(rb"charset=([-\w]+)", msgstr)
            if match and match.group(1).decode("ascii").upper() != "CHARSET":
                charset = match.group(1).decode("ascii")
    pairs = []
    for msgid_bytes, msgstr_bytes in raw:
        msgid = msgid_bytes.decode(charset, "replace").split("\0")[0].split("\x04", 1)[-1]
        msgstr = msgstr_bytes.decode(charset, "replace").split("\0")[0]
        if msgid and msgstr and msgid not in SKIPPED_MSGIDS:
            pairs.append((msgid, msgstr))
    return sorted(pairs)


def chromium_lines(
    en: Package, l10n: Package, chromium_l10n: Package, lang: str, english: set[str]
) -> Iterator[Line]:
    originals = read_pak(en.pak["en"])
    source = originals if lang == "en" else read_pak(l10n.pak[lang])
    sources = chromium_l10n.pak_sources
    if not sources:
        sys.exit("chromium-l10n has no usr/lib/chromium/locales/en-US.pak.info")
    for rid in sorted(source):
        if sources.get(rid) in CHROMIUM_EXCLUDED:
            continue
        original = originals.get(rid)
        text = clean_text(source[rid])
        english_text = clean_text(original) if original is not None else None
        if not accept(text, lang, english_text):
            continue
        assert text is not None
        if lang != "en" and dedupe_key(text) in english:
            continue
        key = selection_key(CHROMIUM, original if original is not None else f"#{rid}")
        yield Line(text, CHROMIUM, l10n.name, (rid,), key)


def gettext_lines(package: Package, lang: str, english: set[str]) -> Iterator[Line]:
    if lang == "en":  # the msgids of the package's catalogs, each once
        catalogs: dict[str, list[tuple[str, str]]] = {}
        for per_locale in package.mo.values():
            for domain, data in per_locale:
                catalogs.setdefault(domain, []).extend(read_mo(data))
        entries = [
            (domain, [(m, m) for m in sorted({msgid for msgid, _ in pairs})])
            for domain, pairs in sorted(catalogs.items())
        ]
    else:
        entries = [(domain, read_mo(data)) for domain, data in package.mo.get(lang, [])]
    for d, (_domain, pairs) in enumerate(entries):
        for i, (msgid, msgstr) in enumerate(pairs):
            text = clean_text(msgstr)
            if not accept(text, lang, clean_text(msgid)):
                continue
            assert text is not None
            if lang != "en" and dedupe_key(text) in english:
                continue
            yield Line(text, GETTEXT, package.name, (d, i), selection_key(package.name, msgid))


def candidate_lines(packages: dict[str, Package], lang: str, english: set[str]) -> list[Line]:
    en, l10n = packages["chromium-common"], packages["chromium-l10n"]
    lines = list(chromium_lines(en, l10n if lang != "en" else en, l10n, lang, english))
    for name in GETTEXT_PACKAGES:
        lines.extend(gettext_lines(packages[name], lang, english))
    seen: set[str] = set()
    unique = []
    for line in lines:
        k = dedupe_key(line.text)
        if k not in seen:
            seen.add(k)
            unique.append(line)
    return unique


# ---------------------------------------------------------------- output


@dataclass
class Stats:
    lines: int = 0
    size: int = 0  # words, or characters for zh/ja
    tokens: int = 0

    def add(self, line: Line, lang: str) -> None:
        self.lines += 1
        self.size += measure(line.text, lang)
        self.tokens += line.tokens


def sources_md(
    packages: dict[str, Package],
    stats: dict[str, dict[str, Stats]],
    tokenizer_sha: str,
) -> str:
    unit = {lang: "characters" if lang in CJK_LANGS else "words" for lang in LANGS}
    out = [
        "# Monolingual text corpus",
        "",
        "`{lang}.txt`: one human-written or human-translated text per line (UTF-8, no repeats)",
        "for each of the 16 default languages: user-interface messages of Chromium and of",
        "desktop programs translated with gettext, as Debian ships them. Markup, keyboard",
        "accelerators and bidi marks are removed; texts with format placeholders are dropped,",
        "and so are texts that look like code, are short (fewer than",
        f"{MIN_WORDS} words; zh/ja: fewer than {MIN_CJK_CHARS} CJK characters), are not in the",
        "language's script, read as English or equal an English original. Each language is",
        f"capped at {TOTAL_BUDGET:,} Gemma 3 tokens, at most {FAMILY_BUDGET:,} from Chromium",
        "and from the gettext catalogs before either fills the rest, chosen deterministically",
        "(the same messages for every language where translated). `pt` is Brazilian",
        "Portuguese, `zh` simplified Chinese. The docstring of `tools/build_text_corpus.py`,",
        "which builds the files, gives the details.",
        "",
        "Measures: *words* = whitespace-separated tokens; for zh and ja *characters* =",
        "non-whitespace characters. *Gemma tokens* = Gemma 3 tokenizer tokens per line without",
        "special tokens (the tokenizer of the workflow's `resources/models/gemma3-270m`;",
        f"tokenizer.json sha256 `{tokenizer_sha[:16]}…`).",
        "",
        "Rebuild (repository root, the project's environment, as root for `apt-get download`):",
        "",
        "```",
        "apt-get update",
        "python tools/build_text_corpus.py --tokenizer resources/models/gemma3-270m \\",
        "    --out data/text",
        "```",
        "",
        "| file | lines | words (zh/ja: characters) | Gemma tokens "
        "| from: package (lines / Gemma tokens) | licences |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]  # fmt: skip
    for lang in LANGS:
        total = stats[lang]["*"]
        parts = [
            f"`{name}` ({s.lines} / {s.tokens:,})"
            for name, s in stats[lang].items()
            if name != "*" and s.lines
        ]
        licences = sorted(
            {x for name, s in stats[lang].items() if name != "*" and s.lines
             for x in packages[name].licences}
        )  # fmt: skip
        out.append(
            f"| `{lang}.txt` | {total.lines:,} | {total.size:,} {unit[lang]} | {total.tokens:,} "
            f"| {'<br>'.join(parts)} | {'<br>'.join(licences)} |"
        )
    out += [
        "",
        'Packages (Debian 12 "bookworm" binary packages; licences from the `License:` of the',
        "`Files: *` and `po/*` stanzas of each package's `usr/share/doc/<package>/copyright`):",
        "",
        "| package | version | licence | read |",
        "| --- | --- | --- | --- |",
    ]
    for name in PACKAGES:
        package = packages[name]
        read = (
            "`usr/lib/chromium/locales/<locale>.pak`"
            if name in CHROMIUM_PACKAGES
            else "`usr/share/locale/<locale>/LC_MESSAGES/*.mo`"
        )
        licence = "; ".join(package.licences)
        out.append(f"| `{name}` | {package.version} | {licence} | {read} |")
    return "\n".join(out) + "\n"


def count_tokens(tokenizer: Callable[..., dict[str, list[list[int]]]], lines: list[Line]) -> None:
    for start in range(0, len(lines), 512):
        batch = lines[start : start + 512]
        ids = tokenizer([x.text for x in batch], add_special_tokens=False)["input_ids"]
        for line, tokens in zip(batch, ids, strict=True):
            line.tokens = len(tokens)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "data" / "text")
    parser.add_argument("--deb-dir", type=Path, default=REPO / "resources" / "debs")
    parser.add_argument(
        "--tokenizer", type=Path, default=REPO / "resources" / "models" / "gemma3-270m",
        help="a Hugging Face folder with the Gemma 3 tokenizer (tokenizer.json)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    tokenizer_sha = hashlib.sha256((args.tokenizer / "tokenizer.json").read_bytes()).hexdigest()
    args.deb_dir.mkdir(parents=True, exist_ok=True)
    packages = {}
    for name in PACKAGES:
        packages[name] = read_package(name, download(name, args.deb_dir))
        print(f"{name} {packages[name].version}", file=sys.stderr)

    english_lines = candidate_lines(packages, "en", set())
    english = {dedupe_key(x.text) for x in english_lines}
    args.out.mkdir(parents=True, exist_ok=True)
    stats: dict[str, dict[str, Stats]] = {}
    for lang in LANGS:
        lines = english_lines if lang == "en" else candidate_lines(packages, lang, english)
        count_tokens(tokenizer, lines)
        chosen = select(lines)
        per = {"*": Stats()} | {name: Stats() for name in PACKAGES}
        for line in chosen:
            per["*"].add(line, lang)
            per[line.package].add(line, lang)
        stats[lang] = per
        (args.out / f"{lang}.txt").write_text(
            "".join(f"{x.text}\n" for x in chosen), encoding="utf-8"
        )
        print(
            f"{lang}: {len(lines)} candidates, {per['*'].lines} lines, {per['*'].size} "
            f"{'chars' if lang in CJK_LANGS else 'words'}, {per['*'].tokens} Gemma tokens",
            file=sys.stderr,
        )
    (args.out / "SOURCES.md").write_text(
        sources_md(packages, stats, tokenizer_sha), encoding="utf-8"
    )


if __name__ == "__main__":
    main()
