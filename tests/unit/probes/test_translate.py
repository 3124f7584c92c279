"""Translators: MT language codes, a tiny random seq2seq model, a tiny causal LM."""

import pytest
import torch
from tiny import MT_CODES, build_tiny_model, build_tiny_mt_model

from polyneuron import PolyneuronError
from polyneuron.probes.translate import (
    LanguageCode,
    check_translations,
    language_codes,
    load_seq2seq,
    translate_causal,
    translate_seq2seq,
)

TEXTS = ["Write a poem about the sea", "Explain photosynthesis", "Plan a picnic for six people"]


def vocab(style: str) -> dict[str, int]:
    return {token: i for i, token in enumerate(["a", "b", *MT_CODES[style]])}


def test_nllb_codes_come_from_the_flores_table():
    assert language_codes(vocab("nllb"), "en", "de") == LanguageCode("nllb", "eng_Latn", "deu_Latn")
    assert language_codes(vocab("nllb"), "en", "ko").target == "kor_Hang"


def test_m2m100_codes_wrap_the_iso_code():
    assert language_codes(vocab("m2m100"), "en", "fr") == LanguageCode("m2m100", "__en__", "__fr__")


def test_marian_multi_target_models_get_a_prefix_in_two_or_three_letters():
    assert language_codes(vocab("marian"), "en", "de") == LanguageCode("marian", None, "de")
    assert language_codes(vocab("marian"), "en", "ko").target == "kor"


def test_single_pair_models_need_no_code():
    assert language_codes(vocab("pair"), "en", "de").style == "pair"


@pytest.mark.parametrize("style", ["nllb", "m2m100", "marian"])
def test_a_language_without_a_code_is_named(style):
    with pytest.raises(PolyneuronError, match=r"no code for .*language 'sw'"):
        language_codes(vocab(style), "en", "sw")


def test_configured_codes_override_the_tables():
    table = {"eng_Latn": 0, "swh_Latn": 1, "swa_Latn": 2}
    assert language_codes(table, "en", "sw", {"sw": "swa_Latn"}).target == "swa_Latn"


@pytest.fixture(scope="module")
def mt_model(tmp_path_factory):
    folder = build_tiny_mt_model(tmp_path_factory.mktemp("mt") / "m2m", "m2m100")
    return load_seq2seq(str(folder), device="cpu")


def test_tiny_seq2seq_model_translates_every_text_in_order(mt_model):
    model, tokenizer = mt_model
    seen = []
    generate = model.generate

    def spy(*args, **kwargs):
        seen.append((kwargs["forced_bos_token_id"], kwargs["input_ids"].shape[0]))
        return generate(*args, **kwargs)

    model.generate = spy
    try:
        done = []
        out = translate_seq2seq(
            model, tokenizer, TEXTS, "en", "de", batch_size=2, max_new_tokens=4,
            progress=done.append,
        )  # fmt: skip
    finally:
        del model.generate
    assert len(out) == len(TEXTS) and all(isinstance(text, str) for text in out)
    assert [batch for _, batch in seen] == [2, 1] and sum(done) == len(TEXTS)
    assert {bos for bos, _ in seen} == {tokenizer.convert_tokens_to_ids("__de__")}
    # each text's translation is the one it gets alone (batching and sorting keep the order)
    alone = [
        translate_seq2seq(model, tokenizer, [text], "en", "de", max_new_tokens=4)[0]
        for text in TEXTS
    ]
    assert out == alone


def test_seq2seq_model_without_the_target_code_fails(mt_model):
    model, tokenizer = mt_model
    with pytest.raises(PolyneuronError, match="no code for target language 'ja'"):
        translate_seq2seq(model, tokenizer, TEXTS, "en", "ja")


def test_missing_mt_model_folder_is_named(tmp_path):
    with pytest.raises(PolyneuronError, match=r"translators\.hf\.model: no such folder"):
        load_seq2seq(str(tmp_path / "nope"))


def test_causal_translator_answers_each_text(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = build_tiny_model(tmp_path / "llama", "llama")
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    torch.manual_seed(0)
    out = translate_causal(
        model, tokenizer, TEXTS, "English", "German", batch_size=2, max_new_tokens=3
    )
    assert len(out) == len(TEXTS) and all("\n" not in text for text in out)
    assert tokenizer.padding_side == "right"  # restored
    with pytest.raises(PolyneuronError, match=r"needs \{text\}"):
        translate_causal(model, tokenizer, TEXTS, "English", "German", prompt="{target}:")


def test_empty_translations_are_named():
    check_translations(["a", "b"], ["x", "y"], "de")
    with pytest.raises(PolyneuronError, match="empty translation into 'de' for 'b'"):
        check_translations(["a", "b"], ["x", "  "], "de")
