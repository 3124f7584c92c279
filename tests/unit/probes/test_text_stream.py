"""Text probes read line by line and written in row groups (issue 17: scale on one machine)."""

import runpy
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pyarrow.parquet as pq
import pytest

from polyneuron import PolyneuronError
from polyneuron.io import write_parquet, write_parquet_groups
from polyneuron.probes.parallel import (
    PROBE_SCHEMA,
    count_lines,
    parallel_probes,
    probe_groups,
    split_of,
)

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "workflow" / "scripts" / "build_parallel_probes.py"


def whole_file_probes(lang, path, aligned, heldout_every, max_texts, every):
    """The probes as the whole-file reader built them before streaming: the reference."""
    raw = Path(path).read_bytes().removeprefix(b"\xef\xbb\xbf")
    texts = [line.decode().strip() for line in raw.splitlines()]
    lines = list(range(1, len(texts) + 1, every))[:max_texts]
    return pl.DataFrame(
        {
            "id": [f"{lang}-{line:05d}" for line in lines],
            "pair_id": [f"{line:05d}" if aligned else None for line in lines],
            "lang": [lang] * len(lines),
            "text": [texts[line - 1] for line in lines],
            "split": [split_of(line, heldout_every) for line in lines],
            "source": [Path(path).name] * len(lines),
            "line": lines,
        },
        schema=PROBE_SCHEMA,
    )


def build(tmp_path, lang, text, reference=None, **params):
    output = tmp_path / "out" / f"{lang}.parquet"
    snakemake = SimpleNamespace(
        input=SimpleNamespace(text=str(text), get=lambda key, default=None: reference),
        output=[str(output)],
        log=[str(tmp_path / f"{lang}.log")],
        wildcards=SimpleNamespace(lang=lang),
        params=SimpleNamespace(
            **{"aligned": False, "heldout_every": 0, "max_texts": None, "every": 1, **params}
        ),
    )
    runpy.run_path(str(SCRIPT), init_globals={"snakemake": snakemake})
    return output


@pytest.mark.parametrize("every", [1, 3])
def test_shipped_text_probes_are_the_tables_the_whole_file_reader_wrote(tmp_path, every):
    for lang in ["en", "de", "zh", "ar"]:
        path = REPO / "data" / "text" / f"{lang}.txt"
        streamed = build(tmp_path, lang, path, every=every)
        before = tmp_path / f"before-{lang}.parquet"
        write_parquet(whole_file_probes(lang, path, False, 0, None, every), before)
        assert pq.read_table(streamed).equals(pq.read_table(before)), lang
        assert "texts from" in (tmp_path / f"{lang}.log").read_text(encoding="utf-8")


def test_a_big_corpus_is_written_in_several_row_groups_with_the_same_rows(tmp_path):
    path = tmp_path / "de.txt"
    path.write_text("".join(f" Satz Nummer {i}. \n" for i in range(1, 1001)), encoding="utf-8")
    frames = probe_groups("de", path, aligned=False, heldout_every=7, every=2, group_rows=64)
    output = tmp_path / "de.parquet"
    assert write_parquet_groups(frames, output, PROBE_SCHEMA) == 500
    meta = pq.ParquetFile(output).metadata
    assert meta.num_row_groups == 8  # 7 of 64 rows, then 52
    assert max(meta.row_group(g).num_rows for g in range(meta.num_row_groups)) == 64
    expected = whole_file_probes("de", path, False, 7, None, 2)
    assert pl.read_parquet(output).equals(expected)
    assert parallel_probes("de", path, aligned=False, heldout_every=7, every=2).equals(expected)
    # long texts close a group early
    sizes = [f.height for f in probe_groups("de", path, aligned=False, group_chars=500)]
    assert max(sizes) < 40 and sum(sizes) == 1000


def test_max_texts_stops_keeping_but_every_line_is_still_checked(tmp_path):
    path = tmp_path / "en.txt"
    path.write_text("one\ntwo\nthree\n\nfive\n", encoding="utf-8")
    with pytest.raises(PolyneuronError, match=r"en\.txt:4: empty line"):
        list(probe_groups("en", path, aligned=False, max_texts=2))
    path.write_text("one\ntwo\nthree\nfour\nfive\n", encoding="utf-8")
    probes = parallel_probes("en", path, aligned=False, max_texts=2, every=2)
    assert probes["line"].to_list() == [1, 3]
    none = parallel_probes("en", path, aligned=False, max_texts=0)
    assert none.height == 0 and none.schema == pl.Schema(PROBE_SCHEMA)


def test_a_bad_line_late_in_the_file_leaves_no_output_and_names_file_and_line(tmp_path):
    path = tmp_path / "fr.txt"
    path.write_bytes(b"".join(b"ligne %d\n" % i for i in range(200)) + b"\xff\xfe\n")
    with pytest.raises(SystemExit):
        build(tmp_path, "fr", path)
    assert not (tmp_path / "out" / "fr.parquet").exists()
    assert list((tmp_path / "out").iterdir()) == []  # no temporary file either
    assert "fr.txt:201: not valid UTF-8" in (tmp_path / "fr.log").read_text(encoding="utf-8")


def test_unaligned_files_fail_after_the_whole_stream_and_leave_nothing(tmp_path):
    en = tmp_path / "en.txt"
    de = tmp_path / "de.txt"
    en.write_text("".join(f"line {i}\n" for i in range(100)), encoding="utf-8")
    de.write_text("".join(f"Zeile {i}\n" for i in range(101)), encoding="utf-8")
    with pytest.raises(PolyneuronError, match=r"de\.txt has 101 lines but .*en\.txt has 100"):
        write_parquet_groups(
            probe_groups("de", de, reference=en, group_rows=10),
            tmp_path / "de.parquet",
            PROBE_SCHEMA,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["de.txt", "en.txt"]


@pytest.mark.parametrize(
    "data",
    [b"", b"\n", b"a", b"a\n", b"a\r\nb\rc\n", b"\xef\xbb\xbfa\nb", b"a\r\r\nb\n\n", b"a\r"],
)
def test_streamed_line_count_equals_the_whole_files(tmp_path, data):
    path = tmp_path / "x.txt"
    path.write_bytes(data)
    assert count_lines(path) == len(data.removeprefix(b"\xef\xbb\xbf").splitlines())


def test_an_empty_or_blank_file_is_still_named_empty(tmp_path):
    for data in [b"", b"\xef\xbb\xbf \n\t\n", b"\n" * 5000]:
        path = tmp_path / "sw.txt"
        path.write_bytes(data)
        with pytest.raises(PolyneuronError, match=r"sw\.txt: the file is empty"):
            parallel_probes("sw", path, aligned=False)
