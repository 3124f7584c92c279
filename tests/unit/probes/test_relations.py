import hashlib
import json
from pathlib import Path

import polars as pl
import pytest

from polyneuron import PolyneuronError
from polyneuron.probes.records import unpaired
from polyneuron.probes.relations import (
    PROBE_SCHEMA,
    RELATIONS,
    build_relation_probes,
    combine_facts,
    fact_files,
    read_facts,
    split_pairs,
)

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "data" / "relations" / "facts"
HEADER = "id,pair_id,relation,lang,subject,object,answers,template\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_reader_fills_the_template_and_locates_the_subject(tmp_path):
    path = write(
        tmp_path / "facts.csv",
        HEADER
        + "capital:FR:en,capital:FR,capital,en,France,Paris,,The capital of {subject} is\n"
        + 'capital:CH:fr,capital:CH,capital,fr,Suisse,Berne,Bern|Berne,"La capitale de la '
        + '{subject} est"\n',
    )
    facts = read_facts(path)
    assert facts["text"].to_list() == ["The capital of France is", "La capitale de la Suisse est"]
    # "The capital of " is 15 characters; "La capitale de la " is 18
    assert facts.select("subject_start", "subject_end").rows() == [(15, 21), (18, 24)]
    # the object comes first and is not repeated
    assert facts["answers"].to_list() == [["Paris"], ["Berne", "Bern"]]
    assert facts["line"].to_list() == [2, 3]
    assert facts["source"].to_list() == ["facts.csv", "facts.csv"]


def test_jsonl_reader_takes_answers_as_a_list_and_defaults_ids_to_file_and_line(tmp_path):
    lines = [
        {"subject": "Japan", "relation": "currency", "object": "yen", "lang": "en",
         "template": "The currency of {subject} is the", "answers": ["Japanese yen"]},
        {},  # blank lines are skipped, so the next fact is on line 3
        {"subject": "日本", "relation": "currency", "object": "日元", "lang": "zh",
         "template": "{subject}的货币是", "pair_id": "currency:JP"},
    ]  # fmt: skip
    text = "\n".join(json.dumps(line, ensure_ascii=False) if line else "" for line in lines)
    facts = read_facts(write(tmp_path / "mine.jsonl", text + "\n"))
    assert facts["id"].to_list() == ["mine:1", "mine:3"]
    assert facts["pair_id"].to_list() == ["mine:1", "currency:JP"]
    assert facts["answers"].to_list() == [["yen", "Japanese yen"], ["日元"]]
    assert facts["text"].to_list() == ["The currency of Japan is the", "日本的货币是"]


def test_csv_without_a_required_column_fails_naming_the_column(tmp_path):
    path = write(tmp_path / "facts.csv", "subject,relation,object,lang\nFrance,capital,Paris,en\n")
    with pytest.raises(PolyneuronError, match=r"facts.csv:1: missing column\(s\) template"):
        read_facts(path)


def test_jsonl_line_without_a_required_key_fails_naming_the_line(tmp_path):
    good = {
        "subject": "a",
        "relation": "capital",
        "object": "b",
        "lang": "en",
        "template": "{subject}",
    }
    bad = {key: value for key, value in good.items() if key != "object"}
    path = write(tmp_path / "f.jsonl", f"{json.dumps(good)}\n{json.dumps(bad)}\n")
    with pytest.raises(PolyneuronError, match=r"f.jsonl:2: missing key\(s\) object"):
        read_facts(path)


def test_unknown_relation_fails_with_a_suggestion(tmp_path):
    path = write(
        tmp_path / "facts.csv",
        HEADER + "a,a,capital,en,France,Paris,,The capital of {subject} is\n"
        "b,b,capitol,en,Spain,Madrid,,The capital of {subject} is\n",
    )
    with pytest.raises(
        PolyneuronError, match=r"facts.csv:3: unknown relation 'capitol'; did you mean 'capital'"
    ):
        read_facts(path)


