"""The intervention matrix under every evaluation, and its rows.

- :func:`intervention_matrix` runs any scoring function plain, with each neuron set off and
  with its random controls (:func:`polyneuron.evaluate.interventions.random_control`); a
  :class:`RowBuilder` turns each intervention's scores into rows;
- :func:`mean_metric_rows` turns per-example metrics (accuracy, probability, loss) into such
  rows with paired bootstrap intervals (:func:`polyneuron.evaluate.bootstrap.paired_delta_ci`);
- rows follow :data:`ABLATION_SCHEMA`; :func:`summarize` condenses them to the change on the
  intervened group itself against that on the others.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from typing import Any, Protocol

import numpy as np
import polars as pl
import torch
from torch import nn
from tqdm import tqdm

from polyneuron.evaluate.bootstrap import _as_numpy, paired_delta_ci
from polyneuron.evaluate.controls import Controls
from polyneuron.evaluate.interventions import (
    ModuleNeurons,
    NeuronSet,
    Operation,
    apply_operations,
    merge_sets,
    split_like,
)
from polyneuron.model import work
from polyneuron.model.adapters import neurons_per_layer

__all__ = [
    "ABLATION_SCHEMA",
    "CONTROLS",
    "RowBuilder",
    "intervention_matrix",
    "mean_metric_rows",
    "set_size",
    "summarize",
]

log = logging.getLogger("polyneuron")

#: one row per (intervened language, evaluated language, condition)
ABLATION_SCHEMA: dict[str, pl.DataType] = {
    "intervened": pl.String(),  # the language whose neurons are switched off
    "evaluated": pl.String(),  # the language whose texts are scored
    "metric": pl.String(),  # "perplexity", "accuracy", "refusal_rate", ...
    "value": pl.Float64(),  # perplexity with the neurons off
    "baseline": pl.Float64(),  # perplexity of the plain model on the same texts
    "delta": pl.Float64(),  # value - baseline
    "control": pl.String(),  # "none": the language's own set; "random": a random control set
    "seed": pl.Int64(),  # the random control's seed; null for control "none"
    # how a random neuron control was drawn: "matched" (same layer and activation-level bin)
    # or "uniform" (same layer); null for control "none" and for controls that are not
    # neuron sets (random directions, other facts' outputs)
    "control_draw": pl.String(),
    "ci_low": pl.Float64(),  # percentile-bootstrap interval of delta over texts
    "ci_high": pl.Float64(),
    "n_neurons": pl.Int64(),  # neurons switched off
    "n_texts": pl.Int64(),
}

CONTROLS = ("none", "random")


def _check_control(control: str, seed: int | None) -> None:
    """A set's own rows (control "none") have no seed; a random control's have one."""
    if control not in CONTROLS:
        raise ValueError(f"unknown control {control!r}: expected one of {CONTROLS}")
    if (control == "none") != (seed is None):
        raise ValueError(f"control {control!r} takes {'no' if control == 'none' else 'a'} seed")


def set_size(neurons: NeuronSet | ModuleNeurons) -> int:
    """Distinct neurons of a set, over all its layers (and modules)."""
    if isinstance(neurons, ModuleNeurons):
        return sum(set_size(part) for part in neurons.sets.values())
    return sum(int(torch.unique(torch.as_tensor(v)).numel()) for v in neurons.values())


# --------------------------------------------------------------------------- any metric


def mean_metric_rows(
    intervened: str,
    baseline: Mapping[str, np.ndarray | torch.Tensor | Sequence[float]],
    scored: Mapping[str, np.ndarray | torch.Tensor | Sequence[float]],
    metric: str,
    n_neurons: int | None,
    control: str = "none",
    seed: int | None = None,
    n_boot: int = 1000,
    boot_seed: int = 0,
    alpha: float = 0.05,
) -> pl.DataFrame:
    """The :data:`ABLATION_SCHEMA` rows of one intervention for a per-example ``metric``
    (accuracy 0/1, a probability, a loss): one per evaluated key of ``scored`` (key -> one value
    per example under the intervention), in its order. ``value`` and ``baseline`` are the means
    over examples (NaNs dropped), ``delta`` their difference and the interval
    :func:`polyneuron.evaluate.bootstrap.paired_delta_ci`'s: the same examples resampled on both
    sides."""
    _check_control(control, seed)
    rows = []
    for evaluated, values in scored.items():
        if evaluated not in baseline:
            raise ValueError(f"no baseline values for evaluated {evaluated!r}")
        now, base = _as_numpy(values), _as_numpy(baseline[evaluated])
        if now.shape != base.shape:
            raise ValueError(
                f"{evaluated}: {now.size} values under the intervention but {base.size} "
                "in the baseline (not the same examples)"
            )
        delta, low, high = paired_delta_ci(base, now, n_boot=n_boot, seed=boot_seed, alpha=alpha)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: the mean is NaN
            value, reference = float(np.nanmean(now)), float(np.nanmean(base))
        rows.append(
            {
                "intervened": intervened,
                "evaluated": evaluated,
                "metric": metric,
                "value": value,
                "baseline": reference,
                "delta": delta,
                "control": control,
                "seed": seed,
                "ci_low": low,
                "ci_high": high,
                "n_neurons": n_neurons,
                "n_texts": int(now.size),
            }
        )
    return pl.DataFrame(rows, schema=ABLATION_SCHEMA, orient="row")


class RowBuilder(Protocol):
    """Builds one intervention's rows: (intervened, baseline scores, scores under the
    intervention, neurons switched off, control, seed) -> :data:`ABLATION_SCHEMA` frame."""

    def __call__(
        self,
        intervened: str,
        baseline: Any,
        scored: Any,
        n_neurons: int,
        control: str,
        seed: int | None,
    ) -> pl.DataFrame: ...


def intervention_matrix(
    model: nn.Module,
    sets: Mapping[str, NeuronSet | Sequence[Operation]],
    evaluate: Callable[[], Any],
    rows: RowBuilder,
    seeds: Sequence[int],
    mode: str = "zero",
    factor: float = 0.0,
    means: Mapping[int, torch.Tensor] | None = None,
    desc: str = "ablation",
    progress: tqdm | None = None,
    controls: Controls | None = None,
    logits: str = "all",
    new_tokens: int = 0,
) -> pl.DataFrame:
    """Run ``evaluate()`` (every evaluated key's scores) once on the plain model, then with
    each set of ``sets`` switched off (``mode`` and ``factor``/``means`` as
    :func:`polyneuron.evaluate.interventions.deactivate_neurons` takes them; ``controls.means``
    when given) and with a random control per seed, drawn from outside the set as ``controls``
    says (:class:`polyneuron.evaluate.controls.Controls`: ``matched`` on layer and activation
    level, or ``uniform`` within the layer, the default without ``controls``). ``rows`` turns
    each intervention's scores into rows against the baseline's; the column ``control_draw``
    says how each control was drawn.

    A set may instead be a sequence of :class:`Operation` (disjoint parts, each with its own
    operation; ``mode``/``factor`` then do not apply to it): its control is drawn for the parts
    together and split among them as they are split (:func:`split_like`). A set of
    :class:`ModuleNeurons` (neurons of named modules' outputs) gets its control per layer and
    module (:func:`polyneuron.evaluate.interventions.module_control`, ``control_draw``
    "uniform").

    A set without neurons is logged and skipped. Rows are ordered by intervened set (``sets``'
    order) and condition (the set, then the seeds in order). ``progress``, when given, is
    updated by one per evaluation (else a bar of its own counts them). ``logits`` and
    ``new_tokens`` say what one plain run needs at least (:func:`polyneuron.model.work.need`:
    the logits it reads, or the tokens it generates) for the job's work ratio."""
    controls = controls or Controls()
    means = controls.means if controls.means is not None else means
    width = neurons_per_layer(model.config)
    parts = {
        name: (Operation(s, mode, factor),) if isinstance(s, Mapping | ModuleNeurons) else tuple(s)
        for name, s in sets.items()
    }
    active = {name: ops for name, ops in parts.items() if set_size(_union(ops)) > 0}
    for name in sets:
        if name not in active:
            log.warning("%s: no neurons in its set; not intervened", name)
    frames: list[pl.DataFrame] = []
    n_runs = 1 + len(active) * (1 + len(seeds))
    with ExitStack() as stack:
        bar = progress or stack.enter_context(
            tqdm(total=n_runs, desc=desc, unit="run", mininterval=5.0)
        )
        # the least work: every run's passes as plain as the baseline's
        with work.need(n_runs, new_tokens=new_tokens, logits=logits):
            baseline = evaluate()
        if progress is None:
            bar.update(1)
        for name, ops in active.items():
            conditions: list[tuple[str, int | None, tuple[Operation, ...]]] = [("none", None, ops)]
            for seed in seeds:
                drawn = controls.draw_for(_union(ops), width, seed)
                conditions.append(("random", seed, split_like(ops, drawn, controls.bins)))
            for control, seed, chosen in conditions:
                bar.set_postfix_str(f"{name} {control}{'' if seed is None else f' {seed}'}")
                with apply_operations(model, chosen, means=means):
                    scored = evaluate()
                if progress is None:
                    bar.update(1)
                frame = rows(name, baseline, scored, set_size(_union(chosen)), control, seed)
                draw = controls.draw_name(chosen[0].neurons) if control == "random" else None
                frames.append(frame.with_columns(control_draw=pl.lit(draw, pl.String)))
    if not frames:
        return pl.DataFrame(schema=ABLATION_SCHEMA)
    return pl.concat(frames)


def _union(operations: Sequence[Operation]) -> NeuronSet:
    return merge_sets([op.neurons for op in operations])


# --------------------------------------------------------------------------- summary


def summarize(frame: pl.DataFrame, by: Sequence[str] = ()) -> pl.DataFrame:
    """Per ``by`` columns, metric and control: the mean change on the intervened group's own
    examples (``diagonal``) and on the other groups' (``off_diagonal``), over intervened groups
    (and, for random controls, seeds); the groups and mean neurons switched off."""
    return (
        frame.with_columns(own=pl.col("evaluated") == pl.col("intervened"))
        .group_by([*by, "metric", "control"], maintain_order=True)
        .agg(
            diagonal=pl.col("delta").filter(pl.col("own")).mean(),
            off_diagonal=pl.col("delta").filter(~pl.col("own")).mean(),
            n_groups=pl.col("intervened").n_unique(),
            n_neurons=pl.col("n_neurons").mean(),
        )
    )
