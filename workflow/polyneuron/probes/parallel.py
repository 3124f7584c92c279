"""Parallel and monolingual text probes: a folder with one plain-text file per language.

FLORES-200 ships one file per language and split (``devtest/deu_Latn.devtest``), one sentence
per line, line i of every file a translation of line i of the others. Wikipedia-style
monolingual dumps have the same shape (one document per line) without the alignment. Both
become probes of ``{lang}.parquet`` with one row per line; aligned lines share their
``pair_id`` (the line number), monolingual lines have none.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import polars as pl

from polyneuron import PolyneuronError
from polyneuron.probes.records import decoded_lines

PROBE_SCHEMA = {
    "id": pl.String,
    "pair_id": pl.String,
    "lang": pl.String,
    "text": pl.String,
    "split": pl.String,
    "source": pl.String,
    "line": pl.Int32,
}
GROUP_ROWS = 50_000  # rows per row group of a probe file written as a stream
GROUP_CHARS = 32_000_000  # fewer once their texts hold this many characters (long documents)

# ISO 639-1 -> FLORES-200 code (ISO 639-3 + ISO 15924 script). Macrolanguages map to the
# variety FLORES-200 has: ar -> Modern Standard Arabic, fa -> Western Persian, sw -> Swahili
# (individual language swh), ms -> Standard Malay, zh -> Simplified Chinese.
FLORES_CODES: dict[str, str] = {
    "af": "afr_Latn", "am": "amh_Ethi", "ar": "arb_Arab", "az": "azj_Latn", "be": "bel_Cyrl",
    "bg": "bul_Cyrl", "bn": "ben_Beng", "bs": "bos_Latn", "ca": "cat_Latn", "cs": "ces_Latn",
    "cy": "cym_Latn", "da": "dan_Latn", "de": "deu_Latn", "el": "ell_Grek", "en": "eng_Latn",
    "eo": "epo_Latn", "es": "spa_Latn", "et": "est_Latn", "eu": "eus_Latn", "fa": "pes_Arab",
    "fi": "fin_Latn", "fr": "fra_Latn", "ga": "gle_Latn", "gl": "glg_Latn", "gu": "guj_Gujr",
    "ha": "hau_Latn", "he": "heb_Hebr", "hi": "hin_Deva", "hr": "hrv_Latn", "hu": "hun_Latn",
    "hy": "hye_Armn", "id": "ind_Latn", "ig": "ibo_Latn", "is": "isl_Latn", "it": "ita_Latn",
    "ja": "jpn_Jpan", "jv": "jav_Latn", "ka": "kat_Geor", "kk": "kaz_Cyrl", "km": "khm_Khmr",
    "kn": "kan_Knda", "ko": "kor_Hang", "ky": "kir_Cyrl", "lo": "lao_Laoo", "lt": "lit_Latn",
    "lv": "lvs_Latn", "mk": "mkd_Cyrl", "ml": "mal_Mlym", "mn": "khk_Cyrl", "mr": "mar_Deva",
    "ms": "zsm_Latn", "mt": "mlt_Latn", "my": "mya_Mymr", "ne": "npi_Deva", "nl": "nld_Latn",
    "no": "nob_Latn", "pa": "pan_Guru", "pl": "pol_Latn", "ps": "pbt_Arab", "pt": "por_Latn",
    "ro": "ron_Latn", "ru": "rus_Cyrl", "si": "sin_Sinh", "sk": "slk_Latn", "sl": "slv_Latn",
    "so": "som_Latn", "sq": "als_Latn", "sr": "srp_Cyrl", "sv": "swe_Latn", "sw": "swh_Latn",
    "ta": "tam_Taml", "te": "tel_Telu", "th": "tha_Thai", "tl": "tgl_Latn", "tr": "tur_Latn",
    "uk": "ukr_Cyrl", "ur": "urd_Arab", "uz": "uzn_Latn", "vi": "vie_Latn", "xh": "xho_Latn",
    "yo": "yor_Latn", "zh": "zho_Hans", "zu": "zul_Latn",
}  # fmt: skip

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def flores_code(lang: str, codes: Mapping[str, str] | None = None) -> str:
    """The FLORES-200 code of an ISO 639-1 code; ``codes`` (from the config) wins."""
    table = {**FLORES_CODES, **(codes or {})}
    if lang not in table:
        raise PolyneuronError(
            f"unknown language code {lang!r}: no FLORES-200 code for it; add one under the "
            f"config key probes.flores.flores_codes (e.g. {{{lang}: xxx_Latn}}) or use "
            "{lang} in probes.flores.pattern"
        )
    return table[lang]


def text_file(
    folder: str | Path,
    pattern: str,
    lang: str,
    codes: Mapping[str, str] | None = None,
    key: str = "probes.flores",
) -> Path:
    """The file of ``lang``: ``pattern`` with ``{lang}`` (ISO 639-1) or ``{flores}``
    (FLORES-200 code) filled in, inside ``folder``; errors name the config section ``key``."""
    fields = set(_PLACEHOLDER.findall(pattern))
    if not fields or not fields <= {"lang", "flores"}:
        raise PolyneuronError(
            f"config key {key}.pattern: {pattern!r} must contain {{lang}} or {{flores}} "
            "and no other placeholder (e.g. '{lang}.txt' or '{flores}.devtest')"
        )
    flores = flores_code(lang, codes) if "flores" in fields else ""
    path = Path(folder) / pattern.format(lang=lang, flores=flores)
    if not path.is_file():
        raise PolyneuronError(
            f"no text file for language {lang!r}: {path} does not exist (config keys "
            f"{key}.dir and {key}.pattern); add it or remove "
            f"{lang!r} from the config key languages"
        )
    return path


def is_blank(path: str | Path, block: int = 1 << 20) -> bool:
    """Whether a file holds nothing but ASCII whitespace after a leading byte order mark, read
    ``block`` bytes at a time."""
    with open(path, "rb") as handle:
        data = handle.read(block).removeprefix(b"\xef\xbb\xbf")
        while data:
            if data.strip():
                return False
            data = handle.read(block)
    return True


def iter_texts(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 text file, stripped, read as a stream; every line
    must hold text, and errors name the file and line.

    Lines end at ``\\n``, ``\\r\\n`` or ``\\r`` only (not at the Unicode separators that
    :meth:`str.splitlines` also honours, which would shift the alignment). A leading byte
    order mark is dropped. A final newline is optional.
    """
    path = Path(path)
    if is_blank(path):
        raise PolyneuronError(f"{path}: the file is empty")
    for number, line in decoded_lines(path):
        text = line.strip()
        if not text:
            raise PolyneuronError(f"{path}:{number}: empty line (every line must hold a text)")
        yield number, text


