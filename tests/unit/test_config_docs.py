"""docs/config.md is generated from the config schema (tools/build_config_docs.py) and up to
date, and every key of the schema is described."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "build_config_docs.py"
REGENERATE = "python tools/build_config_docs.py"


def load_tool():
    """tools/build_config_docs.py as a module."""
    if "build_config_docs" not in sys.modules:
        spec = importlib.util.spec_from_file_location("build_config_docs", TOOL)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["build_config_docs"]


@pytest.fixture(scope="module")
def tool():
    return load_tool()


@pytest.fixture(scope="module")
def schema(tool):
    return tool.load(tool.SCHEMA)


def test_the_committed_reference_is_the_rendered_schema(tool, schema):
    committed = tool.OUTPUT.read_text(encoding="utf-8")
    assert committed == tool.render(schema), (
        f"docs/config.md is out of date with workflow/schemas/config.schema.yaml: run {REGENERATE}"
    )


def test_every_key_of_the_schema_has_a_description(tool, schema):
    keys = list(tool.properties(schema))
    missing = [p.path for p in keys if not str(p.schema.get("description", "")).strip()]
    assert not missing, "schema keys without a description:\n" + "\n".join(missing)
    # the walk reaches map entries (the model anchor) and deep sections
    paths = {p.path for p in keys}
    assert {
        "models.<name>.source",
        "chat_models.<name>.revision",
        "probes.muse.max_words",
        "probes.refusal.splits.test",
        "evaluation.xtransplant.layers",
    } <= paths
    assert len(keys) > 150


FIXTURE = """
$schema: "https://json-schema.org/draft/2020-12/schema"
type: object
additionalProperties: false
required: [models]
$defs:
  flag: {type: boolean, default: true, description: a referenced flag}
properties:
  models:
    type: object
    description: models by name
    minProperties: 1
    propertyNames: {pattern: "^[a-z]+$"}
    additionalProperties:
      type: object
      required: [source]
      properties:
        source: {type: string, minLength: 1, description: "where it is, e.g. pypi-gguf:<module>"}
        dtype: {type: string, enum: [float32, bfloat16], default: float32, description: dtype}
  section:
    type: object
    default: {}
    description: a section
    properties:
      rate:
        type: number
        exclusiveMinimum: 0
        maximum: 1
        default: 0.95
        description: a share
      count:
        type: [integer, "null"]
        minimum: 2
        default: null
        description: how many
      share:
        type: number
        minimum: 0
        exclusiveMaximum: 1
        default: 0.25
        description: "files *.jsonl | pipes"
      inner:
        type: object
        default: {}
        description: deeper
        properties:
          langs:
            type: array
            items: {type: string, pattern: "^[a-z]{2,3}$"}
            minItems: 1
            uniqueItems: true
            default: [en, zh]
            description: languages
          window:
            type: [array, "null"]
            items: {type: integer, minimum: 0}
            minItems: 2
            maxItems: 2
            default: null
            description: first and last layer
          codes:
            type: object
            additionalProperties: {type: string, pattern: "^[a-z]{3}_[A-Z][a-z]{3}$"}
            default: {}
            description: a map of strings
  choice:
    description: either a number or all
    oneOf:
      - {type: integer, minimum: 1}
      - {type: string, enum: [all]}
    default: all
  flag:
    $ref: "#/$defs/flag"
"""


def test_render_gives_the_expected_rows(tool):
    schema = yaml.safe_load(FIXTURE)
    text = tool.render(schema)
    rows = {
        line.split(" | ")[0].removeprefix("| "): line
        for line in text.splitlines()
        if line.startswith("| `")
    }
    expected = {
        "`models`": "| `models` | object | — (required) | at least 1 entry; keys: matches "
        "`^[a-z]+$` | models by name |",
        "`models.<name>.source`": "| `models.<name>.source` | string | — (required) | non-empty "
        "| where it is, e.g. pypi-gguf:\\<module> |",
        "`models.<name>.dtype`": '| `models.<name>.dtype` | string | `"float32"` | one of '
        '`"float32"`, `"bfloat16"` | dtype |',
        "`section`": "| `section` | object | `{}` | — | a section |",
        "`section.rate`": "| `section.rate` | number | `0.95` | 0 < x ≤ 1 | a share |",
        "`section.count`": "| `section.count` | integer or null | `null` | x ≥ 2 | how many |",
        "`section.share`": "| `section.share` | number | `0.25` | 0 ≤ x < 1 | files \\*.jsonl "
        "\\| pipes |",
        "`section.inner`": "| `section.inner` | object | `{}` | — | deeper |",
        "`section.inner.langs`": '| `section.inner.langs` | array | `["en", "zh"]` | at least 1 '
        "item; no duplicates; items: string, matches `^[a-z]{2,3}$` | languages |",
        "`section.inner.window`": "| `section.inner.window` | array or null | `null` | exactly 2 "
        "items; items: integer, x ≥ 0 | first and last layer |",
        "`section.inner.codes`": "| `section.inner.codes` | object | `{}` | values: string, "
        "matches `^[a-z]{3}_[A-Z][a-z]{3}$` | a map of strings |",
        "`choice`": '| `choice` | integer or string | `"all"` | either (integer, x ≥ 1) or '
        '(string, one of `"all"`) | either a number or all |',
        "`flag`": "| `flag` | boolean | `true` | — | a referenced flag |",
    }
    assert rows == expected
    # one section per top-level key, in the schema's order, each with its table
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == ["## `models`", "## `section`", "## `choice`", "## `flag`"]
    assert text.startswith("# Configuration reference\n")
    assert REGENERATE in text
    assert tool.render(schema) == text  # deterministic


def test_check_fails_on_a_stale_reference_and_passes_once_written(tool, tmp_path, capsys):
    schema = tmp_path / "schema.yaml"
    schema.write_text(FIXTURE, encoding="utf-8")
    output = tmp_path / "config.md"
    args = ["--schema", str(schema), "--output", str(output)]
    assert tool.main([*args, "--check"]) == 1  # missing
    assert "is out of date: run python tools/build_config_docs.py" in capsys.readouterr().err
    assert tool.main(args) == 0
    assert tool.main([*args, "--check"]) == 0
    output.write_text(output.read_text(encoding="utf-8") + "edited\n", encoding="utf-8")
    assert tool.main([*args, "--check"]) == 1
