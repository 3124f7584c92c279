"""The workflow's shape: one rule file per stage writing its own folder, rules named by verbs,
code hashes from each rule's own script, imports flowing one way, planning without torch."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from workflow_helpers import REPO

RULES = REPO / "workflow" / "rules"
LIB = REPO / "workflow" / "polyneuron"

# each stage's rule file and the folders its rules write
STAGES = {
    "models.smk": ("resources/models/", "resources/model_info/"),
    "probes.smk": ("results/probes/", "results/translations/"),
    "extract.smk": ("results/activations/",),
    "score.smk": ("results/neurons/", "results/directions/"),
    "evaluate.smk": ("results/evaluation/",),
    "plots.smk": ("results/plots/", "results/overlap_heatmap.pdf"),
    "findings.smk": ("results/findings.md",),
}
VERBS = ("prepare", "build", "translate", "extract", "attribute", "score", "find", "evaluate")
VERBS += ("plot", "write")
# the stages of the library, lowest first: a module imports only its own stage and lower ones
LAYERS = ["model", "probes", "neurons", "evaluate", "plots", "findings"]
SHARED = {"polyneuron", "polyneuron.io", "polyneuron.logs", "polyneuron.tensors"}


def rule_blocks() -> dict[str, tuple[str, str]]:
    """rule name -> (its rule file, its text)."""
    blocks = {}
    for path in sorted(RULES.glob("*.smk")):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(
            r"(?ms)^(?:rule (\w+)|use rule \w+ as (\w+) with):\n(.*?)(?=^\S|\Z)", text
        ):
            blocks[match[1] or match[2]] = (path.name, match[3])
    return blocks


def section(block: str, name: str) -> str:
    match = re.search(rf"(?ms)^    {name}:(.*?)(?=^    \w|\Z)", block)
    return match[1] if match else ""


def test_one_rule_file_per_stage():
    assert sorted(p.name for p in RULES.glob("*.smk")) == sorted([*STAGES, "common.smk"])


def test_every_rule_writes_under_its_stage_folder_and_is_named_by_a_verb():
    blocks = rule_blocks()
    assert len(blocks) > 40
    for rule, (file, block) in blocks.items():
        assert rule.split("_")[0] in VERBS or rule in {"probes", "figures", "all"}, rule
        outputs = re.findall(r'"((?:results|resources)/[^"]*)"', section(block, "output"))
        if rule in {"probes", "figures"}:  # targets only
            continue
        assert outputs, rule
        for path in outputs:
            assert path.startswith(STAGES[file]), f"{file}: rule {rule} writes {path}"


def test_every_job_writes_a_log_and_a_benchmark_named_after_its_rule():
    for rule, (_file, block) in rule_blocks().items():
        if rule in {"probes", "figures"}:
            continue
        assert re.search(rf'"logs/{rule}(/[^"]+)?\.log"', section(block, "log")), rule
        assert re.search(rf'"results/benchmarks/{rule}(/[^"]+)?\.tsv"', section(block, "benchmark"))


def test_each_rule_hashes_the_script_it_runs():
    blocks = rule_blocks()
    scripts = {}
    for rule, (_file, block) in blocks.items():
        match = re.search(r'"\.\./scripts/(\w+)\.py"', section(block, "script"))
        if match:
            scripts[rule] = match[1]
    for rule, (_file, block) in blocks.items():
        parent = re.search(
            rf"(?m)^use rule (\w+) as {rule} with:", RULES.joinpath(_file).read_text()
        )
        script = scripts.get(rule) or (parent and scripts.get(parent[1]))
        code = re.findall(r'code=code_hash\("(\w+)"\)', section(block, "params"))
        if script:
            assert code == [script], f"rule {rule} runs {script}.py but hashes {code}"
        else:
            assert code == [], rule
    text = "\n".join(p.read_text() for p in RULES.glob("*.smk"))
    assert "code_version" not in text  # no hand-kept module lists


def library_imports() -> dict[str, set[str]]:
    """module -> the polyneuron modules and packages it imports (ast, relative resolved)."""
    from polyneuron.plan.codehash import imported_names, module_name

    found = {}
    for path in LIB.rglob("*.py"):
        name = module_name(LIB.parent, path)
        names = imported_names(path.read_text(encoding="utf-8"), name, path.name == "__init__.py")
        found[name] = {n for n in names if n.split(".")[0] == "polyneuron"}
    return found


def stage_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in [*LAYERS, "plan"] else None


@pytest.mark.parametrize("stage", [*LAYERS, "plan"])
def test_imports_flow_one_way(stage):
    """findings -> plots -> evaluate -> neurons -> probes -> model; plan (config, requests,
    budgets, code hashes) is imported by the Snakefile only and imports no stage that needs
    torch."""
    allowed = {"plan": {"plan", "model"}} | {
        layer: set(LAYERS[: i + 1]) for i, layer in enumerate(LAYERS)
    }
    allowed["plan"] |= {"probes"}  # the readers that find a probe set's input files
    for module, imports in library_imports().items():
        if stage_of(module) != stage:
            continue
        for name in imports:
            target = stage_of(name)
            if name in SHARED or target is None:
                continue
            assert target in allowed[stage], f"{module} imports {name}"


def test_planning_a_run_never_imports_torch(tmp_path):
    """A dry run of the default config (the Snakefile with every module it imports) leaves
    torch out of sys.modules: planning stays fast, also on a login node without torch."""
    probe = tmp_path / "probe"
    probe.mkdir()
    record = tmp_path / "modules.txt"
    (probe / "sitecustomize.py").write_text(
        "import atexit, sys\n"
        f"atexit.register(lambda: open({str(record)!r}, 'w').write("
        "'\\n'.join(sorted(sys.modules))))\n"
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "config.yaml").write_text((REPO / "config.yaml").read_text())
    env = {**os.environ, "PYTHONPATH": f"{probe}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(workdir), "--dry-run", "--quiet", "all"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    modules = set(record.read_text().split())
    assert "polyneuron.plan.config" in modules and "snakemake" in modules
    assert not {m for m in modules if m == "torch" or m.startswith("torch.")}
    assert "transformers" not in modules
