"""Relation probes: subject–relation–object facts as cloze prompts, for relation-specific neurons.

A fact file (``.csv`` with a header row, or ``.jsonl`` with one object per line; UTF-8) holds one
fact in one language per row:

``subject``, ``relation``, ``object``, ``lang``, ``template``
    ``template`` holds ``{subject}`` exactly once and ends right before the object:
    ``The capital of {subject} is`` with subject ``France`` and object ``Paris``. Whatever the
    language needs around the subject (articles, contractions: ``La capitale du {subject}
    est``) belongs to the template, so that ``subject`` is the bare name and its character
    span in the prompt is known.
``id`` (optional)
    unique over all files; default ``{file stem}:{line}``.
``pair_id`` (optional)
    the same fact in other languages shares it; default the id (a fact with no partner).
``answers`` (optional)
    other acceptable objects (``|``-separated in CSV, a list of strings in JSONL); the object
    itself is always the first answer.

Any other column is ignored. A file with a bad row fails as a whole, naming file and line:
nothing is built from half a file.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import polars as pl

from polyneuron import PolyneuronError
from polyneuron.probes.records import check_unique, decoded_lines, json_objects, where

# The relations of the shipped fact table (data/relations); a fact file may use only these and
# those named in the config key probes.relations.extra_relations.
RELATIONS: dict[str, str] = {
    "capital": "country -> its capital city",
    "capital_of": "capital city -> its country",
    "official_language": "country -> its sole official language",
    "currency": "country -> its currency",
    "continent": "country -> the continent it lies in",
    "shares_border_with": "country -> a country it shares a land border with",
    "city_in_country": "city -> the country it lies in",
    "company_country": "company -> the country of its headquarters",
}
REQUIRED = ("subject", "relation", "object", "lang", "template")
SUBJECT = "{subject}"
SUFFIXES = (".csv", ".jsonl")
LANG_CODE = re.compile(r"^[a-z]{2,3}$")

FACT_SCHEMA = {
    "id": pl.String,
    "pair_id": pl.String,
    "lang": pl.String,
    "relation": pl.String,
    "subject": pl.String,
    "object": pl.String,
    "answers": pl.List(pl.String),
    "text": pl.String,
    "subject_start": pl.Int32,
    "subject_end": pl.Int32,
    "source": pl.String,
    "line": pl.Int32,
}
PROBE_SCHEMA = {
    "id": pl.String,
    "pair_id": pl.String,
    "lang": pl.String,
    "text": pl.String,
    "label": pl.String,
    "subject": pl.String,
    "target": pl.String,
    "answers": pl.List(pl.String),
    "subject_start": pl.Int32,
    "subject_end": pl.Int32,
    "split": pl.String,
    "source": pl.String,
}


def fact_files(folder: str | Path) -> list[Path]:
    """The fact files (``*.csv``, ``*.jsonl``) in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PolyneuronError(f"{folder}: no such folder of relation facts (probes.relations.dir)")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SUFFIXES)
    if not files:
        raise PolyneuronError(f"{folder}: no fact files (*.csv, *.jsonl) (probes.relations.dir)")
    return files


