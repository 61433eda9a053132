"""How two outputs compare: the figures both the gate and the per-layer report are built on.

Kept below `verification` and `layerwise`, which both use it, so that neither imports the other
for it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UserError


@dataclass
class Metrics:
    """How far the Paddle output is from the torch reference, over every element."""

    max_abs: float
    mean_abs: float
    ref_max: float  # the reference's largest magnitude
    max_rel: float  # max_abs / ref_max
    cosine: float
    top1: float | None = None  # fraction of rows whose arg-max agrees
    top5: float | None = None  # fraction of rows whose top-5 sets agree

    @classmethod
    def compare(cls, reference: np.ndarray, output: np.ndarray) -> Metrics:
        ref = np.asarray(reference, dtype=np.float64)
        out = np.asarray(output, dtype=np.float64)
        if ref.shape != out.shape:
            raise UserError(f"the twins' outputs differ in shape: {list(ref.shape)} vs {list(out.shape)}")
        if ref.size == 0:
            return cls(0.0, 0.0, 0.0, 0.0, 1.0)
        diff = np.abs(ref - out)
        # A NaN anywhere means the outputs cannot be shown to agree: it fails any tolerance.
        max_abs = float("nan") if np.isnan(diff).any() else float(diff.max())
        ref_max = float(np.abs(ref).max())
        norms = float(np.linalg.norm(ref) * np.linalg.norm(out))
        cosine = float(np.dot(ref.ravel(), out.ravel()) / norms) if norms > 0 else float(np.array_equal(ref, out))
        top1 = top5 = None
        if ref.ndim == 2 and ref.shape[1] > 1:
            top1 = float(np.mean(ref.argmax(1) == out.argmax(1)))
            if ref.shape[1] >= 10:
                top_ref = np.sort(np.argsort(-ref, axis=1)[:, :5], axis=1)
                top_out = np.sort(np.argsort(-out, axis=1)[:, :5], axis=1)
                top5 = float(np.mean(np.all(top_ref == top_out, axis=1)))
        return cls(
            max_abs=max_abs,
            mean_abs=float(diff.mean()),
            ref_max=ref_max,
            max_rel=max_abs / ref_max if ref_max > 0 else max_abs,
            cosine=cosine,
            top1=top1,
            top5=top5,
        )


def share_of_limit(error: float, limit: float) -> float:
    """How much of a gate's limit an error uses (under 1 passes): NaN for NaN, infinite for any
    error against a zero limit."""
    if np.isnan(error):
        return float("nan")
    return error / limit if limit > 0 else (float("inf") if error > 0 else 0.0)


def flatten_outputs(value, name: str | None = None) -> list[tuple[str, Any]]:
    """Flatten a model's return value (tensor, tuple, list or dict, nested) into named tensors: a
    lone tensor is `output`, a tuple's items `output[0]`, ..., a dict's (a Hugging Face ModelOutput's)
    are named by their keys (`logits`, `hidden_states[2]`). None entries are no outputs."""
    if value is None:
        return []
    if isinstance(value, (tuple, list)):
        return [item for i, v in enumerate(value) for item in flatten_outputs(v, f"{name or 'output'}[{i}]")]
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in flatten_outputs(v, f"{name}.{k}" if name else str(k))]
    return [(name or "output", value)]
