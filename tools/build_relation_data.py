#!/usr/bin/env python3
"""Build the shipped relation facts ``data/relations/facts/{lang}.csv`` from authored tables.

The fact table is authored (for this project) in ``data/relations/tables/`` (see ``data/relations/
SOURCES.md``): ``countries.csv`` (capital, official language, currency, continent, land
neighbours, and the grammar each language needs around a country's name), ``places.csv``
(capitals and other cities in every language), ``currencies.csv`` (by ISO 4217 code),
``continents.csv``, ``companies.csv`` (headquarters), ``templates.csv`` (one cloze template
per relation and language) and ``names.csv`` (corrections to the catalogues below).

Country and language names come from the iso-codes gettext catalogues (``iso3166-1``,
``iso639-3``) bundled in ``pycountry`` (``pip install pycountry==26.2.16``), or from Debian's
``iso-codes`` package with ``--locales /usr/share/locale``; ISO's common name is used where it
has one ("South Korea", not "Korea, Republic of"), then ``names.csv`` overrides.

Grammar is resolved here, not in the workflow: each output row carries its own template with
``{subject}`` standing for the bare name, e.g. ``La capitale de l'{subject} est`` / ``Italie``,
``Die Hauptstadt der {subject} ist`` / ``Schweiz``. The object is the noun phrase that
continues the prompt, with its article where the language needs one ("le Japon", "die
Schweiz"); ``answers`` lists acceptable alternatives. The builder fails rather than write a
prompt that would need a contraction across the prompt/object boundary (``von dem``,
``de le``, ``de el``) or a plural subject with a singular verb.

Rebuild (from the repository root)::

    python tools/build_relation_data.py [--locales /usr/share/locale]
"""

from __future__ import annotations

import argparse
import csv
import gettext
import re
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pycountry

ROOT = Path(__file__).resolve().parent.parent
LANGS = ("en", "de", "fr", "es", "zh")
GETTEXT_LANG = {"zh": "zh_CN"}
RELATIONS = (
    "capital",
    "capital_of",
    "official_language",
    "currency",
    "continent",
    "shares_border_with",
    "city_in_country",
    "company_country",
)
MIN_FACTS = 40
FR_VOWELS = "AEIOUÂÉÈÊËÎÏÔŒÛÜ"
DE_ARTICLES = {  # nominative, genitive, dative, accusative
    "f": ("die", "der", "der", "die"),
    "m": ("der", "des", "dem", "den"),
    "n": ("das", "des", "dem", "das"),
    "pl": ("die", "der", "den", "die"),
}
DE_CASES = {"nom": 0, "gen": 1, "dat": 2, "acc": 3}
# prompt endings that must not meet an object starting with the article they contract with
CONTRACTIONS = {
    "de": ((" von", " in", " an", " zu"), ("dem ",)),
    "fr": ((" de", " à"), ("le ", "les ")),
    "es": ((" de", " a"), ("el ",)),
}


class BuildError(Exception):
    pass


