"""Paddle helpers with torch's semantics, for the ops whose Paddle spelling differs in more than names.

Generated twins must not import weightport, so the generator copies the source of each helper a
twin uses into its file (emit.py). Every helper imports only paddle and the standard library, and
is tested against torch through the translation that uses it (tests/test_port_translations.py).
"""
from __future__ import annotations

import math

import paddle
import paddle.nn as nn
import paddle.nn.functional as F


def transpose(x, dim0, dim1):
    """torch.transpose: swap two axes."""
    perm = list(range(x.ndim))
    perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
    return paddle.transpose(x, perm)


def split(x, split_size_or_sections, dim=0):
    """torch.split: an int is the size of each piece (the last may be smaller), not their number."""
    if isinstance(split_size_or_sections, int):
        length = x.shape[dim]
        sizes = [split_size_or_sections] * (length // split_size_or_sections)
        if length % split_size_or_sections:
            sizes.append(length % split_size_or_sections)
        return paddle.split(x, sizes, axis=dim)
    return paddle.split(x, list(split_size_or_sections), axis=dim)


def chunk(x, chunks, dim=0):
    """torch.chunk: pieces of ceil(length / chunks), the last one smaller."""
    size = -(-x.shape[dim] // chunks)
    return split(x, size, dim)


def pad(x, widths, mode="constant", value=0.0):
    """torch.nn.functional.pad: `widths` lists (before, after) pairs from the last axis backwards."""
    widths = [int(w) for w in widths]
    if any(w < 0 for w in widths):  # negative padding crops, which Paddle's pad refuses: pad, then slice
        out = pad(x, [max(w, 0) for w in widths], mode, value)
        index = [slice(None)] * x.ndim
        for i in range(len(widths) // 2):
            before, after = -min(widths[2 * i], 0), -min(widths[2 * i + 1], 0)
            index[x.ndim - 1 - i] = slice(before, out.shape[x.ndim - 1 - i] - after)
        return out[tuple(index)]
    if mode == "constant":
        full = [0] * (2 * x.ndim)
        for i in range(len(widths) // 2):
            axis = x.ndim - 1 - i
            full[2 * axis], full[2 * axis + 1] = widths[2 * i], widths[2 * i + 1]
        return F.pad(x, full, mode="constant", value=0.0 if value is None else value, pad_from_left_axis=True)
    formats = {3: "NCL", 4: "NCHW", 5: "NCDHW"}
    return F.pad(x, widths, mode=mode, data_format=formats[x.ndim])


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """torch's attention on [..., length, dim] inputs, written out (Paddle's fused op wants another layout)."""
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    logits = paddle.matmul(query, key, transpose_y=True) * scale
    if is_causal:
        length, source = query.shape[-2], key.shape[-2]
        causal = paddle.tril(paddle.ones([length, source], dtype="bool"))
        logits = paddle.where(causal, logits, paddle.full_like(logits, float("-inf")))
    if attn_mask is not None:
        if attn_mask.dtype == paddle.bool:
            logits = paddle.where(attn_mask, logits, paddle.full_like(logits, float("-inf")))
        else:
            logits = logits + attn_mask
    weights = F.softmax(logits, axis=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return paddle.matmul(weights, value)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """torch.nn.functional.batch_norm (torch's momentum); without running statistics, the batch's."""
    if running_mean is None:
        axes = [0] + list(range(2, x.ndim))
        shape = [1, -1] + [1] * (x.ndim - 2)
        mean = paddle.mean(x, axis=axes, keepdim=True)
        variance = paddle.var(x, axis=axes, unbiased=False, keepdim=True)
        out = (x - mean) / paddle.sqrt(variance + eps)
        if weight is not None:
            out = out * paddle.reshape(weight, shape)
        if bias is not None:
            out = out + paddle.reshape(bias, shape)
        return out
    return F.batch_norm(x, running_mean, running_var, weight, bias, training=training, momentum=1 - momentum, epsilon=eps)


def setitem(x, index, value):
    """`x[index] = value`, out of place: the traced graph reads the result, not `x`."""
    out = x.clone()
    out[index] = value
    return out


def expand(x, sizes):
    """Tensor.expand: -1 keeps an axis; new leading axes may be added."""
    sizes = list(sizes)
    offset = len(sizes) - x.ndim
    return paddle.expand(x, [x.shape[i - offset] if s == -1 else s for i, s in enumerate(sizes)])


def reduce_with_indices(x, how, dim, keepdim=False):
    """torch.max / torch.min with a dim: (values, indices)."""
    values = getattr(paddle, how)(x, axis=dim, keepdim=keepdim)
    indices = getattr(paddle, "arg" + how)(x, axis=dim, keepdim=keepdim)
    return values, indices


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """torch.nn.functional.interpolate (Paddle's align_mode 0 is torch's half-pixel rule)."""
    if mode in ("nearest", "area"):
        return F.interpolate(x, size=size, scale_factor=scale_factor, mode=mode)
    return F.interpolate(x, size=size, scale_factor=scale_factor, mode=mode, align_corners=bool(align_corners), align_mode=0)


def unflatten(x, dim, sizes):
    """Tensor.unflatten: split one axis into `sizes`."""
    dim = dim % x.ndim
    return paddle.reshape(x, list(x.shape[:dim]) + list(sizes) + list(x.shape[dim + 1 :]))


def std_mean(x, dim=None, correction=1, keepdim=False):
    """torch.std_mean: (standard deviation with Bessel's correction by default, mean)."""
    return paddle.std(x, axis=dim, unbiased=correction == 1, keepdim=keepdim), paddle.mean(x, axis=dim, keepdim=keepdim)


def var_mean(x, dim=None, correction=1, keepdim=False):
    """torch.var_mean."""
    return paddle.var(x, axis=dim, unbiased=correction == 1, keepdim=keepdim), paddle.mean(x, axis=dim, keepdim=keepdim)


def masked_fill(x, mask, value):
    """Tensor.masked_fill."""
    return paddle.where(mask, paddle.full_like(x, value), x)


def meshgrid(*tensors, indexing="ij"):
    """torch.meshgrid with its `indexing` argument (Paddle's is always "ij")."""
    if indexing == "ij":
        return paddle.meshgrid(*tensors)
    grids = paddle.meshgrid(*tensors)
    if len(tensors) >= 2:
        first, second = paddle.meshgrid(tensors[1], tensors[0], *tensors[2:])[:2]
        return [paddle.transpose(second, [1, 0] + list(range(2, second.ndim))),
                paddle.transpose(first, [1, 0] + list(range(2, first.ndim)))] + list(grids[2:])
    return grids


def pack(tensors, before, after):
    """einops.pack: each tensor's axes between its first `before` and last `after` merged into one,
    the tensors concatenated along it; also returns the merged axes' shapes, for unpack."""
    shapes = [t.shape[before : t.ndim - after] for t in tensors]
    merged = [t.reshape(t.shape[:before] + [-1] + t.shape[t.ndim - after :]) for t in tensors]
    return paddle.concat(merged, axis=before), shapes


def unpack(x, shapes, before, after):
    """einops.unpack: the inverse of pack, given the shapes it returned."""
    pieces = paddle.split(x, [math.prod(shape) for shape in shapes], axis=before)
    return [piece.reshape(piece.shape[:before] + list(shape) + piece.shape[before + 1 :]) for piece, shape in zip(pieces, shapes)]


def drop_path(x, drop_prob=0.0, training=False, scale_by_keep=True):
    """Stochastic depth per sample, as timm's drop_path."""
    if drop_prob == 0.0 or not training:
        return x
    keep = 1.0 - drop_prob
    mask = paddle.bernoulli(paddle.full([x.shape[0]] + [1] * (x.ndim - 1), keep, dtype=x.dtype))
    if keep > 0.0 and scale_by_keep:
        mask = mask / keep
    return x * mask


class DropPath(nn.Layer):
    """timm's DropPath: drops whole residual branches per sample in training."""

    def __init__(self, drop_prob=0.0, scale_by_keep=True):
        super().__init__()
        self.drop_prob = drop_prob
        self.scale_by_keep = scale_by_keep

    def forward(self, x):
        return drop_path(x, self.drop_prob, self.training, self.scale_by_keep)

    def extra_repr(self):
        return f"drop_prob={self.drop_prob}"
