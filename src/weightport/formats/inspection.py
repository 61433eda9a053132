"""A checkpoint's report for `weightport inspect`: what it holds, and any non-finite values."""
from __future__ import annotations

from collections import Counter

import numpy as np

from . import FORMAT_NAMES, dtypes, read_checkpoint


def non_finite_counts(array: np.ndarray, dtype: str) -> tuple[int, int]:
    """(NaN count, Inf count) of a floating tensor; (0, 0) for integer ones."""
    if dtype not in dtypes.FLOATING:
        return 0, 0
    values = dtypes.cast(array, dtype, "float32") if dtype == "bfloat16" else array
    return int(np.isnan(values).sum()), int(np.isinf(values).sum())


def non_finite_tensors(tensors) -> dict[str, dict[str, int]]:
    """{name: {"nan": n, "inf": n}} for every tensor holding a NaN or an infinity, one tensor in memory at a time."""
    found = {}
    for name, tensor in tensors.items():
        nan, inf = non_finite_counts(tensor.load(), tensor.dtype)
        if nan or inf:
            found[name] = {"nan": nan, "inf": inf}
    return found


def inspect_checkpoint(path: str, key: str | None = None) -> dict:
    ckpt = read_checkpoint(path, key)
    return {
        "path": ckpt.path,
        "format": ckpt.format,
        "format_description": FORMAT_NAMES[ckpt.format],
        "shards": len(ckpt.shards),  # 0 for a single file
        "wrapper": ckpt.wrapper,
        "candidates": list(ckpt.candidates),
        "stripped_prefix": ckpt.stripped_prefix,
        "extras": ckpt.extras,
        "tensors": len(ckpt.tensors),
        "parameters": ckpt.numel,
        "bytes": ckpt.nbytes,
        "dtypes": dict(Counter(t.dtype for t in ckpt.tensors.values())),
        "non_finite": non_finite_tensors(ckpt.tensors),
        "keys": [{"name": k, "shape": list(t.shape), "dtype": t.dtype} for k, t in ckpt.tensors.items()],
    }