def table(name: str) -> list[dict[str, str]]:
    with open(ROOT / "data/relations/tables" / name, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def alternatives(cell: str) -> list[str]:
    return [item.strip() for item in cell.split("|") if item.strip()]


class Catalogues:
    """ISO names translated through gettext, with the overrides of names.csv."""

    def __init__(self, locales: Path | None) -> None:
        self.overrides = {
            (row["kind"], row["code"], row["lang"]): (row["name"], alternatives(row["also"]))
            for row in table("names.csv")
        }
        folder = locales or Path(pycountry.LOCALES_DIR)
        debian = (folder / "de/LC_MESSAGES/iso_3166-1.mo").exists()
        self.domains = {
            "country": "iso_3166-1" if debian else "iso3166-1",
            "language": "iso_639-3" if debian else "iso639-3",
        }
        self.translations = {
            (kind, lang): gettext.translation(
                domain, folder, languages=[GETTEXT_LANG.get(lang, lang)]
            )
            for kind, domain in self.domains.items()
            for lang in LANGS
            if lang != "en"
        }

    def _translate(self, kind: str, lang: str, msgid: str) -> str:
        if lang == "en":
            return msgid
        name = self.translations[kind, lang].gettext(msgid)
        if lang == "zh" and not re.search(r"[\u4e00-\u9fff]", name):
            # an older catalogue (Debian's iso-codes 4.15) leaves some names untranslated
            raise BuildError(f"no Chinese {kind} name for {msgid!r} in {self.domains[kind]}")
        return name

    def country(self, code: str, lang: str) -> tuple[str, list[str]]:
        if ("country", code, lang) in self.overrides:
            return self.overrides["country", code, lang]
        entry = pycountry.countries.get(alpha_2=code)
        msgid = getattr(entry, "common_name", None) or entry.name
        return self._translate("country", lang, msgid), []

    def language(self, code: str, lang: str) -> tuple[str, list[str]]:
        if ("language", code, lang) in self.overrides:
            return self.overrides["language", code, lang]
        name = self._translate("language", lang, pycountry.languages.get(alpha_3=code).name)
        names = [re.sub(r"\s*\(.*?\)", "", item).strip() for item in name.split(";")]
        if lang in ("fr", "es"):  # language names are common nouns there
            names = [item.lower() for item in names]
        return names[0], names[1:]


@dataclass
class Country:
    code: str
    row: dict[str, str]
    names: dict[str, tuple[str, list[str]]]

    @property
    def plural(self) -> bool:
        r = self.row
        return "pl" in (r["de_gender"], r["fr_gender"]) or r["es_article"] in ("los", "las")

    def np(self, lang: str, case: str = "nom", name: str | None = None) -> tuple[str, str]:
        """``(prefix, name)``: the noun phrase is ``prefix + name``."""
        r = self.row
        name = name or self.names[lang][0]
        if lang == "en":
            return ("the " if r["en_article"] else ""), name
        if lang == "de":
            gender = r["de_gender"]
            if r["de_forms"] and name == self.names[lang][0]:
                name = r["de_forms"].split("|")[DE_CASES[case]]
            return (f"{DE_ARTICLES[gender][DE_CASES[case]]} " if gender else ""), name
        if lang == "fr":
            gender = r["fr_gender"]
            if not gender:
                return "", name
            if gender == "pl":
                return "les ", name
            if name[0] in FR_VOWELS:
                return "l'", name
            return ("la " if gender == "f" else "le "), name
        if lang == "es":
            return (f"{r['es_article']} " if r["es_article"] else ""), name
        return "", name

    def of(self, lang: str) -> tuple[str, str]:
        """``(prefix, name)`` of "of <country>" in ``lang``."""
        if lang == "de":
            if not self.row["de_gender"]:
                return "von ", self.np(lang)[1]
            return self.np(lang, "gen")
        prefix, name = self.np(lang)
        return of_prefix(lang, prefix, name), name

    def objects(self, lang: str, case: str) -> list[str]:
        names = [self.names[lang][0], *self.names[lang][1]]
        return ["".join(self.np(lang, case or "nom", name)) for name in names]


def of_prefix(lang: str, prefix: str, name: str) -> str:
    if lang == "en":
        return f"of {prefix}"
    if lang == "fr":
        if prefix == "le ":
            return "du "
        if prefix == "les ":
            return "des "
        if not prefix and name[0] in FR_VOWELS:
            return "d'"
        return f"de {prefix}"
    if lang == "es":
        return "del " if prefix == "el " else f"de {prefix}"
    return prefix


def fr_article_for_language(name: str) -> str:
    return f"l'{name}" if name[0].upper() in FR_VOWELS else f"le {name}"


@dataclass
class Fact:
    relation: str
    key: str
    lang: str
    subject: str
    objects: list[str]
    template: str


class Builder:
    def __init__(self, catalogues: Catalogues) -> None:
        self.cat = catalogues
        self.templates = {(r["relation"], r["lang"]): r for r in table("templates.csv")}
        self.places = {r["key"]: r for r in table("places.csv")}
        self.currencies = {r["code"]: r for r in table("currencies.csv")}
        self.continents = {r["key"]: r for r in table("continents.csv")}
        self.companies = table("companies.csv")
        self.country_rows = table("countries.csv")
        self.countries = {
            r["alpha2"]: Country(
                r["alpha2"], r, {lang: catalogues.country(r["alpha2"], lang) for lang in LANGS}
            )
            for r in self.country_rows
        }
        self.facts: list[Fact] = []

    def emit(self, relation: str, key: str, lang: str, subject_parts, objects: list[str]):
        """``subject_parts``: ``(slot, prefix, name)``; slot is {of}, {Subj} or {subject}."""
        spec = self.templates[relation, lang]
        slot, prefix, name = subject_parts
        template = spec["template"]
        if slot not in template:
            raise BuildError(f"templates.csv: {relation}/{lang} has no {slot}")
        if slot == "{Subj}" and prefix:
            prefix = prefix[0].upper() + prefix[1:]
        template = template.replace(slot, prefix + "{subject}")
        text = template.replace("{subject}", name)
        if lang in CONTRACTIONS:
            endings, articles = CONTRACTIONS[lang]
            for obj in objects:
                if text.endswith(endings) and obj.startswith(articles):
                    raise BuildError(f"{relation}/{lang}/{key}: {text!r} + {obj!r} contracts")
        objects = list(dict.fromkeys(o for o in objects if o))
        if not name or not objects:
            raise BuildError(f"{relation}/{lang}/{key}: empty subject or object")
        self.facts.append(Fact(relation, key, lang, name, objects, template))

    def country_subject(self, country: Country, relation: str, lang: str):
        template = self.templates[relation, lang]["template"]
        if "{Subj}" in template:
            if country.plural:
                raise BuildError(f"{relation}/{country.code}: plural subject, singular verb")
            return ("{Subj}", *country.np(lang))
        return ("{of}", *country.of(lang))

    def for_countries(self, relation: str, column: str, objects: Callable[[Country, str], list]):
        for row in self.country_rows:
            if not row[column]:
                continue
            country = self.countries[row["alpha2"]]
            for lang in LANGS:
                subject = self.country_subject(country, relation, lang)
                self.emit(relation, country.code, lang, subject, objects(country, lang))

    def build(self) -> list[Fact]:
        def capital(country, lang):
            return alternatives(self.places[country.row["capital"]][lang])

        def language(country, lang):
            name, also = self.cat.language(country.row["language"], lang)
            if lang == "fr":
                return [fr_article_for_language(n) for n in (name, *also)] + [name, *also]
            return [name, *also]

        def currency(country, lang):
            return alternatives(self.currencies[country.row["currency"]][lang])

        def continent(country, lang):
            return alternatives(self.continents[country.row["continent"]][lang])

        def neighbours(country, lang):
            case = self.templates["shares_border_with", lang]["object_case"]
            return [
                self.countries[code].objects(lang, case)[0]
                for code in country.row["neighbours"].split()
            ]

        self.for_countries("capital", "capital", capital)
        for row in self.country_rows:
            if row["capital"]:
                self.place_fact("capital_of", self.places[row["capital"]])
        self.for_countries("official_language", "language", language)
        self.for_countries("currency", "currency", currency)
        self.for_countries("continent", "continent", continent)
        self.for_countries("shares_border_with", "neighbours", neighbours)
        for place in self.places.values():
            if place["kind"] == "city":
                self.place_fact("city_in_country", place)
        for company in self.companies:
            self.company_fact(company)
        return self.facts

    def place_fact(self, relation: str, place: dict[str, str]) -> None:
        country = self.countries[place["country"]]
        for lang in LANGS:
            case = self.templates[relation, lang]["object_case"]
            name = alternatives(place[lang])[0]
            self.emit(relation, place["key"], lang, ("{subject}", "", name),
                      country.objects(lang, case))  # fmt: skip

    def company_fact(self, company: dict[str, str]) -> None:
        country = self.countries[company["country"]]
        ascii_name = unicodedata.normalize("NFKD", company["name"]).encode("ascii", "ignore")
        key = re.sub(r"[^a-z0-9]+", "_", ascii_name.decode().lower()).strip("_")
        for lang in LANGS:
            name = alternatives(company["zh"])[0] if lang == "zh" else company["name"]
            template = self.templates["company_country", lang]["template"]
            if "{of}" in template:
                subject = ("{of}", of_prefix(lang, "", name), name)
            else:
                subject = ("{subject}", "", name)
            case = self.templates["company_country", lang]["object_case"]
            self.emit("company_country", key, lang, subject, country.objects(lang, case))


def write(facts: list[Fact], out: Path) -> dict[str, dict[str, int]]:
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, dict[str, int]] = {}
    for lang in LANGS:
        rows = [f for f in facts if f.lang == lang]
        with open(out / f"{lang}.csv", "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(
                ["id", "pair_id", "relation", "lang", "subject", "object", "answers", "template"]
            )
            for fact in rows:
                pair_id = f"{fact.relation}:{fact.key}"
                writer.writerow(
                    [
                        f"{pair_id}:{lang}",
                        pair_id,
                        fact.relation,
                        lang,
                        fact.subject,
                        fact.objects[0],
                        "|".join(fact.objects[1:]),
                        fact.template,
                    ]
                )
        for fact in rows:
            counts.setdefault(fact.relation, {}).setdefault(lang, 0)
            counts[fact.relation][lang] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locales", type=Path, help="gettext folder (default: pycountry's)")
    parser.add_argument("--out", type=Path, default=ROOT / "data/relations/facts")
    args = parser.parse_args(argv)
    try:
        facts = Builder(Catalogues(args.locales)).build()
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    counts = write(facts, args.out)
    print(f"pycountry {metadata.version('pycountry')}; locales {args.locales or 'pycountry'}")
    for relation in RELATIONS:
        per_lang = counts.get(relation, {})
        print(f"{relation:20s}", " ".join(f"{lang}={per_lang.get(lang, 0)}" for lang in LANGS))
        if min(per_lang.get(lang, 0) for lang in LANGS) < MIN_FACTS:
            print(f"error: {relation} has fewer than {MIN_FACTS} facts", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