def _csv_records(path: Path, lines: list[str]) -> Iterator[tuple[int, dict]]:
    reader = csv.reader(io.StringIO("\n".join(lines), newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return
        header = [name.strip() for name in header]
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise PolyneuronError(
                    f"{path}:{reader.line_num}: {len(row)} field(s), the header has {len(header)}"
                )
            yield reader.line_num, dict(zip(header, row, strict=True))
    except csv.Error as err:
        raise PolyneuronError(f"{path}:{reader.line_num}: malformed CSV ({err})") from None


def read_records(path: str | Path, required: Sequence[str]) -> list[tuple[int, dict]]:
    """``(line, record)`` pairs of a CSV or JSONL file, each holding every ``required`` key."""
    path = Path(path)
    if path.suffix == ".csv":
        lines = [line for _, line in decoded_lines(path)]
        header = next(csv.reader(lines[:1]), [])
        missing = [key for key in required if key not in {name.strip() for name in header}]
        if lines and missing:
            raise PolyneuronError(
                f"{path}:1: missing column(s) {', '.join(missing)} (need {', '.join(required)})"
            )
        records = list(_csv_records(path, lines))
    elif path.suffix == ".jsonl":
        records = list(json_objects(path))
        for number, record in records:
            missing = [key for key in required if key not in record]
            if missing:
                raise PolyneuronError(
                    f"{path}:{number}: missing key(s) {', '.join(missing)} "
                    f"(need {', '.join(required)})"
                )
    else:
        raise PolyneuronError(f"{path}: unsupported file type (use .csv or .jsonl)")
    if not records:
        raise PolyneuronError(f"{path}: no facts")
    return records


def _text(path: Path, number: int, record: Mapping, key: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PolyneuronError(f"{path}:{number}: {key!r} must be a string, not {value!r}")
    return value.strip()


def _answers(path: Path, number: int, record: Mapping, target: str) -> list[str]:
    value = record.get("answers")
    if value is None or value == "":
        items: list = []
    elif isinstance(value, str):
        items = value.split("|")
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = value
    else:
        raise PolyneuronError(f"{path}:{number}: 'answers' must be a list of strings or a|b|c")
    answers = [target]
    for item in (item.strip() for item in items):
        if item and item not in answers:
            answers.append(item)
    return answers


def unknown_relation(name: str, known: Iterable[str]) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (
        f"unknown relation {name!r}{hint} (known: {', '.join(known)}; name new ones under "
        "the config key probes.relations.extra_relations)"
    )


def read_facts(path: str | Path, known: Iterable[str] = RELATIONS) -> pl.DataFrame:
    """One fact file as a frame of :data:`FACT_SCHEMA`, every row checked.

    Fails, naming file and line, on a missing column, an empty field, an unknown relation, a
    template without exactly one ``{subject}``, a bad language code, a repeated id or a
    repeated (pair_id, lang), and on bytes that are not UTF-8.
    """
    path = Path(path)
    known = set(known)
    rows: dict[str, list] = {key: [] for key in FACT_SCHEMA}
    first_line: dict[str, int] = {}
    first_pair: dict[tuple[str, str], int] = {}
    for number, record in read_records(path, REQUIRED):
        fields = {key: _text(path, number, record, key) for key in REQUIRED}
        for key, value in fields.items():
            if not value:
                raise PolyneuronError(f"{path}:{number}: empty {key!r}")
        if fields["relation"] not in known:
            raise PolyneuronError(f"{path}:{number}: {unknown_relation(fields['relation'], known)}")
        if not LANG_CODE.match(fields["lang"]):
            raise PolyneuronError(
                f"{path}:{number}: bad language code {fields['lang']!r} (use ISO 639-1, e.g. de)"
            )
        template = fields["template"]
        if template.count(SUBJECT) != 1:
            raise PolyneuronError(
                f"{path}:{number}: the template must hold {SUBJECT} exactly once: {template!r}"
            )
        fact_id = _text(path, number, record, "id") or f"{path.stem}:{number}"
        pair_id = _text(path, number, record, "pair_id") or fact_id
        if fact_id in first_line:
            raise PolyneuronError(
                f"{path}:{number}: duplicate id {fact_id!r} (first at line {first_line[fact_id]})"
            )
        first_line[fact_id] = number
        key = (pair_id, fields["lang"])
        if key in first_pair:
            raise PolyneuronError(
                f"{path}:{number}: pair_id {pair_id!r} appears twice in language "
                f"{fields['lang']!r} (first at line {first_pair[key]})"
            )
        first_pair[key] = number
        start = template.index(SUBJECT)
        rows["id"].append(fact_id)
        rows["pair_id"].append(pair_id)
        rows["lang"].append(fields["lang"])
        rows["relation"].append(fields["relation"])
        rows["subject"].append(fields["subject"])
        rows["object"].append(fields["object"])
        rows["answers"].append(_answers(path, number, record, fields["object"]))
        rows["text"].append(template.replace(SUBJECT, fields["subject"]))
        rows["subject_start"].append(start)
        rows["subject_end"].append(start + len(fields["subject"]))
        rows["source"].append(path.name)
        rows["line"].append(number)
    return pl.DataFrame(rows, schema=FACT_SCHEMA)


def combine_facts(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """Facts of several files; ids, (pair_id, lang) and each pair's relation checked across them."""
    facts = pl.concat(frames) if frames else pl.DataFrame(schema=FACT_SCHEMA)
    check_unique(facts)
    mixed = (
        facts.group_by("pair_id").agg(pl.col("relation").n_unique()).filter(pl.col("relation") > 1)
    )
    if mixed.height:
        pair = mixed["pair_id"].sort()[0]
        rows = facts.filter(pl.col("pair_id") == pair)
        a, b = rows.row(0, named=True), rows.row(1, named=True)
        raise PolyneuronError(
            f"{where(b)}: pair_id {pair!r} has relation {b['relation']!r} here but "
            f"{a['relation']!r} at {where(a)}"
        )
    return facts


def split_pairs(pairs: pl.DataFrame, test_fraction: float) -> dict[str, str]:
    """``pair_id -> "train" | "test"``: per relation, the ``round(n * test_fraction)`` pairs with
    the smallest SHA-256 of their pair_id are test.

    Every language of a fact lands in the same split, and the split depends on the pair_ids
    alone, not on file order or on which languages are configured. Adding facts to a relation
    can move a few of its other facts across the boundary.
    """
    split: dict[str, str] = {}
    for _, group in pairs.unique(["relation", "pair_id"]).group_by("relation"):
        ranked = sorted(group["pair_id"], key=lambda p: hashlib.sha256(p.encode()).hexdigest())
        n_test = math.floor(len(ranked) * test_fraction + 0.5)
        split.update({p: "test" if i < n_test else "train" for i, p in enumerate(ranked)})
    return split


def build_relation_probes(
    facts: pl.DataFrame, languages: Sequence[str], test_fraction: float
) -> dict[str, pl.DataFrame]:
    """Cloze probes per language: ``text`` ends right before ``target``; ``label`` is the relation.

    Rows come sorted by relation (in :data:`RELATIONS` order, then extra relations by name) and
    pair_id. A configured language without facts fails, naming the files read.
    """
    split = split_pairs(facts.select("relation", "pair_id"), test_fraction)
    extras = sorted(set(facts["relation"]) - set(RELATIONS))
    rank = {name: i for i, name in enumerate([*RELATIONS, *extras])}
    probes: dict[str, pl.DataFrame] = {}
    for lang in languages:
        rows = facts.filter(pl.col("lang") == lang)
        if rows.is_empty():
            files = ", ".join(facts["source"].unique().sort()) or "no files"
            raise PolyneuronError(
                f"no relation facts in language {lang!r} (read {files}); add some or remove "
                f"{lang!r} from the config key probes.relations.languages"
            )
        probes[lang] = (
            rows.with_columns(
                pl.col("relation").replace_strict(rank, return_dtype=pl.Int32).alias("_rank"),
                pl.col("pair_id").replace_strict(split, return_dtype=pl.String).alias("split"),
            )
            .sort("_rank", "pair_id")
            .select(
                "id",
                "pair_id",
                "lang",
                "text",
                pl.col("relation").alias("label"),
                "subject",
                pl.col("object").alias("target"),
                "answers",
                "subject_start",
                "subject_end",
                "split",
                "source",
            )
            .cast(PROBE_SCHEMA)
        )
    return probes
