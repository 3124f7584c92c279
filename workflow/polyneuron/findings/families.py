"""Language families of ISO 639-1 codes, for reading the overlap and bridge results.

A small hand table (Glottolog's top-level families, one level down for Indo-European), not a
full classification: a code missing here has no family and drops out of the family comparisons
(the findings say which). zh, ja and ko are not one family; they share a group here as the seed
task's "CJK" does, for their shared Han characters and heavy mutual borrowing (an areal, not a
genetic, grouping).
"""

from __future__ import annotations

__all__ = ["FAMILIES", "family_of"]

_GROUPS: dict[str, tuple[str, ...]] = {
    "Germanic": ("en", "de", "nl", "sv", "da", "no", "nb", "nn", "is", "af", "fy", "lb", "yi"),
    "Romance": ("it", "es", "fr", "pt", "ro", "ca", "gl", "oc", "co"),
    "Slavic": ("ru", "uk", "be", "pl", "cs", "sk", "sl", "hr", "sr", "bs", "bg", "mk"),
    "Baltic": ("lt", "lv"),
    "Celtic": ("ga", "cy", "gd", "br"),
    "Greek": ("el",),
    "Indo-Aryan": ("hi", "bn", "ur", "mr", "gu", "pa", "ne", "si", "as", "or"),
    "Iranian": ("fa", "ps", "ku", "tg"),
    "Uralic": ("fi", "hu", "et"),
    "Turkic": ("tr", "az", "kk", "uz", "ky", "tt"),
    "Semitic": ("ar", "he", "am", "mt", "ti"),
    "CJK (areal)": ("zh", "ja", "ko"),
    "Austronesian": ("id", "ms", "tl", "jv", "su", "mg"),
    "Niger-Congo": ("sw", "yo", "ig", "zu", "xh", "rw", "sn"),
    "Dravidian": ("ta", "te", "kn", "ml"),
    "Austroasiatic": ("vi", "km"),
    "Kra-Dai": ("th", "lo"),
}

#: ISO 639-1 code -> family name
FAMILIES: dict[str, str] = {lang: family for family, langs in _GROUPS.items() for lang in langs}


def family_of(lang: str) -> str | None:
    """``lang``'s family, or None where the table has none."""
    return FAMILIES.get(lang)
