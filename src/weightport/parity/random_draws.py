"""One stream of random numbers for both twins, so that their train-mode code can be compared exactly.

Random ops in a module's own code (EfficientNet-PyTorch's drop-connect draws `torch.rand`,
torchvision's stochastic depth `bernoulli_`, functional dropout) cannot be switched off by class as
dropout layers are. Within `shared_draws(framework, seed)`, each of the framework's random
functions draws its numbers from one numpy generator seeded with `seed`, and turns them into its
result by one rule shared by both frameworks (a Bernoulli draw is `uniform < p`, dropout keeps an
element where `uniform < 1 - p`). The twins call their random ops in the same order with the same
shapes, so both sides get the same numbers, and the random code paths (masks, rescaling) are
compared as exactly as the rest, rather than skipped. The patched functions are module attributes
(`torch.rand`, `paddle.bernoulli`, `F.dropout`, tensor methods); a model that imported one by
name (`from torch import rand`) escapes, and then differs loudly, not silently.
"""
from __future__ import annotations

import contextlib
import inspect
from collections import Counter
from collections.abc import Iterator

import numpy as np


class _Stream:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.calls: Counter[str] = Counter()

    def uniform(self, name: str, shape) -> np.ndarray:
        self.calls[name] += 1
        return self.rng.random(tuple(int(s) for s in shape))

    def normal(self, name: str, shape) -> np.ndarray:
        self.calls[name] += 1
        return self.rng.standard_normal(tuple(int(s) for s in shape))

    def permutation(self, name: str, n) -> np.ndarray:
        self.calls[name] += 1
        return self.rng.permutation(int(n))

    def integers(self, name: str, low: int, high: int, shape) -> np.ndarray:
        self.calls[name] += 1
        return self.rng.integers(low, high, tuple(int(s) for s in shape))


def _sizes(size) -> list[int]:
    """torch's `*size` (ints, or one sequence)."""
    if len(size) == 1 and not isinstance(size[0], int):
        size = size[0]
    return [int(s) for s in size]


def _mask_shape(shape: list[int], feature_dims: int, axis=None) -> list[int]:
    """The shape of a dropout's mask: the input's; for dropout1d/2d/3d (`feature_dims`), whole
    channels (the batch, if any, and channel axes); for Paddle's `axis`, those axes."""
    if axis is not None:
        axes = {a % len(shape) for a in ([axis] if isinstance(axis, int) else axis)}
        return [n if i in axes else 1 for i, n in enumerate(shape)]
    if not feature_dims:
        return list(shape)
    leading = 2 if len(shape) == feature_dims + 2 else 1
    return list(shape[:leading]) + [1] * (len(shape) - leading)


