"""Resizing CMT's relative position biases for a twin built at another resolution (numpy only).

`relative_pos_<stage>` has shape [heads, queries, keys]: one bias per query token of the stage's
H x W grid and per key token of the h x w grid left after spatial reduction (both square, and both
scale with the input size). The bias is a function on a 4-D grid (query row, query column, key row,
key column), so it is resized by bicubic interpolation along each of those four axes. Bicubic
interpolation is separable, so this equals two passes of `F.interpolate(mode="bicubic",
align_corners=False)` in torch or paddle, one over the query grid and one over the key grid (the
tests check both), which is also how timm resizes position embeddings.
"""
from __future__ import annotations

import math

import numpy as np

_CUBIC_A = -0.75  # the Keys cubic convolution coefficient torch and paddle use for bicubic


def _grid_side(tokens: int, what: str) -> int:
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ValueError(f"relative position bias: {tokens} {what} tokens do not form a square grid")
    return side


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    """Weights of the four taps at offsets -1, 0, 1, 2 for fractional positions t, shape [len(t), 4]."""
    a = _CUBIC_A

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)


def bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out_size, in_size] matrix of 1-D bicubic interpolation, align_corners=False, no antialiasing.

    Source positions are (i + 0.5) * in/out - 0.5, taps beyond the edges are clamped to the border
    samples: the rules of torch's and paddle's bicubic kernels.
    """
    position = (np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
    floor = np.floor(position)
    weights = _cubic_weights(position - floor)
    taps = np.clip(floor.astype(np.int64)[:, None] + np.arange(-1, 3), 0, in_size - 1)
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    np.add.at(matrix, (np.repeat(np.arange(out_size), 4), taps.ravel()), weights.ravel())
    return matrix


def resize_relative_pos(array: np.ndarray, target_shape: tuple[int, ...]) -> np.ndarray:
    """Resize a [heads, H*W, h*w] relative position bias to `target_shape` (same heads, square grids)."""
    if array.ndim != 3 or len(target_shape) != 3:
        raise ValueError(
            f"relative position bias: expected [heads, queries, keys], got {array.shape} -> {tuple(target_shape)}"
        )
    heads, queries, keys = array.shape
    new_heads, new_queries, new_keys = (int(n) for n in target_shape)
    if new_heads != heads:
        raise ValueError(f"relative position bias: cannot change the number of heads ({heads} -> {new_heads})")
    sides = [_grid_side(queries, "query"), _grid_side(keys, "key")]
    new_sides = [_grid_side(new_queries, "query"), _grid_side(new_keys, "key")]
    grid = array.astype(np.float64).reshape(heads, sides[0], sides[0], sides[1], sides[1])
    for axis, (old, new) in enumerate(zip(np.repeat(sides, 2), np.repeat(new_sides, 2)), start=1):
        grid = np.moveaxis(np.tensordot(bicubic_matrix(int(old), int(new)), grid, axes=([1], [axis])), 0, axis)
    return grid.reshape(heads, new_queries, new_keys).astype(array.dtype)
