import random
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from polyneuron import PolyneuronError
from polyneuron.plan.languages import LANGUAGE_NAMES
from polyneuron.probes.muse import (
    build_probes,
    find_dictionary,
    language_pairs,
    pivot_language_pairs,
    pivot_pairs,
    read_dictionary,
)


def test_reader_splits_on_any_whitespace_and_keeps_every_gold_translation(tmp_path):
    path = tmp_path / "en-de.txt"
    path.write_text("water wasser\nwater\tgewässer\n\nhouse   haus\n", encoding="utf-8")
    frame, malformed = read_dictionary(path)
    assert frame.rows() == [("water", "wasser", 1), ("water", "gewässer", 2), ("house", "haus", 4)]
    assert not malformed


def test_reader_reports_malformed_lines_by_number_and_skips_them(tmp_path):
    path = tmp_path / "en-fr.txt"
    path.write_text("water eau\nlonely\na b c\ndog chien\n", encoding="utf-8")
    frame, malformed = read_dictionary(path, on_malformed="skip")
    assert frame["src"].to_list() == ["water", "dog"]
    assert malformed.line_numbers == [2, 3]
    assert "2 malformed line(s)" in malformed.describe()
    assert "en-fr.txt" in malformed.describe()


def test_reader_fails_on_malformed_lines_when_asked(tmp_path):
    path = tmp_path / "en-fr.txt"
    path.write_text("water eau\nlonely\n", encoding="utf-8")
    with pytest.raises(PolyneuronError, match=r"en-fr.txt: 1 malformed line\(s\).*line\(s\) 2"):
        read_dictionary(path, on_malformed="fail")


def test_reader_names_file_and_line_of_undecodable_bytes(tmp_path):
    path = tmp_path / "en-ru.txt"
    path.write_bytes("water вода\n".encode() + b"dog \xff\xfe\n")
    with pytest.raises(PolyneuronError, match=r"en-ru.txt:2: not valid UTF-8"):
        read_dictionary(path)


def test_find_dictionary_prefers_pivot_first_and_reads_reverse_files_swapped(tmp_path):
    (tmp_path / "de-en.txt").write_text("hund dog\n", encoding="utf-8")
    path, swapped = find_dictionary(tmp_path, "en", "de")
    assert (path.name, swapped) == ("de-en.txt", True)
    frame, _ = read_dictionary(path)
    assert pivot_pairs(frame, swapped).rows() == [("dog", "hund")]
    (tmp_path / "en-de.txt").write_text("dog hund\n", encoding="utf-8")
    assert find_dictionary(tmp_path, "en", "de") == (tmp_path / "en-de.txt", False)


def test_missing_dictionary_names_language_and_folder(tmp_path):
    with pytest.raises(PolyneuronError, match=r"no dictionary for language 'sw' in .*en-sw.txt"):
        find_dictionary(tmp_path, "en", "sw")


def pairs(rows):
    return pl.DataFrame(rows, schema=["pivot", "foreign"], orient="row")


def test_probes_follow_bridgex_prompt_and_align_languages_by_pivot_word():
    probes = build_probes(
        {
            "de": pairs(
                [("water", "wasser"), ("water", "gewässer"), ("radio", "radio"), ("dog", "hund")]
            ),
            "fr": pairs([("dog", "chien"), ("water", "eau")]),
        },
        {"de": "en-de.txt", "fr": "en-fr.txt"},
        pivot="en",
        languages=["en", "de", "fr"],
        names=LANGUAGE_NAMES,
        max_words=10,
    )
    de = probes["de"]
    assert de["text"].to_list() == ['German: "wasser" → English:', 'German: "hund" → English:']
    assert de["pair_id"].to_list() == ["water", "dog"]  # "radio radio" dropped as identical
    assert de["answers"].to_list() == [["water"], ["dog"]]
    text, start, end = de.row(0, named=True)["text"], de["word_start"][0], de["word_end"][0]
    assert text[start:end] == "wasser"
    # the pivot's words: best dictionary rank first (water: 0 in de, dog: 0 in fr -> tie,
    # alphabetical), each prompted into the other languages in turn
    en = probes["en"]
    assert en["pair_id"].to_list() == ["dog", "water"]
    assert en["text"].to_list() == ['English: "dog" → German:', 'English: "water" → French:']
    assert en["answers"].to_list() == [["hund"], ["eau"]]
    assert probes["fr"]["id"].to_list() == ["fr-00000", "fr-00001"]


def test_probes_keep_the_most_frequent_words_first():
    probes = build_probes(
        {"de": pairs([("one", "eins"), ("two", "zwei"), ("three", "drei")])},
        {"de": "en-de.txt"},
        "en",
        ["en", "de"],
        LANGUAGE_NAMES,
        max_words=2,
    )
    assert probes["de"]["word"].to_list() == ["eins", "zwei"]
    assert probes["en"]["word"].to_list() == ["one", "two"]


def test_language_empty_after_filtering_names_its_file():
    with pytest.raises(PolyneuronError, match=r"en-de.txt: no usable en-de pairs"):
        build_probes(
            {"de": pairs([("radio", "radio")])},
            {"de": "en-de.txt"},
            "en",
            ["en", "de"],
            LANGUAGE_NAMES,
            5,
        )


