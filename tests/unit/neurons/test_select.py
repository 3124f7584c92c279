"""Top-k neuron selection: by count and by share, ties to the lower flat index."""

import pytest
import torch

from polyneuron import PolyneuronError
from polyneuron.neurons.select import top_k_mask, top_share_mask


def test_top_k_mask_masks_the_best():
    mask = top_k_mask(torch.tensor([[0.1, 0.9], [0.5, 0.7]]), 2)
    assert mask.tolist() == [[False, True], [False, True]]
    assert top_k_mask(torch.tensor([0.5, 0.5, 0.5]), 1).tolist() == [True, False, False]
    assert top_k_mask(torch.tensor([0.2, 0.1]), 5).tolist() == [True, True]  # k > numel


def test_top_share_mask_keeps_the_top_share_with_ties_to_the_lower_index():
    scores = torch.tensor([[0.5, 0.9, 0.1, 0.5], [0.5, 0.2, 0.9, 0.0]])

    def chosen(rate):
        mask = top_share_mask(scores, rate)
        assert mask.shape == scores.shape and mask.dtype == torch.bool
        return torch.nonzero(mask.flatten()).flatten().tolist()

    assert chosen(0.25) == [1, 6]
    # third place is a three-way tie at 0.5 (flat 0, 3, 4): the lowest flat index wins
    assert chosen(0.375) == [0, 1, 6]
    assert chosen(0.5) == [0, 1, 3, 6]
    assert int(top_share_mask(scores, 0.01).sum()) == 1  # at least one neuron
    assert int(top_share_mask(torch.rand(3, 100), 0.1).sum()) == 30
    assert int(top_share_mask(scores, 1.0).sum()) == 8
    with pytest.raises(PolyneuronError, match="top rate"):
        top_share_mask(scores, 0.0)
