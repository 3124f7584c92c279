"""Checks on a schema-validated config that JSON Schema cannot express."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from polyneuron import PolyneuronError
from polyneuron.model.load import ModelSpec, check_source
from polyneuron.plan.languages import check_languages, language_names


def model_spec(name: str, entry: Mapping[str, Any]) -> ModelSpec:
    return ModelSpec(
        name=name,
        source=entry["source"],
        dtype=entry.get("dtype", "float32"),
        device=entry.get("device", "auto"),
        device_map=entry.get("device_map"),
        trust_remote_code=bool(entry.get("trust_remote_code", False)),
        revision=entry.get("revision"),
    )


def model_entry(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """A model's config entry, from ``models:`` or ``chat_models:``."""
    for section in ("models", "chat_models"):
        entry = config.get(section, {}).get(name)
        if entry is not None:
            return entry
    raise PolyneuronError(f"no model {name!r} under models: or chat_models:")


def _check_subset(values: Any, allowed: list[str], key: str, where: str) -> None:
    unknown = [value for value in values or [] if value not in allowed]
    if unknown:
        raise PolyneuronError(
            f"config key {key}: {', '.join(map(repr, unknown))} not among {where} "
            f"({', '.join(allowed)})"
        )


def resolve_path(path: str, basedir: str | Path) -> Path:
    """A configured path: absolute, else relative to the working directory if it exists there,
    else relative to the workflow's own folder (where the shipped ``data/`` lives)."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return Path(basedir) / candidate


def check_config(config: Mapping[str, Any]) -> None:
    """Raise :class:`polyneuron.PolyneuronError` naming the first bad key."""
    names = language_names(config.get("language_names"))
    check_languages(config["languages"], names, "languages")
    pivot = config["probes"]["muse"]["pivot"]
    check_languages([pivot], names, "probes.muse.pivot")
    for name, entry in config["models"].items():
        check_source(model_spec(name, entry))
    for name, entry in config.get("chat_models", {}).items():
        if name in config["models"] and config["models"][name] != entry:
            raise PolyneuronError(
                f"config key chat_models.{name}: the name is also under models: with other "
                "settings; give one of them another name, or the same settings"
            )
        try:
            check_source(model_spec(name, entry))
        except PolyneuronError as err:  # name the section the entry is in
            message = str(err).replace("config key models.", "config key chat_models.", 1)
            raise PolyneuronError(message) from None
    bridges = config["bridges"]
    for key in ("targets", "candidates"):
        unknown = [lang for lang in bridges[key] or [] if lang not in config["languages"]]
        if unknown:
            raise PolyneuronError(
                f"config key bridges.{key}: {', '.join(map(repr, unknown))} not among the "
                "configured languages"
            )
    refusal = config["probes"]["refusal"]
    check_languages(refusal["languages"], names, "probes.refusal.languages")
    _check_subset(
        config["refusal_directions"]["languages"],
        refusal["languages"],
        "refusal_directions.languages",
        "probes.refusal.languages",
    )
    _check_subset(config["ablation"]["languages"], config["languages"], "ablation.languages",
                  "languages")  # fmt: skip
    lens = config["logit_lens"]
    _check_subset(lens["muse_languages"], config["languages"], "logit_lens.muse_languages",
                  "languages")  # fmt: skip
    relation_langs = config["probes"]["relations"]["languages"]
    _check_subset(lens["relation_languages"], relation_langs, "logit_lens.relation_languages",
                  "probes.relations.languages")  # fmt: skip
    lens_relations = lens["relation_languages"]
    if lens_relations is None:
        lens_relations = relation_langs
    if lens_relations and "en" not in lens_relations:
        raise PolyneuronError(
            "config key logit_lens.relation_languages: needs en (the English prompts give each "
            "relation prompt's English answer)"
        )
    evaluation = config.get("evaluation", {})
    _check_subset(evaluation.get("relations", {}).get("languages"), relation_langs,
                  "evaluation.relations.languages", "probes.relations.languages")  # fmt: skip
    _check_subset(evaluation.get("values", {}).get("languages"),
                  config["probes"].get("values", {}).get("languages", []),
                  "evaluation.values.languages", "probes.values.languages")  # fmt: skip
    bli_langs = evaluation.get("bli", {}).get("languages")
    _check_subset(bli_langs, config["languages"], "evaluation.bli.languages", "languages")
    if pivot in (bli_langs or []):
        raise PolyneuronError(
            f"config key evaluation.bli.languages: {pivot!r} is the pivot (probes.muse.pivot), "
            "the language every word is translated into"
        )
    transplant_langs = evaluation.get("xtransplant", {}).get("languages") or []
    _check_subset(transplant_langs, relation_langs, "evaluation.xtransplant.languages",
                  "probes.relations.languages")  # fmt: skip
    if transplant_langs and ("en" in transplant_langs or "en" not in relation_langs):
        raise PolyneuronError(
            "config key evaluation.xtransplant.languages: each is paired with en, which must "
            "be among probes.relations.languages and not among these"
        )
    check_languages(refusal["translator_for"], names, "probes.refusal.translator_for")
    used = {
        refusal["translator_for"].get(lang, refusal["translator"]) for lang in refusal["languages"]
    }
    llm = config["translators"]["llm"]["model"]
    known = [*config["models"], *config.get("chat_models", {})]
    if "llm" in used and llm not in known:
        raise PolyneuronError(
            f"config key translators.llm.model: {llm!r} is not one of the models "
            f"({', '.join(known)}); the llm translator uses a model from models: or chat_models:"
        )
