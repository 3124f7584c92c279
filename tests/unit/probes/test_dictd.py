"""Unit tests of polyneuron.probes.dictd on hand-written dictd index lines and FreeDict."""

from __future__ import annotations

import gzip

import pytest

from polyneuron.probes import dictd

# --- base-64 numbers and index lines -------------------------------------------------------


@pytest.mark.parametrize(
    ("digits", "value"),
    [
        ("A", 0),
        ("B", 1),
        ("Z", 25),
        ("a", 26),
        ("z", 51),
        ("0", 52),
        ("9", 61),
        ("+", 62),
        ("/", 63),
        ("BA", 64),  # 1 * 64 + 0
        ("BB", 65),  # 1 * 64 + 1
        ("CA", 128),  # 2 * 64 + 0
        ("BAA", 4096),  # 1 * 64 ** 2
        ("//", 4095),  # 63 * 64 + 63
        ("c", 28),
        ("kW", 36 * 64 + 22),  # k = 36, W = 22
    ],
)
def test_decode_number_reads_most_significant_digit_first(digits: str, value: int) -> None:
    assert dictd.decode_number(digits) == value


@pytest.mark.parametrize("digits", ["", "A=", "A-B", "é"])
def test_decode_number_rejects_empty_and_foreign_characters(digits: str) -> None:
    with pytest.raises(ValueError):
        dictd.decode_number(digits)


def test_parse_index_line_splits_headword_offset_and_length() -> None:
    assert dictd.parse_index_line("house\tBA\tc\n") == dictd.IndexEntry("house", 64, 28)


def test_parse_index_line_keeps_spaces_inside_the_headword() -> None:
    assert dictd.parse_index_line("good morning\tB\tC") == dictd.IndexEntry("good morning", 1, 2)


def test_parse_index_line_rejects_lines_without_three_columns() -> None:
    with pytest.raises(ValueError, match="2 column"):
        dictd.parse_index_line("house\tBA\n")


def test_parse_index_skips_blank_lines() -> None:
    entries = list(dictd.parse_index(["a\tA\tB\n", "\n", "b\tB\tB\n"]))
    assert [e.headword for e in entries] == ["a", "b"]


@pytest.mark.parametrize(
    ("headword", "metadata"),
    [
        ("00-database-info", True),
        ("00databaseinfo", True),
        ("00databaseutf8", True),
        ("00 gauge", False),
        ("house", False),
    ],
)
def test_is_metadata_recognises_both_spellings_of_database_entries(
    headword: str, metadata: bool
) -> None:
    assert dictd.is_metadata(headword) is metadata


# --- reading definitions ------------------------------------------------------------------

DATA = "00-database-info\nTest dictionary\nhouse /haus/\nHaus\ndog /dɔɡ/\nHund\n".encode()
# byte offsets: the info entry is bytes 0..33 (17 + 16), "house /haus/\nHaus\n" starts at
# 33 and is 13 + 5 = 18 bytes long; "dog /dɔɡ/\nHund\n" starts at 51 and is 12 + 5 = 17
# bytes long ("ɔ" and "ɡ" are two bytes each in UTF-8)
INDEX = [
    "00databaseinfo\tA\th\n",  # 0 (A), 33 (h = 26 + 7)
    "dog\tz\tR\n",  # 51 (z = 26 + 25), 17 (R)
    "house\th\tS\n",  # 33 (h), 18 (S)
    "haus\th\tS\n",  # a second key for the same definition
]


def test_offsets_computed_by_hand_match_the_data() -> None:
    assert DATA[33:51] == b"house /haus/\nHaus\n"
    assert DATA[51:68] == "dog /dɔɡ/\nHund\n".encode()
    assert len(DATA) == 68


def test_iter_definitions_skips_metadata_and_reads_each_definition_once() -> None:
    entries = list(dictd.iter_definitions(INDEX, DATA))
    assert [(e.key, e.headwords, e.text) for e in entries] == [
        ("dog", ("dog",), "dog /dɔɡ/\nHund\n"),
        ("house", ("house",), "house /haus/\nHaus\n"),
    ]


def test_iter_definitions_can_include_metadata() -> None:
    keys = [e.key for e in dictd.iter_definitions(INDEX, DATA, include_metadata=True)]
    assert keys == ["00databaseinfo", "dog", "house"]


def test_read_definition_rejects_entries_past_the_end() -> None:
    with pytest.raises(ValueError, match="past the end"):
        dictd.read_definition(b"short", dictd.IndexEntry("x", 2, 10))


def test_iter_entries_reads_gzip_compressed_dict_files(tmp_path) -> None:
    (tmp_path / "t.index").write_text("".join(INDEX), encoding="utf-8")
    with gzip.open(tmp_path / "t.dict.dz", "wb") as handle:
        handle.write(DATA)
    entries = list(dictd.iter_entries(tmp_path / "t.index", tmp_path / "t.dict.dz"))
    assert [dictd.extract_translations(e.text) for e in entries] == [["Hund"], ["Haus"]]
    info = dictd.read_metadata(tmp_path / "t.index", tmp_path / "t.dict.dz", "info")
    assert info == "00-database-info\nTest dictionary\n"


# --- headword lines ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "forms"),
    [
        ("house /hˈaʊs/ <n>", ("house",)),
        ("Gehen /ɡˈeːən/ <neut, n, sg>", ("Gehen",)),
        ("go //ɡoʊ// //ɡu// <v>", ("go",)),
        ("acute /ɐkjˈuːt/ (´)", ("acute",)),
        ("aufhören, etw. zu tun /ˈaʊfhˌøːrən/ <v>", ("aufhören", "etw. zu tun")),
        (" [ichi1]  家 /ie/,  [ichi1] いえ /ˈie̞/", ("家", "いえ")),
        ("آدميّ، بشريّ /ʔˈaːdmiː/", ("آدميّ", "بشريّ")),
    ],
)
def test_parse_headword_line_drops_pronunciation_tags_and_splits_forms(
    line: str, forms: tuple[str, ...]
) -> None:
    assert dictd.parse_headword_line(line) == forms


