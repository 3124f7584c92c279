"""Writing systems of tokens: the script (Latin, Cyrillic, Han, …) of a decoded token by the
Unicode ranges of its letters, the scripts each language is written in, and a per-tokenizer
cache of every token id's script. Script-based language identification cannot tell
Latin-script languages from English."""

from __future__ import annotations

import bisect
import unicodedata
from collections import Counter

import torch

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
    """Whether ``lang`` is written in ``script``."""
    return script in language_scripts(lang)


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
