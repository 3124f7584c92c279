"""The findings report: every claim on every configured model, as a table and as Markdown.

:data:`CLAIMS` lists the seed papers' headline claims in report order, each with the tables it
reads and the function of :mod:`polyneuron.findings.claims` that measures it;
:func:`findings_frame` evaluates them all (one row per claim and model, none left out) and
:func:`render_markdown` writes ``results/findings.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from polyneuron.findings import claims as c

__all__ = [
    "CLAIMS",
    "FINDINGS_SCHEMA",
    "TABLES",
    "Claim",
    "findings_frame",
    "read_tables",
    "render_markdown",
]

Tables = Mapping[str, pl.DataFrame | None]

#: the tables the findings read, by key: their path under results/ ({model} filled in)
TABLES: dict[str, str] = {
    "lape": "evaluation/{model}/lape.parquet",
    "overlap_neurons": "neurons/{model}/overlap.parquet",
    "bridges": "neurons/{model}/bridges.parquet",
    "overlap": "evaluation/{model}/overlap.parquet",
    "values": "evaluation/{model}/values.parquet",
    "tasks": "evaluation/{model}/tasks.parquet",
    "relations": "evaluation/{model}/relations.parquet",
    "logit_lens": "neurons/{model}/logit_lens.parquet",
    "xtransplant": "evaluation/{model}/xtransplant.parquet",
    "refusal": "evaluation/{model}/refusal.parquet",
    "refusal_neurons": "neurons/{model}/refusal.parquet",
}

FINDINGS_SCHEMA: dict[str, pl.DataType] = {
    "claim": pl.String(),
    "paper": pl.String(),
    "model": pl.String(),
    "measured": pl.String(),
    "ci": pl.String(),
    "control": pl.String(),
    "verdict": pl.String(),
    "reason": pl.String(),
}


@dataclass(frozen=True)
class Claim:
    key: str
    paper: str
    statement: str  # the paper's claim, in a sentence
    chat: bool  # measured on the chat models (refusal), else on the base models
    measure: Callable[[Tables, c.Thresholds], c.Finding]


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "LAPE diagonal",
        "LAPE (Tang et al., 2024)",
        "Switching off a language's language-specific neurons raises the NLL of that language "
        "far more than of the others, and more than random neurons do.",
        False,
        lambda t, th: c.diagonal_specificity(t["lape"], th, "nll", "language", "lape"),
    ),
    Claim(
        "Overlap by family",
        "BridgeX-ICL (Xu et al., 2025)",
        "Languages of one family share more overlap neurons than languages of different "
        "families: the overlap neurons trace the model's linguistic spectrum.",
        False,
        lambda t, th: c.overlap_families(t["overlap_neurons"], th),
    ),
    Claim(
        "Bridge language",
        "BridgeX-ICL (Xu et al., 2025)",
        "The HSIC score over overlap neurons picks, for a low-resource language, a bridge "
        "that is related to it or high-resource.",
        False,
        lambda t, th: c.bridge_choice(t["bridges"], th),
    ),
    Claim(
        "Overlap-set ablation",
        "BridgeX-ICL (Xu et al., 2025)",
        "Overlap neurons are shared across languages: switching a language's overlap set off "
        "hurts the other languages too, beyond random neurons.",
        False,
        lambda t, th: c.overlap_ablation(t["overlap"], th),
    ),
    Claim(
        "Value shifts",
        "ValueExploration (Hu et al., 2025)",
        "Deactivating the neurons of a value shifts the model's value-oriented choices, "
        "beyond random neurons.",
        False,
        lambda t, th: c.value_shifts(t["values"], th),
    ),
    Claim(
        "Task specialisation",
        "Task-specific neurons (Leng and Xiong, 2025)",
        "Deactivating a task's neurons hurts that task more than other tasks' neurons do, "
        "and more than random neurons.",
        False,
        lambda t, th: c.diagonal_specificity(t["tasks"], th, "loss", "task", "tasks"),
    ),
    Claim(
        "Relation cumulativity",
        "Relation-specific neurons (arXiv 2502.17355)",
        "Deactivating a larger share of a relation's neurons degrades more of its facts, "
        "beyond random neurons.",
        False,
        lambda t, th: c.relation_cumulativity(t["relations"], th),
    ),
    Claim(
        "Refusal direction transfer",
        "PolyRefuse (arXiv 2505.17306)",
        "The refusal direction found on English prompts bypasses refusal in other languages "
        "when ablated, far more than a random direction.",
        True,
        lambda t, th: c.refusal_transfer(t["refusal"], t["refusal_neurons"], th),
    ),
    Claim(
        "Logit-lens switch",
        "English pivot (Wendler et al., 2024; arXiv 2503.01275)",
        "Non-English prompts pass through English in the middle layers; the target-language "
        "answer takes over only in the last layers.",
        False,
        lambda t, th: c.lens_switch(t["logit_lens"], th),
    ),
    Claim(
        "XTransplant",
        "XTransplant (Ye et al., 2024, arXiv 2412.12686)",
        "Transplanting English FFN outputs into a non-English input can improve the model's "
        "answer in that language.",
        False,
        lambda t, th: c.xtransplant_gain(t["xtransplant"], th),
    ),
)


def _finding(
    claim: Claim,
    model: str,
    tables: Tables,
    th: c.Thresholds,
    base: bool,
    chat: bool,
    any_chat: bool,
) -> c.Finding:
    if claim.chat and not chat:
        if not any_chat:
            return c.not_run("no chat_models configured")
        return c.Finding(
            c.NOT_MEASURABLE,
            "a base model: refusal directions are found on the instruction-tuned chat_models only",
        )
    if not claim.chat and not base:
        return c.not_run("a chat model: chat_models run the refusal method only")
    try:
        return claim.measure(tables, th)
    except (pl.exceptions.ColumnNotFoundError, KeyError) as err:  # a table of an older run
        return c.Finding(c.NOT_MEASURABLE, f"the table lacks a column it needs: {err}")


def findings_frame(
    tables: Mapping[str, Tables],
    models: Sequence[str],
    chat_models: Sequence[str],
    th: c.Thresholds,
    planted: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """One row per claim of :data:`CLAIMS` and model (base models, then chat models not among
    them), in that order: :data:`FINDINGS_SCHEMA`. ``tables[model][key]`` is the table of
    :data:`TABLES` key, None where this configuration does not make it (a missing key too).
    ``planted`` names the models whose behaviour an adapter planted (model -> adapter file):
    their reasons say first that they are a positive control, not evidence about the model."""
    planted = planted or {}
    names = [*models, *(m for m in chat_models if m not in models)]
    rows = []
    for claim in CLAIMS:
        for model in names:
            own = {key: tables.get(model, {}).get(key) for key in TABLES}
            found = _finding(
                claim, model, own, th, model in models, model in chat_models, bool(chat_models)
            )
            found = replace(found, claim=claim.key, model=model)
            if model in planted:
                found = replace(
                    found,
                    reason=f"positive control: behaviour planted by the adapter {planted[model]}, "
                    f"not learned by the model; {found.reason}",
                )
            rows.append(
                {
                    **{k: getattr(found, k) for k in FINDINGS_SCHEMA if k != "paper"},
                    "paper": claim.paper,
                }
            )
    return pl.DataFrame(rows, schema=FINDINGS_SCHEMA, orient="row")


def read_tables(paths: Mapping[str, Sequence[str | Path]]) -> dict[str, dict[str, pl.DataFrame]]:
    """``{model: {key: table}}`` from each :data:`TABLES` key's files, the model read from each
    path's folder (``results/evaluation/{model}/lape.parquet``)."""
    tables: dict[str, dict[str, pl.DataFrame]] = {}
    for key, files in paths.items():
        if key not in TABLES:
            raise ValueError(f"unknown findings table {key!r}; expected one of {list(TABLES)}")
        for path in files:
            tables.setdefault(Path(path).parent.name, {})[key] = pl.read_parquet(path)
    return tables


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(frame: pl.DataFrame, th: c.Thresholds) -> str:
    """``results/findings.md``: an overview table of verdicts, then per claim its statement and
    one row per model with what was measured, its interval, the control and the reason."""
    lines = [
        "# Findings: the seed papers' claims on the configured models",
        "",
        "Each claim measured on this run's tables, with a verdict: **reproduced**, **not "
        "reproduced**, **not measurable on this model** (with the reason) or **not run in this "
        "configuration**. How each verdict is decided: docs/results.md, section Findings. "
        f"Thresholds (config `findings:`): majority > {th.majority:g}, min_refusal_rate "
        f"{th.min_refusal_rate:g}, lens_min_prob {th.lens_min_prob:g}, high_resource "
        f"{', '.join(th.high_resource)}; bootstrap intervals {1 - th.alpha:.0%}, "
        f"{th.n_boot} resamples, seed {th.seed}.",
        "",
        "| claim | paper | model | verdict |",
        "| --- | --- | --- | --- |",
    ]
    for r in frame.iter_rows(named=True):
        lines.append(
            f"| {_cell(r['claim'])} | {_cell(r['paper'])} | {_cell(r['model'])} | "
            f"**{r['verdict']}** |"
        )
    by_key = {claim.key: claim for claim in CLAIMS}
    for key in frame["claim"].unique(maintain_order=True):
        claim = by_key.get(key)
        rows = frame.filter(pl.col("claim") == key)
        lines += [
            "",
            f"## {key}",
            "",
            f"{rows['paper'][0]}: {claim.statement if claim else ''}",
            "",
        ]
        lines += [
            "| model | verdict | measured | CI | control | reason |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in rows.iter_rows(named=True):
            cells = [r[k] for k in ("model", "verdict", "measured", "ci", "control", "reason")]
            lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    return "\n".join(lines) + "\n"
