"""Atomic writers: whole files or none, the umask's mode, no temporaries left behind, and a full
disk named as such."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import time

import numpy as np
import polars as pl
import pytest
from safetensors.numpy import load_file

from polyneuron import PolyneuronError
from polyneuron.io import HOST, atomic_dir, atomic_path, file_mode, stale_temporaries, write_parquet
from polyneuron.tensors import safetensors_array


@pytest.fixture()
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_outputs_honour_the_umask(tmp_path, umask_027):
    assert file_mode() == 0o640
    write_parquet(pl.DataFrame({"a": [1]}), tmp_path / "t.parquet")
    with safetensors_array(tmp_path / "a.safetensors", "x", (2, 3), "float32") as array:
        array[:] = 1
    for name in ("t.parquet", "a.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "t.parquet") as tmp:
        tmp.write_text("half")
        raise RuntimeError("the job died")
    assert list(tmp_path.iterdir()) == []


def a_finished_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_jobs_temporaries_are_removed_by_the_next_write(tmp_path):
    out = tmp_path / "de.examples.safetensors"
    killed = tmp_path / f".de.examples.safetensors.{HOST}-{a_finished_pid()}-k3x9.tmp"
    killed.write_bytes(b"\0" * 1000)  # what a kill -9 leaves
    live = tmp_path / f".de.examples.safetensors.{HOST}-{os.getpid()}-a1b2.tmp"
    live.write_bytes(b"")  # a racing run still writing it
    elsewhere = tmp_path / ".de.examples.safetensors.node7-12-c3d4.tmp"  # another host's
    elsewhere.write_bytes(b"")
    old = tmp_path / ".de.examples.safetensors.node7-13-e5f6.tmp"
    old.write_bytes(b"")
    os.utime(old, (time.time() - 2 * 24 * 3600,) * 2)  # another host's, two days old
    other = tmp_path / f".fr.examples.safetensors.{HOST}-{a_finished_pid()}-k3x9.tmp"
    other.write_bytes(b"")  # another output's: not ours
    assert stale_temporaries(out) == sorted([killed, old])
    with safetensors_array(out, "activations", (4,), "float16") as array:
        array[:] = 2
    assert not killed.exists() and not old.exists()
    assert live.exists() and elsewhere.exists() and other.exists()
    assert load_file(out)["activations"].tolist() == [2, 2, 2, 2]


def test_a_folder_appears_whole_with_the_umask_s_mode(tmp_path, umask_027):
    out = tmp_path / "models" / "tiny"
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "config.json").write_text("{}")
        raise RuntimeError("killed while saving")
    assert list((tmp_path / "models").iterdir()) == []
    with atomic_dir(out) as tmp:
        (tmp / "config.json").write_text("{}")
    assert [p.name for p in out.iterdir()] == ["config.json"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert list((tmp_path / "models").iterdir()) == [out]


def test_a_folder_a_racing_writer_landed_meanwhile_is_kept_not_deleted_under_its_reader(tmp_path):
    out = tmp_path / "models" / "tiny"
    with atomic_dir(out) as ours:
        (ours / "config.json").write_text("ours")
        with atomic_dir(out) as theirs:  # the other run finishes first
            (theirs / "config.json").write_text("theirs")
        assert (out / "config.json").read_text() == "theirs"
    assert (out / "config.json").read_text() == "theirs"
    assert list((tmp_path / "models").iterdir()) == [out]
    with atomic_dir(out) as again:  # a folder there before writing began is replaced
        (again / "config.json").write_text("again")
    assert (out / "config.json").read_text() == "again"


def test_a_full_disk_is_named_and_leaves_nothing(tmp_path, monkeypatch):
    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    out = tmp_path / "en.examples.safetensors"
    message = r"en\.examples\.safetensors: no space left"
    with (
        pytest.raises(PolyneuronError, match=message),
        safetensors_array(out, "activations", (1000, 1000), "float16"),
    ):
        raise AssertionError("the array must not be handed out on a full disk")
    assert list(tmp_path.iterdir()) == []


def test_pyarrow_s_full_disk_error_is_named(tmp_path, monkeypatch):
    def full(self, file, **kwargs):
        raise OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full)
    with pytest.raises(PolyneuronError, match=r"t\.parquet: no space left"):
        write_parquet(pl.DataFrame({"a": [1]}), tmp_path / "t.parquet")
    assert list(tmp_path.iterdir()) == []


def test_file_systems_without_fallocate_get_a_sparse_file(tmp_path, monkeypatch):
    def unsupported(fd, offset, size):
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    with safetensors_array(tmp_path / "a.safetensors", "x", (3,), "float32") as array:
        array[:] = np.arange(3)
    assert load_file(tmp_path / "a.safetensors")["x"].tolist() == [0, 1, 2]
