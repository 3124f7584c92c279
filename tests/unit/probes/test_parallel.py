import runpy
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
import yaml

from polyneuron import PolyneuronError
from polyneuron.probes.parallel import FLORES_CODES, parallel_probes, read_texts, text_file

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "data" / "parallel"
# the embedded default config's languages, which the shipped corpus must cover
DEFAULT_LANGS = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))["languages"]


def write(folder: Path, name: str, lines: list[str]) -> Path:
    path = folder / name
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


EN = ["It is cold.", "The cat sleeps.", "We eat bread.", "Trains are late.", "Good night."]
DE = ["Es ist kalt.", "Die Katze schläft.", "Wir essen Brot.", "Züge sind spät.", "Gute Nacht."]


def test_aligned_files_give_one_probe_per_line_keyed_by_line_number(tmp_path):
    en = write(tmp_path, "en.txt", EN)
    de = write(tmp_path, "de.txt", [f"  {line} " for line in DE])  # edges are stripped
    probes = parallel_probes("de", de, reference=en, heldout_every=5)
    assert probes["id"].to_list() == ["de-00001", "de-00002", "de-00003", "de-00004", "de-00005"]
    assert probes["pair_id"].to_list() == ["00001", "00002", "00003", "00004", "00005"]
    assert probes["text"].to_list() == DE
    assert probes["lang"].unique().to_list() == ["de"]
    assert probes["source"].unique().to_list() == ["de.txt"]
    assert probes["line"].to_list() == [1, 2, 3, 4, 5]
    # line 5 is the only multiple of 5
    assert probes["split"].to_list() == ["train"] * 4 + ["heldout"]
    en_probes = parallel_probes("en", en, reference=en)
    assert en_probes["pair_id"].to_list() == probes["pair_id"].to_list()


def test_split_follows_the_line_number_so_max_texts_does_not_move_it(tmp_path):
    lines = [f"Sentence number {i}." for i in range(1, 8)]
    path = write(tmp_path, "en.txt", lines)
    every_third = parallel_probes("en", path, heldout_every=3)
    assert every_third.filter(pl.col("split") == "heldout")["line"].to_list() == [3, 6]
    first_four = parallel_probes("en", path, heldout_every=3, max_texts=4)
    assert first_four["split"].to_list() == ["train", "train", "heldout", "train"]
    assert set(parallel_probes("en", path, heldout_every=0)["split"]) == {"train"}


def test_monolingual_text_has_no_pair_id_and_no_alignment_check(tmp_path):
    en = write(tmp_path, "en.txt", EN)
    de = write(tmp_path, "de.txt", DE[:2])
    probes = parallel_probes("de", de, reference=en, aligned=False)
    assert probes.height == 2
    assert probes["pair_id"].null_count() == 2


def test_flores_pattern_finds_files_by_flores_code_and_config_codes_win(tmp_path):
    deu = write(tmp_path, "deu_Latn.devtest", DE)
    zht = write(tmp_path, "zho_Hant.devtest", ["你好。"])
    assert text_file(tmp_path, "{flores}.devtest", "de") == deu
    assert text_file(tmp_path, "{flores}.devtest", "zh", {"zh": "zho_Hant"}) == zht
    assert FLORES_CODES["zh"] == "zho_Hans"
    plain = write(tmp_path, "de.txt", DE)
    assert text_file(tmp_path, "{lang}.txt", "de") == plain


def test_unknown_language_code_names_the_config_key_for_flores_codes(tmp_path):
    with pytest.raises(PolyneuronError, match=r"unknown language code 'qq'.*flores_codes"):
        text_file(tmp_path, "{flores}.devtest", "qq")


def test_missing_language_file_names_the_language_and_path(tmp_path):
    write(tmp_path, "en.txt", EN)
    with pytest.raises(PolyneuronError, match=r"no text file for language 'sw': .*sw\.txt"):
        text_file(tmp_path, "{lang}.txt", "sw")


@pytest.mark.parametrize("pattern", ["texts.txt", "{language}.txt", "{lang}.{split}"])
def test_pattern_must_use_lang_or_flores_and_nothing_else(tmp_path, pattern):
    with pytest.raises(PolyneuronError, match=r"probes\.flores\.pattern"):
        text_file(tmp_path, pattern, "en")


def test_unaligned_files_name_both_files_and_their_line_counts(tmp_path):
    en = write(tmp_path, "en.txt", EN)
    de = write(tmp_path, "de.txt", DE[:4])
    with pytest.raises(
        PolyneuronError, match=r"unaligned.*de\.txt has 4 lines but .*en\.txt has 5"
    ):
        parallel_probes("de", de, reference=en)


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_empty_line_names_file_and_line(tmp_path, blank):
    path = write(tmp_path, "fr.txt", ["Il fait froid.", blank, "Bonne nuit."])
    with pytest.raises(PolyneuronError, match=r"fr\.txt:2: empty line"):
        read_texts(path)


