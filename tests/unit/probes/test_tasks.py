import json
import runpy
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest

from polyneuron import PolyneuronError
from polyneuron.probes.tasks import task_file, task_probes

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "data" / "tasks"


def write_jsonl(folder: Path, task: str, records: list) -> Path:
    path = folder / f"{task}.jsonl"
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def test_prompt_is_instruction_input_and_answer_cue_and_target_is_kept(tmp_path):
    path = write_jsonl(
        tmp_path,
        "sentiment",
        [
            {
                "id": "s1",
                "instruction": "Positive or negative?",
                "input": " Great soup. ",
                "target": "positive",
                "split": "test",
                "category": "food",  # other keys are ignored
            },
            {"input": "Cold soup.", "target": "negative", "lang": "de", "pair_id": "p"},
        ],
    )
    probes = task_probes("sentiment", path)
    first, second = probes.rows(named=True)
    assert first["text"] == "Positive or negative?\nGreat soup.\nAnswer:"
    assert (first["target"], first["label"], first["split"]) == ("positive", "sentiment", "test")
    assert (first["id"], first["pair_id"], first["lang"]) == ("s1", "s1", "en")
    assert first["source"] == "sentiment.jsonl"
    # no instruction: no instruction line; no id: task name and line number
    assert second["text"] == "Cold soup.\nAnswer:"
    assert (second["id"], second["pair_id"], second["lang"]) == ("sentiment-2", "p", "de")


def test_examples_without_split_put_every_fifth_example_in_test(tmp_path):
    records = [{"input": f"word {i}", "target": f"Wort {i}"} for i in range(1, 11)]
    records[0]["split"] = "test"
    records.insert(3, "")  # blank lines are skipped and do not count as examples
    probes = task_probes("translation", write_jsonl(tmp_path, "translation", records))
    assert probes["split"].to_list() == ["test"] + ["train"] * 3 + ["test"] + ["train"] * 4 + [
        "test"
    ]
    # line numbers still count the blank line
    assert probes["line"].to_list() == [1, 2, 3, 5, 6, 7, 8, 9, 10, 11]
    path = write_jsonl(tmp_path, "translation", records)
    assert (
        task_probes("translation", path, test_every=0)["split"].to_list()
        == ["test"] + ["train"] * 9
    )


@pytest.mark.parametrize("missing", ["input", "target"])
def test_missing_field_names_file_line_and_field(tmp_path, missing):
    record = {"input": "dog", "target": "Hund"}
    del record[missing]
    path = write_jsonl(tmp_path, "translation", [{"input": "cat", "target": "Katze"}, record])
    with pytest.raises(
        PolyneuronError, match=rf"translation\.jsonl:2: missing field\(s\) {missing}"
    ):
        task_probes("translation", path)


@pytest.mark.parametrize("field", ["input", "target"])
@pytest.mark.parametrize("value", ["", "   "])
def test_empty_input_or_target_is_rejected(tmp_path, field, value):
    record = {"input": "dog", "target": "Hund", field: value}
    path = write_jsonl(tmp_path, "translation", [record])
    with pytest.raises(PolyneuronError, match=rf"translation\.jsonl:1: field '{field}' is empty"):
        task_probes("translation", path)


def test_byte_order_mark_and_crlf_are_accepted(tmp_path):
    path = tmp_path / "topic.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"input": "Goal!", "target": "sports"}\r\n')
    assert task_probes("topic", path)["text"].to_list() == ["Goal!\nAnswer:"]


def test_non_string_target_is_rejected_but_integer_ids_are_accepted(tmp_path):
    path = write_jsonl(tmp_path, "topic", [{"id": 7, "input": "Goal!", "target": "sports"}])
    assert task_probes("topic", path)["id"].to_list() == ["7"]
    path = write_jsonl(tmp_path, "topic", [{"input": "Goal!", "target": 1}])
    with pytest.raises(
        PolyneuronError, match=r"topic\.jsonl:1: field 'target' must be a string, not int 1"
    ):
        task_probes("topic", path)


def test_duplicate_ids_name_both_lines(tmp_path):
    records = [
        {"id": "a", "input": "x", "target": "y"},
        {"id": "b", "input": "x", "target": "y"},
        {"id": "a", "input": "z", "target": "y"},
    ]
    path = write_jsonl(tmp_path, "topic", records)
    with pytest.raises(
        PolyneuronError, match=r"topic\.jsonl:3: duplicate id 'a' \(first at line 1\)"
    ):
        task_probes("topic", path)


def test_given_id_that_equals_a_default_id_is_a_duplicate(tmp_path):
    records = [{"input": "x", "target": "y"}, {"id": "topic-1", "input": "z", "target": "y"}]
    path = write_jsonl(tmp_path, "topic", records)
    with pytest.raises(PolyneuronError, match=r"topic\.jsonl:2: duplicate id 'topic-1'"):
        task_probes("topic", path)


