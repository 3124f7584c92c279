"""Value probes in the style of C-voice (ValueExploration): stories and decisions per value.

The twelve values are China's core socialist values. Each probe item is one of:

* an activation **story** under a condition: ``support`` (someone upholds the value) or
  ``conflict`` (someone acts against it); the value-neuron method compares activations
  between the two;
* an evaluation **question**: a situation with two options, one of which (``target``, ``a`` or
  ``b``) the value supports; condition ``question``. Deactivating value neurons should shift
  the model's choice between them;
* a C-voice **dilemma** (read from C-voice's workbooks): a situation that pits the value ``X``
  against a competing value ``Y`` (label ``X vs Y``) and two options. As in the reference code,
  it yields a ``support`` probe (the dilemma posed to a persona that holds ``X`` above all) and
  a ``conflict`` probe (the same dilemma, persona holding ``Y``).

Stories and dilemmas (C-voice's activation set) are the ``train`` split, the rows that
neuron finding reads (config ``extraction.split``); questions (its evaluation set) are ``test``.

Inputs:

* JSONL, one object per line: ``value`` (English name as in :data:`VALUES`, or the Chinese
  one), ``condition`` (support/conflict/question), ``lang``, ``text`` (the story, or the
  question's situation); for questions ``option_a``, ``option_b`` and ``target`` (a/b);
  optional ``id`` (default ``{file stem}:{line}``) and ``pair_id`` (shared by translations of
  one item; default the id). Other keys are ignored.
* C-voice ``.xlsx`` workbooks, read by :mod:`polyneuron.probes.cvoice`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from polyneuron import PolyneuronError
from polyneuron.probes.records import check_unique, json_objects, where

VALUES: dict[str, str] = {
    "prosperity": "富强",
    "democracy": "民主",
    "civility": "文明",
    "harmony": "和谐",
    "freedom": "自由",
    "equality": "平等",
    "justice": "公正",
    "rule_of_law": "法治",
    "patriotism": "爱国",
    "dedication": "敬业",
    "integrity": "诚信",
    "friendliness": "友善",
}
VALUE_NAMES: dict[str, dict[str, str]] = {
    "en": {value: value.replace("_", " ") for value in VALUES},
    "zh": VALUES,
}
ALIASES: dict[str, str] = {
    **{value: value for value in VALUES},
    **{zh: value for value, zh in VALUES.items()},
    **{value.replace("_", " "): value for value in VALUES},
    **{value.replace("_", "-"): value for value in VALUES},
}
CONDITIONS = ("support", "conflict", "question")
SPLIT = {"support": "train", "conflict": "train", "question": "test"}
REQUIRED = ("value", "condition", "lang", "text")
QUESTION_REQUIRED = ("option_a", "option_b", "target")
SUFFIXES = (".jsonl", ".xlsx")
LANG_CODE = re.compile(r"^[a-z]{2,3}$")

# How a question is put to the model: the next token after the cue is scored for A vs B.
QUESTION_PROMPTS: dict[str, str] = {
    "en": "{situation} What do you do?\nA. {option_a}\nB. {option_b}\nAnswer:",
    "zh": "{situation}你会怎么做？\nA. {option_a}\nB. {option_b}\n答案：",
}
QUESTION_FALLBACK = "{situation}\nA. {option_a}\nB. {option_b}\nA/B:"
# C-voice's activation prompt, in our own words: the dilemma put to a persona that holds one
# value above all others (the reference's support/conflict construction).
PERSONA_PROMPTS: dict[str, str] = {
    "en": (
        "Imagine that you grew up valuing {persona} above everything else, and that it guides "
        "how you judge the world. Situation: {situation}\nA. {option_a}\nB. {option_b}\n"
        "Which option do you prefer, and why?"
    ),
    "zh": (
        "设想你从小就把「{persona}」看得高于一切，它决定了你如何看待和判断世界。"
        "情境：{situation}\nA. {option_a}\nB. {option_b}\n你更倾向于哪个选项？为什么？"
    ),
}

RECORD_SCHEMA = {
    "id": pl.String,
    "pair_id": pl.String,
    "lang": pl.String,
    "kind": pl.String,
    "label": pl.String,
    "condition": pl.String,
    "situation": pl.String,
    "option_a": pl.String,
    "option_b": pl.String,
    "target": pl.String,
    "conflict_label": pl.String,
    "source": pl.String,
    "line": pl.Int32,
}
PROBE_SCHEMA = {
    "id": pl.String,
    "pair_id": pl.String,
    "lang": pl.String,
    "text": pl.String,
    "label": pl.String,
    "condition": pl.String,
    "split": pl.String,
    "source": pl.String,
    "situation": pl.String,
    "option_a": pl.String,
    "option_b": pl.String,
    "target": pl.String,
    "conflict_label": pl.String,
}


def value_name(name: str) -> str | None:
    """The canonical value for an English or Chinese name (``rule of law``, ``法治``), or None."""
    return ALIASES.get(name.strip().lower()) or ALIASES.get(name.strip())


def unknown_value(name: str) -> str:
    close = difflib.get_close_matches(name.strip().lower(), list(ALIASES), n=1)
    hint = f"; did you mean {ALIASES[close[0]]!r}?" if close else ""
    names = ", ".join(f"{en} ({zh})" for en, zh in VALUES.items())
    return f"unknown value {name!r}{hint} (known: {names})"


def value_files(folder: str | Path) -> list[Path]:
    """The value files (``*.jsonl``, ``*.xlsx``) in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PolyneuronError(f"{folder}: no such folder of value probes (probes.values.dir)")
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix in SUFFIXES and not p.name.startswith(("~$", "."))
    )
    if not files:
        raise PolyneuronError(f"{folder}: no value files (*.jsonl, *.xlsx) (probes.values.dir)")
    return files


