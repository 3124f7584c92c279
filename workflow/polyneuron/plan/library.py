"""Which ``polyneuron`` the jobs import: the checkout's whose Snakefile runs them."""

from __future__ import annotations

import os
from collections.abc import MutableMapping


def put_library_first(library: str, environ: MutableMapping[str, str]) -> None:
    """Put ``library`` (a checkout's ``workflow/`` folder) first on ``PYTHONPATH`` in
    ``environ``, once. Every job's script runs in its own Python process, which inherits the
    environment: it then imports this checkout's ``polyneuron``, ahead of one installed in the
    environment from another clone (whose code the code hashes would not describe)."""
    rest = [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != library]
    environ["PYTHONPATH"] = os.pathsep.join([library, *rest])
