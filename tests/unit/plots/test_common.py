from __future__ import annotations

import numpy as np
import pytest

from polyneuron.plots.common import category_colours, centred_norm, cluster_order, format_cell


def test_format_cell_keeps_values_to_about_four_characters():
    assert [format_cell(v) for v in (412.3, 40.94, 5.43, 0.0712)] == ["412", "40.9", "5.4", "0.071"]
    assert format_cell(float("nan")) == ""


def test_cluster_order_puts_similar_items_next_to_each_other():
    similarity = np.array([
        [1.0, 0.1, 0.9, 0.1], [0.1, 1.0, 0.1, 0.8],
        [0.9, 0.1, 1.0, 0.2], [0.1, 0.8, 0.2, 1.0],
    ])  # fmt: skip
    order = cluster_order(similarity)
    assert sorted(order) == [0, 1, 2, 3]
    assert abs(order.index(0) - order.index(2)) == 1
    assert abs(order.index(1) - order.index(3)) == 1


def test_centred_norm_is_symmetric_about_zero_over_every_matrix():
    norm = centred_norm(np.array([[1.0, np.nan]]), np.array([[-3.0]]))
    assert (norm.vmin, norm.vcenter, norm.vmax) == (-3.0, 0.0, 3.0)
    assert norm(0.0) == pytest.approx(0.5)


def test_category_colours_are_one_per_name_and_distinct():
    colours = category_colours(["a", "b", ("c", "d")])
    assert list(colours) == ["a", "b", ("c", "d")]
    assert len(set(colours.values())) == 3
