"""What every reader returns: named lazy tensors plus what was found around them."""
from __future__ import annotations

import math
import mmap
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import CheckpointError, InvalidArgument, Remedy, UserError
from .dtypes import itemsize, name_of, storage_dtype
from .pickles.restricted import Record

# Wrapper keys, in order of preference: the plain weights come before the EMA ones.
PLAIN_KEYS = ("state_dict", "model", "model_state_dict", "module", "net", "params")
EMA_KEYS = ("state_dict_ema", "model_ema", "ema", "ema_state_dict")
# Prefixes added by DistributedDataParallel and torch.compile.
STRIPPED_PREFIXES = ("module.", "_orig_mod.")


@dataclass
class LazyTensor:
    """A tensor whose bytes are read (or memory-mapped) only when `load` is called."""

    dtype: str  # a weightport.formats.dtypes name
    shape: tuple[int, ...]
    loader: Callable[[], np.ndarray]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * itemsize(self.dtype)

    def load(self) -> np.ndarray:
        return self.loader()

    def load_contiguous(self) -> np.ndarray:
        """The tensor as a C-contiguous array in its storage dtype, as writers need it."""
        # np.require keeps 0-d arrays 0-d, where np.ascontiguousarray would make them 1-d.
        return np.require(self.loader(), dtype=storage_dtype(self.dtype), requirements="C")

    @classmethod
    def of(cls, array: np.ndarray, dtype: str) -> LazyTensor:
        return cls(dtype, tuple(array.shape), lambda: array)

    def fitted_to(self, shape: tuple[int, ...]) -> LazyTensor:
        """This tensor in `shape` where torch's `load_state_dict` would load it there: a tensor of
        shape [1] into a 0-dim parameter or buffer (torch takes its one element; early torch versions
        saved `num_batches_tracked` so). Itself otherwise, for the caller's shape check to judge."""
        if tuple(shape) == () and self.shape == (1,):
            return LazyTensor(self.dtype, (), lambda: self.loader().reshape(()))
        return self


@dataclass
class Checkpoint:
    path: str
    format: str  # "torch", "torch-legacy", "paddle", "safetensors", "paddle-inference"
    tensors: dict[str, LazyTensor]
    wrapper: str | None = None  # the key the weights were taken from, None for a bare state dict
    candidates: tuple[str, ...] = ()  # every key holding a state dict
    stripped_prefix: str = ""
    extras: dict[str, str] = field(default_factory=dict)  # other top-level entries, summarised
    shards: tuple[str, ...] = ()  # a sharded checkpoint's shard files, beside its index

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    @property
    def numel(self) -> int:
        return sum(t.numel for t in self.tensors.values())


MAX_DIMS = 64  # numpy's limit on the number of dimensions
MAX_NOMINAL_ELEMENTS = 1 << 59  # 2**63 bytes of 16-byte elements: numpy's limit, even for an empty array


