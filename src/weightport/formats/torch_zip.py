"""PyTorch checkpoints in the zip format (torch.save since 1.6), read and written without torch.

Layout: `<root>/data.pkl` is a pickle whose tensors are `torch._utils._rebuild_tensor_v2(storage,
offset, size, stride, ...)` calls and whose storages are persistent ids
`('storage', torch.FloatStorage, key, location, numel)`; `<root>/data/<key>` holds each storage's
raw little-endian bytes. Reading takes those bytes straight from the file (the zip stores them
uncompressed) and checks each storage's CRC when it is first used.
"""
from __future__ import annotations

import io
import math
import os
import struct
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from isal.isal_zlib import crc32  # ISA-L's CRC-32: zlib's values, several times as fast

from ..errors import CheckpointError
from .checkpoint import LazyTensor, check_shape, file_region, raw_bytes
from .dtypes import itemsize, storage_dtype
from .pickles.restricted import record, restricted_load
from .pickles.writer import Global, Persistent, PickleWriter, Reduce

STORAGE_TYPES = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
}
STORAGE_CLASS = {dtype: cls for cls, dtype in STORAGE_TYPES.items()}
_LOCAL_HEADER = struct.Struct("<4s22xHH")
MAX_DEFLATE_RATIO = 1032  # deflate cannot expand data by more than this
ALIGNMENT = 64  # torch aligns storages to 64 bytes so that they can be memory-mapped


@dataclass(frozen=True)
class _StorageType:
    dtype: str


def _is_safe_name(name: str) -> bool:
    """An entry name that stays inside the archive: relative, no `..`, no backslashes or drives.
    weightport never extracts, but an archive with such names was not written by torch."""
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and "\\" not in name and ":" not in parts[0] and ".." not in parts


class _Archive:
    """The zip file, its storages located through their local headers and validated on first use."""

    def __init__(self, path: str):
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
            self.fd = self.zip.fp.fileno()
            self.size = os.fstat(self.fd).st_size
        except Exception as exc:  # zipfile raises many types on a malformed archive (BadZipFile, ValueError, ...)
            raise CheckpointError(path, f"not a readable zip archive ({exc})") from None
        self.names = {}
        for info in self.zip.infolist():
            if not _is_safe_name(info.filename):
                raise CheckpointError(
                    path, f"unsafe entry name {info.filename!r} in the zip archive (absolute or climbing out)"
                )
            if info.filename in self.names:
                raise CheckpointError(path, f"the zip archive holds {info.filename} twice")
            self.names[info.filename] = info
        pickles = [n for n in self.names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise CheckpointError(path, "zip archive without exactly one <root>/data.pkl: not a torch checkpoint")
        self.root = pickles[0][: -len("data.pkl")]
        self._checked: set[str] = set()

    def read_small(self, name: str) -> bytes:
        info = self._info(name)
        expands = 1 if info.compress_type == zipfile.ZIP_STORED else MAX_DEFLATE_RATIO
        if info.compress_size > self.size or info.file_size > min(1 << 30, expands * info.compress_size):
            raise CheckpointError(self.path, f"{name} is implausibly large ({info.file_size} bytes)")
        try:
            return self.zip.read(info)
        except Exception as exc:  # BadZipFile, zlib.error, EOFError, RuntimeError (encrypted), ...
            raise CheckpointError(self.path, f"cannot read {name}: {exc}") from None

    def _info(self, name: str) -> zipfile.ZipInfo:
        try:
            return self.names[name]
        except KeyError:
            raise CheckpointError(self.path, f"archive entry {name} is missing") from None

    def storage_bytes(self, key: str) -> memoryview:
        """The raw bytes of storage `key`: read or mapped from the file on their own when stored (so that
        they leave memory with the last array using them), CRC-checked on first use."""
        name = f"{self.root}data/{key}"
        info = self._info(name)
        if info.compress_type == zipfile.ZIP_STORED:
            # The local header and the name it should hold, in one read (not mapped: a map of a
            # file cut short kills the process with SIGBUS when touched).
            expected = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")
            header = os.pread(self.fd, _LOCAL_HEADER.size + len(expected), info.header_offset)
            if len(header) < _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
                raise CheckpointError(self.path, f"corrupt zip entry {name}")
            name_len, extra_len = _LOCAL_HEADER.unpack_from(header)[1:]
            if header[_LOCAL_HEADER.size :] != expected or name_len != len(expected):
                raise CheckpointError(self.path, f"corrupt zip entry {name} (its local header names another file)")
            start = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
            if start + info.file_size > self.size:
                raise CheckpointError(self.path, f"zip entry {name} runs past the end of the file (truncated?)")
            data = file_region(self.path, self.fd, start, info.file_size)
        else:
            data = memoryview(self.read_small(name))
        if name not in self._checked and crc32(data) != info.CRC:
            raise CheckpointError(self.path, f"CRC mismatch in {name}: the file is corrupt")
        self._checked.add(name)
        return data


@dataclass(frozen=True)
class _Storage:
    archive: _Archive
    key: str
    dtype: str
    numel: int

    def array(self) -> np.ndarray:
        data = self.archive.storage_bytes(self.key)
        if len(data) < self.numel * itemsize(self.dtype):
            raise CheckpointError(
                self.archive.path, f"storage {self.key} holds {len(data)} bytes, fewer than its {self.numel} elements need"
            )
        return np.frombuffer(data, dtype=storage_dtype(self.dtype), count=self.numel)


def check_layout(path: str, storage_numel: int, offset, size, stride) -> tuple[int, tuple, tuple]:
    """Validate a tensor's view of its storage before any byte is touched: whole numbers, a shape
    an array can have, every element inside the storage, and no more elements than the storage
    holds (an expanded or overlapping view could otherwise turn a small file into a huge array)."""
    if not (isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list))) or any(
        type(v) is not int for v in (offset, *size, *stride)
    ):
        raise CheckpointError(path, "tensor with a malformed shape, stride or offset")
    size, stride = tuple(size), tuple(stride)
    if any(abs(v) >= 1 << 63 for v in (offset, *stride)):
        raise CheckpointError(path, "tensor with a stride or offset beyond the 64-bit range")
    check_shape(path, tuple(abs(n) for n in size))
    if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise CheckpointError(path, f"tensor with an invalid layout (offset {offset}, size {size}, stride {stride})")
    if 0 not in size:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage_numel:
            raise CheckpointError(
                path, f"tensor of shape {list(size)} reaches element {last} of a storage of {storage_numel}"
            )
        numel = math.prod(size)
        if numel > storage_numel:
            raise CheckpointError(
                path, f"tensor of shape {list(size)} has more elements ({numel}) than its storage ({storage_numel}): "
                "an expanded or overlapping view"
            )
    return offset, size, stride


