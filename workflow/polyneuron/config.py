"""Checks on a schema-validated config that JSON Schema cannot express."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from polyneuron import PolyneuronError
from polyneuron.languages import check_languages, language_names
from polyneuron.models import ModelSpec, check_source


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
    check_languages(refusal["translator_for"], names, "probes.refusal.translator_for")
    used = {
        refusal["translator_for"].get(lang, refusal["translator"]) for lang in refusal["languages"]
    }
    llm = config["translators"]["llm"]["model"]
    if "llm" in used and llm not in config["models"]:
        raise PolyneuronError(
            f"config key translators.llm.model: {llm!r} is not one of the models "
            f"({', '.join(config['models'])}); the llm translator uses a model from models:"
        )
