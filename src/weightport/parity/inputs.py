"""The batches both twins are fed: seeded random arrays, or real images preprocessed per model."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

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
