"""Code hashes from the import graph: editing a library module reruns exactly the jobs whose
scripts import it, directly or through other modules.

Snakemake reruns a job when its script changes, not when a module the script imports does. Each
rule therefore passes ``code=code_hash("<script>")`` as a param; the hash covers the script and
every module of the package it reaches through ``import`` statements, read with :mod:`ast`
(imports inside functions count: they run too). Importing ``pkg.a.b`` runs ``pkg/__init__.py``
and ``pkg/a/__init__.py`` as well, so those count. Nothing is imported to find the graph.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from pathlib import Path


def module_path(root: Path, name: str) -> Path | None:
    """The file of module ``name`` (``pkg.a.b``) under ``root`` (the folder holding ``pkg``),
    or None where the package has no such module."""
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def module_name(root: Path, path: Path) -> str:
    """``pkg.a.b`` for ``root/pkg/a/b.py`` (and ``pkg.a`` for ``root/pkg/a/__init__.py``)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def imported_names(source: str, name: str, is_package: bool = False) -> set[str]:
    """Every module name an ``import`` or ``from ... import`` in ``source`` may load, relative
    imports resolved against module ``name``; ``from m import x`` yields ``m`` and ``m.x`` (x may
    be a submodule; callers keep the names that are files)."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".") if package else []
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            if base:
                found.add(base)
            found.update(f"{base}.{alias.name}" if base else alias.name for alias in node.names)
    return found


class CodeHasher:
    """Hashes of scripts with the package modules they reach; each file is read and parsed
    once per instance (one instance per Snakemake run)."""

    def __init__(self, root: str | Path, package: str) -> None:
        self.root = Path(root)
        self.package = package
        self._imports: dict[Path, frozenset[Path]] = {}
        self._digests: dict[Path, str] = {}

    def _direct(self, path: Path, name: str | None) -> frozenset[Path]:
        if path not in self._imports:
            is_package = path.name == "__init__.py"
            names = imported_names(path.read_text(encoding="utf-8"), name or "", is_package)
            files = {
                file
                for full in names
                if full == self.package or full.startswith(self.package + ".")
                for parent in _with_parents(full)
                if (file := module_path(self.root, parent)) is not None
            }
            self._imports[path] = frozenset(files)
        return self._imports[path]

    def modules(self, script: str | Path) -> list[Path]:
        """The package's files that ``script`` reaches, sorted."""
        seen: set[Path] = set()
        todo = list(self._direct(Path(script), None))
        while todo:
            path = todo.pop()
            if path in seen:
                continue
            seen.add(path)
            todo.extend(self._direct(path, module_name(self.root, path)))
        return sorted(seen)

    def digest(self, script: str | Path) -> str:
        """16 hex digits of SHA-256 over the script and every module it reaches."""
        script = Path(script)
        if script not in self._digests:
            self._digests[script] = _hash_files([script, *self.modules(script)], self.root)
        return self._digests[script]


def _hash_files(paths: Iterable[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        label = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
        digest.update(str(label).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]
