"""HSIC bridge scores against direct computations written here (the reference's formula with
numpy and scipy, the per-neuron one with loops), on small tensors; the per-layer scores of
target and candidate languages against their steps."""

import logging
import math

import numpy as np
import polars as pl
import pytest
import torch
from safetensors import safe_open
from scipy.spatial.distance import cdist

from polyneuron.neurons.hsic import (
    align_pairs,
    bridge_scores,
    hsic_matrix,
    layer_score,
    rank_bridges,
    rbf_kernels,
    reference_window,
    resolve_window,
    zscore,
)
from polyneuron.tensors import safetensors_array


def direct_hsic(x: list[float], y: list[float], normalised: bool) -> float:
    """``per_neuron``: tr(K H L H) with explicit loops: z-score, median-distance RBF, centring
    matrix."""
    n = len(x)

    def z(values):
        mean = sum(values) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
        return [(v - mean) / std if std > 0 else 0.0 for v in values]

    def kernel(values):
        zs = z(values)
        dists = sorted(abs(zs[a] - zs[b]) for a in range(n) for b in range(a + 1, n))
        m = len(dists)
        sigma = dists[m // 2] if m % 2 else dists[m // 2 - 1]  # torch's median: the lower one
        sigma = sigma if sigma > 0 else 1.0
        return [
            [math.exp(-((zs[a] - zs[b]) ** 2) / (2 * sigma**2)) for b in range(n)] for a in range(n)
        ]

    k, l_ = kernel(x), kernel(y)
    h = [[(1.0 if a == b else 0.0) - 1.0 / n for b in range(n)] for a in range(n)]

    def mul(p, q):
        return [[sum(p[a][c] * q[c][b] for c in range(n)) for b in range(n)] for a in range(n)]

    product = mul(mul(mul(k, h), l_), h)
    trace = sum(product[a][a] for a in range(n))
    return trace / (n - 1) ** 2 if normalised else trace


@pytest.mark.parametrize("normalised", [False, True])
def test_hsic_matrix_matches_the_direct_formula(normalised):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(7, 3, generator=gen)
    y = torch.randn(7, 2, generator=gen)
    y[:, 1] = x[:, 0] ** 2  # a dependent pair
    got = hsic_matrix(x, y, normalised, sigma="per_neuron")
    assert got.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            want = direct_hsic(x[:, i].tolist(), y[:, j].tolist(), normalised)
            assert got[i, j].item() == pytest.approx(want, rel=1e-9, abs=1e-12)


def reference_hsic(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The reference's bridge_hsic.py formula, written independently: neuron rows z-scored
    (unbiased std + 1e-6), one σ from the pooled within-set row distances, a Gaussian kernel per
    neuron, tr(K H · H L) for every pair, as written there."""
    xr, yr = x.T.astype(np.float64), y.T.astype(np.float64)  # [neurons, samples]
    xr = (xr - xr.mean(1, keepdims=True)) / (xr.std(1, ddof=1, keepdims=True) + 1e-6)
    yr = (yr - yr.mean(1, keepdims=True)) / (yr.std(1, ddof=1, keepdims=True) + 1e-6)
    sigma = np.median(np.concatenate([cdist(xr, xr).ravel(), cdist(yr, yr).ravel()])) + 1e-6
    n = xr.shape[1]
    h = np.eye(n) - np.ones((n, n)) / n
    out = np.zeros((xr.shape[0], yr.shape[0]))
    for i, row_x in enumerate(xr):
        k = np.exp(-((row_x[:, None] - row_x[None, :]) ** 2) / (2 * sigma**2))
        for j, row_y in enumerate(yr):
            l_ = np.exp(-((row_y[:, None] - row_y[None, :]) ** 2) / (2 * sigma**2))
            out[i, j] = np.trace((k @ h) @ (h @ l_))
    return out


def test_the_default_is_the_reference_formula_to_1e_5_with_its_ranking():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 4))
    y = np.column_stack([x[:, 0] ** 2, 0.5 * x[:, 1], rng.normal(size=30)])
    y = y + 0.3 * rng.normal(size=y.shape)
    want = reference_hsic(x, y)
    got = hsic_matrix(torch.tensor(x), torch.tensor(y)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-12)
    assert (np.argsort(got, axis=None) == np.argsort(want, axis=None)).all()
    assert layer_score(torch.tensor(got)) == pytest.approx(layer_score(torch.tensor(want)))


def test_the_reference_sigma_ranks_a_linear_dependence_above_a_quadratic_one():
    """The issue's case: n = 100, x ~ N(0, 1), among a layer's other (independent) neurons;
    per-neuron σ ranks y = x² + noise first, the reference's one σ y = 0.4x + noise."""
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=100), rng.normal(size=(100, 5))])
    noise = rng.normal(size=(100, 2))
    y = np.column_stack([x[:, 0] ** 2 + noise[:, 0], 0.4 * x[:, 0] + noise[:, 1]])
    y = np.column_stack([y, rng.normal(size=(100, 5))])
    reference = hsic_matrix(torch.tensor(x), torch.tensor(y))
    per_neuron = hsic_matrix(torch.tensor(x), torch.tensor(y), sigma="per_neuron")
    assert reference[0, 1] > reference[0, 0] > reference[0, 2:].max()
    assert per_neuron[0, 0] > per_neuron[0, 1] > per_neuron[0, 2:].max()


