"""How a twin is called: its inputs, each a named tensor of a shape and dtype (integers drawn from
a range), passed by position or by keyword.

A ported folder records them (`ported.write_manifest`, `TwinPair.inputs`), so that the port's
tracing and `weightport verify` feed both twins alike: an image batch (the default), a video clip
(N x C x T x H x W), token ids with their attention mask (Hugging Face's `input_ids=`,
`attention_mask=`), several tensors. A size (the image height and width) replaces the last two
dimensions of every floating input of 4 or more dimensions, so one record serves every input size.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidArgument

FLOATING = ("float32", "float64", "float16")
INTEGER = ("int64", "int32", "bool")
DTYPES = FLOATING + INTEGER
DEFAULT_BATCH = 2  # train-mode BatchNorm needs more than one value per channel


@dataclass(frozen=True)
class InputSpec:
    """One input: `shape` with the batch first; integers (and bools) are drawn from [low, high)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    low: int = 0
    high: int = 2
    keyword: bool = False  # passed as name=value, else by position

    def __post_init__(self):
        if not self.name.isidentifier():
            raise InvalidArgument("input name", self.name, "must be a Python parameter name")
        if not self.shape or not all(type(d) is int and d >= 1 for d in self.shape):
            raise InvalidArgument(f"shape of input {self.name}", list(self.shape), "dimensions must be whole numbers of at least 1")
        if self.dtype not in DTYPES:
            raise InvalidArgument(f"dtype of input {self.name}", self.dtype, f"expected one of {', '.join(DTYPES)}")
        if self.dtype not in FLOATING and not self.low < self.high:
            raise InvalidArgument(f"range of input {self.name}", [self.low, self.high], "needs low < high")

    @property
    def floating(self) -> bool:
        return self.dtype in FLOATING

    def shape_at(self, size: int | tuple[int, int] | None, batch: int | None) -> tuple[int, ...]:
        """The shape for inputs of image size `size` (a side, or (height, width)) and `batch` items."""
        shape = list(self.shape)
        if batch is not None:
            shape[0] = batch
        if size is not None and self.floating and len(shape) >= 4:
            shape[-2:] = size if isinstance(size, tuple) else (size, size)
        return tuple(shape)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "keyword": self.keyword}
        if not self.floating:
            data["range"] = [self.low, self.high]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSpec:
        low, high = data.get("range", (0, 2))
        return cls(data["name"], tuple(data["shape"]), data.get("dtype", "float32"), int(low), int(high), bool(data.get("keyword", False)))


def image_input(size: int | tuple[int, int], name: str = "x", channels: int = 3, keyword: bool = False) -> InputSpec:
    """The usual input: a batch of `channels`-channel images."""
    height, width = size if isinstance(size, tuple) else (size, size)
    return InputSpec(name, (DEFAULT_BATCH, channels, height, width), keyword=keyword)


def arrays(specs: Sequence[InputSpec], size: int | tuple[int, int] | None = None, batch: int | None = DEFAULT_BATCH,
           seed: int = 0) -> list[np.ndarray]:
    """One seeded array per input (standard normal floats, uniform integers in range), the same
    arrays for both twins. The first input is drawn as `parity.inputs.random_batch` draws an image batch."""
    rng = np.random.default_rng(seed)
    out = []
    for spec in specs:
        shape = spec.shape_at(size, batch)
        if spec.floating:
            out.append(rng.standard_normal(shape).astype(spec.dtype))
        else:
            out.append(rng.integers(spec.low, spec.high, shape).astype(spec.dtype))
    return out


def split(specs: Sequence[InputSpec], values: Iterable[Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """`values` (one per input, of any framework) as the call's (args, kwargs)."""
    args, kwargs = [], {}
    for spec, value in zip(specs, values, strict=True):
        if spec.keyword:
            kwargs[spec.name] = value
        elif kwargs:
            raise InvalidArgument("inputs", [s.name for s in specs], "positional inputs come before keyword ones")
        else:
            args.append(value)
    return tuple(args), kwargs


def example_inputs(specs: Sequence[InputSpec], size: int | tuple[int, int] | None = None, batch: int | None = DEFAULT_BATCH,
                   seed: int = 0) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """torch tensors for `specs` at image size `size` (None: as recorded), as (args, kwargs)."""
    import torch

    return split(specs, [torch.from_numpy(a) for a in arrays(specs, size, batch, seed)])


def describe(specs: Sequence[InputSpec], size: int | tuple[int, int] | None = None, batch: int | None = None) -> str:
    """The inputs in words, as reports name them: `pixel_values=2x3x64x64`, `input_ids=2x16 int64 in [0, 99)`."""
    parts = []
    for spec in specs:
        text = "x".join(str(d) for d in spec.shape_at(size, batch))
        if not spec.floating:
            text += f" {spec.dtype} in [{spec.low}, {spec.high})"
        elif spec.dtype != "float32":
            text += f" {spec.dtype}"
        parts.append(f"{spec.name}={text}" if spec.keyword else text)
    return ", ".join(parts)
