"""What every reader returns: named lazy tensors plus what was found around them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..dtypes import itemsize, name_of, storage_dtype
from ..errors import UserError
from .restricted_pickle import Record

# Wrapper keys, in order of preference: the plain weights come before the EMA ones.
PLAIN_KEYS = ("state_dict", "model", "model_state_dict", "module", "net", "params")
EMA_KEYS = ("state_dict_ema", "model_ema", "ema", "ema_state_dict")
# Prefixes added by DistributedDataParallel and torch.compile.
STRIPPED_PREFIXES = ("module.", "_orig_mod.")


@dataclass
class LazyTensor:
    """A tensor whose bytes are read (or memory-mapped) only when `load` is called."""

    dtype: str  # a weightport.dtypes name
    shape: tuple[int, ...]
    loader: Callable[[], np.ndarray]

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

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
    def of(cls, array: np.ndarray, dtype: str) -> "LazyTensor":
        return cls(dtype, tuple(array.shape), lambda: array)


@dataclass
class Checkpoint:
    path: str
    format: str  # "torch", "torch-legacy", "paddle", "safetensors"
    tensors: dict[str, LazyTensor]
    wrapper: str | None = None  # the key the weights were taken from, None for a bare state dict
    candidates: tuple[str, ...] = ()  # every key holding a state dict
    stripped_prefix: str = ""
    extras: dict[str, str] = field(default_factory=dict)  # other top-level entries, summarised

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    @property
    def numel(self) -> int:
        return sum(t.numel for t in self.tensors.values())


def paddle_array_tensor(array: np.ndarray) -> LazyTensor:
    """A tensor from an array as Paddle stores it: uint16 arrays are bfloat16 bits."""
    return LazyTensor.of(array, "bfloat16" if array.dtype == np.uint16 else name_of(array.dtype))


def raw_bytes(array: np.ndarray) -> memoryview:
    """A flat byte view of a C-contiguous array, without copying it."""
    return memoryview(array.reshape(-1).view(np.uint8))


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, LazyTensor) for k, v in obj.items()
    )


def select_state_dict(path: str, fmt: str, obj: Any, key: str | None) -> Checkpoint:
    """Find the weights inside whatever the file holds, honouring an explicit `key`."""
    if _is_state_dict(obj):
        if key is not None:
            raise UserError(f"{path}: --key {key!r} given, but the file holds a bare state dict")
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
            raise UserError(f"{path}: holds several state dicts ({', '.join(candidates)}); pick one with --key")
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
