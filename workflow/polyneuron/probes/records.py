"""Checks shared by the probe-set readers: decoding lines, and unique ids across files."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import polars as pl

from polyneuron import PolyneuronError

UNIQUE_KEYS = ((["id"], "id"), (["pair_id", "lang"], "pair_id and language"))


def decoded_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 file, read as a stream (memory does not grow with the
    file); lines end at ``\n``, ``\r\n`` or ``\r``; a byte-order mark is dropped; undecodable
    bytes fail naming the file and line."""
    number = 0
    with open(path, "rb") as handle:
        for chunk_number, chunk in enumerate(handle):
            if chunk_number == 0:
                chunk = chunk.removeprefix(b"\xef\xbb\xbf")
            for line_bytes in chunk.splitlines():
                number += 1
                try:
                    yield number, line_bytes.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise PolyneuronError(
                        f"{path}:{number}: not valid UTF-8 ({err.reason})"
                    ) from None


def where(row: Mapping) -> str:
    return f"{row['source']}:{row['line']}"


def check_unique(records: pl.DataFrame) -> None:
    """Fail on a repeated ``id``, or an item given twice in one language, naming both places
    (``source``:``line``)."""
    for keys, what in UNIQUE_KEYS:
        dup = records.filter(pl.struct(keys).is_duplicated())
        if dup.height:
            a, b = dup.row(0, named=True), dup.row(1, named=True)
            raise PolyneuronError(f"{where(b)}: same {what} as {where(a)}: {a['id']!r}")


def json_objects(path: str | Path, what: str = "a JSON object") -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` of a JSONL file; blank lines skipped; a line that is not a
    JSON object fails naming the file and line (``what`` says what was expected)."""
    for number, line in decoded_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise PolyneuronError(f"{path}:{number}: not valid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise PolyneuronError(f"{path}:{number}: expected {what}")
        yield number, record


def unpaired(records: pl.DataFrame, languages: Sequence[str]) -> list[str]:
    """pair_ids present in some but not all of ``languages``, sorted."""
    present = records.filter(pl.col("lang").is_in(languages))
    counts = present.group_by("pair_id").agg(pl.col("lang").n_unique())
    return sorted(counts.filter(pl.col("lang") < len(set(languages)))["pair_id"])
