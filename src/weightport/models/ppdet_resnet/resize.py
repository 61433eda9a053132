"""Resizing the MHSA's position embeddings for twins built at another input size (numpy only).

`rel_h` is [1, heads, d, 1, W] and `rel_w` is [1, heads, d, H, 1] (the reference's swapped names),
H x W the map the MHSA attends over, which scales with the input. Each is resized along its spatial
axes by bicubic interpolation, align_corners=False, the rule of `F.interpolate(mode="bicubic")` in
torch and paddle on a [1, heads * d, H, W] view (the tests check both) and of the CMT family's
position biases, whose 1-D interpolation matrix this reuses.
"""
from __future__ import annotations

import numpy as np

from ..cmt.resize import bicubic_matrix

SPATIAL_AXES = (3, 4)


def resize_rel_pos(array: np.ndarray, target_shape: tuple[int, ...]) -> np.ndarray:
    """Resize a [1, heads, d, H, W] position embedding (H or W is 1) to `target_shape`."""
    target_shape = tuple(int(n) for n in target_shape)
    if array.ndim != 5 or len(target_shape) != 5:
        raise ValueError(f"MHSA position embedding: expected [1, heads, d, H, W], got {array.shape} -> {target_shape}")
    if array.shape[:3] != target_shape[:3]:
        raise ValueError(f"MHSA position embedding: cannot change heads or head width ({array.shape} -> {target_shape})")
    grid = array.astype(np.float64)
    for axis in SPATIAL_AXES:
        old, new = array.shape[axis], target_shape[axis]
        if (old == 1) != (new == 1):
            raise ValueError(f"MHSA position embedding: axis {axis} is 1 on one side only ({array.shape} -> {target_shape})")
        if old != new:
            grid = np.moveaxis(np.tensordot(bicubic_matrix(old, new), grid, axes=([1], [axis])), 0, axis)
    return grid.astype(array.dtype)
