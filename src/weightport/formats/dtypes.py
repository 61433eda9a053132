"""Tensor element types, by name, and the casts between floating types.

numpy has no bfloat16, so a bfloat16 tensor travels as a uint16 array of its
raw bits (as Paddle itself stores it); its dtype *name* says what it is.
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError

# dtype name -> numpy storage dtype (little-endian)
STORAGE = {
    "float64": np.dtype("<f8"),
    "float32": np.dtype("<f4"),
    "float16": np.dtype("<f2"),
    "bfloat16": np.dtype("<u2"),
    "int64": np.dtype("<i8"),
    "int32": np.dtype("<i4"),
    "int16": np.dtype("<i2"),
    "int8": np.dtype("i1"),
    "uint8": np.dtype("u1"),
    "bool": np.dtype("?"),
}
FLOATING = ("float64", "float32", "float16", "bfloat16")
CASTABLE = ("float32", "float16", "bfloat16")  # what --dtype offers


def storage_dtype(name: str) -> np.dtype:
    return STORAGE[name]


def name_of(array_dtype: np.dtype) -> str:
    """The dtype name of a numpy array as Paddle stores it (uint16 means bfloat16)."""
    dt = np.dtype(array_dtype).newbyteorder("<") if np.dtype(array_dtype).byteorder == ">" else np.dtype(array_dtype)
    for name, storage in STORAGE.items():
        if storage == dt:
            return name
    raise UserError(f"unsupported tensor dtype {array_dtype}")


def itemsize(name: str) -> int:
    return STORAGE[name].itemsize


def cast(array: np.ndarray, source: str, target: str) -> np.ndarray:
    """Cast between floating dtypes; bfloat16 rounds to nearest even, as torch and Paddle do."""
    if source == target:
        return array
    if source not in FLOATING or target not in FLOATING:
        raise UserError(f"cannot cast {source} to {target}")
    values = bfloat16_to_float32(array) if source == "bfloat16" else array
    if target == "bfloat16":
        return float32_to_bfloat16(values.astype(np.float32))
    return values.astype(STORAGE[target])


def bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def float32_to_bfloat16(values: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = (bits + (((bits >> 16) & 1) + 0x7FFF)) >> 16
    # NaN stays NaN (keep the quiet bit) rather than rounding into infinity.
    rounded = np.where(np.isnan(values), (bits >> 16) | 0x0040, rounded)
    return rounded.astype(np.uint16)
