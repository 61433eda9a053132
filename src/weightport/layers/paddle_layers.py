"""Paddle counterparts of the timm layers the torch twins use."""
from __future__ import annotations

from ..frameworks import quiet_paddle_import

paddle = quiet_paddle_import()
nn = paddle.nn


def to_2tuple(value):
    """(v, v) for a scalar, the value itself for a pair, as timm's to_2tuple."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def trunc_normal_(tensor, std: float = 1.0, mean: float = 0.0, a: float = -2.0, b: float = 2.0):
    """Fill `tensor` in place from a normal distribution truncated to [a, b], as timm's trunc_normal_."""
    nn.initializer.TruncatedNormal(mean=mean, std=std, a=a, b=b)(tensor)
    return tensor


def constant_(tensor, value: float):
    nn.initializer.Constant(value)(tensor)
    return tensor


class DropPath(nn.Layer):
    """Stochastic depth per sample (timm's DropPath); the identity in eval mode."""

    def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True):
        super().__init__()
        self.drop_prob = drop_prob
        self.scale_by_keep = scale_by_keep

    def forward(self, x):
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep_prob = 1.0 - self.drop_prob
        shape = [x.shape[0]] + [1] * (x.ndim - 1)
        mask = paddle.bernoulli(paddle.full(shape, keep_prob, dtype=x.dtype))
        if keep_prob > 0.0 and self.scale_by_keep:
            mask = mask / keep_prob
        return x * mask

    def extra_repr(self):
        return f"drop_prob={self.drop_prob}"