def test_trailing_blank_line_counts_as_an_empty_line(tmp_path):
    path = tmp_path / "fr.txt"
    path.write_text("Il fait froid.\nBonne nuit.\n\n", encoding="utf-8")
    with pytest.raises(PolyneuronError, match=r"fr\.txt:3: empty line"):
        read_texts(path)


def test_empty_file_is_rejected(tmp_path):
    path = tmp_path / "fr.txt"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(PolyneuronError, match=r"fr\.txt: the file is empty"):
        read_texts(path)


def test_undecodable_bytes_name_file_and_line(tmp_path):
    path = tmp_path / "ru.txt"
    path.write_bytes("Кошка спит.\n".encode() + b"\xd0\n")
    with pytest.raises(PolyneuronError, match=r"ru\.txt:2: not valid UTF-8"):
        read_texts(path)


def test_crlf_and_byte_order_mark_are_accepted_and_unicode_separators_split_nothing(tmp_path):
    path = tmp_path / "en.txt"
    path.write_bytes(b"\xef\xbb\xbfFirst line.\r\nSecond\xe2\x80\xa8line.\r\n")
    assert read_texts(path) == ["First line.", "Second\u2028line."]


def run_script(tmp_path, lang, text, reference, **params):
    """Run the workflow's script as Snakemake would, with a stand-in ``snakemake`` object."""
    output = tmp_path / "out" / f"{lang}.parquet"
    inputs = SimpleNamespace(text=str(text), get=lambda key, default=None: reference)
    snakemake = SimpleNamespace(
        input=inputs,
        output=[str(output)],
        log=[str(tmp_path / f"{lang}.log")],
        wildcards=SimpleNamespace(lang=lang),
        params=SimpleNamespace(
            **{"aligned": True, "heldout_every": 5, "max_texts": None, "every": 1, **params}
        ),
    )
    script = REPO / "workflow" / "scripts" / "build_parallel_probes.py"
    runpy.run_path(str(script), init_globals={"snakemake": snakemake})
    return output


def test_script_writes_the_probes_and_bad_input_leaves_no_output(tmp_path):
    en = write(tmp_path, "en.txt", EN)
    de = write(tmp_path, "de.txt", DE)
    output = run_script(tmp_path, "de", de, str(en))
    assert pl.read_parquet(output)["text"].to_list() == DE
    short = write(tmp_path, "fr.txt", ["Bonjour."])
    with pytest.raises(SystemExit):
        run_script(tmp_path, "fr", short, str(en))
    assert not (tmp_path / "out" / "fr.parquet").exists()
    assert list((tmp_path / "out").iterdir()) == [output]  # no temporary file left behind
    assert "unaligned files" in (tmp_path / "fr.log").read_text(encoding="utf-8")


def test_shipped_corpus_has_300_aligned_sentences_in_each_default_language():
    for lang in DEFAULT_LANGS:
        path = text_file(SHIPPED, "{lang}.txt", lang)
        probes = parallel_probes(lang, path, reference=SHIPPED / "en.txt")
        assert probes.height == 300, lang
        # every 5th of 300 lines
        assert probes.filter(pl.col("split") == "heldout").height == 60, lang
        assert probes["text"].n_unique() == 300, lang
    words = [len(text.split()) for text in read_texts(SHIPPED / "en.txt")]
    assert min(words) >= 6 and max(words) <= 20
    assert (SHIPPED / "SOURCES.md").is_file()


def test_every_nth_line_samples_evenly_and_keeps_line_numbers(tmp_path):
    de = write(tmp_path, "de.txt", DE)
    probes = parallel_probes("de", de, aligned=False, heldout_every=0, every=2)
    assert probes["line"].to_list() == [1, 3, 5]
    assert probes["text"].to_list() == [DE[0], DE[2], DE[4]]
    assert probes["id"].to_list() == ["de-00001", "de-00003", "de-00005"]
    assert set(probes["split"]) == {"train"}
    first = parallel_probes("de", de, aligned=False, every=2, max_texts=2)
    assert first["line"].to_list() == [1, 3]
    with pytest.raises(ValueError, match="every must be positive"):
        parallel_probes("de", de, aligned=False, every=0)


def test_a_missing_text_corpus_file_names_the_text_probes_config_keys(tmp_path):
    with pytest.raises(PolyneuronError, match=r"probes\.text\.dir and probes\.text\.pattern"):
        text_file(tmp_path, "{lang}.txt", "sw", key="probes.text")


def test_the_shipped_text_corpus_covers_the_default_languages():
    for lang in DEFAULT_LANGS:
        texts = read_texts(REPO / "data" / "text" / f"{lang}.txt")
        assert len(texts) > 3000 and len(set(texts)) == len(texts), lang
