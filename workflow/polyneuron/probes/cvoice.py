"""C-voice's ``.xlsx`` workbooks (ValueExploration) as value-probe records of
:data:`polyneuron.probes.values.RECORD_SCHEMA`; read with openpyxl.

A sheet is named after a value, or the file is (``富强-final.xlsx``). A sheet whose header row
has ``Context``, ``Action1`` and ``Action2`` holds evaluation questions (C-voice's
``test-zh-200.xlsx``); any other sheet holds dilemmas in its first four columns: ``X vs Y``
label, situation, option 1, option 2, below a header row. Each dilemma row yields a ``support``
and a ``conflict`` record (see :mod:`polyneuron.probes.values`).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from polyneuron import PolyneuronError
from polyneuron.probes.values import RecordRows, unknown_value, value_name

EVALUATION_COLUMNS = ("Context", "Action1", "Action2")  # C-voice's test-zh-200.xlsx
DILEMMA_COLUMNS = ("'X vs Y' label", "situation", "option 1", "option 2")  # {value}-final.xlsx


def xlsx_language(path: str | Path, languages: Sequence[str], default: str) -> str:
    """A workbook's language: a configured language code standing alone in its file name
    (``test-zh-200.xlsx``), else ``default``."""
    tokens = re.split(r"[-_. ]+", Path(path).stem.lower())
    return next((lang for lang in languages if lang in tokens), default)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _versus(label: str) -> tuple[str, str] | None:
    """``("诚信", "利益")`` from ``诚信 vs 利益``; None if the label is not ``X vs Y``."""
    match = re.fullmatch(r"\s*(.+?)\s*(?:vs\.?|VS\.?|Vs\.?|versus)\s*(.+?)\s*", label)
    return (match.group(1), match.group(2)) if match else None


def read_cvoice_xlsx(path: str | Path, lang: str, aligned_option: str = "a") -> pl.DataFrame:
    """A C-voice workbook as a frame of :data:`RECORD_SCHEMA` (see the module docstring).

    ``lang`` is the workbook's language; ``aligned_option`` says which of ``Action1`` (a) and
    ``Action2`` (b) the value supports in evaluation sheets. The released sheets do not say; the
    paper generates a value-aligned and a value-violating action, and ``a`` assumes they are
    listed in that order. Errors name the file, sheet and row.
    """
    try:
        from openpyxl import load_workbook
        from openpyxl.utils.exceptions import InvalidFileException
    except ImportError:
        raise PolyneuronError(
            f"{path}: reading C-voice .xlsx workbooks needs openpyxl (pip install openpyxl)"
        ) from None

    path = Path(path)
    if aligned_option not in ("a", "b"):
        raise PolyneuronError(f"aligned_option must be 'a' or 'b', not {aligned_option!r}")
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as err:
        raise PolyneuronError(f"{path}: not a readable .xlsx workbook ({err})") from None
    rows = RecordRows(path)
    file_value = value_name(re.split(r"[-_ ]+", path.stem)[0])
    try:
        for sheet in workbook.worksheets:
            label = value_name(sheet.title) or file_value
            if label is None:
                raise PolyneuronError(
                    f"{path}: sheet {sheet.title!r}: name the sheet or the file after a value "
                    f"({unknown_value(sheet.title)})"
                )
            _read_sheet(path, sheet, label, lang, aligned_option, rows)
    finally:
        workbook.close()
    return rows.frame()


def _read_sheet(path: Path, sheet, label: str, lang: str, aligned: str, rows: RecordRows) -> None:
    header: list[str] | None = None
    for number, cells in enumerate(sheet.iter_rows(values_only=True), start=1):
        cells = [_cell(value) for value in cells]
        if not any(cells):
            continue
        if header is None:
            header = [cell.lower() for cell in cells]
            continue
        where = f"{path}: sheet {sheet.title!r} row {number}"
        common = {"lang": lang, "label": label, "line": number}
        if {"context", "action1", "action2"} <= set(header):
            cells += [""] * (len(header) - len(cells))
            fields = {key: cells[header.index(key.lower())] for key in EVALUATION_COLUMNS}
            for key, value in fields.items():
                if not value:
                    raise PolyneuronError(f"{where}: empty {key!r}")
            pair_id = f"cvoice:{label}:question:{number:05d}"
            rows.add(
                where,
                id=f"{pair_id}:{lang}",
                pair_id=pair_id,
                kind="question",
                condition="question",
                situation=fields["Context"],
                option_a=fields["Action1"],
                option_b=fields["Action2"],
                target=aligned,
                **common,
            )
            continue
        cells = (cells + [""] * 4)[:4]
        for column, (name, value) in enumerate(zip(DILEMMA_COLUMNS, cells, strict=True), 1):
            if not value:
                raise PolyneuronError(f"{where}: empty {name} (column {column})")
        versus, situation, option_a, option_b = cells
        pair = _versus(versus)
        if pair is None:
            raise PolyneuronError(f"{where}: label {versus!r} is not of the form 'X vs Y'")
        for condition in ("support", "conflict"):
            pair_id = f"cvoice:{label}:dilemma:{number:05d}:{condition}"
            rows.add(
                where,
                id=f"{pair_id}:{lang}",
                pair_id=pair_id,
                kind="dilemma",
                condition=condition,
                situation=situation,
                option_a=option_a,
                option_b=option_b,
                conflict_label=pair[1],
                **common,
            )
