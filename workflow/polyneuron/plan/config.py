"""Checks on a schema-validated config that JSON Schema cannot express."""

from __future__ import annotations

import reprlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for

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
        adapter=entry.get("adapter"),
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


def schema_problem(config: Mapping[str, Any], schema: Mapping[str, Any]) -> str | None:
    """The one most relevant schema violation of ``config`` as a short message naming its key
    (an unknown key with the closest known one), or None when the config is valid."""
    validator = validator_for(schema)(schema)
    error = best_match(validator.iter_errors(config))
    if error is None:
        return None
    path = [str(part) for part in error.absolute_path]
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = list(error.schema.get("properties", {}))
        unknown = [name for name in error.instance if name not in known]
        lines = []
        for name in unknown:
            close = get_close_matches(name, known, n=1)
            hint = (
                f"did you mean {'.'.join([*path, close[0]])}?"
                if close
                else f"known keys here: {', '.join(known)}"
            )
            lines.append(f"config key {'.'.join([*path, name])}: unknown key; {hint}")
        return "\n".join(lines)
    where = f"config key {'.'.join(path)}" if path else "config"
    message = error.message
    if len(message) > 200:
        message = (
            f"{reprlib.repr(error.instance)} breaks the schema's {error.validator!r} "
            f"({reprlib.repr(error.validator_value)})"
        )
    return f"{where}: {message} (workflow/schemas/config.schema.yaml)"


class _Problems:
    """Collects the message of every failed check, so that one run names every bad key."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    @contextmanager
    def check(self) -> Iterator[None]:
        try:
            yield
        except PolyneuronError as err:
            self.messages.append(str(err))

    def add(self, message: str) -> None:
        self.messages.append(message)

    def raise_any(self) -> None:
        if len(self.messages) == 1:
            raise PolyneuronError(self.messages[0])
        if self.messages:
            raise PolyneuronError(
                f"{len(self.messages)} problems:\n" + "\n".join(f"- {m}" for m in self.messages)
            )


def check_config(config: Mapping[str, Any]) -> None:
    """Raise :class:`polyneuron.PolyneuronError` naming every bad key at once."""
    problems = _Problems()
    names = language_names(config.get("language_names"))
    langs = config["languages"]
    with problems.check():
        check_languages(langs, names, "languages")
    pivot = config["probes"]["muse"]["pivot"]
    with problems.check():
        check_languages([pivot], names, "probes.muse.pivot")
    for name, entry in config["models"].items():
        with problems.check():
            check_source(model_spec(name, entry))
    for name, entry in config.get("chat_models", {}).items():
        if name in config["models"] and config["models"][name] != entry:
            problems.add(
                f"config key chat_models.{name}: the name is also under models: with other "
                "settings; give one of them another name, or the same settings"
            )
        try:
            check_source(model_spec(name, entry))
        except PolyneuronError as err:  # name the section the entry is in
            problems.add(str(err).replace("config key models.", "config key chat_models.", 1))
    bridges = config["bridges"]
    for key in ("targets", "candidates"):
        with problems.check():
            _check_subset(bridges[key], langs, f"bridges.{key}", "languages")
    refusal = config["probes"]["refusal"]
    probes = config["probes"]
    for section in ("refusal", "relations", "values"):
        codes = probes.get(section, {}).get("languages", [])
        with problems.check():
            check_languages(codes, names, f"probes.{section}.languages")
    with problems.check():
        xlsx = probes.get("values", {}).get("xlsx_lang")
        check_languages([xlsx] if xlsx else [], names, "probes.values.xlsx_lang")
    with problems.check():
        _check_subset(config["refusal_directions"]["languages"], refusal["languages"],
                      "refusal_directions.languages", "probes.refusal.languages")  # fmt: skip
    with problems.check():
        _check_subset(config["ablation"]["languages"], langs, "ablation.languages", "languages")
    pool = config.get("relation_neurons", {}).get("pool")
    if pool == "reference" and config["ablation"].get("mode") == "mean":
        problems.add(
            "config key ablation.mode: mean cannot switch off relation neurons of "
            "relation_neurons.pool: reference (the gate, up and down projections' outputs have no "
            "stored means); use zero or scale, or relation_neurons.pool: activation"
        )
    lens = config["logit_lens"]
    with problems.check():
        _check_subset(lens["muse_languages"], langs, "logit_lens.muse_languages", "languages")
    relation_langs = probes["relations"]["languages"]
    with problems.check():
        _check_subset(lens["relation_languages"], relation_langs,
                      "logit_lens.relation_languages", "probes.relations.languages")  # fmt: skip
    lens_relations = lens["relation_languages"]
    if lens_relations is None:
        lens_relations = relation_langs
    if lens_relations and "en" not in lens_relations:
        problems.add(
            "config key logit_lens.relation_languages: needs en (the English prompts give each "
            "relation prompt's English answer)"
        )
    evaluation = config.get("evaluation", {})
    with problems.check():
        _check_subset(evaluation.get("overlap", {}).get("languages"), langs,
                      "evaluation.overlap.languages", "languages")  # fmt: skip
    with problems.check():
        _check_subset(evaluation.get("relations", {}).get("languages"), relation_langs,
                      "evaluation.relations.languages", "probes.relations.languages")  # fmt: skip
    with problems.check():
        _check_subset(evaluation.get("values", {}).get("languages"),
                      probes.get("values", {}).get("languages", []),
                      "evaluation.values.languages", "probes.values.languages")  # fmt: skip
    bli_langs = evaluation.get("bli", {}).get("languages")
    with problems.check():
        _check_subset(bli_langs, langs, "evaluation.bli.languages", "languages")
    if pivot in (bli_langs or []):
        problems.add(
            f"config key evaluation.bli.languages: {pivot!r} is the pivot (probes.muse.pivot), "
            "the language every word is translated into"
        )
    transplant_langs = evaluation.get("xtransplant", {}).get("languages") or []
    with problems.check():
        _check_subset(transplant_langs, relation_langs, "evaluation.xtransplant.languages",
                      "probes.relations.languages")  # fmt: skip
    if transplant_langs and ("en" in transplant_langs or "en" not in relation_langs):
        problems.add(
            "config key evaluation.xtransplant.languages: each is paired with en, which must "
            "be among probes.relations.languages and not among these"
        )
    with problems.check():
        check_languages(refusal["translator_for"], names, "probes.refusal.translator_for")
    used = {
        refusal["translator_for"].get(lang, refusal["translator"]) for lang in refusal["languages"]
    }
    llm = config["translators"]["llm"]["model"]
    known = [*config["models"], *config.get("chat_models", {})]
    if "llm" in used and llm not in known:
        problems.add(
            f"config key translators.llm.model: {llm!r} is not one of the models "
            f"({', '.join(known)}); the llm translator uses a model from models: or chat_models:"
        )
    problems.raise_any()
