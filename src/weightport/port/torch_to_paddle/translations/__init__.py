"""torch -> Paddle's translation tables (functions.toml, methods.toml, layers.toml) and how their
templates spell values in Paddle code: `literal` and the helpers of `ENVIRONMENT` (the table format
itself is `port/templates.py`)."""
from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from ....errors import PortError
from ... import templates
from ...templates import OMIT, Code, Spelling, Translation, is_atomic
from .patterns import einops_code, einsum_code, packing


def literal(value, index: bool = False) -> str:
    """Paddle source text for a call argument (a constant, or a structure holding `Code`)."""
    import torch

    if isinstance(value, Code):
        return value.text
    if isinstance(value, torch.dtype):
        return f"paddle.{str(value).removeprefix('torch.')}"
    if isinstance(value, torch.device):
        return "None"
    if isinstance(value, torch.Size):
        value = list(value)
    if isinstance(value, slice):
        parts = ["" if v is None else literal(v) for v in (value.start, value.stop, value.step)]
        text = ":".join(parts[:2]) + (f":{parts[2]}" if value.step is not None else "")
        return text if index else f"slice({', '.join(literal(v) for v in (value.start, value.stop, value.step))})"
    if value is Ellipsis:
        return "..."
    if isinstance(value, tuple):
        items = [literal(v, index) for v in value]
        if index:
            return ", ".join(items) if len(items) != 1 else items[0] + ","
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
    if isinstance(value, list):
        return f"[{', '.join(literal(v) for v in value)}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return f"float({str(value)!r})"
        return repr(value)
    if isinstance(value, (int, str, bool, type(None))):
        return repr(value)
    if isinstance(value, torch.Tensor):
        raise PortError(f"a tensor constant of shape {list(value.shape)} appears as a call argument")
    raise PortError(f"no Paddle spelling for the constant {value!r} ({type(value).__name__})")


# --- helpers available to template expressions -------------------------------------------------


def _code(text: str) -> Code:
    return Code(text)


def _sizes(value) -> Code | list:
    """Var-args sizes (`x.view(a, b)`) or one sequence (`x.view((a, b))`, `x.view(x.shape)`) as one list."""
    if isinstance(value, tuple) and len(value) == 1:
        (only,) = value
        if isinstance(only, (tuple, list)):
            return list(only)
        import torch

        if isinstance(only, Code) and isinstance(only.value, (torch.Size, list, tuple)):
            return only
        if not isinstance(only, Code) and not isinstance(only, int):
            return only
    return list(value) if isinstance(value, (tuple, list)) else value


def _dtype(value) -> Code | None:
    return None if value is None else Code(literal(value))


def _one(value):
    if isinstance(value, (tuple, list)) and value and all(v == value[0] for v in value):
        return value[0]
    return value


def _attribute(obj, name: str) -> Code:
    spelled = {"shape": "shape", "ndim": "ndim", "dtype": "dtype", "device": "place", "T": "T", "data": "detach()"}
    if name not in spelled:
        raise PortError(f"no Paddle spelling for the tensor attribute {name!r}")
    return Code(f"{_operand(obj)}.{spelled[name]}")


def _operand(value) -> str:
    text = literal(value)
    return text if is_atomic(text) else f"({text})"


def _reduction(how: str, x, dim, keepdim) -> Code:
    if dim is None:
        return Code(f"paddle.{how}({literal(x)})")
    return Code(f"reduce_with_indices({literal(x)}, {how!r}, {literal(dim)}, {literal(keepdim)})")


def _arange(start, end, step, dtype) -> Code:
    args = [start] if end is None else [start, end]
    if step != 1:
        args.append(step)
    text = ", ".join(literal(a) for a in args)
    return Code(f"paddle.arange({text}" + (f", dtype={literal(dtype)})" if dtype is not None else ")"))


def _cast_to(x, args, kwargs) -> Code:
    import torch

    target = kwargs.get("dtype", args[0] if args else None)
    if isinstance(target, torch.dtype):
        return Code(f"paddle.cast({literal(x)}, {literal(target)})")
    if isinstance(target, Code) and isinstance(target.value, torch.dtype):
        return Code(f"paddle.cast({literal(x)}, {target.text})")
    if isinstance(target, Code) and isinstance(target.value, torch.Tensor):
        return Code(f"paddle.cast({literal(x)}, {_operand(target)}.dtype)")
    if target is None or isinstance(target, (str, torch.device)) or (isinstance(target, Code) and isinstance(target.value, torch.device)):
        return Code(literal(x))  # a device move: Paddle places tensors itself
    raise PortError(f"no Paddle translation for Tensor.to({target!r})")


