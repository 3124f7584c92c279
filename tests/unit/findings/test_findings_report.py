"""Every claim on every model gets a row, missing tables read "not run", and the Markdown
carries every row."""

from __future__ import annotations

import polars as pl
from unit.findings.findings_frames import diagonal

from polyneuron.findings import claims as c
from polyneuron.findings.report import CLAIMS, findings_frame, read_tables, render_markdown

TH = c.Thresholds(n_boot=200)


def test_every_claim_on_every_model_and_chat_claims_on_chat_models_only():
    tables = {"base": {"lape": diagonal(2.0, 0.2, 0.0)}}
    frame = findings_frame(tables, ["base"], ["chat"], TH)
    assert frame.height == len(CLAIMS) * 2
    assert frame.select("claim", "model").unique().height == frame.height
    by = {(r["claim"], r["model"]): r for r in frame.iter_rows(named=True)}
    assert by[("LAPE diagonal", "base")]["verdict"] == c.REPRODUCED
    assert by[("LAPE diagonal", "chat")]["verdict"] == c.NOT_RUN  # chat: refusal only
    assert by[("XTransplant", "base")]["verdict"] == c.NOT_RUN  # its table is missing
    assert by[("Refusal direction transfer", "base")]["verdict"] == c.NOT_MEASURABLE
    assert by[("Refusal direction transfer", "chat")]["verdict"] == c.NOT_RUN  # no table
    assert frame.filter(pl.col("verdict").is_null() | pl.col("reason").is_null()).is_empty()


def test_without_chat_models_refusal_is_not_run():
    frame = findings_frame({}, ["base"], [], TH)
    refusal = frame.filter(pl.col("claim") == "Refusal direction transfer")
    assert refusal["verdict"].to_list() == [c.NOT_RUN]
    assert "no chat_models" in refusal["reason"][0]


def test_a_table_without_a_needed_column_is_not_measurable_not_a_crash():
    old = diagonal(2.0, 0.2, 0.0).drop("ci_low")
    frame = findings_frame({"base": {"lape": old}}, ["base"], [], TH)
    row = frame.filter(pl.col("claim") == "LAPE diagonal").row(0, named=True)
    assert row["verdict"] == c.NOT_MEASURABLE and "ci_low" in row["reason"]


def test_markdown_has_every_row_and_escapes_pipes():
    frame = findings_frame({"m|1": {"lape": diagonal(2.0, 0.2, 0.0)}}, ["m|1"], ["chat"], TH)
    text = render_markdown(frame, TH)
    for claim in CLAIMS:
        assert f"## {claim.key}" in text
        assert claim.statement in text
    rows = [line for line in text.splitlines() if line.startswith("| m\\|1 |")]
    assert len(rows) == len(CLAIMS)  # one per claim section; the overview names it mid-row
    assert sum(line.startswith("| chat |") for line in text.splitlines()) == len(CLAIMS)
    assert text.count("| chat |") == 2 * len(CLAIMS)  # and once in the overview per claim
    assert text.count("| **reproduced** |") == 1  # the overview: LAPE on m|1 only


def test_read_tables_keys_each_file_by_its_model_folder(tmp_path):
    for model in ("a", "b"):
        path = tmp_path / "evaluation" / model / "lape.parquet"
        path.parent.mkdir(parents=True)
        diagonal(1.0, 0.0, 0.0).write_parquet(path)
    files = sorted((tmp_path / "evaluation").glob("*/lape.parquet"))
    tables = read_tables({"lape": files, "bridges": []})
    assert sorted(tables) == ["a", "b"] and set(tables["a"]) == {"lape"}


def test_a_planted_model_is_labelled_a_positive_control_in_every_row():
    frame = findings_frame({}, ["base"], ["chat", "chat-planted"], TH, {"chat-planted": "a.st"})
    planted = frame.filter(pl.col("model") == "chat-planted")
    assert planted.height > 0
    assert all(
        r.startswith("positive control: behaviour planted by the adapter a.st")
        for r in planted["reason"]
    )
    assert not any(
        "positive control" in r for r in frame.filter(pl.col("model") != "chat-planted")["reason"]
    )
