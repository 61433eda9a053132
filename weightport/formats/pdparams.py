"""Paddle `.pdparams`: a pickle (protocol 4) of name -> numpy array, read and written without paddle.

`paddle.save` adds a `StructuredToParameterName@@` table (which `paddle.load` strips) and, with
pickle protocols 2/3, splits arrays over 2^30-1 bytes into `key@@.0`, `key@@.1`, ... described by an
`UnpackBigParamInfor@@` entry. bfloat16 tensors are uint16 arrays of their raw bits.
"""
from __future__ import annotations

import pickle
from typing import Iterable

import numpy as np

from ..errors import CheckpointError, UserError
from .checkpoint import LazyTensor, paddle_array_tensor
from .restricted_pickle import restricted_load

NAME_TABLE = "StructuredToParameterName@@"
SPLIT_INFO = "UnpackBigParamInfor@@"


def _reconstruct(cls, shape, dtype_code):
    if cls is not np.ndarray:
        raise TypeError("only plain numpy arrays may be reconstructed")
    return np.ndarray.__new__(np.ndarray, shape, dtype_code)


def _dtype(spec, align=False, copy=False):
    dtype = np.dtype(spec, align=align)
    if dtype.hasobject or dtype.fields is not None:
        raise TypeError(f"numpy dtype {dtype} is not a tensor element type")
    return dtype


def _scalar(dtype, data):
    return np.frombuffer(data, dtype=_dtype(dtype), count=1)[0]


ALLOWED = {}
for _core in ("numpy.core.multiarray", "numpy._core.multiarray"):
    ALLOWED[(_core, "_reconstruct")] = _reconstruct
    ALLOWED[(_core, "scalar")] = _scalar
ALLOWED[("numpy", "ndarray")] = np.ndarray
ALLOWED[("numpy", "dtype")] = _dtype


def read(path: str) -> object:
    """Unpickle a .pdparams file into plain containers of LazyTensors."""
    try:
        with open(path, "rb") as f:
            obj = restricted_load(f, path, ALLOWED)
    except OSError as exc:
        raise CheckpointError(path, f"cannot read: {exc.strerror}") from None
    return _lazy(path, _join_split_arrays(path, obj))


def _join_split_arrays(path: str, obj):
    if not (isinstance(obj, dict) and SPLIT_INFO in obj):
        return obj
    obj = {k: v for k, v in obj.items() if k != NAME_TABLE}
    info = obj.pop(SPLIT_INFO)
    try:
        for key, entry in info.items():
            parts = [obj.pop(part) for part in entry["slices"]]
            obj[key] = np.concatenate([p.reshape(-1) for p in parts]).reshape(entry["OriginShape"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(path, f"malformed split-array table ({type(exc).__name__}: {exc})") from None
    return obj


def _lazy(path: str, obj):
    """Wrap every array in a LazyTensor (dicts and lists recursively); drop paddle's name table."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise CheckpointError(path, "array of Python objects where a tensor was expected")
        try:
            return paddle_array_tensor(obj)
        except UserError as exc:
            raise CheckpointError(path, str(exc)) from None
    if isinstance(obj, dict):
        return {k: _lazy(path, v) for k, v in obj.items() if k != NAME_TABLE}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_lazy(path, v) for v in obj)
    return obj


class _Deferred:
    """Pickles as the array its tensor loads, loading it only at that moment."""

    def __init__(self, tensor: LazyTensor, done):
        self.tensor, self.done = tensor, done

    def __reduce_ex__(self, protocol):
        array = self.tensor.load_contiguous()
        if self.done:
            self.done(self.tensor)
        return array.__reduce_ex__(protocol)


def write(file, entries: Iterable[tuple[str, LazyTensor]], on_tensor=None) -> None:
    """Write name -> array as paddle.load expects, holding one tensor in memory at a time."""
    deferred = {
        name: _Deferred(tensor, (lambda t, n=name: on_tensor(n, t)) if on_tensor else None) for name, tensor in entries
    }
    pickler = pickle.Pickler(file, protocol=4)
    pickler.fast = True  # no memo: each array is released as soon as it is written
    pickler.dump(deferred)
