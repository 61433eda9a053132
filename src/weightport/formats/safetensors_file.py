"""safetensors: an 8-byte little-endian header length, a JSON header, then raw tensor bytes.

Read by memory-mapping the file after checking every header entry against the file's size;
written one tensor at a time. bfloat16 travels as its uint16 bits.
"""
from __future__ import annotations

import json
import struct
from collections.abc import Iterable

import numpy as np

from ..errors import CheckpointError
from .checkpoint import LazyTensor, OpenFile, check_shape, raw_bytes
from .dtypes import itemsize, storage_dtype

CODES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}
CODE_OF = {dtype: code for code, dtype in CODES.items()}
MAX_HEADER = 100 << 20  # the reference implementation's own limit


def read(path: str) -> dict[str, LazyTensor]:
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(0)
            prefix = f.read(8)
            if len(prefix) < 8:
                raise CheckpointError(path, "too short for a safetensors file")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > MAX_HEADER or header_len > size - 8:
                raise CheckpointError(path, f"safetensors header claims {header_len} bytes; the file has {size}")
            header_bytes = f.read(header_len)
        file = OpenFile(path)  # each tensor reads or maps its own bytes when loaded
    except OSError as exc:
        raise CheckpointError(path, f"cannot read: {exc.strerror}") from None
    try:
        header = json.loads(header_bytes, object_pairs_hook=_object_without_duplicates)
    except _DuplicateName as exc:
        raise CheckpointError(path, f"safetensors header names {str(exc)[:80]!r} twice") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, a 5000-digit number, [[[[...
        raise CheckpointError(path, f"safetensors header is not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(header, dict):
        raise CheckpointError(path, "safetensors header is not a JSON object")
    data_start, data_len = 8 + header_len, size - 8 - header_len
    tensors, ranges = {}, []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        tensors[name], span = _entry(path, name, entry, file, data_start, data_len)
        ranges.append((*span, name))
    _check_ranges(path, ranges, data_len)
    return tensors


class _DuplicateName(Exception):
    pass


def _object_without_duplicates(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object, refusing a name given twice (json.loads would keep the last silently)."""
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateName(key)
        obj[key] = value
    return obj


def _check_ranges(path: str, ranges: list[tuple[int, int, str]], data_len: int) -> None:
    """The tensors' byte ranges must tile the data section exactly, as the reference library
    requires: no two tensors share a byte, and no byte belongs to none."""
    position = 0
    for begin, end, name in sorted(ranges):
        if begin != position:
            problem = "overlaps the tensor before it" if begin < position else f"leaves bytes {position}..{begin} unused"
            raise CheckpointError(path, f"tensor {name!r} (bytes {begin}..{end}) {problem}")
        position = end
    if position != data_len:
        raise CheckpointError(path, f"the data section has {data_len} bytes; the tensors cover {position} (bytes unused)")


def _entry(path: str, name: str, entry, file: OpenFile, data_start: int, data_len: int) -> tuple[LazyTensor, tuple[int, int]]:
    """One header entry, checked against the data section: the tensor and the byte range it claims."""
    try:
        dtype = CODES[entry["dtype"]]
        shape = tuple(entry["shape"])
        begin, end = entry["data_offsets"]
        if not all(type(v) is int for v in (*shape, begin, end)) or min((*shape, begin, end), default=0) < 0:
            raise ValueError("negative or non-integer shape or offsets")
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(path, f"malformed safetensors entry {name!r} ({exc})") from None
    check_shape(path, shape)
    numel = int(np.prod(shape, dtype=object))
    if not begin <= end <= data_len:
        raise CheckpointError(path, f"tensor {name!r} claims bytes {begin}..{end} of a {data_len}-byte data section")
    if end - begin != numel * itemsize(dtype):
        raise CheckpointError(path, f"tensor {name!r}: {end - begin} bytes for shape {list(shape)} of {dtype}")

    def load() -> np.ndarray:
        if numel == 0:
            return np.zeros(shape, dtype=storage_dtype(dtype))
        return np.frombuffer(file.region(data_start + begin, end - begin), dtype=storage_dtype(dtype), count=numel).reshape(shape)

    return LazyTensor(dtype, shape, load), (begin, end)


def write(file, entries: Iterable[tuple[str, LazyTensor]], on_tensor=None, metadata_format: str = "pt") -> None:
    """`metadata_format` is what the header's metadata says: "pt" for torch, "np" for Paddle's loaders."""
    entries = list(entries)
    header, offset = {"__metadata__": {"format": metadata_format}}, 0
    for name, tensor in entries:
        header[name] = {"dtype": CODE_OF[tensor.dtype], "shape": list(tensor.shape), "data_offsets": [offset, offset + tensor.nbytes]}
        offset += tensor.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    file.write(struct.pack("<Q", len(text)) + text)
    for name, tensor in entries:
        file.write(raw_bytes(tensor.load_contiguous()))
        if on_tensor:
            on_tensor(name, tensor)