def test_capitalised_words_are_lower_cased_and_reported(tmp_path):
    path = tmp_path / "en-de.txt"
    path.write_text("house haus\nHouse Haus\nwater Wasser\n", encoding="utf-8")
    frame, report = read_dictionary(path)
    assert frame.rows() == [("house", "haus", 1), ("house", "haus", 2), ("water", "wasser", 3)]
    assert report.capitalised == [2, 3] and not report  # reported, not malformed
    assert "2 line(s) with capitals, lower-cased" in report.describe_case()
    probes = build_probes({"de": pivot_pairs(frame, False)}, {"de": "en-de.txt"}, "en", ["de"],
                          LANGUAGE_NAMES, 5)  # fmt: skip
    assert probes["de"]["word"].to_list() == ["haus", "wasser"]  # one probe per word


def test_an_empty_dictionary_is_named_as_empty(tmp_path):
    path = tmp_path / "en-de.txt"
    path.write_text("\n\n", encoding="utf-8")
    frame, _ = read_dictionary(path)
    with pytest.raises(PolyneuronError, match=r"en-de.txt: no en-de pairs in the file"):
        build_probes({"de": pivot_pairs(frame, False)}, {"de": "en-de.txt"}, "en", ["en", "de"],
                     LANGUAGE_NAMES, 5)  # fmt: skip


def random_dictionaries(tmp_path, seed: int) -> dict[str, str]:
    """Three small dictionaries with repeated words, repeated pairs, identical pairs, blank and
    malformed lines; one of them written the other way round (``ru-en.txt``)."""
    rng = random.Random(seed)
    shared = [f"w{i}" for i in range(6)]  # spelled alike in both languages: identical pairs
    paths = {}
    for lang in ("de", "fr", "ru"):
        pivots = [f"p{i}" for i in range(rng.randint(3, 40))] + shared
        foreign = [f"{lang}{i}" for i in range(rng.randint(3, 40))] + shared
        lines = [f"{pivots[0]} {foreign[0]}"]
        for _ in range(rng.randint(0, 300)):
            roll = rng.random()
            if roll < 0.03:
                lines.append(rng.choice(["", "lonely", "a b c"]))
            elif roll < 0.1:
                word = rng.choice(shared)
                lines.append(f"{word} {word}")
            else:
                # skewed: early words come back often, as in a frequency-sorted dictionary
                p = pivots[min(int(rng.expovariate(0.15)), len(pivots) - 1)]
                lines.append(f"{p} {rng.choice(foreign)}")
        if lang == "ru":
            lines = [" ".join(reversed(line.split())) for line in lines]
            path = tmp_path / f"{seed}-ru-en.txt"
        else:
            path = tmp_path / f"{seed}-en-{lang}.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths[lang] = str(path)
    return paths


@pytest.mark.parametrize("drop_identical", [True, False])
@pytest.mark.parametrize("seed", range(8))
def test_streamed_pairs_make_the_probes_of_the_whole_files(tmp_path, seed, drop_identical):
    paths = random_dictionaries(tmp_path, seed)
    # is_reversed reads the file name: give the test files MUSE's names in their own folders
    for lang, path in list(paths.items()):
        folder = tmp_path / f"{seed}-{lang}"
        folder.mkdir()
        name = "ru-en.txt" if lang == "ru" else f"en-{lang}.txt"
        paths[lang] = str(Path(path).rename(folder / name))
    sources = {lang: Path(path).name for lang, path in paths.items()}
    langs = ["en", "de", "fr", "ru"]
    max_words = random.Random(seed).randint(1, 25)
    whole = {}
    for lang, path in paths.items():
        frame, _ = read_dictionary(path)
        whole[lang] = pivot_pairs(frame, lang == "ru")
    expected = build_probes(whole, sources, "en", langs, LANGUAGE_NAMES, max_words, drop_identical)
    for lang, path in paths.items():
        frame, _ = language_pairs(path, "en", lang, max_words, drop_identical)
        assert frame.height <= whole[lang].height
        got = build_probes({lang: frame}, sources, "en", [lang], LANGUAGE_NAMES, max_words,
                           drop_identical)  # fmt: skip
        assert_frame_equal(got[lang], expected[lang])
    pairs, reports = pivot_language_pairs(paths, "en", max_words, drop_identical)
    got = build_probes(pairs, sources, "en", langs, LANGUAGE_NAMES, max_words, drop_identical)
    assert_frame_equal(got["en"], expected["en"])
    assert all(reports[lang].line_numbers == read_dictionary(p)[1].line_numbers
               for lang, p in paths.items())  # fmt: skip


def test_streaming_keeps_only_what_the_probes_need(tmp_path):
    path = tmp_path / "en-de.txt"
    lines = [f"p{i} d{i}" for i in range(10_000)] + ["p1 zweite"]  # a late second answer
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    frame, _ = language_pairs(path, "en", "de", max_words=3)
    assert frame.rows() == [("p0", "d0"), ("p1", "d1"), ("p2", "d2")]  # nothing after
    frame, _ = language_pairs(path, "en", "de", max_words=2)
    assert frame.rows() == [("p0", "d0"), ("p1", "d1")]
    pairs, _ = pivot_language_pairs({"de": path}, "en", max_words=2)
    assert pairs["de"].rows() == [("p0", "d0"), ("p1", "d1"), ("p1", "zweite")]


def test_streamed_readers_fail_on_malformed_lines_when_asked(tmp_path):
    path = tmp_path / "en-de.txt"
    path.write_text("water wasser\nlonely\n" + "a b\n" * 5, encoding="utf-8")
    with pytest.raises(PolyneuronError, match=r"en-de.txt: 1 malformed line\(s\)"):
        language_pairs(path, "en", "de", max_words=1, on_malformed="fail")
    with pytest.raises(PolyneuronError, match=r"en-de.txt: 1 malformed line\(s\)"):
        pivot_language_pairs({"de": path}, "en", max_words=1, on_malformed="fail")
