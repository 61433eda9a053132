"""Paddle `.pdparams`: a pickle (protocol 4) of name -> numpy array, read and written without paddle.

`paddle.save` adds a `StructuredToParameterName@@` table (which `paddle.load` strips) and, with
pickle protocols 2/3, splits arrays over 2^30-1 bytes into `key@@.0`, `key@@.1`, ... described by an
`UnpackBigParamInfor@@` entry. bfloat16 tensors are uint16 arrays of their raw bits.

Reading runs the pickle through `pickle_scan`, which notes where each array's bytes lie, and reads
them only when the tensor is loaded: a file of any size is read one tensor at a time (protocol-2
files, which store bytes as latin-1 text, are decoded into memory). A pickle using opcodes the
scanner does not run goes whole through the restricted unpickler; both resolve the same
allow-list and build the same array records.
"""
from __future__ import annotations

import math
import mmap
from collections.abc import Iterable

import numpy as np

from ..errors import CheckpointError, UserError
from .checkpoint import LazyTensor, OpenFile, check_shape, convert_containers, raw_bytes
from .dtypes import name_of
from .pickles.restricted import restricted_load
from .pickles.scan import FileBytes
from .pickles.writer import Global, PickleWriter, Reduce

NAME_TABLE = "StructuredToParameterName@@"
SPLIT_INFO = "UnpackBigParamInfor@@"


class _ArrayRecord:
    """Stands in for a numpy array being unpickled: keeps its layout and its bytes (or where they lie).

    numpy pickles an array as `_reconstruct(ndarray, (0,), b'b')` followed by BUILD with the state
    `(version, shape, dtype, is_fortran, raw bytes)` (protocols 2-4), or as
    `_frombuffer(raw bytes, dtype, shape, order)` (protocol 5); this records them instead.
    """

    def __init__(self, cls, shape, dtype_code):
        if cls is not np.ndarray:
            raise TypeError("only plain numpy arrays may be reconstructed")
        self.data = None

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5) or not isinstance(state[-2], bool):
            raise ValueError("malformed numpy array state")
        shape, dtype, fortran, data = state[-4:]
        self._set(shape, dtype, "F" if fortran else "C", data)

    @classmethod
    def from_buffer(cls, data, dtype, shape, order, axis_order=None):
        if order not in ("C", "F") or axis_order is not None:
            raise ValueError(f"unsupported array order {order!r}")
        record = cls(np.ndarray, (0,), b"b")
        record._set(shape, dtype, order, data)
        return record

    def _set(self, shape, dtype, order: str, data) -> None:
        if not isinstance(dtype, _PickledDtype):
            raise ValueError("malformed numpy array state")
        dtype = dtype.dtype
        _dtype(dtype)
        if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
            raise ValueError(f"malformed array shape {shape!r}")
        length = data.length if isinstance(data, FileBytes) else len(data) if isinstance(data, (bytes, bytearray)) else None
        if length != math.prod(shape) * dtype.itemsize:
            raise ValueError(f"array of shape {list(shape)} and dtype {dtype} with {length} bytes of data")
        self.shape, self.dtype, self.order, self.data = shape, dtype, order, data

    def tensor(self, file: OpenFile) -> LazyTensor:
        if self.data is None:
            raise ValueError("an array without data")
        # Paddle stores bfloat16 as uint16 bits.
        name = "bfloat16" if self.dtype == np.uint16 else name_of(self.dtype)
        numel = math.prod(self.shape)
        shape, dtype, order, data = self.shape, self.dtype, self.order, self.data

        def load() -> np.ndarray:
            if isinstance(data, FileBytes):
                return np.frombuffer(file.region(data.offset, data.length), dtype=dtype, count=numel).reshape(shape, order=order)
            return np.frombuffer(data, dtype=dtype, count=numel).reshape(shape, order=order)

        return LazyTensor(name, shape, load)


class _PickledDtype:
    """Stands in for `numpy.dtype(spec)` while unpickling. numpy pickles a dtype as that call then
    BUILD with its state, and numpy's own `__setstate__` trusts that state: a malformed one (a
    timedelta without its metadata, a subarray given as a dict) crashes the process. Only the
    byte order is taken from it, and only for the plain numeric types a tensor can have."""

    def __init__(self, spec, align=False, copy=True):
        self.dtype = _dtype(spec, align)
        if self.dtype.kind not in "biuf":
            raise TypeError(f"numpy dtype {self.dtype} is not a tensor element type")

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) in (8, 9) and state[1] in ("<", ">", "=", "|")):
            raise ValueError("malformed numpy dtype state")
        if state[1] in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(state[1])


def _dtype(spec, align=False, copy=True):
    # Always a fresh descriptor: BUILD then sets its byte order without touching numpy's shared ones.
    dtype = np.dtype(spec, align=align, copy=True)
    if dtype.hasobject or dtype.fields is not None:
        raise TypeError(f"numpy dtype {dtype} is not a tensor element type")
    return dtype


