"""Task probes for task-specific neurons: (input, target) pairs, one JSONL file per task.

Each line of ``{task}.jsonl`` is a JSON object with ``input`` and ``target`` (non-empty
strings) and optionally ``id``, ``split`` (``train`` or ``test``), ``instruction``, ``lang``
(default ``en``) and ``pair_id`` (default: the id); other keys are ignored. The prompt the
model sees is the instruction, the input and an answer cue, one per line; the target
continues it after a space, which is where gradient attribution puts the loss.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import polars as pl

from polyneuron import PolyneuronError
from polyneuron.probes.records import json_objects

PROBE_SCHEMA = {
    "id": pl.String,
    "pair_id": pl.String,
    "lang": pl.String,
    "text": pl.String,
    "target": pl.String,
    "label": pl.String,
    "split": pl.String,
    "source": pl.String,
    "line": pl.Int32,
}
REQUIRED = ("input", "target")
OPTIONAL = ("id", "split", "instruction", "lang", "pair_id")
SPLITS = ("train", "test")
ANSWER_CUE = "Answer:"
TASK_NAME = re.compile(r"[a-z][a-z0-9_]*")
LANG_CODE = re.compile(r"[a-z]{2,3}")


def prompt(input_text: str, instruction: str | None = None) -> str:
    """``instruction``, ``input`` and ``Answer:`` on their own lines (no instruction line
    when there is none)."""
    return "\n".join(part for part in (instruction, input_text, ANSWER_CUE) if part)


def task_file(folder: str | Path, task: str) -> Path:
    """``{folder}/{task}.jsonl``; an unknown task's error lists the tasks that do exist."""
    folder = Path(folder)
    if not TASK_NAME.fullmatch(task):
        raise PolyneuronError(
            f"config key probes.tasks.names: bad task name {task!r} (lowercase letters, digits "
            "and _, starting with a letter)"
        )
    path = folder / f"{task}.jsonl"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.jsonl")) if folder.is_dir() else []
        raise PolyneuronError(
            f"unknown task {task!r}: no {path} (config keys probes.tasks.dir and "
            f"probes.tasks.names); tasks in {folder}: {', '.join(known) or 'none'}"
        )
    return path


def _string(record: dict[str, Any], key: str, where: str, required: bool) -> str | None:
    value = record.get(key)
    if value is None and not required:
        return None
    if key == "id" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is None:
        raise PolyneuronError(f"{where}: field {key!r} is missing")
    if not isinstance(value, str):
        raise PolyneuronError(
            f"{where}: field {key!r} must be a string, not {type(value).__name__} {value!r}"
        )
    value = value.strip()
    if not value and (required or key == "id"):
        raise PolyneuronError(f"{where}: field {key!r} is empty")
    return value or None


def read_task(path: str | Path) -> list[dict[str, Any]]:
    """The records of one task file with their line numbers (``line``); blank lines are
    skipped. Raises on anything malformed, naming the file and line."""
    path = Path(path)
    records = []
    for number, record in json_objects(path, "a JSON object with input and target"):
        where = f"{path}:{number}"
        missing = [key for key in REQUIRED if key not in record]
        if missing:
            raise PolyneuronError(f"{where}: missing field(s) {', '.join(missing)}")
        entry: dict[str, Any] = {"line": number}
        for key in (*REQUIRED, *OPTIONAL):
            entry[key] = _string(record, key, where, required=key in REQUIRED)
        if entry["split"] is not None and entry["split"] not in SPLITS:
            raise PolyneuronError(
                f"{where}: split {entry['split']!r} is not one of {', '.join(SPLITS)}"
            )
        if entry["lang"] is not None and not LANG_CODE.fullmatch(entry["lang"]):
            raise PolyneuronError(f"{where}: lang {entry['lang']!r} is not an ISO 639 code")
        records.append(entry)
    if not records:
        raise PolyneuronError(f"{path}: no examples")
    return records


def task_probes(task: str, path: str | Path, test_every: int = 5) -> pl.DataFrame:
    """One probe per example of a task file, labelled with the task's name.

    An example without a ``split`` is ``test`` when it is the ``test_every``-th, 2·…-th …
    example of the file (counting every example), else ``train``; 0 makes them all train.
    An example without an ``id`` gets ``{task}-{line}``.
    """
    path = Path(path)
    records = read_task(path)
    first_line: dict[str, int] = {}
    for record in records:
        record["id"] = record["id"] or f"{task}-{record['line']}"
        if record["id"] in first_line:
            raise PolyneuronError(
                f"{path}:{record['line']}: duplicate id {record['id']!r} "
                f"(first at line {first_line[record['id']]})"
            )
        first_line[record["id"]] = record["line"]
    splits = [
        r["split"] or ("test" if test_every and i % test_every == 0 else "train")
        for i, r in enumerate(records, start=1)
    ]
    return pl.DataFrame(
        {
            "id": [r["id"] for r in records],
            "pair_id": [r["pair_id"] or r["id"] for r in records],
            "lang": [r["lang"] or "en" for r in records],
            "text": [prompt(r["input"], r["instruction"]) for r in records],
            "target": [r["target"] for r in records],
            "label": [task] * len(records),
            "split": splits,
            "source": [path.name] * len(records),
            "line": [r["line"] for r in records],
        },
        schema=PROBE_SCHEMA,
    )