def read_texts(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file, stripped, as :func:`iter_texts` reads them."""
    return [text for _, text in iter_texts(path)]


def count_lines(path: str | Path) -> int:
    """Lines as :func:`read_texts` counts them (a final newline adds none), read as a stream."""
    count = 0
    with open(path, "rb") as handle:
        # iteration splits after b"\n" only, so a "\r\n" never straddles two chunks
        for number, chunk in enumerate(handle):
            count += len(
                (chunk.removeprefix(b"\xef\xbb\xbf") if number == 0 else chunk).splitlines()
            )
    return count


def split_of(line: int, heldout_every: int) -> str:
    """``heldout`` for every ``heldout_every``-th line (1-based), else ``train``; 0: all train.

    The split depends on the line number alone, so it is the same in every language and does
    not move when ``max_texts`` changes.
    """
    return "heldout" if heldout_every and line % heldout_every == 0 else "train"


def parallel_probes(
    lang: str,
    path: str | Path,
    reference: str | Path | None = None,
    aligned: bool = True,
    heldout_every: int = 5,
    max_texts: int | None = None,
    every: int = 1,
) -> pl.DataFrame:
    """One probe per line of ``path``, the texts of language ``lang``: the rows of
    :func:`probe_groups`, in one frame."""
    frames = list(probe_groups(lang, path, reference, aligned, heldout_every, max_texts, every))
    return pl.concat(frames, rechunk=True) if frames else pl.DataFrame(schema=PROBE_SCHEMA)


def probe_groups(
    lang: str,
    path: str | Path,
    reference: str | Path | None = None,
    aligned: bool = True,
    heldout_every: int = 5,
    max_texts: int | None = None,
    every: int = 1,
    group_rows: int = GROUP_ROWS,
    group_chars: int = GROUP_CHARS,
) -> Iterator[pl.DataFrame]:
    """One probe per line of ``path``, the texts of language ``lang``, read as a stream and
    yielded in frames of at most ``group_rows`` rows (fewer once their texts hold
    ``group_chars`` characters): the row groups of the probe file, in line order.

    Aligned corpora: ``reference`` is another language's file of the same corpus (the first
    configured language's); both must have the same number of lines, and line i of each gets
    ``pair_id`` = i. Monolingual text (``aligned=False``): no ``pair_id``, no reference.
    ``every`` keeps lines 1, 1 + every, 1 + 2·every, … (an even sample of a file ordered by
    source), then ``max_texts`` the first of those; rows keep their line numbers. Every line
    is checked, kept or not; a misaligned file fails before its last group is yielded.
    """
    path = Path(path)
    if every < 1:
        raise ValueError(f"every must be positive, got {every}")
    if max_texts is not None and max_texts < 0:
        raise ValueError(f"max_texts must not be negative, got {max_texts}")
    n_ref = None
    if aligned and reference is not None and Path(reference) != path:
        n_ref = count_lines(reference)
    lines: list[int] = []
    texts: list[str] = []
    kept = chars = n_lines = 0
    for n_lines, text in iter_texts(path):
        if (n_lines - 1) % every or (max_texts is not None and kept >= max_texts):
            continue
        lines.append(n_lines)
        texts.append(text)
        kept += 1
        chars += len(text)
        if len(lines) >= group_rows or chars >= group_chars:
            yield _probe_frame(lang, path.name, lines, texts, aligned, heldout_every)
            lines, texts, chars = [], [], 0
    if n_ref is not None and n_ref != n_lines:
        raise PolyneuronError(
            f"unaligned files: {path} has {n_lines} lines but {reference} has {n_ref}; "
            "line i of every language's file must translate line i of the others (set "
            "probes.flores.aligned: false for monolingual text)"
        )
    if lines:
        yield _probe_frame(lang, path.name, lines, texts, aligned, heldout_every)


def _probe_frame(
    lang: str, source: str, lines: list[int], texts: list[str], aligned: bool, heldout_every: int
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [f"{lang}-{line:05d}" for line in lines],
            "pair_id": [f"{line:05d}" if aligned else None for line in lines],
            "lang": [lang] * len(texts),
            "text": texts,
            "split": [split_of(line, heldout_every) for line in lines],
            "source": [source] * len(texts),
            "line": lines,
        },
        schema=PROBE_SCHEMA,
    )