def _tensor(path: str, storage: _Storage, offset, size, stride) -> LazyTensor:
    offset, size, stride = check_layout(path, storage.numel, offset, size, stride)
    # The stride of a dimension of size 1 is never followed, and may be any number: drop it.
    stride = tuple(s if n > 1 else 0 for n, s in zip(size, stride))
    numel = math.prod(size)
    # Almost every saved tensor is C-contiguous: a plain slice and reshape, cheaper than as_strided.
    contiguous = stride == tuple(s if n > 1 else 0 for n, s in zip(size, _c_strides(size)))

    def load() -> np.ndarray:
        if numel == 0:
            return np.zeros(size, dtype=storage_dtype(storage.dtype))
        base = storage.array()[offset:]
        if contiguous:
            return base[:numel].reshape(size)
        step = base.itemsize
        return np.lib.stride_tricks.as_strided(base, size, tuple(s * step for s in stride), writeable=False)

    return LazyTensor(storage.dtype, size, load)


def _c_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The strides, in elements, of a C-contiguous tensor of `shape`."""
    return tuple(math.prod(shape[i + 1 :]) for i in range(len(shape)))


def storage_reference(path: str, pid, fields: int) -> tuple[str, str, int]:
    """(key, dtype, numel) of a storage's persistent id, `('storage', torch.FloatStorage, key,
    location, numel)` (and a sixth field, view metadata, in the legacy format)."""
    if not (isinstance(pid, tuple) and len(pid) == fields and pid[0] == "storage"):
        raise CheckpointError(path, f"unexpected persistent id {str(pid)[:80]}")
    storage_type, key, numel = pid[1], pid[2], pid[4]
    if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or type(numel) is not int:
        raise CheckpointError(path, "malformed storage reference")
    if not _is_safe_name(key) or "/" in key:
        raise CheckpointError(path, f"storage key {key[:80]!r} is not a plain name")
    if numel < 0:
        raise CheckpointError(path, f"storage {key} with negative size")
    # Typed storages count elements; `numel` of an untyped one would be bytes.
    return key, storage_type.dtype, numel


def torch_globals(rebuild_tensor) -> dict:
    """The globals a torch checkpoint's pickle may name, with tensors built by `rebuild_tensor`.
    Storage classes only ever appear inside storage ids; they resolve to inert markers."""
    allowed = {("torch", cls): _StorageType(dtype) for cls, dtype in STORAGE_TYPES.items()}
    allowed.update(
        {
            ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
            ("torch", "Size"): tuple,
            ("torch", "device"): record("torch.device"),
            ("torch", "dtype"): record("torch.dtype"),
        }
    )
    return allowed


def _rebuild_parameter(data, *_rest):
    return data


def read(path: str) -> object:
    """Unpickle a zip-format torch checkpoint into plain containers of LazyTensors."""
    archive = _Archive(path)
    storages: dict[str, _Storage] = {}

    def persistent_load(pid):
        key, dtype, numel = storage_reference(path, pid, fields=5)
        known = storages.get(key)
        if known is None:
            known = storages[key] = _Storage(archive, key, dtype, numel)
            info = archive._info(f"{archive.root}data/{key}")
            if info.file_size != numel * itemsize(dtype):  # torch.load insists on the exact size too
                raise CheckpointError(
                    path, f"storage {key} holds {info.file_size} bytes, but its {numel} {dtype} elements take "
                    f"{numel * itemsize(dtype)}"
                )
        return known

    def rebuild_tensor(storage, offset, size, stride, *_rest):
        if not isinstance(storage, _Storage):
            raise CheckpointError(path, "tensor without a storage")
        return _tensor(path, storage, offset, size, stride)

    pickled = archive.read_small(f"{archive.root}data.pkl")
    return restricted_load(pickled, path, torch_globals(rebuild_tensor), persistent_load)


# --- writing -------------------------------------------------------------------------------


_REBUILD_TENSOR = Global("torch._utils", "_rebuild_tensor_v2")
_ORDERED_DICT = Global("collections", "OrderedDict")


def _tensor_record(key: str, dtype: str, shape: tuple[int, ...]) -> Reduce:
    """A contiguous tensor over all of storage `key`, as torch pickles it."""
    stride = _c_strides(shape)
    storage = Persistent(("storage", Global("torch", STORAGE_CLASS[dtype]), key, "cpu", math.prod(shape)))
    return Reduce(_REBUILD_TENSOR, (storage, 0, shape, stride, False, Reduce(_ORDERED_DICT, ())))


def write(file, entries: Iterable[tuple[str, LazyTensor]], archive_name: str = "archive", on_tensor=None) -> None:
    """Write a torch.load-compatible zip checkpoint, one tensor at a time, storages 64-byte aligned."""
    entries = list(entries)
    records = io.BytesIO()
    PickleWriter(records, protocol=2).dump_dict(
        (name, _tensor_record(str(i), t.dtype, tuple(t.shape))) for i, (name, t) in enumerate(entries)
    )
    pkl = records.getvalue()
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        _write_entry(zf, f"{archive_name}/data.pkl", [pkl], len(pkl))
        _write_entry(zf, f"{archive_name}/byteorder", [b"little"], 6)
        for i, (name, tensor) in enumerate(entries):
            array = tensor.load_contiguous()
            _write_entry(zf, f"{archive_name}/data/{i}", [raw_bytes(array)], array.nbytes)
            del array  # else it stays alive while the next tensor loads: two in memory at once
            if on_tensor:
                on_tensor(name, tensor)
        _write_entry(zf, f"{archive_name}/version", [b"3\n"], 2)


def _write_entry(zf: zipfile.ZipFile, name: str, chunks, size: int) -> None:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = size
    zip64 = size * 1.05 > zipfile.ZIP64_LIMIT
    header_len = _LOCAL_HEADER.size + len(name.encode()) + (20 if zip64 else 0)
    pad = -(zf.fp.tell() + header_len + 4) % ALIGNMENT
    info.extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # 'FB' padding field, as torch writes
    with zf.open(info, "w", force_zip64=zip64) as out:
        for chunk in chunks:
            out.write(chunk)