def test_one_neuron_per_side_degenerates_under_the_reference_sigma_as_in_the_reference():
    """Two single neurons: every pooled distance is a zero diagonal, σ = 1e-6, each kernel the
    identity, and every pair scores n − 1 whatever the data (the reference's formula)."""
    x, y = torch.randn(9, 1), torch.randn(9, 1)
    assert hsic_matrix(x, y).item() == pytest.approx(8.0)  # tr(H) = n − 1


def test_the_reference_window_scales_layers_10_to_21_of_32_to_the_model_s_depth():
    assert reference_window(32) == (10, 21)
    assert reference_window(18) == (6, 12)  # Gemma 3 270M
    assert reference_window(64) == (20, 42)
    assert reference_window(3) == (1, 2)
    assert reference_window(1) == (0, 0)


def test_an_unknown_sigma_rule_is_an_error():
    with pytest.raises(ValueError, match="sigma must be one of reference, per_neuron"):
        hsic_matrix(torch.zeros(3, 1), torch.zeros(3, 1), sigma="median")


def test_dependent_neurons_score_higher_than_independent_ones():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(40, 3, generator=gen)
    y = torch.cat([x[:, :1] * 3 + 1, torch.randn(40, 2, generator=gen)], dim=1)
    for sigma in ("reference", "per_neuron"):
        scores = hsic_matrix(x, y, sigma=sigma)
        assert scores[0, 0] > 3 * scores[0, 1:].max(), sigma


def test_constant_neuron_has_zero_scores():
    x = torch.ones(5, 1)
    y = torch.randn(5, 2)
    assert torch.equal(zscore(x), torch.zeros(5, 1))
    assert torch.allclose(rbf_kernels(x), torch.ones(1, 5, 5, dtype=torch.float64))
    for sigma in ("reference", "per_neuron"):
        scores = hsic_matrix(x, y, sigma=sigma)
        assert torch.allclose(scores, torch.zeros(1, 2, dtype=torch.float64), atol=1e-12)


def test_layer_score_averages_the_best_match_both_ways():
    scores = torch.tensor([[1.0, 4.0, 0.0], [2.0, 0.0, 3.0]])
    # rows: max 4 and 3 -> 3.5; columns: max 2, 4, 3 -> 3
    assert layer_score(scores) == pytest.approx(0.5 * (3.5 + 3.0))
    assert math.isnan(layer_score(torch.zeros(0, 3)))


def test_streamed_safetensors_file_reads_back(tmp_path):
    path = tmp_path / "x.safetensors"
    with safetensors_array(path, "activations", (4, 2, 3), metadata={"split": "train"}) as out:
        out[[2, 0], 1, :] = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float16)
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata() == {"split": "train"}
        tensor = f.get_tensor("activations")
    assert tensor.dtype == torch.float16 and tensor.shape == (4, 2, 3)
    assert tensor[2, 1].tolist() == [1, 2, 3] and tensor[0, 1].tolist() == [4, 5, 6]
    assert tensor[1].abs().sum() == 0


