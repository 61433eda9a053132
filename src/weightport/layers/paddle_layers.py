"""Paddle counterparts of the timm layers the torch twins use. DropPath is the port's runtime helper
(port/torch_to_paddle/runtime.py), which generated twins carry a copy of."""
from __future__ import annotations

from ..frameworks import quiet_paddle_import
from ..port.torch_to_paddle.runtime import DropPath
from . import to_2tuple

__all__ = ["DropPath", "constant_", "to_2tuple", "trunc_normal_"]

paddle = quiet_paddle_import()
nn = paddle.nn


def trunc_normal_(tensor, std: float = 1.0, mean: float = 0.0, a: float = -2.0, b: float = 2.0):
    """Fill `tensor` in place from a normal distribution truncated to [a, b], as timm's trunc_normal_."""
    nn.initializer.TruncatedNormal(mean=mean, std=std, a=a, b=b)(tensor)
    return tensor


def constant_(tensor, value: float):
    nn.initializer.Constant(value)(tensor)
    return tensor
