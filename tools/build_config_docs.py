#!/usr/bin/env python3
"""Write ``docs/config.md``, the configuration reference, from the config schema.

``workflow/schemas/config.schema.yaml`` is the one place every config key is described: its
type, default, allowed values and meaning. This script renders it as Markdown, one section per
top-level key and one table row per key at any depth, in the schema's order::

    python tools/build_config_docs.py          # (re)write docs/config.md
    python tools/build_config_docs.py --check  # exit 1 when docs/config.md is out of date

``tests/unit/test_config_docs.py`` runs the check, so an edited schema without a regenerated
reference fails the tests.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
OUTPUT = ROOT / "docs" / "config.md"
COMMAND = "python tools/build_config_docs.py"
PLACEHOLDER = "<name>"  # the key of an entry of a map (additionalProperties with properties)

Schema = Mapping[str, Any]


@dataclass(frozen=True)
class Property:
    """One config key: its dotted path (``probes.muse.max_words``; ``models.<name>.source``
    for an entry of a map), its schema, and whether its parent object requires it."""

    path: str
    schema: Schema
    required: bool


def resolve(schema: Schema, root: Schema) -> Schema:
    """``schema`` with a local ``$ref`` (``#/$defs/...``) followed; its own keys win over the
    referenced ones. YAML anchors need nothing: ``yaml.safe_load`` has expanded them."""
    seen = 0
    while "$ref" in schema:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise ValueError(f"only local $ref is supported, not {ref!r}")
        target: Any = root
        for part in ref.removeprefix("#").strip("/").split("/"):
            if part:
                target = target[part.replace("~1", "/").replace("~0", "~")]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        seen += 1
        if seen > 50:
            raise ValueError(f"$ref cycle at {ref!r}")
    return schema


def branches(schema: Schema, root: Schema) -> list[Schema]:
    """The resolved branches of ``oneOf``/``anyOf`` (empty when there are none)."""
    return [resolve(b, root) for key in ("oneOf", "anyOf") for b in schema.get(key, [])]


def properties(schema: Schema, prefix: str = "", root: Schema | None = None) -> Iterator[Property]:
    """Every property of ``schema`` at every depth, depth first in the schema's order: each
    object's ``properties``, the properties of a map's entries (``additionalProperties`` with
    properties, as ``prefix.<name>.key``) and of ``oneOf``/``anyOf`` branches (a path
    yielded once, from its first branch)."""
    root = schema if root is None else root
    schema = resolve(schema, root)
    seen: set[str] = set()
    for node in [schema, *branches(schema, root)]:
        required = set(node.get("required", []))
        for name, sub in node.get("properties", {}).items():
            path = f"{prefix}.{name}" if prefix else name
            if path in seen:
                continue
            seen.add(path)
            sub = resolve(sub, root)
            yield Property(path, sub, name in required)
            yield from properties(sub, path, root)
        entry = node.get("additionalProperties")
        if isinstance(entry, Mapping) and has_properties(entry, root):
            entry_prefix = f"{prefix}.{PLACEHOLDER}" if prefix else PLACEHOLDER
            yield from (p for p in properties(entry, entry_prefix, root) if p.path not in seen)


def has_properties(schema: Schema, root: Schema) -> bool:
    schema = resolve(schema, root)
    return bool(schema.get("properties")) or any(
        has_properties(b, root) for b in branches(schema, root)
    )


def type_of(schema: Schema, root: Schema) -> str:
    """``string``, ``integer or null``, ...; from the branches when there is no ``type``."""
    schema = resolve(schema, root)
    kind = schema.get("type")
    if kind is None:
        names = list(dict.fromkeys(type_of(b, root) for b in branches(schema, root)))
        return " or ".join(n for n in names if n) if names else ""
    return " or ".join(kind) if isinstance(kind, list) else str(kind)


def literal(value: Any) -> str:
    """A value as JSON (``null``, ``true``, ``"en"``, ``["en", "zh"]``)."""
    return json.dumps(value, ensure_ascii=False)


def number(value: float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def value_range(schema: Schema) -> str:
    """``0 < x ≤ 1``, ``x ≥ 1``, ``x < 1``, ... from the numeric bounds; '' without any."""
    lower = upper = ""
    if "exclusiveMinimum" in schema:
        lower = f"{number(schema['exclusiveMinimum'])} <"
    elif "minimum" in schema:
        lower = f"{number(schema['minimum'])} ≤"
    if "exclusiveMaximum" in schema:
        upper = f"< {number(schema['exclusiveMaximum'])}"
    elif "maximum" in schema:
        upper = f"≤ {number(schema['maximum'])}"
    if lower and upper:
        return f"{lower} x {upper}"
    if lower:  # "1 ≤" -> "x ≥ 1"
        bound, sign = lower.rsplit(" ", 1)
        return f"x {'≥' if sign == '≤' else '>'} {bound}"
    if upper:
        return f"x {upper}"
    return ""


def count(n: int, word: str, plural: str = "") -> str:
    return f"{n} {word}" if n == 1 else f"{n} {plural or word + 's'}"


def constraints(schema: Schema, root: Schema) -> list[str]:
    """What a value may be, beyond its type, one phrase per constraint (Markdown)."""
    schema = resolve(schema, root)
    parts: list[str] = []
    if "const" in schema:
        parts.append(f"exactly {code(literal(schema['const']))}")
    if "enum" in schema:
        parts.append("one of " + ", ".join(code(literal(v)) for v in schema["enum"]))
    bounds = value_range(schema)
    if bounds:
        parts.append(bounds)
    min_length, max_length = schema.get("minLength"), schema.get("maxLength")
    if min_length == 1 and max_length is None:
        parts.append("non-empty")
    elif min_length is not None:
        parts.append(f"at least {count(min_length, 'character')}")
    if max_length is not None:
        parts.append(f"at most {count(max_length, 'character')}")
    if "pattern" in schema:
        parts.append(f"matches {code(schema['pattern'])}")
    min_items, max_items = schema.get("minItems"), schema.get("maxItems")
    if min_items is not None and min_items == max_items:
        parts.append(f"exactly {count(min_items, 'item')}")
    else:
        if min_items is not None:
            parts.append(f"at least {count(min_items, 'item')}")
        if max_items is not None:
            parts.append(f"at most {count(max_items, 'item')}")
    if schema.get("uniqueItems"):
        parts.append("no duplicates")
    items = schema.get("items")
    if isinstance(items, Mapping):
        parts.append(f"items: {value_summary(items, root)}")
    min_props = schema.get("minProperties")
    if min_props is not None:
        parts.append(f"at least {count(min_props, 'entry', 'entries')}")
    names = schema.get("propertyNames")
    if isinstance(names, Mapping) and constraints(names, root):
        parts.append(f"keys: {'; '.join(constraints(names, root))}")
    entry = schema.get("additionalProperties")
    if isinstance(entry, Mapping) and not has_properties(entry, root):
        parts.append(f"values: {value_summary(entry, root)}")
    alternatives = branches(schema, root)
    if alternatives and any(constraints(b, root) for b in alternatives):
        parts.append("either " + " or ".join(f"({value_summary(b, root)})" for b in alternatives))
    return parts


def value_summary(schema: Schema, root: Schema) -> str:
    """A nested value (an array's items, a map's values) in a few words: type, constraints."""
    parts = [type_of(schema, root), *constraints(schema, root)]
    return ", ".join(p for p in parts if p) or "anything"


def code(text: str) -> str:
    """``text`` as a Markdown code span that survives a table cell (``|`` escaped)."""
    text = text.replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


_ESCAPE = re.compile(r"[\\`*|<\[\]]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def prose(text: str) -> str:
    """A description as one line of Markdown: whitespace collapsed, and the characters that
    would turn into markup (``*.jsonl``, ``<module>``, ``|``) escaped."""
    text = " ".join(str(text).split())
    return _ESCAPE.sub(lambda m: "\\" + m.group(0), text)


def default_of(prop: Property) -> str:
    if "default" in prop.schema:
        return code(literal(prop.schema["default"]))
    return "— (required)" if prop.required else "—"


def row(prop: Property, root: Schema) -> str:
    cells = [
        code(prop.path),
        type_of(prop.schema, root) or "—",
        default_of(prop),
        "; ".join(constraints(prop.schema, root)) or "—",
        prose(prop.schema.get("description", "")),
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = ("| key | type | default | allowed | description |", "| --- | --- | --- | --- | --- |")


def render(schema: Schema) -> str:
    """The whole reference: title, introduction, then per top-level key a section with its
    description and a table of it and every key under it."""
    lines = [
        "# Configuration reference",
        "",
        "This file is generated from `workflow/schemas/config.schema.yaml` by "
        f"`{COMMAND}`; do not edit it by hand: edit the schema (every key's type, default, "
        f"allowed values and description live there) and run `{COMMAND}` to regenerate it "
        "(the tests fail while it is out of date). Snakemake validates the config against the "
        "schema, fills in the defaults listed here for keys you leave out and rejects unknown "
        "keys; `config.yaml` holds the embedded default run's settings, which differ from these "
        "defaults in places. A key with `<name>` in its path belongs to each entry of a map "
        "(`models.<name>.source`: the `source` of every model).",
    ]
    root_required = set(schema.get("required", []))
    all_props = list(properties(schema))
    for name, sub in schema.get("properties", {}).items():
        sub = resolve(sub, schema)
        lines += ["", f"## `{name}`", ""]
        if sub.get("description"):
            lines += [prose(sub["description"]), ""]
        lines += HEADER
        top = Property(name, sub, name in root_required)
        lines.append(row(top, schema))
        lines += [row(p, schema) for p in all_props if p.path.startswith(f"{name}.")]
    return "\n".join(lines) + "\n"


def load(path: Path = SCHEMA) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the output is out of date; write nothing"
    )
    parser.add_argument("--schema", type=Path, default=SCHEMA, help="the config schema (YAML)")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="the Markdown to write")
    args = parser.parse_args(argv)
    text = render(load(args.schema))
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else None
        if current != text:
            name = "docs/config.md" if args.output == OUTPUT else str(args.output)
            print(f"{name} is out of date: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