def _scalar(dtype, data):
    if not isinstance(dtype, _PickledDtype):
        raise ValueError("malformed numpy scalar")
    return np.frombuffer(data, dtype=dtype.dtype, count=1)[0]


def _empty_bytes() -> bytes:
    """Protocol-2 pickles write b'' (an empty array's data) as a call to bytes()."""
    return b""


ALLOWED = {("__builtin__", "bytes"): _empty_bytes}
for _core in ("numpy.core.multiarray", "numpy._core.multiarray"):
    ALLOWED[(_core, "_reconstruct")] = _ArrayRecord
    ALLOWED[(_core, "scalar")] = _scalar
    ALLOWED[(_core.replace("multiarray", "numeric"), "_frombuffer")] = _ArrayRecord.from_buffer
ALLOWED[("numpy", "ndarray")] = np.ndarray
ALLOWED[("numpy", "dtype")] = _PickledDtype


def read(path: str) -> object:
    """Read a .pdparams file into plain containers of LazyTensors, without loading any array."""
    try:
        file = OpenFile(path)
        mapped = mmap.mmap(file.fd, 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        raise CheckpointError(path, f"cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        obj = restricted_load(mapped, path, ALLOWED, leave_in_file=True)
    finally:
        mapped.close()
    try:
        return _join_split_arrays(path, _lazy(path, file, obj))
    except RecursionError:
        raise CheckpointError(path, "the pickle is nested too deeply") from None


def _lazy(path: str, file: OpenFile, obj):
    """Turn every array record into a LazyTensor (containers recursively); drop paddle's name table."""
    obj = convert_containers(obj, lambda item, convert: _lazy_leaf(path, file, item, convert))
    if isinstance(obj, dict):
        obj.pop(NAME_TABLE, None)
    return obj


def _lazy_leaf(path: str, file: OpenFile, item, convert):
    if isinstance(item, _ArrayRecord):
        try:
            tensor = item.tensor(file)
        except (ValueError, UserError) as exc:
            raise CheckpointError(path, str(exc)) from None
        check_shape(path, tensor.shape)
        return tensor
    if isinstance(item, FileBytes):
        return file.read(item.offset, item.length)
    if isinstance(item, tuple):
        return tuple(convert(v) for v in item)
    return item


def _join_split_arrays(path: str, obj):
    """Join paddle's `key@@.N` parts back into one tensor, concatenated only when loaded."""
    if not (isinstance(obj, dict) and SPLIT_INFO in obj):
        return obj
    info = obj.pop(SPLIT_INFO)
    try:
        for key, entry in info.items():
            parts = [obj.pop(part) for part in entry["slices"]]
            shape = tuple(int(n) for n in entry["OriginShape"])
            if any(n < 0 for n in shape):
                raise ValueError(f"negative dimension in {list(shape)}")
            if not parts or any(not isinstance(p, LazyTensor) or p.dtype != parts[0].dtype for p in parts):
                raise ValueError(f"parts of {key} are not tensors of one dtype")
            if sum(p.numel for p in parts) != np.prod(shape, dtype=object):
                raise ValueError(f"parts of {key} do not add up to its shape {list(shape)}")
            obj[key] = LazyTensor(parts[0].dtype, shape, _joined(parts, shape))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(path, f"malformed split-array table ({type(exc).__name__}: {exc})") from None
    return obj


def _joined(parts: list[LazyTensor], shape: tuple[int, ...]):
    return lambda: np.concatenate([p.load().reshape(-1) for p in parts]).reshape(shape)


_RECONSTRUCT = np.empty(0).__reduce__()[0]  # named as the installed numpy names it when pickling
_ARRAY_ARGS = (Global(_RECONSTRUCT.__module__, _RECONSTRUCT.__name__), (Global("numpy", "ndarray"), (0,), b"b"))


def _array(array: np.ndarray) -> Reduce:
    """A C-contiguous array as numpy pickles it, its bytes written straight from its memory."""
    dtype_args, dtype_state = array.dtype.__reduce__()[1:]
    dtype = Reduce(Global("numpy", "dtype"), dtype_args, dtype_state, memo_key=array.dtype.str)
    return Reduce(*_ARRAY_ARGS, state=(1, array.shape, dtype, False, raw_bytes(array)))


def write(file, entries: Iterable[tuple[str, LazyTensor]], on_tensor=None) -> None:
    """Write name -> array as paddle.load expects, holding one tensor in memory at a time."""

    def items():
        for name, tensor in entries:
            yield name, _array(tensor.load_contiguous())
            if on_tensor:
                on_tensor(name, tensor)

    PickleWriter(file, protocol=4).dump_dict(items())
