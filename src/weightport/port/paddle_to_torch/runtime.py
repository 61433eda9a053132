"""Helpers a generated torch twin calls where Paddle's op has no one-line torch spelling.

Each is copied, source and all, into the generated module that needs it (`emit` reads them with
`inspect.getsource`), so a twin imports only torch, numpy and the standard library. They compute
from the tensors they are given at run time: nothing here is specialised to one input size.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


class Container(nn.Module):
    """A module that only holds others, named as Paddle named them (`blocks[0]` for a key `blocks.0`)."""

    def __getitem__(self, name):
        return self._modules[str(name)]


class Parameters(nn.Module):
    """A holder of parameters the program uses directly rather than through a layer."""

    def __init__(self, **shapes):
        super().__init__()
        for name, shape in shapes.items():
            self.register_parameter(name, nn.Parameter(torch.zeros(shape)))


def pad_same(x, kernel, stride, dilation):
    """Paddle's padding_algorithm="SAME": pad so that the output size is ceil(input / stride)."""
    pads = []
    for size, k, s, d in reversed(list(zip(x.shape[2:], kernel, stride, dilation))):
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class DowngradeInInferDropout(nn.Module):
    """Paddle's dropout with mode "downgrade_in_infer": no rescaling while training, scaled by 1 - p in eval."""

    mode = "downscale_in_infer"  # as paddle.nn.Dropout names this mode

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.training:
            return x * torch.bernoulli(torch.full_like(x, 1 - self.p))
        return x * (1 - self.p)


def interpolate_asymmetric(x, size, mode, scale=None):
    """Paddle's bilinear resize with align_mode=1 (source = destination * ratio, no half-pixel shift),
    which torch lacks: the ratio is 1 / scale where Paddle was given a scale factor, input / output otherwise."""
    in_h, in_w = x.shape[2:]
    out_h, out_w = size
    ratio_h, ratio_w = (1 / scale[0], 1 / scale[1]) if scale else (in_h / out_h, in_w / out_w)
    ys = (torch.arange(out_h, dtype=torch.float32, device=x.device) * ratio_h).clamp(max=in_h - 1)
    xs = (torch.arange(out_w, dtype=torch.float32, device=x.device) * ratio_w).clamp(max=in_w - 1)
    y0, x0 = ys.floor().long(), xs.floor().long()
    y1, x1 = (y0 + 1).clamp(max=in_h - 1), (x0 + 1).clamp(max=in_w - 1)
    wy, wx = (ys - y0).to(x.dtype)[:, None], (xs - x0).to(x.dtype)[None, :]
    top = x[:, :, y0][:, :, :, x0] * (1 - wx) + x[:, :, y0][:, :, :, x1] * wx
    bottom = x[:, :, y1][:, :, :, x0] * (1 - wx) + x[:, :, y1][:, :, :, x1] * wx
    return top * (1 - wy) + bottom * wy


def paddle_sizes(values):
    """Sizes (or indices) computed at run time, as Paddle passes them: a tensor, a number, or a list
    of tensors and numbers; as a list of ints."""
    if torch.is_tensor(values):
        return [int(v) for v in values.reshape(-1).tolist()]
    if isinstance(values, (list, tuple)):
        return [n for v in values for n in paddle_sizes(v)]
    return [int(values)]


def paddle_shape(x, shape):
    """A reshape target computed at run time, read as Paddle reads it: 0 keeps the input's size there."""
    return [x.shape[i] if v == 0 else v for i, v in enumerate(paddle_sizes(shape))]


def paddle_slice(x, axes, starts, ends, strides, decrease):
    """Paddle's slice and strided_slice where the bounds are computed at run time or a stride is
    negative: bounds clamped as Python clamps them, the axes in `decrease` dropped."""
    starts, ends = paddle_sizes(starts), paddle_sizes(ends)
    strides = paddle_sizes(strides) if strides is not None else [1] * len(axes)
    out = x
    for axis, start, end, step in zip(axes, starts, ends, strides):
        axis %= x.dim()
        first, stop, step = slice(start, end, step).indices(out.shape[axis])
        if step > 0:
            out = out[(slice(None),) * axis + (slice(first, stop, step),)]
        else:
            out = out.index_select(axis, torch.arange(first, stop, step, device=x.device))
    for axis in sorted((a % x.dim() for a in decrease), reverse=True):
        out = out.squeeze(axis)
    return out


def paddle_pool2d(x, kind, kernel, stride, paddings, ceil_mode, exclusive, same=False):
    """Paddle's max or average pooling where torch's differs: asymmetric or SAME padding, padding
    over half the window, and ceil_mode's last windows (torch drops one starting in the padding).
    Padded ((top, bottom, left, right) and what ceil_mode adds), then pooled without padding: a max
    pads with the lowest number (Paddle's value for a window in the padding alone), an average
    divides by its count of input elements (exclusive) or, as Paddle does, by its window clipped to
    the input and twice the leading padding."""
    sizes = x.shape[2:]
    if same:
        paddings = []
        for size, k, s in zip(sizes, kernel, stride):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            paddings += [total // 2, total - total // 2]
    before, after = list(paddings[0::2]), list(paddings[1::2])
    for i, (size, k, s) in enumerate(zip(sizes, kernel, stride)):
        out = (size + before[i] + after[i] - k + (s - 1 if ceil_mode else 0)) // s + 1
        after[i] += max((out - 1) * s + k - (size + before[i] + after[i]), 0)
    pads = (before[1], after[1], before[0], after[0])
    if kind == "max":
        return F.max_pool2d(F.pad(x, pads, value=torch.finfo(x.dtype).min), kernel, stride)
    pooled = F.avg_pool2d(F.pad(x, pads), kernel, stride)
    if exclusive:
        mask = F.pad(torch.ones(1, 1, *sizes, dtype=x.dtype, device=x.device), pads)
    else:
        extent = [size + b + a for size, b, a in zip(sizes, before, after)]
        kept = [min(size + 2 * b, e) for size, b, e in zip(sizes, before, extent)]
        mask = F.pad(torch.ones(1, 1, *kept, dtype=x.dtype, device=x.device), (0, extent[1] - kept[1], 0, extent[0] - kept[0]))
    return pooled / F.avg_pool2d(mask, kernel, stride)


class PaddleLayerNorm(nn.Module):
    """Paddle's layer_norm over every axis from `axis` on, its weight and bias kept flattened as
    Paddle keeps them (torch's LayerNorm covers the case of the last axis alone)."""

    def __init__(self, axis, size, eps, affine=True, bias=True):
        super().__init__()
        self.axis, self.eps = axis, eps
        self.weight = nn.Parameter(torch.ones(size)) if affine else None
        self.bias = nn.Parameter(torch.zeros(size)) if bias else None

    def forward(self, x):
        shape = x.shape[self.axis:]
        weight = self.weight.reshape(shape) if self.weight is not None else None
        bias = self.bias.reshape(shape) if self.bias is not None else None
        return F.layer_norm(x, shape, weight, bias, self.eps)