def test_relations_beyond_the_built_in_ones_are_accepted_when_named(tmp_path):
    path = write(
        tmp_path / "facts.csv",
        HEADER + "a,a,author_of,en,Hamlet,Shakespeare,,{subject} was written by\n",
    )
    facts = read_facts(path, known=[*RELATIONS, "author_of"])
    assert facts["relation"].to_list() == ["author_of"]


@pytest.mark.parametrize("column", ["subject", "object", "lang", "template"])
def test_empty_field_fails_naming_line_and_field(tmp_path, column):
    row = {"id": "a", "pair_id": "a", "relation": "capital", "lang": "en", "subject": "France",
           "object": "Paris", "answers": "", "template": "The capital of {subject} is"}  # fmt: skip
    row[column] = "  "
    path = write(tmp_path / "facts.csv", HEADER + ",".join(row.values()) + "\n")
    with pytest.raises(PolyneuronError, match=rf"facts.csv:2: empty '{column}'"):
        read_facts(path)


@pytest.mark.parametrize("template", ["The capital of France is", "{subject} and {subject}"])
def test_template_needs_the_subject_placeholder_exactly_once(tmp_path, template):
    path = write(tmp_path / "facts.csv", HEADER + f"a,a,capital,en,France,Paris,,{template}\n")
    with pytest.raises(
        PolyneuronError, match=r"facts.csv:2: the template must hold \{subject\} exactly once"
    ):
        read_facts(path)


def test_duplicate_id_fails_naming_both_lines(tmp_path):
    path = write(
        tmp_path / "facts.csv",
        HEADER + "x,p1,capital,en,France,Paris,,The capital of {subject} is\n"
        "y,p2,capital,en,Spain,Madrid,,The capital of {subject} is\n"
        "x,p3,capital,en,Italy,Rome,,The capital of {subject} is\n",
    )
    with pytest.raises(PolyneuronError, match=r"facts.csv:4: duplicate id 'x' \(first at line 2\)"):
        read_facts(path)


def test_one_fact_twice_in_one_language_fails(tmp_path):
    path = write(
        tmp_path / "facts.csv",
        HEADER + "x,p,capital,en,France,Paris,,The capital of {subject} is\n"
        "y,p,capital,en,France,Paris,,{subject}'s capital is\n",
    )
    with pytest.raises(
        PolyneuronError, match=r"facts.csv:3: pair_id 'p' appears twice in language 'en'"
    ):
        read_facts(path)


def test_undecodable_bytes_fail_naming_the_line(tmp_path):
    path = tmp_path / "facts.csv"
    path.write_bytes(
        HEADER.encode()
        + "a,a,capital,de,Österreich,Wien,,Die Hauptstadt von {subject} ist\n".encode()
        + b"b,b,capital,de,\xff\xfe,Paris,,{subject}\n"
    )
    with pytest.raises(PolyneuronError, match=r"facts.csv:3: not valid UTF-8"):
        read_facts(path)


def test_row_with_too_many_fields_fails(tmp_path):
    path = write(
        tmp_path / "facts.csv",
        HEADER + "a,a,capital,en,France,Paris,,The capital of {subject} is,extra\n",
    )
    with pytest.raises(PolyneuronError, match=r"facts.csv:2: 9 field\(s\), the header has 8"):
        read_facts(path)


def test_bad_language_code_fails(tmp_path):
    path = write(
        tmp_path / "facts.csv",
        HEADER + "a,a,capital,English,France,Paris,,The capital of {subject} is\n",
    )
    with pytest.raises(PolyneuronError, match=r"facts.csv:2: bad language code 'English'"):
        read_facts(path)


def test_empty_file_and_unknown_file_type_fail(tmp_path):
    with pytest.raises(PolyneuronError, match=r"empty.csv: no facts"):
        read_facts(write(tmp_path / "empty.csv", HEADER))
    with pytest.raises(PolyneuronError, match=r"facts.tsv: unsupported file type"):
        read_facts(write(tmp_path / "facts.tsv", HEADER))


