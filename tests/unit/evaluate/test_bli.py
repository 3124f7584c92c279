"""BLI: the first word of a continuation and its match against gold answers, the held-out pairs
after the probes, batched early-stopping greedy decoding against ``generate`` one prompt at a
time, P@1 with and without neurons off against hand runs, and the bridge targets' overlap sets."""

from __future__ import annotations

import polars as pl
import pytest
import torch

from polyneuron import PolyneuronError
from polyneuron.evaluate.bli import (
    BliItems,
    _word_complete,
    bli_hits,
    bli_matrix,
    bridge_sets,
    dictionary_tests,
    first_word,
    greedy_continuations,
    heldout_pairs,
    is_hit,
)
from polyneuron.evaluate.interventions import deactivate_neurons
from polyneuron.evaluate.matrix import ABLATION_SCHEMA
from polyneuron.probes.muse import build_probes, pivot_pairs, read_dictionary

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")
NAMES = {"en": "English", "de": "German"}
PROMPTS = [
    'German: "Wasser" → English:',
    'French: "eau" → English: "',
    'Chinese: "水" → English:',
    "the quick brown",
    'Russian: "вода" → English: "',
    "der schnelle braune Fuchs springt über",
]


# --------------------------------------------------------------------------- answers


@pytest.mark.parametrize(
    ("continuation", "word"),
    [
        (' "dog"', "dog"),
        ('dog" is', "dog"),
        (' "Dog". It', "Dog"),
        ("\n\nThe Chinese", "The"),
        (" «chien»", "chien"),
        (' → "dog"', "dog"),
        (' "to cut', "to"),
        ("dog, cat", "dog"),
        (" 'don't' said", "don't"),
        (" 'dog'", "dog"),
        (' "e-mail"', "e-mail"),
        ('"狗"', "狗"),
        (' "…"', ""),
        ("", ""),
    ],
)
def test_first_word_skips_the_opening_quote_and_stops_at_space_quote_or_punctuation(
    continuation, word
):
    assert first_word(continuation) == word


def test_a_word_is_complete_once_a_character_after_it_ends_it():
    assert not _word_complete(' "')
    assert not _word_complete(' "dog')
    assert not _word_complete(" 'don")  # "don't" may follow
    assert _word_complete(' "dog"')
    assert _word_complete("dog ")


def test_a_hit_is_a_gold_answer_whatever_the_case():
    assert is_hit(' "Doctor"', ["doctor"])
    assert is_hit('shut" or', ["closed", "shut"])
    assert not is_hit(' "doctors"', ["doctor"])
    assert not is_hit(' "to be', ["to be"])  # MUSE words hold no space: only "to" is compared
    assert not is_hit(' ""', [""])


# --------------------------------------------------------------------------- test pairs


def test_heldout_pairs_are_the_dictionary_entries_after_the_probes(tmp_path):
    path = tmp_path / "en-de.txt"
    path.write_text(
        "water wasser\nhouse haus\ndog hund\nradio radio\ncat katze\nwater gewässer\n"
        "lock schloss\ncastle schloss\nbread brot\nmalformed line here\n",
        encoding="utf-8",
    )
    frame, _ = read_dictionary(path)
    pairs = pivot_pairs(frame, swapped=False)
    probes = build_probes({"de": pairs}, {"de": "en-de.txt"}, "en", ["en", "de"], NAMES, 3)["de"]
    assert probes["word"].to_list() == ["wasser", "haus", "hund"]

    test = heldout_pairs(pairs, "en-de.txt", "de", "en", NAMES, max_words=3, max_pairs=2)
    # radio: spelled alike; gewässer: its English word (water) is a probe's translation
    assert test["word"].to_list() == ["katze", "schloss"]
    assert test["text"].to_list() == ['German: "katze" → English:', 'German: "schloss" → English:']
    assert test["answers"].to_list() == [["cat"], ["lock", "castle"]]
    rest = heldout_pairs(pairs, "en-de.txt", "de", "en", NAMES, max_words=3, max_pairs=10)
    assert rest["word"].to_list() == ["katze", "schloss", "brot"]  # the dictionary runs out
    assert heldout_pairs(pairs, "en-de.txt", "de", "en", NAMES, 10, 5).is_empty()

    via_file, malformed = dictionary_tests(path, "de", "en", NAMES, max_words=3, max_pairs=2)
    assert via_file.equals(test)
    assert malformed.line_numbers == [10]
    reverse = tmp_path / "de-en.txt"  # German first: read with its columns swapped
    lines = path.read_text(encoding="utf-8").splitlines()[:9]
    reverse.write_text("".join(f"{b} {a}\n" for a, b in map(str.split, lines)), encoding="utf-8")
    swapped, _ = dictionary_tests(reverse, "de", "en", NAMES, max_words=3, max_pairs=2)
    assert swapped.drop("source").equals(test.drop("source"))


# --------------------------------------------------------------------------- generation