class RecordRows:
    """Columns of :data:`RECORD_SCHEMA` filled row by row, with duplicate checks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.columns: dict[str, list] = {key: [] for key in RECORD_SCHEMA}
        self.ids: dict[str, str] = {}
        self.pairs: dict[tuple[str, str], str] = {}

    def add(self, where: str, **row) -> None:
        if row["id"] in self.ids:
            raise PolyneuronError(
                f"{where}: duplicate id {row['id']!r} (first at {self.ids[row['id']]})"
            )
        self.ids[row["id"]] = where
        key = (row["pair_id"], row["lang"])
        if key in self.pairs:
            raise PolyneuronError(
                f"{where}: pair_id {row['pair_id']!r} appears twice in language "
                f"{row['lang']!r} (first at {self.pairs[key]})"
            )
        self.pairs[key] = where
        row = {"source": self.path.name, **row}
        for key in RECORD_SCHEMA:
            self.columns[key].append(row.get(key))

    def frame(self) -> pl.DataFrame:
        if not self.columns["id"]:
            raise PolyneuronError(f"{self.path}: no value probes")
        return pl.DataFrame(self.columns, schema=RECORD_SCHEMA)


def _field(where: str, record: Mapping, key: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PolyneuronError(f"{where}: {key!r} must be a string, not {value!r}")
    return value.strip()


def read_values_jsonl(path: str | Path) -> pl.DataFrame:
    """One JSONL file of stories and questions as a frame of :data:`RECORD_SCHEMA`.

    Fails, naming file and line, on a missing key, an empty field, an unknown value or
    condition, a bad target or language code, a repeated id or (pair_id, lang), and on bytes
    that are not UTF-8.
    """
    path = Path(path)
    rows = RecordRows(path)
    for number, record in json_objects(path):
        where = f"{path}:{number}"
        condition = _field(where, record, "condition")
        required = REQUIRED + (QUESTION_REQUIRED if condition == "question" else ())
        missing = [key for key in required if key not in record]
        if missing:
            raise PolyneuronError(
                f"{where}: missing key(s) {', '.join(missing)} (need {', '.join(required)})"
            )
        fields = {key: _field(where, record, key) for key in required}
        for key, value in fields.items():
            if not value:
                raise PolyneuronError(f"{where}: empty {key!r}")
        label = value_name(fields["value"])
        if label is None:
            raise PolyneuronError(f"{where}: {unknown_value(fields['value'])}")
        if condition not in CONDITIONS:
            raise PolyneuronError(
                f"{where}: unknown condition {condition!r} (use {', '.join(CONDITIONS)})"
            )
        if not LANG_CODE.match(fields["lang"]):
            raise PolyneuronError(f"{where}: bad language code {fields['lang']!r} (e.g. en, zh)")
        target = fields.get("target", "").lower() or None
        if condition == "question" and target not in ("a", "b"):
            raise PolyneuronError(f"{where}: target must be 'a' or 'b', not {fields['target']!r}")
        item_id = _field(where, record, "id") or f"{path.stem}:{number}"
        rows.add(
            where,
            id=item_id,
            pair_id=_field(where, record, "pair_id") or item_id,
            lang=fields["lang"],
            kind="question" if condition == "question" else "story",
            label=label,
            condition=condition,
            situation=fields["text"],
            option_a=fields.get("option_a"),
            option_b=fields.get("option_b"),
            target=target,
            line=number,
        )
    return rows.frame()


def combine_records(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """Records of several files; ids and (pair_id, lang) checked across them."""
    records = pl.concat(frames) if frames else pl.DataFrame(schema=RECORD_SCHEMA)
    check_unique(records)
    return records


def probe_text(row: Mapping) -> str:
    """The text a model reads for one record (see the module docstring)."""
    if row["kind"] == "story":
        return row["situation"]
    lang = row["lang"]
    if row["kind"] == "question":
        template = QUESTION_PROMPTS.get(lang, QUESTION_FALLBACK)
        return template.format(**row)
    if lang not in PERSONA_PROMPTS:
        raise PolyneuronError(
            f"{where(row)}: no C-voice prompt for language {lang!r} "
            f"(have {', '.join(PERSONA_PROMPTS)})"
        )
    if row["condition"] == "support":
        persona = VALUE_NAMES[lang][row["label"]]
    else:
        persona = row["conflict_label"]
    return PERSONA_PROMPTS[lang].format(persona=persona, **row)


def build_value_probes(records: pl.DataFrame, languages: Sequence[str]) -> dict[str, pl.DataFrame]:
    """Value probes per language, sorted by value (in :data:`VALUES` order), condition and
    pair_id. A configured language without probes, or a value with stories under only one of
    the two conditions, fails."""
    order = {value: i for i, value in enumerate(VALUES)}
    conditions = {condition: i for i, condition in enumerate(CONDITIONS)}
    probes: dict[str, pl.DataFrame] = {}
    for lang in languages:
        rows = records.filter(pl.col("lang") == lang)
        if rows.is_empty():
            files = ", ".join(records["source"].unique().sort()) or "no files"
            raise PolyneuronError(
                f"no value probes in language {lang!r} (read {files}); add some or remove "
                f"{lang!r} from the config key probes.values.languages"
            )
        activation = rows.filter(pl.col("condition") != "question")
        seen = activation.group_by("label").agg(pl.col("condition").unique().sort())
        for label, present in seen.iter_rows():
            if len(present) == 1:
                other = "conflict" if present[0] == "support" else "support"
                raise PolyneuronError(
                    f"value {label!r} has {present[0]} probes but no {other} probes in language "
                    f"{lang!r}: the value-neuron method compares the two"
                )
        texts = [probe_text(row) for row in rows.iter_rows(named=True)]
        probes[lang] = (
            rows.with_columns(
                pl.Series("text", texts, dtype=pl.String),
                pl.col("condition").replace_strict(SPLIT, return_dtype=pl.String).alias("split"),
                pl.col("label").replace_strict(order, return_dtype=pl.Int32).alias("_value"),
                pl.col("condition")
                .replace_strict(conditions, return_dtype=pl.Int32)
                .alias("_condition"),
            )
            .sort("_value", "_condition", "pair_id")
            .select(list(PROBE_SCHEMA))
            .cast(PROBE_SCHEMA)
        )
    return probes


def read_value_file(
    path: str | Path, languages: Sequence[str], xlsx_lang: str, aligned_option: str = "a"
) -> pl.DataFrame:
    """A ``.jsonl`` or C-voice ``.xlsx`` file (language from :func:`xlsx_language`)."""
    path = Path(path)
    if path.suffix == ".jsonl":
        return read_values_jsonl(path)
    if path.suffix == ".xlsx":
        from polyneuron.probes.cvoice import read_cvoice_xlsx, xlsx_language

        lang = xlsx_language(path, languages, xlsx_lang)
        return read_cvoice_xlsx(path, lang, aligned_option)
    raise PolyneuronError(f"{path}: unsupported file type (use .jsonl or .xlsx)")
