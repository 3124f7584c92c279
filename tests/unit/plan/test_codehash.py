"""Code hashes from the import graph, on a small fixture package written by the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from polyneuron.plan.codehash import CodeHasher, imported_names, module_name, module_path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """pkg/ with a subpackage; a script importing one module that reaches others through
    absolute, relative, `from pkg import module` and function-level imports."""
    files = {
        "pkg/__init__.py": '"""root"""\n',
        "pkg/base.py": "VALUE = 1\n",
        "pkg/unused.py": "import os\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/a.py": "from . import b\nfrom .c import helper\nimport numpy\n",
        "pkg/sub/b.py": "from ..base import VALUE\n",
        "pkg/sub/c.py": "def helper():\n    from pkg import lazy\n    return lazy\n",
        "pkg/lazy.py": "import pkg.base as base\n",
        "scripts/job.py": "from pkg.sub.a import b\nimport json\n",
        "scripts/other.py": "from pkg import unused\n",
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def names(root: Path, paths: list[Path]) -> list[str]:
    return [str(path.relative_to(root)) for path in paths]


def test_module_paths_and_names(tree):
    assert module_path(tree, "pkg.sub") == tree / "pkg/sub/__init__.py"
    assert module_path(tree, "pkg.sub.a") == tree / "pkg/sub/a.py"
    assert module_path(tree, "pkg.nowhere") is None
    assert module_name(tree, tree / "pkg/sub/__init__.py") == "pkg.sub"
    assert module_name(tree, tree / "pkg/sub/b.py") == "pkg.sub.b"


def test_relative_imports_resolve_against_the_module():
    found = imported_names("from ..base import VALUE\nfrom . import b\n", "pkg.sub.b")
    assert {"pkg.base", "pkg.base.VALUE", "pkg.sub", "pkg.sub.b"} <= found
    # in a package's __init__, "." is the package itself
    assert "pkg.sub.x" in imported_names("from .x import y\n", "pkg.sub", is_package=True)


def test_the_script_reaches_every_module_it_runs_transitively(tree):
    hasher = CodeHasher(tree, "pkg")
    assert names(tree, hasher.modules(tree / "scripts/job.py")) == [
        "pkg/__init__.py",
        "pkg/base.py",  # through b's relative import and lazy's `import pkg.base`
        "pkg/lazy.py",  # imported inside a function of c
        "pkg/sub/__init__.py",
        "pkg/sub/a.py",
        "pkg/sub/b.py",
        "pkg/sub/c.py",
    ]  # not pkg/unused.py, and nothing outside the package (json, numpy, os)


def test_editing_a_module_changes_exactly_the_hashes_of_scripts_reaching_it(tree):
    before = {s: CodeHasher(tree, "pkg").digest(tree / f"scripts/{s}.py") for s in ("job", "other")}
    (tree / "pkg/base.py").write_text("VALUE = 1\n# a comment\n")
    after = {s: CodeHasher(tree, "pkg").digest(tree / f"scripts/{s}.py") for s in ("job", "other")}
    assert after["job"] != before["job"]
    assert after["other"] == before["other"]
    (tree / "pkg/unused.py").write_text("import os  # edited\n")
    again = {s: CodeHasher(tree, "pkg").digest(tree / f"scripts/{s}.py") for s in ("job", "other")}
    assert again["job"] == after["job"] and again["other"] != after["other"]


def test_the_hash_does_not_depend_on_where_the_checkout_lies(tree, tmp_path_factory):
    import shutil

    copy = tmp_path_factory.mktemp("copy") / "tree"
    shutil.copytree(tree, copy)
    assert CodeHasher(copy, "pkg").digest(copy / "scripts/job.py") == CodeHasher(
        tree, "pkg"
    ).digest(tree / "scripts/job.py")


def test_files_are_parsed_once_per_hasher(tree, monkeypatch):
    hasher = CodeHasher(tree, "pkg")
    hasher.digest(tree / "scripts/job.py")
    calls = []
    monkeypatch.setattr(Path, "read_text", lambda *a, **k: calls.append(a) or "")
    hasher.digest(tree / "scripts/job.py")  # cached digest
    hasher.modules(tree / "scripts/job.py")  # cached import lists
    assert calls == []
