"""Value neurons (ValueExploration / C-voice): neurons whose firing tells whether a story
upholds a value (``support``) or goes against it (``conflict``).

For each value, activation probabilities ``p[layer, neuron, condition]`` over the value's
stories under the two conditions are scored like LAPE scores languages
(:mod:`polyneuron.neurons.lape`): entropy of the normalised probabilities over the conditions,
neurons whose larger probability is not above τ (the mask's ``rate`` quantile of the value's
probabilities) excluded, and the lowest-entropy ``top_rate`` of all neurons kept. Each kept
neuron is assigned to every condition whose probability is above the same quantile (the
reference's activation bar, equal to its filter): ``support``, ``conflict`` or ``both``.

The reference runs this twice, as a "decision" mask (rate 0.95) and a "semantic" mask (0.50),
and intervenes with decision masks on the outer layers (≤ 4 and ≥ 27 of LLaMA's 32) and semantic
masks on the middle ones (:func:`mask_layers` scales the ranges to a model's depth). The second
score is the activation difference, mean activation under support minus under conflict.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl
import torch

from polyneuron.neurons.lape import filtered_entropy, kth_quantile, lowest_entropy

CONDITIONS = ("support", "conflict")

#: the reference's masks: name -> filter (= activation bar) rate
REFERENCE_MASKS = {"decision": 0.95, "semantic": 0.50}

#: decision masks act on the first and last this many of the reference's 32 layers (0-4, 27-31)
REFERENCE_OUTER = 5
REFERENCE_LAYERS = 32

#: which layers a mask acts on: ``reference`` (decision outer, semantic middle) or ``all``
LAYER_RULES = ("reference", "all")


def value_scores(
    act_prob: torch.Tensor,
    act_mean: torch.Tensor,
    filter_rate: float = 0.95,
    top_rate: float = 0.01,
    bar_rate: float | None = None,
) -> dict[str, torch.Tensor]:
    """Scores of one value from ``[layer, neuron, 2]`` probabilities and mean activations
    (support, conflict): entropy (+inf where filtered out), act_diff, the selection mask and,
    for each condition, whether a selected neuron is assigned to it (probability above the
    ``bar_rate`` quantile, the reference's activation bar; ``filter_rate`` when None)."""
    entropy = filtered_entropy(act_prob, filter_rate)
    order = lowest_entropy(entropy, top_rate)
    selected = torch.zeros(entropy.numel(), dtype=torch.bool)
    selected[order] = True
    selected &= torch.isfinite(entropy.flatten())
    selected = selected.reshape(entropy.shape)
    bar = kth_quantile(act_prob, filter_rate if bar_rate is None else bar_rate)
    assigned = (act_prob > bar) & selected[..., None]
    return {
        "entropy": entropy,
        "act_diff": act_mean[..., 0] - act_mean[..., 1],
        "selected": selected,
        "support": assigned[..., 0],
        "conflict": assigned[..., 1],
    }


def mask_layers(mask: str, n_layers: int, rule: str = "reference") -> list[int]:
    """The layers a mask acts on. ``reference``: a ``decision`` mask on the first and last
    round(5/32 · n_layers) layers (at least one each when the model has three or more), a
    ``semantic`` mask on the layers between; ``all``: every layer (any mask name)."""
    if rule not in LAYER_RULES:
        raise ValueError(
            f"value_neurons.layers must be one of {', '.join(LAYER_RULES)}, not {rule!r}"
        )
    every = list(range(n_layers))
    if rule == "all":
        return every
    outer = round(REFERENCE_OUTER * n_layers / REFERENCE_LAYERS)
    if n_layers >= 3:
        outer = max(outer, 1)
    outer = min(outer, n_layers // 2)
    decision = every[:outer] + every[n_layers - outer :] if outer else []
    if mask == "decision":
        return decision
    if mask == "semantic":
        return [layer for layer in every if layer not in decision]
    raise ValueError(
        f"value_neurons.layers: reference places only the masks 'decision' and 'semantic', "
        f"not {mask!r} (use layers: all for other masks)"
    )


def _grid(part: pl.DataFrame, column: str) -> torch.Tensor:
    """A (layer, neuron)-sorted column as ``[layer, neuron]`` float64."""
    n_layers = int(part["layer"].max()) + 1
    values = torch.from_numpy(part[column].to_numpy().astype("float64"))
    return values.reshape(n_layers, part.height // n_layers)


def _assignment(support: torch.Tensor, conflict: torch.Tensor) -> list[str | None]:
    labels = [None, "support", "conflict", "both"]  # indexed by support + 2 · conflict
    code = support.long() + 2 * conflict.long()
    return [labels[c] for c in code.flatten().tolist()]


def value_table(
    stats: pl.DataFrame,
    lang: str,
    masks: Mapping[str, float],
    top_rate: float,
    layers: str = "reference",
) -> pl.DataFrame:
    """Every neuron's scores per mask and value from grouped statistics (``group`` =
    ``value/condition``, ``layer, neuron, n_tokens, n_active, act_sum``): ``masks`` maps a
    mask name to its filter (= bar) rate; ``acts`` says whether the mask acts on the neuron's
    layer (:func:`mask_layers` under ``layers``)."""
    if not masks:
        raise ValueError("value_neurons.masks is empty: name at least one mask and its rate")
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
        layer = per_condition[0]["layer"]
        for mask, rate in masks.items():
            scores = value_scores(prob, mean, rate, top_rate, bar_rate=rate)
            acting = set(mask_layers(mask, prob.shape[0], layers))
            frames.append(
                pl.DataFrame(
                    {
                        "layer": layer,
                        "neuron": per_condition[0]["neuron"],
                        "group": value,
                        "lang": lang,
                        "mask": mask,
                        "p_support": prob[..., 0].flatten().numpy(),
                        "p_conflict": prob[..., 1].flatten().numpy(),
                        "score": scores["entropy"].flatten().numpy(),
                        "act_diff": scores["act_diff"].flatten().numpy(),
                        "selected": scores["selected"].flatten().numpy(),
                        "assigned": pl.Series(
                            _assignment(scores["support"], scores["conflict"]), dtype=pl.String
                        ),
                        "acts": layer.is_in(sorted(acting)),
                    }
                )
            )
    return pl.concat(frames)