def test_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises(RuntimeError), safetensors_array(path, "a", (2, 2)):
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_align_pairs_takes_each_shared_pair_once_in_target_order():
    target = ["dog", "cat", "sun", "dog"]
    candidate = ["sun", "dog", "moon", "dog"]
    assert align_pairs(target, candidate, max_pairs=10) == ([0, 2], [1, 0])
    rows_t, rows_c = align_pairs([f"w{i}" for i in range(50)], [f"w{i}" for i in range(50)], 5, 0)
    assert len(rows_t) == 5 and rows_t == sorted(rows_t) and rows_t == rows_c
    assert (rows_t, rows_c) == align_pairs(
        [f"w{i}" for i in range(50)], [f"w{i}" for i in range(50)], 5, 0
    )


def test_bridges_are_ranked_by_the_mean_over_the_window():
    scores = pl.DataFrame(
        {
            "target": ["sw"] * 6,
            "candidate": ["en", "en", "en", "fr", "fr", "fr"],
            "layer": [0, 1, 2, 0, 1, 2],
            "score": [9.0, 1.0, 1.0, 0.0, 2.0, float("nan")],
        }
    )
    everywhere = rank_bridges(scores, None)
    best = everywhere.filter("selected")
    assert set(best["candidate"]) == {"en"} and best["window_score"][0] == pytest.approx(11 / 3)
    fr = everywhere.filter(pl.col("candidate") == "fr")
    assert fr["window_score"][0] == pytest.approx(1.0) and fr["rank"][0] == 2  # NaN skipped
    middle = rank_bridges(scores, [1, 2])
    assert set(middle.filter("selected")["candidate"]) == {"fr"}


def test_bridge_scores_use_the_shared_overlap_neurons_on_aligned_pairs(caplog):
    g = torch.Generator().manual_seed(0)
    sets = torch.zeros(3, 4, 3, dtype=torch.bool)  # [layer, neuron, lang]: sw, en, fr
    sets[0, :2, :] = True  # layer 0: neurons 0 and 1 in every set
    sets[1, 0, 0] = sets[1, 1, 1] = True  # layer 1: sw and en share nothing
    sets[2, 3, :2] = True  # layer 2: sw and en share neuron 3
    pair_ids = {"sw": ["a", "b", "c", "d"], "en": ["d", "c", "b", "a", "e"], "fr": ["a", "x"]}
    examples = {lang: torch.randn(len(ids), 3, 4, generator=g) for lang, ids in pair_ids.items()}
    with caplog.at_level(logging.INFO, logger="polyneuron"):
        table = bridge_scores(sets, ["sw", "en", "fr"], pair_ids, examples,
                              {"sw": ["en", "fr"]}, max_pairs=10)  # fmt: skip
    assert table.columns == ["target", "candidate", "layer", "n_neurons", "n_pairs", "score"]
    rows = {(r["candidate"], r["layer"]): r for r in table.iter_rows(named=True)}
    assert [(r["n_neurons"], r["n_pairs"]) for r in table.iter_rows(named=True)] == [
        (2, 4), (0, 4), (1, 4), (2, 1), (0, 1), (0, 1)
    ]  # fmt: skip
    t_rows, c_rows = align_pairs(pair_ids["sw"], pair_ids["en"], 10)
    x, y = examples["sw"][t_rows][:, 0, :2], examples["en"][c_rows][:, 0, :2]
    assert rows["en", 0]["score"] == pytest.approx(layer_score(hsic_matrix(x, y)))
    x, y = examples["sw"][t_rows][:, 2, [3]], examples["en"][c_rows][:, 2, [3]]
    assert rows["en", 2]["score"] == pytest.approx(layer_score(hsic_matrix(x, y)))
    assert math.isnan(rows["en", 1]["score"])  # no shared neuron
    assert math.isnan(rows["fr", 0]["score"])  # a single aligned pair
    assert "sw <- en: 4 aligned pairs" in caplog.text


def test_the_window_setting_resolves_to_layers():
    assert resolve_window("reference", 18) == (6, 12)
    assert resolve_window([2, 5], 18) == (2, 5)
    assert resolve_window(None, 18) is None