def _shape(x, dim) -> Code:
    """Tensor.size(): the shape, or one of its entries."""
    return Code(f"{_operand(x)}.shape" + ("" if dim is None else f"[{literal(dim)}]"))


def _same_padding(kernel_size, dilation) -> int | list[int]:
    """torch's padding="same" (stride 1) as explicit padding: symmetric, else [top, bottom, left, right]."""
    kernels = kernel_size if isinstance(kernel_size, (tuple, list)) else (kernel_size,)
    dilations = dilation if isinstance(dilation, (tuple, list)) else (dilation,) * len(kernels)
    totals = [d * (k - 1) for k, d in zip(kernels, dilations, strict=True)]
    if all(t % 2 == 0 for t in totals) and len(set(totals)) == 1:
        return totals[0] // 2
    return [p for t in totals for p in (t // 2, t - t // 2)]


def _divide(a, b, rounding_mode) -> Code:
    """torch.div: true division, or rounded down / towards zero."""
    quotient = f"{_operand(a)} / {_operand(b)}"
    if rounding_mode is None:
        return Code(quotient)
    if rounding_mode == "floor":
        return Code(f"{_operand(a)} // {_operand(b)}")
    return Code(f"paddle.trunc({quotient})")


def _sum_dtype(x, dtype):
    """The dtype torch's cumulative sums give: the one asked for, else int64 for booleans and integers."""
    import torch

    if dtype is not None:
        return Code(literal(dtype))
    value = x.value if isinstance(x, Code) else x
    if isinstance(value, torch.Tensor) and not value.is_floating_point() and not value.is_complex():
        return Code("paddle.int64")
    return OMIT


def _times(factor) -> Code:
    """` * factor`, or nothing for a factor of 1."""
    return Code("" if not isinstance(factor, Code) and factor == 1 else f" * {_operand(factor)}")


def _unpacked(values) -> Code:
    return Code(", ".join(literal(v) for v in values))


# What template expressions may call: the helpers above, einops patterns written out (patterns.py), and a
# few harmless builtins.
ENVIRONMENT = {
    "to_sizes": _sizes, "to_dtype": _dtype, "one": _one, "attribute": _attribute, "reduction": _reduction,
    "arange": _arange, "same_padding": _same_padding, "sum_dtype": _sum_dtype, "divide": _divide, "shape": _shape, "times": _times,
    "cast_to": _cast_to, "unpacked": _unpacked, "code": _code, "einops_code": einops_code, "einsum_code": einsum_code,
    "packing": packing, "OMIT": OMIT, "literal": lambda v, index=False: Code(literal(v, index)),
    "isinstance": isinstance, "list": list, "bool": bool, "str": str, "int": int, "float": float, "tuple": tuple, "len": len,
}


# --- the tables --------------------------------------------------------------------------------


SPELLING = Spelling(literal, ENVIRONMENT)


def render(template: str, names: dict[str, Any], where: str) -> str:
    return templates.render(template, names, where, SPELLING)


def check_requirements(requirements: list[str], names: dict[str, Any], where: str) -> None:
    templates.check_requirements(requirements, names, where, SPELLING)


def _entries(name: str, with_signature: bool) -> dict[str, Translation]:
    return templates.read_table(Path(__file__).with_name(f"{name}.toml"), with_signature)


@cache
def functions() -> dict[str, Translation]:
    return _entries("functions", with_signature=True)


@cache
def methods() -> dict[str, Translation]:
    return _entries("methods", with_signature=True)


@cache
def layers() -> dict[str, Translation]:
    return _entries("layers", with_signature=False)


def qualified_name(obj) -> str:
    """How the tables name a function or class: its module and name."""
    module = getattr(obj, "__module__", None) or ""
    name = getattr(obj, "__name__", None) or repr(obj)
    return f"{module}.{name}" if module else name
