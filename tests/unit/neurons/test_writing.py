"""Writing systems: token scripts by Unicode ranges, languages' scripts, the per-id cache."""

from types import SimpleNamespace

import torch

from polyneuron.neurons.writing import (
    SCRIPTS,
    TokenScripts,
    in_language_script,
    language_scripts,
    token_script,
)


def test_token_script_by_unicode_ranges():
    cases = {
        "hello": "Latin", " Straße": "Latin", "вода": "Cyrillic", "水": "Han", "みず": "Kana",
        "カタカナ": "Kana", "물": "Hangul", "ماء": "Arabic", "νερό": "Greek", "מים": "Hebrew",
        "पानी": "Devanagari", "น้ำ": "Thai", "ջուր": "Other", " 123!": "None", "": "None",
        "\ufffd": "None", "▁": "None", "ab水": "Latin", "水ab": "Latin",
    }  # fmt: skip
    assert {text: token_script(text) for text in cases} == cases
    assert in_language_script("Cyrillic", "ru") and not in_language_script("Latin", "ru")
    assert in_language_script("Han", "ja") and in_language_script("Kana", "ja")
    assert in_language_script("Latin", "de") and in_language_script("Latin", "xx")
    assert not in_language_script("Han", "ko") and in_language_script("Other", "hy")


def test_token_scripts_decode_each_id_once_and_flag_the_languages_script():
    vocab, calls = {0: " the", 1: " вода", 2: " 1", 3: "水"}, []
    decoder = SimpleNamespace(
        decode=lambda ids: calls.extend(ids) or "".join(vocab[i] for i in ids)
    )
    scripts = TokenScripts(decoder)
    top1 = torch.tensor([[0, 1], [2, 3], [1, 1]])
    assert scripts.in_lang(top1, "ru").tolist() == [[False, True], [False, False], [True, True]]
    assert scripts.in_lang(top1, "de").tolist() == [[True, False], [False, False], [False, False]]
    assert [scripts(i) for i in range(4)] == ["Latin", "Cyrillic", "None", "Han"]
    assert sorted(calls) == [0, 1, 2, 3]  # each id decoded once
    assert all(script in SCRIPTS for script in map(scripts, range(4)))
    assert language_scripts("ja") == ("Kana", "Han") and language_scripts("xx") == ("Latin",)