# --- cleaning items ---------------------------------------------------------------------


def test_remove_bracketed_handles_nested_parentheses_and_all_bracket_kinds() -> None:
    text = "a (noun (common) (futsuumeishi)) b <v, trans> c [mus.] d {see x} e"
    assert dictd.remove_bracketed(text).split() == ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize(
    ("item", "cleaned"),
    [
        ("  Haus  ", "Haus"),
        ("みず 2.", "みず"),  # a sense number run onto the previous line
        ("nenda!", "nenda"),
        ("'word'", "word"),
        ("j'", "j'"),  # an elision keeps its apostrophe (and then is no single word)
        ("pack sth. in", "pack sth"),  # not "in"
        ("işemek. go a long way", "işemek"),
        ("the .... river", ""),  # a phrase template
        ("रखा~जाना", "रखा जाना"),
        ("हो_जाना", "हो जाना"),
    ],
)
def test_clean_item_strips_numbering_punctuation_and_what_follows_a_sentence_end(
    item: str, cleaned: str
) -> None:
    assert dictd.clean_item(item) == cleaned


def test_clean_item_strips_given_prefixes_only_when_something_remains() -> None:
    assert dictd.clean_item("to go", ("to ",)) == "go"
    assert dictd.clean_item("to", ("to ",)) == "to"
    assert dictd.clean_item("to go") == "to go"


@pytest.mark.parametrize(
    ("item", "single"),
    [
        ("haus", True),
        ("Straße", True),
        ("aujourd'hui", True),
        ("e-mail", True),
        ("食べる", True),
        ("पानी", True),  # vowel signs are combining marks
        ("ein Haus", False),
        ("pack\tit", False),
        ("1990", False),
        ("b2b", False),
        ("-ist", False),
        ("aqu‐", False),
        ("...", False),
        ("", False),
    ],
)
def test_is_single_word_accepts_only_letters_joined_by_inner_hyphen_or_apostrophe(
    item: str, single: bool
) -> None:
    assert dictd.is_single_word(item) is single


def test_split_items_splits_on_commas_and_semicolons_of_several_scripts() -> None:
    line = "groß, schwer; wichtig <adj> (fig.)، كبير、大きい"
    assert dictd.split_items(line) == ["groß", "schwer", "wichtig", "كبير", "大きい"]


# --- translations of whole definitions --------------------------------------------------

ENG_DEU = """water /wˈɔːtə/ <v>
gießen, begießen, bewässern <v, trans>
      "water the plants"  - Blumen gießen
   Synonym: {supply water}

 see: {watering}, {watered}
"""

ENG_TUR = """go /ɡˈəʊ/
1. (went, gone) gitmek, hareket etmek
2. ayrılmak
26. (k.dili) işemek. go a long way çok iş görmek
"""

WIKTIONARY = """good //ɡʊd// <adj>
1. hyvä 2.
acting in the interest of good; ethical good intentions
 3.
beneficial; worthwhile
2. hyvä, terveellinen
healthful
"""

SWH_ENG = """acha /ˈatʃa/ <v>
1.
leave
2.
quit, stop doing sth
"""

JPN_ENG = """ [ichi1]  水 /mizu/,  [ichi1] みず /mˈizɯᵝ/
1. (noun (common) (futsuumeishi))
{湯・ゆ・1} (み is generally used in compounds)
water (esp. cool, fresh water, e.g. drinking water)
2. fluid (esp. in an animal tissue), liquid
"""

ENG_HIN = """go /ɡˈəʊ/ <V>
1. जाना
      "I go to school."
2. रखा~जाना
      "These clothes go into that suitcase."
3. समाना[<जाना]
"""


def test_translations_skip_examples_synonyms_and_see_also() -> None:
    assert dictd.extract_translations(ENG_DEU) == ["gießen", "begießen", "bewässern"]


def test_translations_take_every_numbered_sense_and_drop_phrases() -> None:
    assert dictd.extract_translations(ENG_TUR) == ["gitmek", "ayrılmak", "işemek"]


def test_translations_skip_wiktionary_glosses_and_indented_sub_numbers() -> None:
    assert dictd.extract_senses(WIKTIONARY) == [["hyvä"], ["hyvä", "terveellinen"]]
    assert dictd.extract_translations(WIKTIONARY) == ["hyvä", "terveellinen"]


def test_translations_follow_a_bare_sense_number_to_the_next_line() -> None:
    assert dictd.extract_senses(SWH_ENG) == [["leave"], ["quit"]]


def test_translations_skip_grammar_label_lines_and_strip_notes() -> None:
    assert dictd.extract_senses(JPN_ENG) == [["water"], ["fluid", "liquid"]]


def test_translations_drop_phrases_joined_by_tilde() -> None:
    assert dictd.extract_translations(ENG_HIN) == ["जाना", "समाना"]


def test_translations_strip_infinitive_prefix_when_asked() -> None:
    text = "essen /ˈɛsn̩/ <v>\nto eat, to dine out, feed\n"
    assert dictd.extract_translations(text, strip_prefixes=("to ",)) == ["eat", "feed"]
    assert dictd.extract_translations(text) == ["feed"]


def test_translations_of_an_entry_with_only_a_headword_are_empty() -> None:
    assert dictd.extract_translations("house /haus/\n") == []
    assert dictd.translation_lines("house /haus/") == []
