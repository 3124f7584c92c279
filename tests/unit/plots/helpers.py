"""Shared by the plot tests: synthetic ablation tables and checks of a saved figure."""

from __future__ import annotations

import itertools

import polars as pl

from polyneuron.evaluate.matrix import ABLATION_SCHEMA

SEEDS = (0, 1)


def own_delta(a: str, b: str, extra: tuple = ()) -> float:
    """A delta that tells cells apart: the own set hurts its own group most."""
    return (10.0 if a == b else 1.0) + 0.1 * len(b) + 0.01 * sum(len(str(x)) for x in extra)


def random_delta(seed: int) -> float:
    return 0.5 if seed == 0 else -0.3  # mean over the two seeds: 0.1


def ablation_table(
    intervened, evaluated, metric="perplexity", extra: dict[str, list] | None = None
) -> pl.DataFrame:
    """Rows of ABLATION_SCHEMA (+ extra key columns): own set and two random seeds per cell;
    intervals delta -/+ 1 (own) and delta -/+ (1 + seed) (random)."""
    extra = extra or {}
    rows = []
    for a, b, *values in itertools.product(intervened, evaluated, *extra.values()):
        for control, seed in (("none", None), *(("random", s) for s in SEEDS)):
            delta = own_delta(a, b, tuple(values)) if seed is None else random_delta(seed)
            half = 1.0 if seed is None else 1.0 + seed
            rows.append({
                "intervened": a, "evaluated": b, "metric": metric, "value": 5.0 + delta,
                "baseline": 5.0, "delta": delta, "control": control, "seed": seed,
                "ci_low": delta - half, "ci_high": delta + half, "n_neurons": 7,
                "n_texts": 10, **dict(zip(extra, values, strict=True)),
            })  # fmt: skip
    schema = {**ABLATION_SCHEMA, **{c: pl.Series(v).dtype for c, v in extra.items()}}
    return pl.DataFrame(rows, schema=schema)


def assert_pdf(path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 1000


def labels(fig) -> tuple[set[str], set[str], set[str]]:
    axes = [ax for ax in fig.axes if ax.get_visible()]
    return (
        {ax.get_title() for ax in axes},
        {ax.get_xlabel() for ax in axes},
        {ax.get_ylabel() for ax in axes},
    )