def test_undecodable_bytes_name_file_and_line(tmp_path):
    path = tmp_path / "topic.jsonl"
    path.write_bytes(b'{"input": "x", "target": "y"}\n{"input": "\xff", "target": "y"}\n')
    with pytest.raises(PolyneuronError, match=r"topic\.jsonl:2: not valid UTF-8"):
        task_probes("topic", path)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"input": "x", "target": ', r"not valid JSON"),
        ('["x", "y"]', r"expected a JSON object"),
        ('{"input": "x", "target": "y", "split": "dev"}', r"split 'dev' is not one of train, test"),
        ('{"input": "x", "target": "y", "lang": "German"}', r"lang 'German' is not"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, line, message):
    path = write_jsonl(tmp_path, "topic", [{"input": "a", "target": "b"}, line])
    with pytest.raises(PolyneuronError, match=rf"topic\.jsonl:2: {message}"):
        task_probes("topic", path)


def test_file_without_examples_is_rejected(tmp_path):
    path = write_jsonl(tmp_path, "topic", ["", "  "])
    with pytest.raises(PolyneuronError, match=r"topic\.jsonl: no examples"):
        task_probes("topic", path)


def test_unknown_task_lists_the_tasks_that_exist(tmp_path):
    write_jsonl(tmp_path, "sentiment", [{"input": "x", "target": "y"}])
    write_jsonl(tmp_path, "topic", [{"input": "x", "target": "y"}])
    assert task_file(tmp_path, "topic") == tmp_path / "topic.jsonl"
    with pytest.raises(PolyneuronError, match=r"unknown task 'sentimnet'.*: sentiment, topic$"):
        task_file(tmp_path, "sentimnet")


@pytest.mark.parametrize("name", ["Topic", "2topic", "topic-x", "../topic"])
def test_task_names_must_be_lowercase_identifiers(tmp_path, name):
    with pytest.raises(PolyneuronError, match=r"bad task name"):
        task_file(tmp_path, name)


def test_script_writes_the_probes_and_bad_input_leaves_no_output(tmp_path):
    def run(task, path):
        snakemake = SimpleNamespace(
            input=[str(path)],
            output=[str(tmp_path / "out" / f"{task}.parquet")],
            log=[str(tmp_path / f"{task}.log")],
            wildcards=SimpleNamespace(task=task),
            params=SimpleNamespace(test_every=5),
        )
        script = REPO / "workflow" / "scripts" / "build_task_probes.py"
        runpy.run_path(str(script), init_globals={"snakemake": snakemake})

    good = write_jsonl(tmp_path, "topic", [{"input": "Goal!", "target": "sports"}])
    run("topic", good)
    assert pl.read_parquet(tmp_path / "out" / "topic.parquet")["target"].to_list() == ["sports"]
    bad = write_jsonl(tmp_path, "broken", [{"input": "Goal!"}])
    with pytest.raises(SystemExit):
        run("broken", bad)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["topic.parquet"]
    assert "missing field(s) target" in (tmp_path / "broken.log").read_text(encoding="utf-8")


# the shipped tasks: (examples, answers and how often each is the target)
SHIPPED_TASKS = {
    "sentiment": (220, {"positive": 110, "negative": 110}),
    "topic": (220, {"sports": 55, "politics": 55, "science": 55, "food": 55}),
    "paraphrase": (220, {"yes": 110, "no": 110}),
    "translation": (233, None),
}


@pytest.mark.parametrize("task", sorted(SHIPPED_TASKS))
def test_shipped_task_is_balanced_with_a_fifth_held_out_for_test(task):
    n_examples, answers = SHIPPED_TASKS[task]
    probes = task_probes(task, task_file(SHIPPED, task))
    assert probes.height == n_examples
    assert probes["id"].n_unique() == n_examples
    test = probes.filter(pl.col("split") == "test")
    assert test.height == n_examples // 5
    if answers:
        assert Counter(probes["target"]) == answers
        # every answer appears in the test split in the same share as overall
        assert Counter(test["target"]) == {a: n // 5 for a, n in answers.items()}
    assert probes["text"].str.ends_with("\nAnswer:").all()


def test_shipped_paraphrase_pairs_share_an_anchor_and_a_split():
    probes = task_probes("paraphrase", task_file(SHIPPED, "paraphrase"))
    groups = probes.group_by("pair_id").agg(
        pl.col("target").sort(),
        pl.col("split").n_unique(),
        pl.col("text").str.split("\n").list.get(1).n_unique().alias("anchor"),
    )
    assert groups.height == 110
    assert groups["target"].to_list() == [["no", "yes"]] * 110
    assert groups["split"].to_list() == [1] * 110
    assert groups["anchor"].to_list() == [1] * 110
