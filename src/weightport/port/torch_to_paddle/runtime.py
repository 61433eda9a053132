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


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None, antialias=False):
    """torch.nn.functional.interpolate (Paddle's align_mode 0 is torch's half-pixel rule; Paddle has
    no antialiasing, so that is done here as torch does it)."""
    if isinstance(size, int):  # one size for every spatial axis (Paddle takes a list)
        size = [size] * (x.ndim - 2)
    if mode in ("nearest", "area"):
        return F.interpolate(x, size=size, scale_factor=scale_factor, mode=mode)

    def antialiased_weights(length, size):
        """The [size, length] matrix of torch's antialiased resampling along one axis: its filter (the
        triangle, or the cubic with a = -0.5) stretched by the scale when shrinking, each row normalised."""
        scale = length / size
        support = (1.0 if mode == "bilinear" else 2.0) * max(scale, 1.0)
        stretch = 1.0 / max(scale, 1.0)

        def kernel(t):
            t = abs(t)
            if mode == "bilinear":
                return max(0.0, 1.0 - t)
            if t < 1.0:
                return (1.5 * t - 2.5) * t * t + 1.0
            return ((-0.5 * t + 2.5) * t - 4.0) * t + 2.0 if t < 2.0 else 0.0

        matrix = []
        for i in range(size):
            center = scale * (i + 0.5)
            first, last = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), length)
            weights = [kernel((j - center + 0.5) * stretch) for j in range(first, last)]
            total = sum(weights) or 1.0
            matrix.append([0.0] * first + [w / total for w in weights] + [0.0] * (length - last))
        return paddle.to_tensor(matrix)

    if antialias:
        if size is None:
            factors = scale_factor if isinstance(scale_factor, (tuple, list)) else [scale_factor] * 2
            size = [int(math.floor(n * f)) for n, f in zip(x.shape[2:], factors)]
        rows = antialiased_weights(x.shape[2], size[0]).astype(x.dtype)
        columns = antialiased_weights(x.shape[3], size[1]).astype(x.dtype)
        return paddle.matmul(paddle.matmul(rows, x), columns, transpose_y=True)
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


class MultiheadAttention(nn.MultiHeadAttention):
    """torch.nn.MultiheadAttention: Paddle's layer holds the projections (torch's packed q, k, v
    weight split over q_proj, k_proj, v_proj), this forward takes torch's call, which Paddle's does
    not: sequence-first unless batch_first, key_padding_mask, boolean masks that mark the hidden
    positions (Paddle's mark the kept ones), weights averaged over heads, an (output, weights) pair."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, kdim=None, vdim=None, batch_first=False):
        super().__init__(embed_dim, num_heads, dropout=dropout, kdim=kdim, vdim=vdim, bias_attr=None if bias else False)
        self.batch_first = batch_first

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        # is_causal is only a hint in torch: the causal mask must be given as attn_mask.
        unbatched = query.ndim == 2
        if unbatched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            key_padding_mask = None if key_padding_mask is None else key_padding_mask.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = (paddle.transpose(t, [1, 0, 2]) for t in (query, key, value))
        batch, length, source = query.shape[0], query.shape[1], key.shape[1]

        def heads(x, projection, size):
            return paddle.transpose(paddle.reshape(projection(x), [batch, size, self.num_heads, self.head_dim]), [0, 2, 1, 3])

        q, k, v = heads(query, self.q_proj, length), heads(key, self.k_proj, source), heads(value, self.v_proj, source)
        logits = paddle.matmul(q * (1.0 / math.sqrt(self.head_dim)), k, transpose_y=True)
        masks = []
        if attn_mask is not None:
            masks.append(attn_mask if attn_mask.ndim == 2 else paddle.reshape(attn_mask, [batch, self.num_heads, length, source]))
        if key_padding_mask is not None:
            masks.append(paddle.reshape(key_padding_mask, [batch, 1, 1, source]))
        for mask in masks:
            if mask.dtype == paddle.bool:
                logits = paddle.where(mask, paddle.full_like(logits, float("-inf")), logits)
            else:
                logits = logits + mask
        weights = F.softmax(logits, axis=-1)
        if self.dropout > 0.0:
            weights = F.dropout(weights, p=self.dropout, training=self.training)
        out = paddle.reshape(paddle.transpose(paddle.matmul(weights, v), [0, 2, 1, 3]), [batch, length, self.embed_dim])
        out = self.out_proj(out)
        if unbatched:
            out, weights = out.squeeze(0), weights.squeeze(0)
        elif not self.batch_first:
            out = paddle.transpose(out, [1, 0, 2])
        if not need_weights:
            return out, None
        return out, weights.mean(axis=-3) if average_attn_weights else weights


class PaddedEmbedding(nn.Embedding):
    """torch's Embedding with a padding_idx: the padding row is returned as stored (Paddle's own
    padding_idx returns zeros) and gets no gradient."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx):
        super().__init__(num_embeddings, embedding_dim)
        self.padding_row = padding_idx

    def forward(self, x):
        out = super().forward(x)
        return paddle.where((x == self.padding_row).unsqueeze(-1), out.detach(), out)