def _dropout_like(stream: _Stream, name: str, original, keep_mask, feature_dims: int = 0, alpha: bool = False):
    """`original` (a dropout function), drawing its mask from the stream when it drops anything.
    keep_mask(draws, p, like): the kept elements as the input's dtype."""
    signature = inspect.signature(original)

    def dropout(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = bound.arguments
        x, p = list(arguments.values())[:2]
        training = arguments.get("training", arguments.get("train"))
        if not training or p == 0:
            return original(*args, **kwargs)
        keep = keep_mask(stream.uniform(name, _mask_shape(list(x.shape), feature_dims, arguments.get("axis"))), p, x)
        if alpha:
            return _alpha_dropout(x, keep, p)
        if arguments.get("mode") == "downscale_in_infer":  # Paddle's other convention: no rescaling in training
            return x * keep
        return x * keep / (1 - p) if p < 1 else x * 0

    return dropout


# SELU's constants, as torch's alpha_dropout uses them
_ALPHA = 1.7580993408473766


def _alpha_dropout(x, keep, p: float):
    a = ((_ALPHA**2 * p + 1) * (1 - p)) ** -0.5
    return x * keep * a + (keep - 1) * _ALPHA * a + _ALPHA * a * p


@contextlib.contextmanager
def _patched(patches: list[tuple[object, str, object]]):
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    try:
        for owner, name, replacement in patches:
            setattr(owner, name, replacement)
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def _torch_patches(stream: _Stream) -> list:
    import torch
    import torch.nn.functional as F

    def tensor(array, dtype=None, device=None, like=None):
        dtype = dtype or (like.dtype if like is not None else torch.get_default_dtype())
        device = device or (like.device if like is not None else None)
        return torch.from_numpy(array).to(dtype=dtype, device=device)

    def rand(*size, dtype=None, device=None, **_):
        return tensor(stream.uniform("torch.rand", _sizes(size)), dtype, device)

    def randn(*size, dtype=None, device=None, **_):
        return tensor(stream.normal("torch.randn", _sizes(size)), dtype, device)

    def randint(low, high=None, size=None, dtype=None, device=None, **_):
        if size is None:
            low, high, size = 0, low, high
        return tensor(stream.integers("torch.randint", low, high, size), dtype or torch.int64, device)

    def randperm(n, dtype=None, device=None, **_):
        return tensor(stream.permutation("torch.randperm", n), dtype or torch.int64, device)

    def rand_like(input, dtype=None, **_):
        return tensor(stream.uniform("torch.rand_like", input.shape), dtype, like=input)

    def randn_like(input, dtype=None, **_):
        return tensor(stream.normal("torch.randn_like", input.shape), dtype, like=input)

    def randint_like(input, low, high=None, dtype=None, **_):
        if high is None:
            low, high = 0, low
        return tensor(stream.integers("torch.randint_like", low, high, input.shape), dtype, like=input)

    def bernoulli(input, p=None, **_):
        draws = tensor(stream.uniform("torch.bernoulli", input.shape), like=input)
        return (draws < (input if p is None else p)).to(input.dtype)

    def bernoulli_method(self, p=None, **_):
        draws = tensor(stream.uniform("Tensor.bernoulli", self.shape), like=self)
        return (draws < (self if p is None else p)).to(self.dtype)

    def bernoulli_(self, p=0.5, **_):
        draws = tensor(stream.uniform("Tensor.bernoulli_", self.shape), like=self)
        with torch.no_grad():
            return self.copy_(draws < p)

    def uniform_(self, a=0.0, b=1.0, **_):
        draws = tensor(stream.uniform("Tensor.uniform_", self.shape), like=self)
        with torch.no_grad():
            return self.copy_(a + (b - a) * draws)

    def normal_(self, mean=0.0, std=1.0, **_):
        draws = tensor(stream.normal("Tensor.normal_", self.shape), like=self)
        with torch.no_grad():
            return self.copy_(mean + std * draws)

    def keep(draws, p, like):
        return (tensor(draws, like=like) < 1 - p).to(like.dtype)

    def dropout_like(name: str, original, feature_dims: int = 0, alpha: bool = False):
        return _dropout_like(stream, name, original, keep, feature_dims, alpha)

    def builtin_dropout(input, p, train, _original=torch.dropout):  # a builtin without a signature
        return _original(input, p, train)

    return [
        (torch, "rand", rand), (torch, "randn", randn), (torch, "randint", randint), (torch, "randperm", randperm),
        (torch, "rand_like", rand_like),
        (torch, "randn_like", randn_like), (torch, "randint_like", randint_like), (torch, "bernoulli", bernoulli),
        (torch.Tensor, "bernoulli", bernoulli_method), (torch.Tensor, "bernoulli_", bernoulli_),
        (torch.Tensor, "uniform_", uniform_), (torch.Tensor, "normal_", normal_),
        (F, "dropout", dropout_like("F.dropout", F.dropout)), (F, "dropout1d", dropout_like("F.dropout1d", F.dropout1d, 1)),
        (F, "dropout2d", dropout_like("F.dropout2d", F.dropout2d, 2)), (F, "dropout3d", dropout_like("F.dropout3d", F.dropout3d, 3)),
        (F, "alpha_dropout", dropout_like("F.alpha_dropout", F.alpha_dropout, alpha=True)),
        (torch, "dropout", dropout_like("torch.dropout", builtin_dropout)),
    ]


def _paddle_patches(stream: _Stream) -> list:
    from ..frameworks import quiet_paddle_import

    paddle = quiet_paddle_import()
    F = paddle.nn.functional

    def tensor(array, dtype=None, like=None):
        dtype = dtype or (like.dtype if like is not None else paddle.get_default_dtype())
        return paddle.to_tensor(array).astype(dtype)

    def rand(shape, dtype=None, *args, **kwargs):
        return tensor(stream.uniform("paddle.rand", shape), dtype)

    def randn(shape, dtype=None, *args, **kwargs):
        return tensor(stream.normal("paddle.randn", shape), dtype)

    def randint(low=0, high=None, shape=(1,), dtype=None, *args, **kwargs):
        if high is None:
            low, high = 0, low
        return tensor(stream.integers("paddle.randint", low, high, shape), dtype or "int64")

    def randperm(n, dtype="int64", *args, **kwargs):
        return tensor(stream.permutation("paddle.randperm", n), dtype)

    def rand_like(input, *args, dtype=None, **kwargs):
        return tensor(stream.uniform("paddle.rand_like", input.shape), dtype, like=input)

    def randn_like(x, dtype=None, *args, **kwargs):
        return tensor(stream.normal("paddle.randn_like", x.shape), dtype, like=x)

    def randint_like(x, low=0, high=None, dtype=None, *args, **kwargs):
        if high is None:
            low, high = 0, low
        return tensor(stream.integers("paddle.randint_like", low, high, x.shape), dtype, like=x)

    def bernoulli(x, p=None, *args, **kwargs):
        draws = tensor(stream.uniform("paddle.bernoulli", x.shape), like=x)
        return (draws < (x if p is None else p)).astype(x.dtype)

    def uniform(shape, dtype=None, min=0.0, max=1.0, *args, **kwargs):
        return tensor(min + (max - min) * stream.uniform("paddle.uniform", shape), dtype)

    def normal(mean=0.0, std=1.0, shape=None, *args, **kwargs):
        return tensor(mean + std * stream.normal("paddle.normal", shape))

    def keep(draws, p, like):
        return (tensor(draws, like=like) < 1 - p).astype(like.dtype)

    def dropout_like(name: str, original, feature_dims: int = 0, alpha: bool = False):
        return _dropout_like(stream, name, original, keep, feature_dims, alpha)

    return [
        (paddle, "rand", rand), (paddle, "randn", randn), (paddle, "randint", randint), (paddle, "randperm", randperm),
        (paddle, "rand_like", rand_like),
        (paddle, "randn_like", randn_like), (paddle, "randint_like", randint_like), (paddle, "bernoulli", bernoulli),
        (paddle, "uniform", uniform), (paddle, "normal", normal),
        (F, "dropout", dropout_like("F.dropout", F.dropout)), (F, "dropout1d", dropout_like("F.dropout1d", F.dropout1d, 1)),
        (F, "dropout2d", dropout_like("F.dropout2d", F.dropout2d, 2)), (F, "dropout3d", dropout_like("F.dropout3d", F.dropout3d, 3)),
        (F, "alpha_dropout", dropout_like("F.alpha_dropout", F.alpha_dropout, alpha=True)),
    ]


@contextlib.contextmanager
def shared_draws(framework: str, seed: int) -> Iterator[Counter[str]]:
    """Within the block, `framework`'s ("torch" or "paddle") random functions draw from one stream
    seeded with `seed` (see the module docstring). Yields the count of draws per function."""
    stream = _Stream(seed)
    patches = _torch_patches(stream) if framework == "torch" else _paddle_patches(stream)
    with _patched(patches):
        yield stream.calls