def test_fact_files_lists_csv_and_jsonl_only_and_fails_on_an_empty_folder(tmp_path):
    for name in ("b.jsonl", "a.csv", "SOURCES.md"):
        write(tmp_path / name, "")
    assert [p.name for p in fact_files(tmp_path)] == ["a.csv", "b.jsonl"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(PolyneuronError, match=r"no fact files"):
        fact_files(tmp_path / "empty")


def test_facts_from_two_files_with_one_id_fail_naming_both(tmp_path):
    row = "capital:FR:en,capital:FR,capital,en,France,Paris,,The capital of {subject} is\n"
    a = read_facts(write(tmp_path / "a.csv", HEADER + row))
    b = read_facts(write(tmp_path / "b.csv", HEADER + row))
    with pytest.raises(PolyneuronError, match=r"b.csv:2: same id as a.csv:2: 'capital:FR:en'"):
        combine_facts([a, b])


def test_a_pair_with_different_relations_in_two_languages_fails(tmp_path):
    a = read_facts(
        write(
            tmp_path / "a.csv",
            HEADER + "1,p,capital,en,France,Paris,,The capital of {subject} is\n",
        )
    )
    b = read_facts(
        write(
            tmp_path / "b.csv",
            HEADER + "2,p,currency,de,Frankreich,der Euro,,Die Währung von {subject} ist\n",
        )
    )
    with pytest.raises(
        PolyneuronError,
        match=r"b.csv:2: pair_id 'p' has relation 'currency' here but 'capital' at a.csv:2",
    ):
        combine_facts([a, b])


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_split_puts_the_smallest_hashes_of_each_relation_in_test():
    pairs = pl.DataFrame(
        {
            "relation": ["capital"] * 4 + ["currency"] * 3,
            "pair_id": ["c1", "c2", "c3", "c4", "m1", "m2", "m3"],
        }
    )
    split = split_pairs(pairs, 0.5)
    # 4 x 0.5 = 2 and 3 x 0.5 = 1.5, rounded half up to 2 test pairs per relation
    for names in (["c1", "c2", "c3", "c4"], ["m1", "m2", "m3"]):
        expected = set(sorted(names, key=sha)[:2])
        assert {p for p in names if split[p] == "test"} == expected
    assert set(split_pairs(pairs, 0.0).values()) == {"train"}


def test_probes_share_the_split_across_languages_and_keep_relation_order(tmp_path):
    rows = []
    for n in range(8):
        rows.append(f"cur{n}:en,cur{n},currency,en,C{n},M{n},,The currency of {{subject}} is the\n")
        rows.append(f"cur{n}:de,cur{n},currency,de,K{n},N{n},,Die Währung von {{subject}} ist\n")
        rows.append(f"cap{n}:en,cap{n},capital,en,C{n},P{n},,The capital of {{subject}} is\n")
    facts = combine_facts([read_facts(write(tmp_path / "f.csv", HEADER + "".join(rows)))])
    probes = build_relation_probes(facts, ["en", "de"], 0.25)
    en, de = probes["en"], probes["de"]
    assert dict(en.schema) == PROBE_SCHEMA
    # capital comes before currency (RELATIONS order), pair_ids sorted within a relation
    assert en["label"].to_list() == ["capital"] * 8 + ["currency"] * 8
    assert en["pair_id"].to_list()[:3] == ["cap0", "cap1", "cap2"]
    assert en.filter(pl.col("split") == "test").height == 4  # 2 of 8 per relation
    en_split = dict(zip(en["pair_id"], en["split"], strict=True))
    assert all(en_split[p] == s for p, s in zip(de["pair_id"], de["split"], strict=True))
    assert de.row(0, named=True)["text"] == "Die Währung von K0 ist"
    assert de.row(0, named=True)["target"] == "N0"


def test_a_configured_language_without_facts_fails_naming_the_files_read(tmp_path):
    facts = read_facts(
        write(
            tmp_path / "f.csv",
            HEADER + "a,a,capital,en,France,Paris,,The capital of {subject} is\n",
        )
    )
    with pytest.raises(PolyneuronError, match=r"no relation facts in language 'sw' \(read f.csv\)"):
        build_relation_probes(facts, ["en", "sw"], 0.25)


def test_shipped_facts_cover_every_relation_with_40_parallel_facts_in_five_languages():
    facts = combine_facts([read_facts(path) for path in fact_files(DATA)])
    languages = ["en", "de", "fr", "es", "zh"]
    probes = build_relation_probes(facts, languages, 0.25)
    for lang in languages:
        counts = dict(probes[lang].group_by("label").len().iter_rows())
        assert set(counts) == set(RELATIONS), lang
        assert min(counts.values()) >= 40, (lang, counts)
        assert probes[lang]["text"].str.strip_chars().str.len_chars().min() > 0
        assert probes[lang]["target"].str.len_chars().min() > 0
    # every fact is there in all five languages
    per_pair = facts.group_by("pair_id").agg(pl.col("lang").n_unique())
    assert per_pair["lang"].min() == 5


def load_builder():
    """tools/build_relation_data.py as a module (it needs pycountry, a build-time dependency)."""
    pytest.importorskip("pycountry")
    import importlib.util
    import sys

    if "build_relation_data" not in sys.modules:
        path = DATA.parent.parent.parent / "tools" / "build_relation_data.py"
        spec = importlib.util.spec_from_file_location("build_relation_data", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["build_relation_data"]


@pytest.mark.parametrize(
    ("code", "lang", "of_country", "object_np"),
    [
        ("FR", "fr", "de la France", "la France"),
        ("JP", "fr", "du Japon", "le Japon"),
        ("US", "fr", "des États-Unis", "les États-Unis"),
        ("IT", "fr", "de l'Italie", "l'Italie"),
        ("IL", "fr", "d'Israël", "Israël"),
        ("CU", "fr", "de Cuba", "Cuba"),
        ("FR", "de", "von Frankreich", "Frankreich"),
        ("CH", "de", "der Schweiz", "die Schweiz"),
        ("IR", "de", "des Iran", "der Iran"),
        ("GB", "de", "des Vereinigten Königreichs", "das Vereinigte Königreich"),
        ("NL", "de", "der Niederlande", "die Niederlande"),
        ("GB", "es", "del Reino Unido", "el Reino Unido"),
        ("GB", "en", "of the United Kingdom", "the United Kingdom"),
        ("KR", "zh", "韩国", "韩国"),
    ],
)
def test_builder_puts_each_language_s_articles_around_country_names(
    code, lang, of_country, object_np
):
    builder = load_builder()
    country = builder.Builder(builder.Catalogues(None)).countries[code]
    assert "".join(country.of(lang)) == of_country
    assert country.objects(lang, "nom")[0] == object_np


def test_builder_declines_german_objects_by_case():
    builder = load_builder()
    countries = builder.Builder(builder.Catalogues(None)).countries
    assert countries["NL"].objects("de", "dat")[0] == "den Niederlanden"
    assert countries["IR"].objects("de", "acc")[0] == "den Iran"
    assert countries["CH"].objects("de", "dat")[0] == "der Schweiz"


def test_rebuilding_the_relation_facts_reproduces_the_shipped_files(tmp_path):
    builder = load_builder()
    assert builder.main(["--out", str(tmp_path)]) == 0
    for path in sorted(DATA.glob("*.csv")):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


def test_unpaired_lists_facts_missing_a_language(tmp_path):
    rows = (
        "1,p,capital,en,France,Paris,,The capital of {subject} is\n"
        "2,p,capital,de,Frankreich,Paris,,Die Hauptstadt von {subject} ist\n"
        "3,q,capital,en,Spain,Madrid,,The capital of {subject} is\n"
    )
    facts = read_facts(write(tmp_path / "f.csv", HEADER + rows))
    assert unpaired(facts, ["en", "de"]) == ["q"]
    assert unpaired(facts, ["en"]) == []
