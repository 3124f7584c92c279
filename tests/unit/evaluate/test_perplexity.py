"""The perplexity evaluation: per-text NLL against a direct one-text-at-a-time computation
(also under an intervention), corpus perplexity and its bootstrap against plain numpy, the
ablation rows on hand-made scores, and the ablation matrix end to end on a tiny model."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch

import polyneuron.evaluate.bootstrap as bootstrap
import polyneuron.model.adapters as adapters
from polyneuron.evaluate.interventions import (
    deactivate_neurons,
    neuron_set_from_frame,
    random_control,
)
from polyneuron.evaluate.matrix import ABLATION_SCHEMA, set_size
from polyneuron.evaluate.perplexity import (
    ablation_matrix,
    bootstrap_nll,
    bootstrap_perplexity,
    language_ablation_rows,
    perplexity,
    summarize_ablation,
    text_nll,
)

TEXTS = [
    'English: "water" → German:',
    "the quick brown fox jumps over the lazy dog",
    "水",
    "",  # only the BOS token: nothing to predict
    "der schnelle braune Fuchs springt über den faulen Hund, le renard brun rapide saute",
    "le chien",
]


N_NEURONS = 48  # tiny models: intermediate size 48, 3 layers


pytestmark = pytest.mark.usefixtures("one_thread")


CPU = torch.device("cpu")


def direct_nll(model, tokenizer, texts: list[str]) -> tuple[list[float], list[int]]:
    """One text at a time, no padding: -Σ log p(token | prefix) over every token after the first."""
    nll, tokens = [], []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt")["input_ids"]
            if ids.shape[1] < 2:
                nll.append(0.0)
                tokens.append(0)
                continue
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), dim=-1)
            nll.append(float(-logp.gather(-1, ids[0, 1:, None]).sum()))
            tokens.append(ids.shape[1] - 1)
    return nll, tokens


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_text_nll_matches_a_direct_computation(load, family, monkeypatch):
    model, tokenizer = load(family)
    want_nll, want_tokens = direct_nll(model, tokenizer, TEXTS)
    assert want_tokens[3] == 0 and len(set(want_tokens)) >= 4  # lengths differ
    # small batches (padding inside them) and logits a few positions at a time
    monkeypatch.setattr(adapters, "LOGIT_ELEMENTS", 7 * model.config.vocab_size)
    nll, tokens = text_nll(model, tokenizer, TEXTS, CPU, batch_tokens=64, max_batch_size=3)
    assert nll.dtype == torch.float64 and tokens.dtype == torch.long
    assert tokens.tolist() == want_tokens
    torch.testing.assert_close(
        nll, torch.tensor(want_nll, dtype=torch.float64), atol=1e-4, rtol=1e-5
    )
    # one batch for everything gives the same
    whole, whole_tokens = text_nll(model, tokenizer, TEXTS, CPU)
    torch.testing.assert_close(whole, nll, atol=1e-4, rtol=1e-5)
    assert torch.equal(whole_tokens, tokens)
    assert (nll[tokens > 0] > 0).all() and nll[3] == 0


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_text_nll_runs_under_interventions(load, family):
    model, tokenizer = load(family)
    chosen = {0: torch.arange(0, 48, 2), 2: torch.tensor([1, 5, 9])}
    plain, tokens = text_nll(model, tokenizer, TEXTS, CPU, batch_tokens=64)
    with deactivate_neurons(model, chosen):
        off, off_tokens = text_nll(model, tokenizer, TEXTS, CPU, batch_tokens=64)
        want, _ = direct_nll(model, tokenizer, TEXTS)
    torch.testing.assert_close(off, torch.tensor(want, dtype=torch.float64), atol=1e-4, rtol=1e-5)
    assert torch.equal(tokens, off_tokens)
    assert not torch.allclose(off[tokens > 0], plain[tokens > 0])
    again, _ = text_nll(model, tokenizer, TEXTS, CPU, batch_tokens=64)
    assert torch.equal(again, plain)  # the hooks are gone


def test_perplexity_is_token_weighted():
    nll = [2.0, 9.0, 0.0]
    tokens = [1, 3, 0]
    assert perplexity(nll, tokens) == pytest.approx(math.exp(11.0 / 4.0), rel=1e-15)
    assert perplexity(torch.tensor(nll), torch.tensor(tokens)) == perplexity(nll, tokens)
    # not the mean of per-text perplexities
    assert perplexity(nll, tokens) != pytest.approx((math.exp(2.0) + math.exp(3.0)) / 2)
    assert math.isnan(perplexity([], []))
    assert math.isnan(perplexity([0.0], [0]))
    with pytest.raises(ValueError, match="token counts"):
        perplexity([1.0, 2.0], [1])


def scores(n: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    tokens = rng.integers(5, 40, size=n)
    base = tokens * rng.uniform(2.0, 3.0, size=n)
    ablated = base + tokens * rng.uniform(0.0, 0.4, size=n)
    return base, ablated, tokens


def test_bootstrap_perplexity_against_a_direct_resampling():
    base, ablated, tokens = scores()
    value, low, high = bootstrap_perplexity(ablated, tokens, n_boot=300, seed=4)
    assert value == perplexity(ablated, tokens)
    idx = np.random.default_rng(4).integers(0, len(tokens), size=(300, len(tokens)))
    boot = np.exp(ablated[idx].sum(1) / tokens[idx].sum(1))
    assert (low, high) == pytest.approx(tuple(np.quantile(boot, [0.025, 0.975])), abs=1e-12)
    assert low < value < high
    # the change: both sides on the same resampled texts
    delta, d_low, d_high = bootstrap_perplexity(ablated, tokens, base, n_boot=300, seed=4)
    assert delta == pytest.approx(perplexity(ablated, tokens) - perplexity(base, tokens))
    want = boot - np.exp(base[idx].sum(1) / tokens[idx].sum(1))
    assert (d_low, d_high) == pytest.approx(tuple(np.quantile(want, [0.025, 0.975])), abs=1e-12)
    assert 0 < d_low < delta < d_high
    # reproducible, seed-dependent, wider at a smaller alpha
    interval = (delta, d_low, d_high)
    assert bootstrap_perplexity(ablated, tokens, base, n_boot=300, seed=4) == interval
    assert bootstrap_perplexity(ablated, tokens, base, n_boot=300, seed=5) != interval
    wide = bootstrap_perplexity(ablated, tokens, base, n_boot=300, seed=4, alpha=0.01)
    assert wide[1] < d_low and wide[2] > d_high


def test_bootstrap_perplexity_blocks_edges_and_errors(monkeypatch):
    base, ablated, tokens = scores(37, seed=2)
    whole = bootstrap_perplexity(ablated, tokens, base, n_boot=200, seed=1)
    monkeypatch.setattr(bootstrap, "_BLOCK_ELEMENTS", 37 * 7)
    assert bootstrap_perplexity(ablated, tokens, base, n_boot=200, seed=1) == whole
    assert all(math.isnan(x) for x in bootstrap_perplexity([], []))
    same = bootstrap_perplexity(base, tokens, base, n_boot=100)
    assert same == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="baseline"):
        bootstrap_perplexity(ablated, tokens, base[:-1])
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_perplexity(ablated, tokens, n_boot=0)


def as_scores(nll: np.ndarray, tokens: np.ndarray):
    return torch.tensor(nll, dtype=torch.float64), torch.tensor(tokens)


def test_language_ablation_rows_on_hand_made_scores():
    de_base, de_off, de_tokens = scores(40, seed=1)
    fr_base, fr_off, fr_tokens = scores(25, seed=2)
    baseline = {"de": as_scores(de_base, de_tokens), "fr": as_scores(fr_base, fr_tokens)}
    ablated = {"fr": as_scores(fr_off, fr_tokens), "de": as_scores(de_off, de_tokens)}
    rows = language_ablation_rows("de", baseline, ablated, n_neurons=12, n_boot=200)
    assert rows.schema == pl.Schema(ABLATION_SCHEMA)
    assert rows["evaluated"].to_list() == ["fr", "fr", "de", "de"]  # the ablated scores' order
    assert rows["intervened"].to_list() == ["de"] * 4
    assert rows["metric"].to_list() == ["nll", "perplexity"] * 2
    assert rows["control"].to_list() == ["none"] * 4 and rows["seed"].null_count() == 4
    assert rows["n_neurons"].to_list() == [12] * 4 and rows["n_texts"].to_list() == [25, 25, 40, 40]
    nll, ppl = rows.row(2, named=True), rows.row(3, named=True)
    assert ppl["value"] == perplexity(de_off, de_tokens)
    assert ppl["baseline"] == perplexity(de_base, de_tokens)
    assert ppl["delta"] == ppl["value"] - ppl["baseline"]
    want = bootstrap_perplexity(de_off, de_tokens, de_base, n_boot=200, seed=0)
    assert (ppl["ci_low"], ppl["ci_high"]) == want[1:]
    assert ppl["ci_low"] < ppl["delta"] < ppl["ci_high"]
    assert nll["value"] == pytest.approx(math.log(ppl["value"]))
    assert nll["baseline"] == pytest.approx(math.log(ppl["baseline"]))
    assert nll["delta"] == pytest.approx(
        sum(de_off) / sum(de_tokens) - sum(de_base) / sum(de_tokens)
    )
    want = bootstrap_nll(de_off, de_tokens, de_base, n_boot=200, seed=0)
    assert (nll["ci_low"], nll["ci_high"]) == want[1:]
    assert nll["ci_low"] < nll["delta"] < nll["ci_high"]

    control = language_ablation_rows(
        "de", baseline, ablated, 12, control="random", seed=7, n_boot=50
    )
    assert control["control"].to_list() == ["random"] * 4 and control["seed"].to_list() == [7] * 4
    with pytest.raises(ValueError, match="seed"):
        language_ablation_rows("de", baseline, ablated, 12, control="random")
    with pytest.raises(ValueError, match="seed"):
        language_ablation_rows("de", baseline, ablated, 12, seed=1)
    with pytest.raises(ValueError, match="control"):
        language_ablation_rows("de", baseline, ablated, 12, control="shuffled", seed=1)
    with pytest.raises(ValueError, match="'ru'"):
        language_ablation_rows("de", baseline, {"ru": ablated["de"]}, 12)
    with pytest.raises(ValueError, match="same texts"):
        language_ablation_rows("de", baseline, {"fr": as_scores(de_off[:25], de_tokens[:25])}, 12)


def test_summary_separates_own_language_from_the_others():
    frame = pl.DataFrame(
        [
            ("de", "de", 5.0, "none", None),
            ("de", "fr", 1.0, "none", None),
            ("de", "ru", 2.0, "none", None),
            ("de", "de", 0.2, "random", 0),
            ("de", "fr", 0.1, "random", 0),
            ("de", "de", 0.4, "random", 1),
            ("de", "fr", 0.3, "random", 1),
        ],
        schema={
            "intervened": pl.String,
            "evaluated": pl.String,
            "delta": pl.Float64,
            "control": pl.String,
            "seed": pl.Int64,
        },
        orient="row",
    ).with_columns(n_neurons=pl.lit(6, pl.Int64))
    summary = summarize_ablation(frame)
    assert summary["control"].to_list() == ["none", "random"]
    none, rand = summary.rows(named=True)
    assert none["diagonal"] == 5.0 and none["off_diagonal"] == pytest.approx(1.5)
    assert rand["diagonal"] == pytest.approx(0.3) and rand["off_diagonal"] == pytest.approx(0.2)
    assert (none["n_seeds"], rand["n_seeds"]) == (0, 2)


def lape_frame() -> pl.DataFrame:
    """A LAPE-style output: one row per (neuron, language), a neuron may have two languages."""
    return pl.DataFrame(
        {
            "layer": [0, 0, 1, 2, 2, 2, 1, 2],
            "neuron": [3, 17, 8, 0, 30, 47, 8, 11],
            "lang": ["de", "de", "de", "de", "de", "de", "fr", "fr"],
            "act_prob": [0.9] * 8,
            "entropy": [0.1] * 8,
        },
        schema_overrides={"layer": pl.Int32, "neuron": pl.Int32},
    )


def test_zeroing_a_lape_set_changes_the_nll_and_its_control_is_disjoint(load):
    model, tokenizer = load("llama")
    frame = lape_frame()
    de = neuron_set_from_frame(frame.filter(pl.col("lang") == "de"))
    assert set_size(de) == 6
    plain, _ = text_nll(model, tokenizer, TEXTS[:3], CPU)
    with deactivate_neurons(model, de):
        off, _ = text_nll(model, tokenizer, TEXTS[:3], CPU)
    assert not torch.allclose(off, plain)
    for seed in (0, 1):
        control = random_control(de, N_NEURONS, seed)
        assert {k: v.numel() for k, v in control.items()} == {k: v.numel() for k, v in de.items()}
        for layer in de:
            assert not set(control[layer].tolist()) & set(de[layer].tolist())
        with deactivate_neurons(model, control):
            other, _ = text_nll(model, tokenizer, TEXTS[:3], CPU)
        assert not torch.allclose(other, plain) and not torch.allclose(other, off)
    draws = [random_control(de, N_NEURONS, seed)[2].tolist() for seed in (0, 1)]
    assert draws[0] != draws[1]


def test_ablation_matrix_end_to_end(load):
    model, tokenizer = load("gpt2")
    frame = lape_frame()
    sets = {
        lang: neuron_set_from_frame(frame.filter(pl.col("lang") == lang))
        for lang in ("de", "fr", "ru")
    }
    assert sets["ru"] == {}
    texts = {"fr": TEXTS[4:], "de": TEXTS[:3], "ru": ["вода", "дом и собака"]}
    got = ablation_matrix(
        model, tokenizer, sets, texts, seeds=[3, 4], device=CPU, n_boot=100, batch_tokens=64
    )
    assert got.schema == pl.Schema(ABLATION_SCHEMA)
    # two intervened languages (ru has no neurons) x (set + 2 seeds) x three evaluated x
    # two metrics: ΔNLL per token is the log of the perplexity ratio
    assert got.height == 2 * 3 * 3 * 2
    nll, ppl = got.filter(pl.col("metric") == "nll"), got.filter(pl.col("metric") == "perplexity")
    assert nll["value"].to_numpy() == pytest.approx(np.log(ppl["value"].to_numpy()), rel=1e-9)
    assert nll["delta"].to_numpy() == pytest.approx(
        np.log(ppl["value"].to_numpy() / ppl["baseline"].to_numpy()), rel=1e-9
    )
    full, got = got, ppl
    assert got["intervened"].unique(maintain_order=True).to_list() == ["de", "fr"]
    assert got["evaluated"].to_list()[:3] == ["fr", "de", "ru"]
    first = got.filter(pl.col("intervened") == "de")
    assert first["control"].to_list() == ["none"] * 3 + ["random"] * 6
    assert first["seed"].to_list() == [None] * 3 + [3] * 3 + [4] * 3
    assert got.filter(pl.col("intervened") == "fr")["n_neurons"].unique().to_list() == [2]
    assert first["n_neurons"].unique().to_list() == [6]
    assert got.filter(pl.col("evaluated") == "de")["n_texts"].unique().to_list() == [3]
    # the baseline is the plain model's perplexity on the same texts, in every row
    for lang, lang_texts in texts.items():
        want = perplexity(*text_nll(model, tokenizer, lang_texts, CPU))
        base = got.filter(pl.col("evaluated") == lang)["baseline"]
        assert base.to_numpy() == pytest.approx(want, rel=1e-9)
    # the set-off rows are the perplexities with that set off
    with deactivate_neurons(model, sets["de"]):
        want = perplexity(*text_nll(model, tokenizer, texts["ru"], CPU))
    row = got.filter(
        (pl.col("intervened") == "de")
        & (pl.col("evaluated") == "ru")
        & (pl.col("control") == "none")
    ).row(0, named=True)
    assert row["value"] == pytest.approx(want, rel=1e-9)
    assert row["delta"] == pytest.approx(row["value"] - row["baseline"], abs=1e-12)
    assert (got["delta"] != 0).all()
    assert (got["ci_low"] <= got["delta"]).all() and (got["delta"] <= got["ci_high"]).all()
    # reproducible
    again = ablation_matrix(
        model, tokenizer, sets, texts, seeds=[3, 4], device=CPU, n_boot=100, batch_tokens=64
    )
    assert again.equals(full)
    summary = summarize_ablation(full)
    assert summary.height == 4 and summary["n_seeds"].to_list() == [0, 2, 0, 2]
    empty = ablation_matrix(model, tokenizer, {"ru": {}}, texts, seeds=[0], device=CPU)
    assert empty.height == 0 and empty.schema == pl.Schema(ABLATION_SCHEMA)


def test_the_summary_of_a_perplexity_table_averages_nll_changes_not_perplexity_changes():
    rows = [  # de's set off: ΔNLL 0.1 on de and 0.2 on fr; Δppl huge on fr
        ("de", "de", "nll", 0.1, "none", None),
        ("de", "de", "perplexity", 3.0, "none", None),
        ("de", "fr", "nll", 0.2, "none", None),
        ("de", "fr", "perplexity", 1.0e5, "none", None),
    ]
    schema = ["intervened", "evaluated", "metric", "delta", "control", "seed"]
    frame = pl.DataFrame(rows, schema=schema, orient="row").with_columns(
        n_neurons=pl.lit(6, pl.Int64), seed=pl.col("seed").cast(pl.Int64)
    )
    (row,) = summarize_ablation(frame).rows(named=True)
    assert row["diagonal"] == pytest.approx(0.1) and row["off_diagonal"] == pytest.approx(0.2)
