"""Atomic writers: an output file appears whole or not at all."""

from __future__ import annotations

import errno
import glob
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from polyneuron import PolyneuronError


def disk_full(err: OSError) -> bool:
    """Whether ``err`` says the device is full (pyarrow's errors carry it only in the text)."""
    return err.errno == errno.ENOSPC or "No space left on device" in str(err)


def file_mode() -> int:
    """The mode a new file gets under the process's umask (``0o666 & ~umask``)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def stale_temporaries(path: Path) -> list[Path]:
    """Temporary files :func:`atomic_path` left beside ``path`` (a killed job's)."""
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only on success. The file
    gets the mode any new file would (the umask's, not ``mkstemp``'s 0600, so a group can read
    results on a shared file system); temporaries of ``path`` that a killed job left are
    removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in stale_temporaries(path):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, file_mode())
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as err:
        if not disk_full(err):
            raise
        raise PolyneuronError(
            f"{path}: no space left on the device while writing it (nothing was left behind); "
            "free space, or run in a folder on a larger disk, and rerun"
        ) from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_parquet(df: pl.DataFrame, path: str | Path) -> None:
    """Write ``df`` as Parquet through pyarrow, atomically."""
    with atomic_path(path) as tmp:
        df.write_parquet(tmp, use_pyarrow=True)


def write_text(text: str, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
