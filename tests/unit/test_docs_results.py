"""docs/results.md: every ```python and ```sql snippet runs against a small results/ tree
written with the workflow's own schemas and writers, and finds the values planted in it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
import pytest
import torch

from polyneuron.evaluate.matrix import ABLATION_SCHEMA
from polyneuron.io import write_parquet
from polyneuron.model.hooks import NeuronStats
from polyneuron.neurons.lape import select_lape
from polyneuron.neurons.overlap import pairwise_overlap
from polyneuron.probes.muse import PROBE_SCHEMA
from polyneuron.tensors import safetensors_array, write_tensors

DOC = Path(__file__).resolve().parents[2] / "docs" / "results.md"
MODEL, CHAT_MODEL = "gemma3-270m", "smollm2-135m-instruct"
N_LAYERS, N_NEURONS = 3, 8
# lape.parquet's columns, as polyneuron.neurons.lape.select_lape writes them
LAPE_SCHEMA = {
    "layer": pl.Int32,
    "neuron": pl.Int32,
    "lang": pl.String,
    "act_prob": pl.Float64,
    "entropy": pl.Float64,
}

# LAPE: (layer, neuron) -> the languages it is specific to (one neuron shared by de and sw)
LAPE = {
    (0, 1): ["de"],
    (2, 3): ["de", "sw"],
    (2, 5): ["de"],
    (0, 0): ["sw"],
    (1, 2): ["sw"],
    (1, 4): ["sw"],
    (2, 7): ["sw"],
    (0, 6): ["en"],
    (1, 6): ["en"],
    (1, 7): ["zh"],
}
# overlap sets over 9 neurons: Jaccard de/sw 2/5, en/de 1/6, en/sw 0
OVERLAP_SETS = {"en": {0, 5, 6}, "de": {0, 1, 2, 3}, "sw": {2, 3, 4}}
# perplexity changes: (intervened, evaluated) -> own delta, its interval, random deltas by seed
EVALUATION = {
    ("de", "de"): (12.5, 10.0, 15.0, [0.5, 1.5]),
    ("de", "sw"): (0.75, 0.25, 1.25, [0.0, 0.5]),
    ("sw", "de"): (0.25, -0.5, 1.0, [0.25, 0.25]),
    ("sw", "sw"): (30.0, 20.0, 40.0, [2.0, 4.0]),
}
WORDS = [("dog", "Hund"), ("house", "Haus"), ("water", "Wasser"), ("tree", "Baum")]
NEURON_7_OF_LAYER_2 = [0.5, 3.0, -1.0, 1.25]  # per example: "Haus" drives it hardest
REFUSAL = {"en": [3.0, 0.0, 0.0, 0.0], "de": [2.0, 2.0, 0.0, 0.0]}  # cosine 1/sqrt(2)


def shard_stats(k: int) -> NeuronStats:
    """Two shards whose per-neuron means differ, so reading only one gives other values."""
    n_tokens = torch.tensor([10, 20, 30], dtype=torch.int64) * (k + 1)
    grid = torch.arange(N_LAYERS * N_NEURONS, dtype=torch.float64).reshape(N_LAYERS, N_NEURONS)
    act_sum = (grid + 1.0) * (k + 1) ** 2
    n_active = (n_tokens[:, None] // 2).expand(N_LAYERS, N_NEURONS).clone()
    return NeuronStats(n_tokens, n_active, act_sum, act_sum.square())


def build_results(root: Path) -> None:
    neurons, evaluation = root / "results/neurons" / MODEL, root / "results/evaluation" / MODEL
    lape = [
        {
            "layer": layer,
            "neuron": neuron,
            "lang": lang,
            "act_prob": 0.5 + 0.01 * neuron,
            "entropy": 0.1 * layer,
        }
        for (layer, neuron), langs in LAPE.items()
        for lang in langs
    ]
    write_parquet(
        pl.DataFrame(lape, schema=LAPE_SCHEMA).sort("layer", "neuron", "lang"),
        neurons / "lape.parquet",
    )
    langs = list(OVERLAP_SETS)
    sets = torch.zeros(9, len(langs), dtype=torch.bool)
    for k, lang in enumerate(langs):
        sets[sorted(OVERLAP_SETS[lang]), k] = True
    write_parquet(pairwise_overlap(sets, langs), neurons / "overlap.parquet")

    rows = []
    for (intervened, evaluated), (delta, low, high, randoms) in EVALUATION.items():
        conditions = [("none", None, delta, low, high)]
        conditions += [("random", s, d, d - 1.0, d + 1.0) for s, d in enumerate(randoms)]
        for control, seed, d, lo, hi in conditions:
            for metric, scale in (("nll", 1.0), ("perplexity", 100.0)):  # the snippets: nll
                rows.append(
                    {
                        "intervened": intervened,
                        "evaluated": evaluated,
                        "metric": metric,
                        "value": 20.0 + d * scale,
                        "baseline": 20.0,
                        "delta": d * scale,
                        "control": control,
                        "seed": seed,
                        "ci_low": lo * scale,
                        "ci_high": hi * scale,
                        "n_neurons": 3,
                        "n_texts": 50,
                    }
                )
    write_parquet(pl.DataFrame(rows, schema=ABLATION_SCHEMA), evaluation / "lape.parquet")

    for k in range(2):
        path = root / f"results/activations/{MODEL}/muse/de/part-{k}.parquet"
        write_parquet(shard_stats(k).to_frame(), path)

    probes = [
        {
            "id": f"de-{i}",
            "pair_id": en,
            "lang": "de",
            "text": f'German: "{de}" → English:',
            "word": de,
            "word_start": 9,
            "word_end": 9 + len(de),
            "src_lang": "de",
            "tgt_lang": "en",
            "answers": [en],
            "source": "muse",
        }
        for i, (en, de) in enumerate(WORDS)
    ]
    write_parquet(
        pl.DataFrame(probes, schema=PROBE_SCHEMA), root / "results/probes/muse/de.parquet"
    )
    metadata = {"probe": "muse", "lang": "de", "split": "train", "model": MODEL}
    path = root / f"results/activations/{MODEL}/muse/de.examples.safetensors"
    shape = (len(WORDS), N_LAYERS, N_NEURONS)
    with safetensors_array(path, "activations", shape, metadata=metadata) as out:
        out[:] = 0.125
        out[:, 2, 7] = NEURON_7_OF_LAYER_2

    tensors, chosen = {}, {}
    for layer, (lang, selected) in enumerate(REFUSAL.items(), start=1):
        directions = torch.randn(2, N_LAYERS, 4, generator=torch.Generator().manual_seed(layer))
        directions[-1, layer] = torch.tensor(selected)
        tensors[f"{lang}.directions"] = directions
        tensors[f"{lang}.selected"] = directions[-1, layer]
        chosen[lang] = {"position": -1, "layer": layer}
    path = root / f"results/neurons/{CHAT_MODEL}/refusal.safetensors"
    write_tensors(path, tensors, {"selected": json.dumps(chosen)})


def mean_act_on_german() -> dict[tuple[int, int], float]:
    """German's LAPE neurons' mean activation over both shards, from the planted counters."""
    stats = [shard_stats(k) for k in range(2)]
    act_sum = sum(s.act_sum for s in stats)
    n_tokens = sum(s.n_tokens for s in stats)
    return {
        (layer, neuron): float(act_sum[layer, neuron] / n_tokens[layer])
        for (layer, neuron), langs in LAPE.items()
        if "de" in langs
    }


# ---------------------------------------------------------------------------- the checks


def check_lape(ns: dict, out: str) -> None:
    counts = {}
    for langs in LAPE.values():
        for lang in langs:
            counts[lang] = counts.get(lang, 0) + 1
    assert dict(ns["per_lang"].iter_rows()) == counts
    assert ns["per_lang"].row(0) == ("sw", 5)
    assert "sw" in out and "neurons" in out
    assert out.count("shape:") == 2
    # German's neurons per layer: one in layer 0, two in layer 2
    assert re.search(r"│ 0\s+┆ 1\s+│", out) and re.search(r"│ 2\s+┆ 2\s+│", out)


def check_overlap(ns: dict, out: str) -> None:
    jaccard = ns["jaccard"]
    assert jaccard.loc["de", "sw"] == pytest.approx(0.4)
    assert jaccard.loc["en", "de"] == pytest.approx(1 / 6)
    assert (jaccard.values.diagonal() == 1.0).all()
    assert dict(zip(ns["nearest"].lang_a, ns["nearest"].lang_b, strict=True)) == {
        "de": "sw",
        "en": "de",
        "sw": "de",
    }
    assert "0.4" in out and "0.167" in out


def check_own(rows: list[tuple]) -> None:
    assert rows == [(i, e, d, lo, hi) for (i, e), (d, lo, hi, _) in sorted(EVALUATION.items())]


def check_own_vs_random(rows: list[tuple]) -> None:
    expected = [
        (i, e, d, lo, hi, pytest.approx(sum(r) / len(r)), len(r))
        for (i, e), (d, lo, hi, r) in sorted(EVALUATION.items())
    ]
    assert rows == expected
    assert rows[0][:6] == ("de", "de", 12.5, 10.0, 15.0, 1.0)


def check_join(rows: list[tuple]) -> None:
    means = mean_act_on_german()
    assert [(layer, neuron) for layer, neuron, _, _ in rows] == sorted(
        means, key=means.get, reverse=True
    )
    for layer, neuron, act_prob, mean_act in rows:
        assert mean_act == pytest.approx(means[layer, neuron])
        assert act_prob == pytest.approx(0.5 + 0.01 * neuron)


def check_examples(ns: dict, out: str) -> None:
    assert ns["meta"]["model"] == MODEL
    assert ns["layer2"].shape == (len(WORDS), N_NEURONS)
    assert ns["top"]["word"].to_list() == ["Haus", "Baum", "Hund", "Wasser"]
    assert ns["top"]["act"].to_list() == sorted(NEURON_7_OF_LAYER_2, reverse=True)
    assert "Haus" in out and "house" in out


def check_refusal(ns: dict, out: str) -> None:
    assert ns["chosen"]["en"] == {"position": -1, "layer": 1}
    assert ns["cosine"] == pytest.approx(2**-0.5)
    assert "cosine(en, de) = 0.707" in out


# (language, a string the snippet must contain, its check), in the page's order
CHECKS: list[tuple[str, str, Callable]] = [
    ("python", "lape.parquet", check_lape),
    ("python", "overlap.parquet", check_overlap),
    ("sql", "WHERE control = 'none'", check_own),
    ("sql", "AS random_delta", check_own_vs_random),
    ("sql", "part-*.parquet", check_join),
    ("python", "examples.safetensors", check_examples),
    ("python", "refusal.safetensors", check_refusal),
]


def snippets() -> list[tuple[str, str]]:
    blocks = re.findall(r"^```(python|sql)\n(.*?)^```$", DOC.read_text("utf-8"), re.M | re.S)
    return [(lang, code) for lang, code in blocks]


def test_lape_schema_is_the_workflows() -> None:
    act_prob = torch.rand(2, 50, 3, generator=torch.Generator().manual_seed(0))
    assert select_lape(act_prob, ["en", "de", "sw"], top_rate=0.1).schema == LAPE_SCHEMA


def test_every_snippet_has_a_check() -> None:
    found = snippets()
    assert [lang for lang, _ in found] == [lang for lang, _, _ in CHECKS]
    for (_, code), (_, marker, _) in zip(found, CHECKS, strict=True):
        assert marker in code
    assert "snakemake --report report.html" in DOC.read_text("utf-8")


@pytest.mark.parametrize("index", range(len(CHECKS)), ids=[c.__name__ for _, _, c in CHECKS])
def test_snippet(
    index: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    build_results(tmp_path)
    monkeypatch.chdir(tmp_path)
    lang, code = snippets()[index]
    check = CHECKS[index][2]
    if lang == "sql":
        check(duckdb.sql(code).fetchall())
    else:
        namespace: dict = {"__name__": "__docs__"}
        exec(compile(code, f"{DOC}:snippet {index}", "exec"), namespace)
        check(namespace, capsys.readouterr().out)
