from pathlib import Path

import pytest

from polyneuron import PolyneuronError
from polyneuron.probes.cvoice import read_cvoice_xlsx, xlsx_language
from polyneuron.probes.values import build_value_probes, read_value_file


def workbook(path: Path, sheets: dict[str, list[list]]) -> Path:
    """An .xlsx file with these sheets; skips the test where openpyxl is not installed."""
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


DILEMMA_HEADER = ["label", "question", "option1", "option2"]


def test_cvoice_dilemma_sheet_gives_a_support_and_a_conflict_probe_per_row(tmp_path):
    path = workbook(
        tmp_path / "富强-final.xlsx",
        {"Sheet1": [DILEMMA_HEADER, ["富强 vs 环保", "工厂要扩建。", "扩建。", "不扩建。"]]},
    )
    records = read_cvoice_xlsx(path, "zh")
    assert records["condition"].to_list() == ["support", "conflict"]
    assert records["label"].to_list() == ["prosperity", "prosperity"]
    assert records["conflict_label"].to_list() == ["环保", "环保"]
    assert records["pair_id"].to_list() == [
        "cvoice:prosperity:dilemma:00002:support",
        "cvoice:prosperity:dilemma:00002:conflict",
    ]
    probes = build_value_probes(records, ["zh"])["zh"]
    support, conflict = probes["text"].to_list()
    # the same dilemma, put to a persona holding the value, then the competing one
    assert "「富强」" in support and "「环保」" in conflict
    assert support.replace("「富强」", "「环保」") == conflict
    assert "情境：工厂要扩建。\nA. 扩建。\nB. 不扩建。\n" in support
    assert probes["split"].to_list() == ["train", "train"]


def test_cvoice_evaluation_sheets_are_named_after_values(tmp_path):
    path = workbook(
        tmp_path / "test-zh-200.xlsx",
        {
            "诚信": [["Context", "Action1", "Action2"], ["捡到钱包。", "归还。", "留下。"]],
            "友善": [
                ["Context", "Action1", "Action2"],
                [None, None, None],
                ["有人迷路。", "指路。", "不理。"],
            ],
        },
    )
    records = read_cvoice_xlsx(path, "zh", aligned_option="a")
    assert records["label"].to_list() == ["integrity", "friendliness"]
    assert records["condition"].to_list() == ["question", "question"]
    assert records["target"].to_list() == ["a", "a"]
    assert records["line"].to_list() == [2, 3]  # the empty row is skipped, not renumbered
    probes = build_value_probes(records, ["zh"])["zh"]
    assert probes["text"][0] == "捡到钱包。你会怎么做？\nA. 归还。\nB. 留下。\n答案："
    assert probes["split"].to_list() == ["test", "test"]


def test_cvoice_sheet_named_after_no_value_fails_naming_file_and_sheet(tmp_path):
    path = workbook(
        tmp_path / "cvoice.xlsx", {"Notes": [DILEMMA_HEADER, ["a vs b", "s", "1", "2"]]}
    )
    with pytest.raises(
        PolyneuronError, match=r"cvoice.xlsx: sheet 'Notes': name the sheet or the file"
    ):
        read_cvoice_xlsx(path, "zh")


def test_cvoice_row_with_an_empty_cell_fails_naming_sheet_and_row(tmp_path):
    path = workbook(
        tmp_path / "values.xlsx",
        {
            "敬业": [
                DILEMMA_HEADER,
                ["敬业 vs 休息", "加班？", "加班。", "回家。"],
                ["敬业 vs 家庭", "周末？", None, "陪家人。"],
            ]
        },
    )
    with pytest.raises(PolyneuronError, match=r"values.xlsx: sheet '敬业' row 3: empty option 1"):
        read_cvoice_xlsx(path, "zh")


def test_cvoice_label_without_vs_fails(tmp_path):
    path = workbook(tmp_path / "values.xlsx", {"民主": [DILEMMA_HEADER, ["民主", "s", "1", "2"]]})
    with pytest.raises(PolyneuronError, match=r"row 2: label '民主' is not of the form 'X vs Y'"):
        read_cvoice_xlsx(path, "zh")


def test_a_file_that_is_not_a_workbook_fails(tmp_path):
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"not a zip file")
    with pytest.raises(PolyneuronError, match=r"broken.xlsx: not a readable .xlsx workbook"):
        read_cvoice_xlsx(path, "zh")


def test_workbook_language_comes_from_a_code_in_its_file_name():
    assert xlsx_language("test-zh-200.xlsx", ["en", "zh"], "en") == "zh"
    assert xlsx_language("cvoice_en.xlsx", ["en", "zh"], "zh") == "en"
    assert xlsx_language("富强-final.xlsx", ["en", "zh"], "zh") == "zh"
    assert xlsx_language("zhongwen.xlsx", ["en", "zh"], "en") == "en"


def test_read_value_file_reads_a_workbook_in_the_language_its_name_gives(tmp_path):
    path = workbook(
        tmp_path / "test-zh-200.xlsx",
        {"诚信": [["Context", "Action1", "Action2"], ["捡到钱包。", "归还。", "留下。"]]},
    )
    records = read_value_file(path, ["en", "zh"], "en", aligned_option="b")
    assert records.select("lang", "label", "target").rows() == [("zh", "integrity", "b")]
