"""Planted tables for the findings tests, in the workflow's own schemas."""

from __future__ import annotations

import polars as pl

from polyneuron.evaluate.matrix import ABLATION_SCHEMA

NAN = float("nan")


def ablation(
    own: dict[tuple[str, str], tuple[float, float, float]],
    random: dict[tuple[str, str], list[tuple[float, float, float]]],
    metric: str = "nll",
    baseline: float = 1.0,
    **extra: object,
) -> pl.DataFrame:
    """ABLATION_SCHEMA rows: ``own[(intervened, evaluated)] = (delta, ci_low, ci_high)`` for the
    set itself, ``random[...]`` one such triple per seed; ``extra`` constant columns."""
    rows = []
    for (a, b), (delta, low, high) in own.items():
        rows.append(
            (a, b, metric, baseline + delta, baseline, delta, "none", None, None, low, high, 10, 5)
        )
    for (a, b), seeds in random.items():
        for seed, (delta, low, high) in enumerate(seeds):
            rows.append(
                (
                    a,
                    b,
                    metric,
                    baseline + delta,
                    baseline,
                    delta,
                    "random",
                    seed,
                    "matched",
                    low,
                    high,
                    10,
                    5,
                )
            )
    frame = pl.DataFrame(rows, schema=ABLATION_SCHEMA, orient="row")
    return frame.with_columns(**{k: pl.lit(v) for k, v in extra.items()})


def diagonal(own_diag: float, own_off: float, ctrl: float, langs=("de", "sw")) -> pl.DataFrame:
    """Every language intervened on every language: ``own_diag`` on its own texts, ``own_off``
    on the others, each with a ±0.1 interval; random controls ``ctrl`` ±0.1 over two seeds."""
    own = {(a, b): ((own_diag if a == b else own_off),) * 1 for a in langs for b in langs}
    own = {k: (v[0], v[0] - 0.1, v[0] + 0.1) for k, v in own.items()}
    random = {(a, b): [(ctrl, ctrl - 0.1, ctrl + 0.1)] * 2 for a in langs for b in langs}
    return ablation(own, random)
