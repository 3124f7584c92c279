import json
from pathlib import Path

import polars as pl
import pytest

from polyneuron import PolyneuronError
from polyneuron.probes.records import unpaired
from polyneuron.probes.values import (
    PROBE_SCHEMA,
    VALUES,
    build_value_probes,
    combine_records,
    read_value_file,
    read_values_jsonl,
    value_files,
)

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "data" / "values"


def story(**fields):
    return {
        "value": "integrity",
        "condition": "support",
        "lang": "en",
        "text": "He paid.",
        **fields,
    }


def question(**fields):
    base = {
        "value": "integrity",
        "condition": "question",
        "lang": "en",
        "text": "You find a wallet.",
        "option_a": "Keep it.",
        "option_b": "Return it.",
        "target": "b",
    }
    return {**base, **fields}


def write_jsonl(path: Path, records) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    return path


def test_jsonl_reader_maps_english_and_chinese_value_names_to_one_label(tmp_path):
    path = write_jsonl(
        tmp_path / "mine.jsonl",
        [
            story(value="rule of law", id="s1", pair_id="p1"),
            story(value="法治", lang="zh", text="他依法办事。", id="s1-zh", pair_id="p1"),
            question(value="Integrity", target="B"),
        ],
    )
    records = read_values_jsonl(path)
    assert records["label"].to_list() == ["rule_of_law", "rule_of_law", "integrity"]
    assert records["kind"].to_list() == ["story", "story", "question"]
    assert records["target"].to_list() == [None, None, "b"]
    # an item without ids is named by file and line, and is its own pair
    assert records["id"].to_list() == ["s1", "s1-zh", "mine:3"]
    assert records["pair_id"].to_list() == ["p1", "p1", "mine:3"]


def test_question_without_options_fails_naming_line_and_keys(tmp_path):
    bad = question()
    del bad["option_b"], bad["target"]
    path = write_jsonl(tmp_path / "q.jsonl", [question(), bad])
    with pytest.raises(PolyneuronError, match=r"q.jsonl:2: missing key\(s\) option_b, target"):
        read_values_jsonl(path)


def test_story_without_text_key_fails(tmp_path):
    bad = story()
    del bad["text"]
    with pytest.raises(PolyneuronError, match=r"s.jsonl:1: missing key\(s\) text"):
        read_values_jsonl(write_jsonl(tmp_path / "s.jsonl", [bad]))


def test_unknown_value_fails_with_a_suggestion_and_the_list_of_values(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [story(), story(value="integrty", id="x")])
    with pytest.raises(
        PolyneuronError,
        match=r"s.jsonl:2: unknown value 'integrty'; did you mean 'integrity'\?.*富强",
    ):
        read_values_jsonl(path)


def test_unknown_condition_fails(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [story(condition="oppose")])
    with pytest.raises(PolyneuronError, match=r"s.jsonl:1: unknown condition 'oppose'"):
        read_values_jsonl(path)


@pytest.mark.parametrize("key", ["text", "option_a"])
def test_empty_text_or_option_fails(tmp_path, key):
    path = write_jsonl(tmp_path / "q.jsonl", [question(**{key: " "})])
    with pytest.raises(PolyneuronError, match=rf"q.jsonl:1: empty '{key}'"):
        read_values_jsonl(path)


def test_target_other_than_a_or_b_fails(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [question(target="c")])
    with pytest.raises(PolyneuronError, match=r"q.jsonl:1: target must be 'a' or 'b', not 'c'"):
        read_values_jsonl(path)


def test_duplicate_id_fails_naming_both_lines(tmp_path):
    path = write_jsonl(
        tmp_path / "s.jsonl",
        [story(id="x", pair_id="1"), story(id="y"), story(id="x", pair_id="3")],
    )
    with pytest.raises(
        PolyneuronError, match=r"s.jsonl:3: duplicate id 'x' \(first at .*s.jsonl:1\)"
    ):
        read_values_jsonl(path)


def test_one_item_twice_in_one_language_fails(tmp_path):
    path = write_jsonl(
        tmp_path / "s.jsonl", [story(id="x", pair_id="p"), story(id="y", pair_id="p")]
    )
    with pytest.raises(
        PolyneuronError, match=r"s.jsonl:2: pair_id 'p' appears twice in language 'en'"
    ):
        read_values_jsonl(path)