def generate_alone(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    ids = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


@pytest.mark.parametrize("family", ["llama", "gemma3", "gpt2"])
def test_batched_greedy_gives_the_first_word_of_generate_one_prompt_at_a_time(load, family):
    model, tokenizer = load(family)
    alone = [generate_alone(model, tokenizer, p, 6) for p in PROMPTS]
    batched = greedy_continuations(model, tokenizer, PROMPTS, CPU, max_new_tokens=6, batch_size=4)
    assert [first_word(t) for t in batched] == [first_word(t) for t in alone]
    assert any(first_word(t) for t in alone)  # the comparison is not of empty words only
    for mine, theirs in zip(batched, alone, strict=True):
        assert theirs.startswith(mine)  # stopped early, never different


def hand_words(model, tokenizer, prompts, max_new_tokens=6) -> list[str]:
    return [first_word(generate_alone(model, tokenizer, p, max_new_tokens)) for p in prompts]


def test_p_at_1_counts_the_prompts_whose_first_word_is_gold(load):
    model, tokenizer = load("llama")
    words = hand_words(model, tokenizer, PROMPTS)
    # gold: the word itself upper-cased for even prompts, a word it is not for odd ones
    answers = [[w.upper(), "x"] if i % 2 == 0 else ["not-" + w] for i, w in enumerate(words)]
    items = {
        "de": BliItems(PROMPTS[:4], answers[:4]),
        "fr": BliItems(PROMPTS[4:], answers[4:]),
    }
    hits = bli_hits(model, tokenizer, items, CPU, max_new_tokens=6, batch_size=3)
    expected = [float(i % 2 == 0 and w != "") for i, w in enumerate(words)]
    assert hits["de"].tolist() == expected[:4]
    assert hits["fr"].tolist() == expected[4:]
    assert sum(expected) >= 1


def test_bli_matrix_scores_each_set_off_against_hand_runs(load):
    model, tokenizer = load("llama")
    plain = hand_words(model, tokenizer, PROMPTS, 4)
    neurons = {layer: torch.arange(0, 40, 2) for layer in range(3)}  # 20 of 48 per layer
    with deactivate_neurons(model, neurons):
        ablated = hand_words(model, tokenizer, PROMPTS, 4)
    assert ablated != plain  # the set changes some answers
    # gold = the plain model's words: the baseline hits wherever it gives one
    items = {"de": BliItems(PROMPTS, [[w] for w in plain])}
    frame = bli_matrix(model, tokenizer, {"de": neurons, "fr": {}}, items, [0, 1], CPU,
                       max_new_tokens=4, n_boot=50)  # fmt: skip
    assert frame.schema == pl.Schema(ABLATION_SCHEMA)
    assert frame["control"].to_list() == ["none", "random", "random"]  # fr: no set, skipped
    assert frame["seed"].to_list() == [None, 0, 1]
    assert frame["n_neurons"].to_list() == [60, 60, 60]
    assert set(frame["metric"]) == {"p_at_1"} and set(frame["intervened"]) == {"de"}
    n_plain = sum(w != "" for w in plain)
    assert frame["baseline"][0] == pytest.approx(n_plain / len(PROMPTS))
    same = sum(a == p != "" for a, p in zip(ablated, plain, strict=True))
    assert frame["value"][0] == pytest.approx(same / len(PROMPTS))
    assert frame["n_texts"][0] == len(PROMPTS)


# --------------------------------------------------------------------------- bridges


def top_sets(ones: dict[str, list[tuple[int, int]]]) -> torch.Tensor:
    """act_prob [2 layers, 10 neurons, lang]: 1.0 at the listed (layer, neuron), else 0 — each
    language's top 10% (rate 0.9 of 20 values: the 18th smallest) are exactly its ones."""
    act_prob = torch.zeros(2, 10, len(ones))
    for k, cells in enumerate(ones.values()):
        for layer, neuron in cells:
            act_prob[layer, neuron, k] = 1.0
    return act_prob


def test_bridge_sets_are_the_target_and_selected_bridge_overlap():
    ones = {
        "sw": [(0, 1), (0, 2), (1, 3), (1, 4)],
        "de": [(0, 2), (1, 3), (1, 4), (1, 9)],
        "fr": [(0, 1), (0, 2), (0, 3), (1, 5)],
    }
    act_prob = top_sets(ones)
    bridges = pl.DataFrame(
        {
            "target": ["sw"] * 4,
            "candidate": ["de", "de", "fr", "fr"],
            "layer": [0, 1, 0, 1],
            "n_neurons": [1, 2, 2, 0],
            "rank": [1, 1, 2, 2],
            "selected": [True, True, False, False],
        }
    )
    sets = bridge_sets(bridges, act_prob, list(ones), 0.9)
    assert list(sets) == ["bridge:de/sw"]
    assert {layer: idx.tolist() for layer, idx in sets["bridge:de/sw"].items()} == {
        0: [2],
        1: [3, 4],
    }
    stale = bridges.with_columns(n_neurons=pl.Series([1, 3, 2, 0]))
    with pytest.raises(PolyneuronError, match="rerun score_bridges"):
        bridge_sets(stale, act_prob, list(ones), 0.9)
    assert bridge_sets(bridges.with_columns(selected=False), act_prob, list(ones), 0.9) == {}
