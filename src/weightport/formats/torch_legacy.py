"""Legacy (pre-1.6) PyTorch checkpoints, read through torch.load(weights_only=True).

That format interleaves pickles and raw storages in one stream: three small pickles (magic
number, protocol version, system info), the object pickle, the list of storage keys, then each
storage as an 8-byte element count and its bytes. torch's own restricted loader reads it, so
this is the one reader that needs torch installed; before torch sees the file, its pickles are
read under weightport's own allow-list (so code is refused here, with the same message as
everywhere) and every storage and tensor they declare is checked against the file's size, so
that torch never allocates what the file cannot hold.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import CheckpointError
from .checkpoint import first_line, framework_objects_to_lazy
from .dtypes import itemsize
from .pickles.restricted import restricted_load
from .torch_zip import check_layout, storage_reference, torch_globals

_COUNT_BYTES = 8  # each storage is preceded by its element count


@dataclass(frozen=True)
class _DeclaredStorage:
    numel: int


def read(path: str) -> object:
    check_before_loading(path)
    try:
        import torch
    except ImportError:
        raise CheckpointError(path, "is a legacy PyTorch checkpoint; reading it needs torch installed") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise CheckpointError(path, f"refused or unreadable legacy checkpoint ({first_line(exc)})") from None
    try:
        return framework_objects_to_lazy(obj, torch)
    except RecursionError:
        raise CheckpointError(path, "the pickle is nested too deeply") from None


def check_before_loading(path: str) -> None:
    """Read the file's pickles under the allow-list and check that the storages they declare,
    and every tensor's view of them, fit in the file."""
    storages: dict[str, int] = {}  # key -> bytes

    def persistent_load(pid):
        key, dtype, numel = storage_reference(path, pid, fields=6)
        storages.setdefault(key, numel * itemsize(dtype))
        return _DeclaredStorage(numel)

    def rebuild_tensor(storage, offset, size, stride, *_rest):
        if not isinstance(storage, _DeclaredStorage):
            raise CheckpointError(path, "tensor without a storage")
        check_layout(path, storage.numel, offset, size, stride)

    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            for _ in range(3):  # magic number, protocol version, system info: plain values
                restricted_load(f, path, {})
            restricted_load(f, path, torch_globals(rebuild_tensor), persistent_load)
            keys = restricted_load(f, path, {})
            data_start = f.tell()
    except OSError as exc:
        raise CheckpointError(path, f"cannot read: {exc.strerror or exc}") from None
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys) and sorted(keys) == sorted(storages)):
        raise CheckpointError(path, "the storage list does not match the storages the pickle uses")
    needed = sum(_COUNT_BYTES + nbytes for nbytes in storages.values())
    if data_start + needed > size:
        raise CheckpointError(
            path, f"its storages need {needed} bytes after the pickles; the file has {size - data_start} (truncated?)"
        )