def test_undecodable_bytes_fail_naming_the_line(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(json.dumps(story()).encode() + b"\n" + b'{"text": "\xe4\xb8"}\n')
    with pytest.raises(PolyneuronError, match=r"s.jsonl:2: not valid UTF-8"):
        read_values_jsonl(path)


def test_a_line_that_is_not_a_json_object_fails(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('["a list"]\n', encoding="utf-8")
    with pytest.raises(PolyneuronError, match=r"s.jsonl:1: expected a JSON object"):
        read_values_jsonl(path)


def test_read_value_file_dispatches_on_suffix(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [story()])
    assert read_value_file(path, ["en"], "zh")["label"].to_list() == ["integrity"]
    with pytest.raises(PolyneuronError, match=r"s.csv: unsupported file type"):
        read_value_file(tmp_path / "s.csv", ["en"], "zh")


def test_question_probe_text_puts_options_under_the_situation(tmp_path):
    records = read_values_jsonl(
        write_jsonl(
            tmp_path / "q.jsonl", [question(), story(), story(condition="conflict", id="c")]
        )
    )
    probes = build_value_probes(records, ["en"])["en"]
    assert dict(probes.schema) == PROBE_SCHEMA
    assert probes["condition"].to_list() == ["support", "conflict", "question"]
    assert (
        probes["text"][2]
        == "You find a wallet. What do you do?\nA. Keep it.\nB. Return it.\nAnswer:"
    )
    assert probes["text"][0] == "He paid."
    assert probes["situation"][2] == "You find a wallet."


def test_value_with_stories_under_one_condition_only_fails(tmp_path):
    records = read_values_jsonl(write_jsonl(tmp_path / "s.jsonl", [story()]))
    with pytest.raises(
        PolyneuronError,
        match=r"'integrity' has support probes but no conflict probes in language 'en'",
    ):
        build_value_probes(records, ["en"])


def test_configured_language_without_probes_fails(tmp_path):
    records = read_values_jsonl(write_jsonl(tmp_path / "q.jsonl", [question()]))
    with pytest.raises(PolyneuronError, match=r"no value probes in language 'zh' \(read q.jsonl\)"):
        build_value_probes(records, ["zh"])


def test_items_from_two_files_with_one_id_fail_naming_both(tmp_path):
    a = read_values_jsonl(write_jsonl(tmp_path / "a.jsonl", [story(id="x")]))
    b = read_values_jsonl(write_jsonl(tmp_path / "b.jsonl", [story(id="x")]))
    with pytest.raises(PolyneuronError, match=r"b.jsonl:1: same id as a.jsonl:1: 'x'"):
        combine_records([a, b])


def test_unpaired_lists_items_missing_a_language(tmp_path):
    records = read_values_jsonl(
        write_jsonl(
            tmp_path / "s.jsonl",
            [
                story(id="1", pair_id="p"),
                story(id="2", pair_id="p", lang="zh"),
                story(id="3", pair_id="q"),
            ],
        )
    )
    assert unpaired(records, ["en", "zh"]) == ["q"]


def test_shipped_values_have_20_stories_and_10_questions_per_value_in_both_languages():
    records = combine_records([read_value_file(p, ["en", "zh"], "zh") for p in value_files(DATA)])
    assert unpaired(records, ["en", "zh"]) == []
    probes = build_value_probes(records, ["en", "zh"])
    for lang, frame in probes.items():
        counts = frame.group_by("label", "condition").len()
        table = {(label, condition): n for label, condition, n in counts.iter_rows()}
        for value in VALUES:
            assert table[value, "support"] + table[value, "conflict"] >= 20, (lang, value)
            assert min(table[value, "support"], table[value, "conflict"]) >= 10, (lang, value)
            assert table[value, "question"] >= 10, (lang, value)
        assert frame["text"].str.strip_chars().str.len_chars().min() > 0
        questions = frame.filter(pl.col("condition") == "question")
        # the value-aligned option is not always in the same place
        assert set(questions["target"]) == {"a", "b"}
    # translations share their pair's target
    en, zh = probes["en"], probes["zh"]
    assert dict(zip(en["pair_id"], en["target"], strict=True)) == dict(
        zip(zh["pair_id"], zh["target"], strict=True)
    )
