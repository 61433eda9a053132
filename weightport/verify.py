"""Parity of the two twins on identical inputs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .convert import convert_tensors
from .registry import create_model, get_spec
from .twins import load_paddle, randomize_torch, torch_state


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
    def compare(cls, reference: np.ndarray, output: np.ndarray) -> "Metrics":
        ref = np.asarray(reference, dtype=np.float64)
        out = np.asarray(output, dtype=np.float64)
        if ref.shape != out.shape:
            raise ValueError(f"outputs differ in shape: {ref.shape} vs {out.shape}")
        diff = np.abs(ref - out)
        ref_max = float(np.abs(ref).max()) if ref.size else 0.0
        norms = np.linalg.norm(ref) * np.linalg.norm(out)
        cosine = float(np.dot(ref.ravel(), out.ravel()) / norms) if norms > 0 else float(np.array_equal(ref, out))
        top1 = top5 = None
        if ref.ndim == 2 and ref.shape[1] > 1:
            top1 = float(np.mean(ref.argmax(1) == out.argmax(1)))
            if ref.shape[1] >= 10:
                top_ref = np.sort(np.argsort(-ref, axis=1)[:, :5], axis=1)
                top_out = np.sort(np.argsort(-out, axis=1)[:, :5], axis=1)
                top5 = float(np.mean(np.all(top_ref == top_out, axis=1)))
        return cls(
            max_abs=float(diff.max()) if diff.size else 0.0,
            mean_abs=float(diff.mean()) if diff.size else 0.0,
            ref_max=ref_max,
            max_rel=float(diff.max() / ref_max) if ref_max > 0 else float(diff.max(initial=0.0)),
            cosine=cosine,
            top1=top1,
            top5=top5,
        )


def random_batch(batch_size: int, input_size: int, seed: int) -> np.ndarray:
    """One seeded NCHW float32 batch, the same array fed to both twins."""
    return np.random.default_rng(seed).standard_normal((batch_size, 3, input_size, input_size)).astype(np.float32)


def torch_forward(model, batch: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(batch)).detach().cpu().numpy()


def paddle_forward(model, batch: np.ndarray) -> np.ndarray:
    from .frameworks import quiet_paddle_import

    paddle = quiet_paddle_import()
    with paddle.no_grad():
        return model(paddle.to_tensor(batch)).numpy()


def random_twins(name: str, seed: int = 0, **model_kwargs: Any):
    """The torch twin with deterministic non-trivial weights, and the Paddle twin loaded from it
    through the real converter. Returns (torch_model, paddle_model, conversion summary)."""
    torch_model = create_model(name, "torch", **model_kwargs)
    randomize_torch(torch_model, seed)
    paddle_model = create_model(name, "paddle", **model_kwargs)
    tensors, summary = convert_tensors(name, torch_state(torch_model), "paddle", model_kwargs=model_kwargs)
    load_paddle(paddle_model, tensors)
    return torch_model, paddle_model, summary


def input_size_of(name: str, model_kwargs: dict[str, Any]) -> int:
    return int(model_kwargs.get("img_size", get_spec(name).input_size))
