"""Value neurons (ValueExploration / C-voice): neurons whose firing tells whether a story
upholds a value (``support``) or goes against it (``conflict``).

For each value, activation probabilities ``p[layer, neuron, condition]`` over the value's
stories under the two conditions are scored like LAPE scores languages
(:mod:`polyneuron.neurons.lape`): entropy of the normalised probabilities over the conditions,
neurons
whose larger probability is not above τ (the ``filter_rate`` quantile of the value's
probabilities) excluded, and the lowest-entropy ``top_rate`` of all neurons kept. The second
score is the activation difference, mean activation under support minus under conflict.
"""

from __future__ import annotations

import polars as pl
import torch

from polyneuron.neurons.lape import filtered_entropy, lowest_entropy

CONDITIONS = ("support", "conflict")


def value_scores(
    act_prob: torch.Tensor,
    act_mean: torch.Tensor,
    filter_rate: float = 0.95,
    top_rate: float = 0.01,
) -> dict[str, torch.Tensor]:
    """Scores of one value from ``[layer, neuron, 2]`` probabilities and mean activations
    (support, conflict): entropy (+inf where filtered out), act_diff and the selection mask."""
    entropy = filtered_entropy(act_prob, filter_rate)
    order = lowest_entropy(entropy, top_rate)
    selected = torch.zeros(entropy.numel(), dtype=torch.bool)
    selected[order] = True
    selected &= torch.isfinite(entropy.flatten())
    return {
        "entropy": entropy,
        "act_diff": act_mean[..., 0] - act_mean[..., 1],
        "selected": selected.reshape(entropy.shape),
    }


def _grid(part: pl.DataFrame, column: str) -> torch.Tensor:
    """A (layer, neuron)-sorted column as ``[layer, neuron]`` float64."""
    n_layers = int(part["layer"].max()) + 1
    values = torch.from_numpy(part[column].to_numpy().astype("float64"))
    return values.reshape(n_layers, part.height // n_layers)


def value_table(
    stats: pl.DataFrame, lang: str, filter_rate: float, top_rate: float
) -> pl.DataFrame:
    """Every neuron's scores per value from grouped statistics (``group`` = ``value/condition``,
    ``layer, neuron, n_tokens, n_active, act_sum``)."""
    frames = []
    values = sorted({group.split("/")[0] for group in stats["group"].unique()})
    for value in values:
        per_condition = []
        for condition in CONDITIONS:
            part = stats.filter(pl.col("group") == f"{value}/{condition}").sort("layer", "neuron")
            if part.height == 0:
                raise ValueError(f"value {value!r} in {lang!r} has no {condition} stories")
            per_condition.append(part)
        prob = torch.stack([_grid(p, "n_active") / _grid(p, "n_tokens") for p in per_condition], -1)
        mean = torch.stack([_grid(p, "act_sum") / _grid(p, "n_tokens") for p in per_condition], -1)
        scores = value_scores(prob, mean, filter_rate, top_rate)
        frames.append(
            pl.DataFrame(
                {
                    "layer": per_condition[0]["layer"],
                    "neuron": per_condition[0]["neuron"],
                    "group": value,
                    "lang": lang,
                    "p_support": prob[..., 0].flatten().numpy(),
                    "p_conflict": prob[..., 1].flatten().numpy(),
                    "score": scores["entropy"].flatten().numpy(),
                    "act_diff": scores["act_diff"].flatten().numpy(),
                    "selected": scores["selected"].flatten().numpy(),
                }
            )
        )
    return pl.concat(frames)
