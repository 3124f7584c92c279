"""Atomic writers: an output file appears whole or not at all."""

from __future__ import annotations

import errno
import glob
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from polyneuron import PolyneuronError


def disk_full(err: OSError) -> bool:
    """Whether ``err`` says the device is full (pyarrow's errors carry it only in the text)."""
    return err.errno == errno.ENOSPC or "No space left on device" in str(err)


def file_mode(directory: bool = False) -> int:
    """The mode a new file (or folder) gets under the process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


HOST = socket.gethostname()
STALE_AFTER_S = 24 * 3600  # another host's temporaries: gone after a day


def _temporary_prefix(path: Path) -> str:
    """``.{name}.{host}-{pid}-``: whose temporary it is, so that a later job can tell a killed
    writer's leftovers from a live one's (two runs racing on one output)."""
    return f".{path.name}.{HOST}-{os.getpid()}-"


def _writer_gone(tmp: Path, name: str) -> bool:
    host, pid = "", 0
    parts = tmp.name[len(name) + 2 : -len(".tmp")].rsplit("-", 2)  # host, pid, random
    if len(parts) == 3 and parts[1].isdigit():
        host, pid = parts[0], int(parts[1])
    if host == HOST and pid > 0:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    try:
        return time.time() - tmp.lstat().st_mtime > STALE_AFTER_S
    except FileNotFoundError:
        return False


def stale_temporaries(path: Path) -> list[Path]:
    """Temporaries that :func:`atomic_path` or :func:`atomic_dir` left beside ``path`` and whose
    writer is gone: a process of this host that no longer runs, or older than a day."""
    found = path.parent.glob(f".{glob.escape(path.name)}.*.tmp")
    return sorted(tmp for tmp in found if _writer_gone(tmp, path.name))


def _remove_stale(path: Path) -> None:
    for stale in stale_temporaries(path):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@contextmanager
def _naming_a_full_disk(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as err:
        if not disk_full(err):
            raise
        raise PolyneuronError(
            f"{path}: no space left on the device while writing it (nothing was left behind); "
            "free space, or run in a folder on a larger disk, and rerun"
        ) from err


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only on success. The file
    gets the mode any new file would (the umask's, not ``mkstemp``'s 0600, so a group can read
    results on a shared file system); temporaries of ``path`` that a killed job left are
    removed first, and a full disk is an error naming ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=path.parent)
    os.fchmod(fd, file_mode())
    os.close(fd)
    try:
        with _naming_a_full_disk(path):
            yield Path(tmp)
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """:func:`atomic_path` for a folder: fill the yielded temporary folder; it replaces
    ``path`` whole only on success. A folder that was there when writing began is replaced; one
    that a racing writer of the same output put there meanwhile is kept, never deleted under a
    reader (two runs started with ``--nolock`` both read the model they prepared)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    existed = path.exists()
    tmp = Path(tempfile.mkdtemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=path.parent))
    tmp.chmod(file_mode(directory=True))
    try:
        with _naming_a_full_disk(path):
            yield tmp
            if existed:
                shutil.rmtree(path, ignore_errors=True)
            try:
                tmp.rename(path)
            except OSError as err:
                if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                # a racing writer's whole folder landed while this one was written: keep it
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_parquet(df: pl.DataFrame, path: str | Path) -> None:
    """Write ``df`` as Parquet through pyarrow, atomically."""
    with atomic_path(path) as tmp:
        df.write_parquet(tmp, use_pyarrow=True)


def write_parquet_groups(
    frames: Iterable[pl.DataFrame], path: str | Path, schema: Mapping[str, pl.DataType]
) -> int:
    """Write ``frames`` (each of ``schema``) as the row groups of one Parquet file, one group
    per frame, through pyarrow and atomically: the file reads back as :func:`write_parquet`'s
    file of their concatenation, while memory holds one frame at a time. An error while the
    frames are made leaves no file. Returns the number of rows written."""
    import pyarrow.parquet as pq

    arrow_schema = pl.DataFrame(schema=schema).to_arrow().schema
    rows = 0
    with (
        atomic_path(path) as tmp,
        pq.ParquetWriter(tmp, arrow_schema, compression="zstd", write_statistics=True) as writer,
    ):
        for frame in frames:
            if frame.height:
                table = frame.to_arrow().cast(arrow_schema)
                writer.write_table(table, row_group_size=frame.height)
                rows += frame.height
    return rows


def write_text(text: str, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