def check_shape(path: str, shape: tuple[int, ...]) -> None:
    """Refuse a declared shape that no array can have: sizes beyond 64 bits, more than 64
    dimensions, or sizes whose product (zeros counted as ones) overflows, which numpy refuses
    even when another dimension is 0."""
    if any(n >= 1 << 63 for n in shape):
        raise CheckpointError(path, "tensor with a dimension beyond the 64-bit range")
    if len(shape) > MAX_DIMS:
        raise CheckpointError(path, f"tensor with {len(shape)} dimensions (at most {MAX_DIMS})")
    if math.prod(n for n in shape if n) >= MAX_NOMINAL_ELEMENTS:
        raise CheckpointError(path, f"tensor of shape {list(shape)} is too large to describe")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (a framework's messages run to paragraphs)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def paddle_array_tensor(array: np.ndarray) -> LazyTensor:
    """A tensor from an array as Paddle stores it: uint16 arrays are bfloat16 bits."""
    return LazyTensor.of(array, "bfloat16" if array.dtype == np.uint16 else name_of(array.dtype))


def framework_objects_to_lazy(obj, torch=None):
    """What a framework's own loader returned, with its tensors and arrays as LazyTensors
    (containers recursively; with `torch` given, a whole module becomes its state dict)."""
    return convert_containers(obj, lambda item, convert: _convert_leaf(item, torch, convert))


def convert_containers(obj, leaf: Callable[[Any, Callable], Any]):
    """`obj` with dicts and lists rebuilt and everything else replaced by `leaf(item, convert)`
    (`convert` serves for what a leaf holds, e.g. a tuple's items).

    Each object is converted once, however often it is referenced: a pickle of a few hundred
    bytes can share one list 2**40 times (or hold a list that contains itself), and a plain
    recursive walk would never end. Too deep a nesting raises RecursionError."""
    converted: dict[int, tuple[Any, Any]] = {}  # id -> (the object, kept alive; what it became)

    def convert(item):
        known = converted.get(id(item))
        if known is not None:
            return known[1]
        if isinstance(item, dict):
            result = {}
            converted[id(item)] = (item, result)
            result.update((k, convert(v)) for k, v in item.items())
        elif isinstance(item, list):
            result = []
            converted[id(item)] = (item, result)
            result.extend(convert(v) for v in item)
        else:
            result = leaf(item, convert)
            converted[id(item)] = (item, result)
        return result

    return convert(obj)


def _convert_leaf(item, torch, convert):
    if torch is not None and isinstance(item, torch.nn.Module):
        return convert(item.state_dict())
    if torch is not None and isinstance(item, torch.Tensor):
        tensor = item.detach().cpu().contiguous()
        if tensor.dtype == torch.bfloat16:
            return LazyTensor.of(tensor.view(torch.int16).numpy().view(np.uint16), "bfloat16")
        array = tensor.numpy()
        return LazyTensor.of(array, name_of(array.dtype))
    if isinstance(item, np.ndarray):
        return paddle_array_tensor(item)
    if isinstance(item, tuple):
        return tuple(convert(v) for v in item)
    return item


def raw_bytes(array: np.ndarray) -> memoryview:
    """A flat byte view of a C-contiguous array, without copying it."""
    return memoryview(array.reshape(-1).view(np.uint8))


# Smaller regions are read rather than mapped: one pread costs less than mapping and unmapping
# (five system calls, and a TLB flush on every CPU), and most tensors are biases and norms.
READ_BELOW = 256 * 1024


def file_region(path: str, fd: int, offset: int, length: int) -> memoryview:
    """`length` bytes of an open file from `offset`, read, or memory-mapped on their own when
    large: either way they leave the process's memory with the last array that uses them, where
    pages of one map of the whole file would stay resident (and count in RSS) until every tensor
    is gone."""
    if length < READ_BELOW:
        data = os.pread(fd, length, offset)
        if len(data) == length:
            return memoryview(data)
    else:
        start = offset - offset % mmap.ALLOCATIONGRANULARITY
        try:
            region = mmap.mmap(fd, offset + length - start, offset=start, access=mmap.ACCESS_READ)
            return memoryview(region)[offset - start :]
        except ValueError:  # the map would reach past the end of the file
            pass
    raise CheckpointError(path, "ends before its tensors do: was it cut short after it was opened?")


class OpenFile:
    """A checkpoint held open while its lazy tensors may still read it (even once its path is
    replaced, e.g. by converting a file onto itself with --force)."""

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)

    def region(self, offset: int, length: int) -> memoryview:
        return file_region(self.path, self.fd, offset, length)

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self.fd, length, offset)

    def __del__(self):
        if hasattr(self, "fd"):  # not when os.open failed
            os.close(self.fd)


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, LazyTensor) for k, v in obj.items()
    )


def select_state_dict(path: str, fmt: str, obj: Any, key: str | None) -> Checkpoint:
    """Find the weights inside whatever the file holds, honouring an explicit `key`."""
    if _is_state_dict(obj):
        if key is not None:
            raise InvalidArgument("key", key, f"{path} holds a bare state dict")
        return _strip_prefixes(Checkpoint(path, fmt, dict(obj)))
    if not isinstance(obj, dict):
        raise UserError(f"{path}: holds a {type(obj).__name__}, not a dict of tensors")
    candidates = tuple(k for k, v in obj.items() if isinstance(k, str) and _is_state_dict(v))
    if key is None:
        preferred = [k for k in PLAIN_KEYS + EMA_KEYS if k in candidates]
        if preferred:
            key = preferred[0]
        elif len(candidates) == 1:
            key = candidates[0]
        elif candidates:
            raise UserError(f"{path}: holds several state dicts ({', '.join(candidates)})",
                            remedies=(Remedy("key", candidates[0], "to pick one"),))
        else:
            raise UserError(f"{path}: no dict of tensors found (top-level keys: {', '.join(map(str, obj)) or 'none'})")
    elif key not in candidates:
        raise UserError(
            f"{path}: no state dict under key {key!r}; candidates: {', '.join(candidates) or 'none'}"
        )
    extras = {str(k): _summary(v) for k, v in obj.items() if k not in candidates}
    return _strip_prefixes(Checkpoint(path, fmt, dict(obj[key]), key, candidates, extras=extras))


def _strip_prefixes(ckpt: Checkpoint) -> Checkpoint:
    stripped = ""
    changed = True
    while changed:
        changed = False
        for prefix in STRIPPED_PREFIXES:
            if all(k.startswith(prefix) for k in ckpt.tensors):
                ckpt.tensors = {k[len(prefix) :]: v for k, v in ckpt.tensors.items()}
                stripped += prefix
                changed = True
    ckpt.stripped_prefix = stripped
    return ckpt


def _summary(value: Any) -> str:
    if isinstance(value, (int, float, str, bool)) or value is None:
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    if isinstance(value, dict):
        return f"dict with {len(value)} entries"
    if isinstance(value, Record):
        return value.type_name
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of {len(value)}"
    return type(value).__name__
