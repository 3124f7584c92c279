import polars as pl
import pytest
import torch

from polyneuron.model.hooks import CountedPositions, NeuronStats
from polyneuron.neurons.stats import activation_probs, reduce_shards


def test_stats_count_only_masked_positions():
    act = torch.tensor(
        [[[1.0, -2.0], [0.5, 0.0], [9.0, 9.0]], [[-1.0, 3.0], [7.0, 7.0], [7.0, 7.0]]]
    )  # [batch 2, seq 3, neurons 2]; positions (0,2), (1,1), (1,2) are padding
    mask = torch.tensor([[True, True, False], [True, False, False]])
    stats = NeuronStats.zeros(1, 2)
    stats.add_(0, act, mask)
    # counted tokens: [1, -2], [0.5, 0], [-1, 3]
    assert stats.n_tokens.tolist() == [3]
    assert stats.n_active.tolist() == [[2, 1]]  # zero is not active
    assert stats.act_sum[0].tolist() == pytest.approx([0.5, 1.0])
    assert stats.act_sqsum[0].tolist() == pytest.approx([2.25, 13.0])


def test_stats_frame_has_the_shard_schema_one_row_per_neuron():
    stats = NeuronStats.zeros(2, 3)
    stats.add_(1, torch.ones(1, 2, 3), torch.ones(1, 2, dtype=torch.bool))
    frame = stats.to_frame()
    assert frame.schema == pl.Schema(
        {
            "layer": pl.Int32,
            "neuron": pl.Int32,
            "n_tokens": pl.Int64,
            "n_active": pl.Int64,
            "act_sum": pl.Float64,
            "act_sqsum": pl.Float64,
        }
    )
    assert frame.select("layer", "neuron").rows() == [
        (layer, n) for layer in range(2) for n in range(3)
    ]
    assert frame["n_tokens"].to_list() == [0, 0, 0, 2, 2, 2]


def shard(n_tokens: list[int], n_active: list[int], act_sum: list[float]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "layer": [0, 0],
            "neuron": [1, 0],  # out of order on purpose
            "n_tokens": n_tokens,
            "n_active": n_active,
            "act_sum": act_sum,
            "act_sqsum": [1.0, 2.0],
        },
        schema_overrides={"layer": pl.Int32, "neuron": pl.Int32},
    )


def test_reduce_shards_sums_per_neuron():
    total = reduce_shards([shard([4, 4], [1, 2], [0.5, 1.0]), shard([6, 6], [3, 0], [1.5, -1.0])])
    assert total.rows() == [(0, 0, 10, 2, 0.0, 4.0), (0, 1, 10, 4, 2.0, 2.0)]


def test_activation_probs_divides_active_by_counted_tokens():
    probs, langs = activation_probs(
        {
            "de": reduce_shards([shard([4, 4], [1, 2], [0, 0])]),
            "fr": reduce_shards([shard([5, 5], [5, 0], [0, 0])]),
        }
    )
    assert langs == ["de", "fr"]
    # neuron 0 got n_active 2 (second row), neuron 1 got 1
    assert probs[0, :, 0].tolist() == pytest.approx([0.5, 0.25])
    assert probs[0, :, 1].tolist() == pytest.approx([0.0, 1.0])


def test_activation_probs_rejects_a_language_without_tokens():
    from polyneuron import PolyneuronError

    with pytest.raises(PolyneuronError, match=r"'sw'.*no tokens"):
        activation_probs({"sw": reduce_shards([shard([0, 0], [0, 0], [0, 0])])})


def test_sparse_masks_take_the_gather_path_with_the_same_result():
    act = torch.tensor(
        [[[1.0, -2.0], [0.5, 0.0], [9.0, 9.0]], [[-1.0, 3.0], [7.0, 7.0], [7.0, 7.0]]]
    )
    mask = torch.tensor([[False, True, False], [True, False, False]])  # 2 of 6: sparse
    assert CountedPositions.of(mask).index is not None
    stats = NeuronStats.zeros(1, 2)
    stats.add_(0, act, mask)
    # counted tokens: [0.5, 0], [-1, 3]
    assert stats.n_tokens.tolist() == [2]
    assert stats.n_active.tolist() == [[1, 1]]
    assert stats.act_sum[0].tolist() == pytest.approx([-0.5, 3.0])
    assert stats.act_sqsum[0].tolist() == pytest.approx([1.25, 9.0])
