"""Tensors on disk: a safetensors file written piece by piece through a memory map."""

from __future__ import annotations

import errno
import json
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from polyneuron.io import atomic_path

SAFETENSORS_DTYPES = {"float16": "F16", "float32": "F32"}


def reserve(fd: int, size: int) -> None:
    """Size the open file ``fd`` to ``size`` bytes with its blocks allocated, so that a full disk
    is an ordinary error here (:func:`polyneuron.io.atomic_path` names the output) and not a
    SIGBUS when a memory map later writes into a hole. File systems that cannot allocate ahead
    get a sparse file."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
        os.ftruncate(fd, size)


@contextmanager
def safetensors_array(
    path: str | Path,
    name: str,
    shape: tuple[int, ...],
    dtype: str = "float16",
    metadata: dict[str, str] | None = None,
) -> Iterator[np.memmap]:
    """A safetensors file holding one zero-filled tensor ``name``, opened as a writable memory
    map: fill it piece by piece (memory does not grow with its size); the file appears
    atomically when the block ends without error."""
    itemsize = np.dtype(dtype).itemsize
    nbytes = int(np.prod(shape)) * itemsize
    header = {
        name: {
            "dtype": SAFETENSORS_DTYPES[dtype],
            "shape": list(shape),
            "data_offsets": [0, nbytes],
        }
    }
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header to 8 bytes with spaces
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(struct.pack("<Q", len(raw)))
            handle.write(raw)
            reserve(handle.fileno(), 8 + len(raw) + nbytes)
        array = np.memmap(tmp, dtype=dtype, mode="r+", offset=8 + len(raw), shape=shape)
        try:
            yield array
            array.flush()
        finally:
            del array


def read_tensor(path: str | Path, name: str = "activations"):
    """One tensor of a safetensors file, as a torch tensor."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return handle.get_tensor(name)


def write_tensors(path: str | Path, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """Named torch tensors as one safetensors file, written atomically (each its own copy:
    the format does not share storage between tensors)."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file(
            {name: tensor.detach().clone().contiguous() for name, tensor in tensors.items()},
            str(tmp),
            metadata=metadata,
        )


def read_tensors(path: str | Path) -> tuple[dict, dict[str, str]]:
    """Every tensor of a safetensors file, by name, and its string metadata."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        return tensors, dict(handle.metadata() or {})
