"""The batches both twins are fed: seeded random arrays, or real images preprocessed per model;
for twins called otherwise than with one image batch, a batch of each of their inputs (`Batch`)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..models.inputs import InputSpec, arrays, split
from ..models.registry import Preprocessing


def random_batch(batch_size: int, input_size: int | tuple[int, int], seed: int) -> np.ndarray:
    """One seeded NCHW float32 batch, the same array fed to both twins (`input_size`: the side of a
    square, or (height, width))."""
    height, width = input_size if isinstance(input_size, tuple) else (input_size, input_size)
    return np.random.default_rng(seed).standard_normal((batch_size, 3, height, width)).astype(np.float32)


def batches(batch_size: int, count: int, seed: int, input_size: int | tuple[int, int], images: str | Path | None,
            preprocessing: Preprocessing) -> Iterator[np.ndarray]:
    """`count` batches of `batch_size`: random (seeds seed, seed + 1, ...), or the first images of the
    folder `images`, preprocessed as `preprocessing` says."""
    if images:
        from .images import load_image_batch

        everything = load_image_batch(str(images), preprocessing, input_size, batch_size * count)
        yield from (everything[i : i + batch_size] for i in range(0, len(everything), batch_size))
        return
    for i in range(count):
        yield random_batch(batch_size, input_size, seed + i)


@dataclass(frozen=True)
class Batch:
    """One batch of several inputs, or of keyword ones (a ported folder's `inputs`): the arrays, one
    per input, and how each is passed. A plain array stands for one image batch passed by position."""

    arrays: tuple[np.ndarray, ...]
    specs: tuple[InputSpec, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.arrays[0].shape

    def astype(self, dtype) -> Batch:
        """The batch with its floating inputs in `dtype` (integer inputs stay as they are)."""
        return Batch(tuple(a.astype(dtype) if a.dtype.kind == "f" else a for a in self.arrays), self.specs)

    def __str__(self) -> str:
        return ", ".join(f"{s.name}={'x'.join(map(str, a.shape))}" for s, a in zip(self.specs, self.arrays, strict=True))


def spec_batches(specs: Sequence[InputSpec], batch_size: int, count: int, seed: int,
                 input_size: int | tuple[int, int]) -> Iterator[Batch]:
    """`count` seeded batches of the inputs `specs` describe (seeds seed, seed + 1, ...)."""
    for i in range(count):
        yield Batch(tuple(arrays(specs, input_size, batch_size, seed + i)), tuple(specs))


def torch_inputs(batch: np.ndarray | Batch, device: str = "cpu", dtype=None) -> tuple[tuple, dict]:
    """The torch call's (args, kwargs) for `batch`; floating inputs cast to `dtype` when given."""
    import torch

    def tensor(array: np.ndarray):
        x = torch.from_numpy(array).to(device)
        return x.to(dtype) if dtype is not None and x.is_floating_point() else x

    if isinstance(batch, np.ndarray):
        return (tensor(batch),), {}
    return split(batch.specs, [tensor(a) for a in batch.arrays])


def paddle_inputs(batch: np.ndarray | Batch) -> tuple[tuple, dict]:
    """The Paddle call's (args, kwargs) for `batch`."""
    import paddle

    if isinstance(batch, np.ndarray):
        return (paddle.to_tensor(batch),), {}
    return split(batch.specs, [paddle.to_tensor(a) for a in batch.arrays])
