"""Lay out authored translations of the refusal prompts in PolyRefuse's released layout.

Input: one JSONL file per language (``{"id": ..., "instruction": ...}``, ids of the English
pool: advbench-0002, harmless-0001, ...). Output: ``{kind}_{split}_translated_{lang}.json`` in
``data/refusal/translations/`` (a JSON list of ``{id, instruction, category}``), the split
being the English prompt's split under the default config (seed 0, 0.6/0.1/0.3).

    python tools/layout_refusal_translations.py DIR_OF_JSONL [--out data/refusal/translations]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from polyneuron.probes.records import json_objects  # noqa: E402
from polyneuron.probes.refusal import (  # noqa: E402
    KINDS,
    SPLITS,
    build_source,
    read_advbench,
    read_harmbench,
    read_harmless,
)

DATA = REPO / "data" / "refusal"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("authored", type=Path, help="folder of {lang}.jsonl translations")
    parser.add_argument("--out", type=Path, default=DATA / "translations")
    args = parser.parse_args()
    source = build_source(
        [
            read_advbench(DATA / "vendor/advbench/adv_bench.prompt"),
            read_harmbench(DATA / "vendor/harmbench/harmbench_prompts.txt"),
            read_harmless(DATA / "harmless.jsonl"),
        ],
        {"train": 0.6, "val": 0.1, "test": 0.3},
        0,
    )
    english = {row["id"]: row for row in source.iter_rows(named=True)}
    args.out.mkdir(parents=True, exist_ok=True)
    for path in sorted(args.authored.glob("*.jsonl")):
        lang = path.stem
        groups: dict[tuple[str, str], list[dict]] = {(k, s): [] for k in KINDS for s in SPLITS}
        for number, record in json_objects(path):
            row = english.get(record["id"])
            if row is None:
                raise SystemExit(f"{path}:{number}: unknown id {record['id']!r}")
            groups[row["kind"], row["split"]].append(
                {"id": row["id"], "instruction": record["instruction"], "category": row["category"]}
            )
        for (kind, split), items in groups.items():
            target = args.out / f"{kind}_{split}_translated_{lang}.json"
            if items:
                text = json.dumps(items, ensure_ascii=False, indent=1)
                target.write_text(text + "\n", encoding="utf-8")
        print(lang, {f"{k}/{s}": len(v) for (k, s), v in groups.items()})


if __name__ == "__main__":
    main()
