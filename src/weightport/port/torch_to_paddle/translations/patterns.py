"""einops' `rearrange`, `repeat`, `reduce` and `einsum` as plain Paddle code, written at generation time
(`pack` and `unpack` call two small helpers of runtime.py).

A pattern is a program over the input's axes: split groups, reorder, reduce, add axes, merge
groups. Here it is spelled out as a chain of reshape / transpose / reduce / unsqueeze / expand
calls whose sizes come from the input's shape when the twin runs (`x.shape[i]`, `x.shape[i] // 16`),
so the twin runs at any size einops would accept, and does not import einops. The pattern is
parsed with einops' own parser (einops is present whenever a model calls it).
"""
from __future__ import annotations

import string
from math import prod

from ...templates import Code, is_atomic

REDUCTIONS = ("mean", "sum", "max", "min", "prod", "any", "all")  # einops' names, and Paddle's


def _operand(value) -> str:
    from . import literal

    text = literal(value)
    return text if is_atomic(text) else f"({text})"


def _size_text(size) -> str:
    return str(size) if isinstance(size, int) else size


def _product(sizes: list) -> int | str:
    """Sizes (ints or expressions) multiplied, the constants folded into one factor."""
    constant = prod(s for s in sizes if isinstance(s, int))
    symbols = [s if is_atomic(s) else f"({s})" for s in sizes if not isinstance(s, int)]
    if not symbols:
        return constant
    factors = ([str(constant)] if constant != 1 else []) + symbols
    return " * ".join(factors)


def _list(sizes: list) -> str:
    return "[" + ", ".join(_size_text(s) for s in sizes) + "]"


def _length(value) -> int | str:
    """An axis length given by the caller: a constant, or a traced value's code."""
    if isinstance(value, Code):
        return value.text if value.atomic else f"({value.text})"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"einops axis length {value!r} is not an integer")
    return value


def _groups(expression, ellipsis_axes: list[str]) -> list[list]:
    """One side's groups of elementary axes, the ellipsis expanded (alone: one group per axis)."""
    from ...._compat import einops_ellipsis

    _ellipsis = einops_ellipsis()
    groups = []
    for group in expression.composition:
        if group == _ellipsis:
            groups += [[axis] for axis in ellipsis_axes]
        else:
            groups.append([a for axis in group for a in (ellipsis_axes if axis == _ellipsis else [axis])])
    return groups


def einops_code(tensor, pattern: str, reduction: str, axes_lengths: dict) -> Code:
    """Paddle code computing `einops.reduce(tensor, pattern, reduction, **axes_lengths)` (rearrange
    and repeat are its reductions "rearrange" and "repeat"). A pattern it cannot write raises
    ValueError, which the template's rendering reports with the call's place."""
    from einops import EinopsError
    from einops.parsing import AnonymousAxis, ParsedExpression

    if not isinstance(tensor, Code) or not hasattr(tensor.value, "ndim"):
        raise ValueError(f"einops is called on {tensor!r}, not on one tensor")
    if not isinstance(reduction, str) or reduction not in (*REDUCTIONS, "rearrange", "repeat"):
        raise ValueError(f"the einops reduction {reduction!r} has no Paddle translation")
    x = _operand(tensor)
    ndim = tensor.value.ndim
    try:
        left_text, right_text = pattern.split("->")
        left, right = ParsedExpression(left_text), ParsedExpression(right_text)
    except (ValueError, EinopsError) as exc:
        raise ValueError(f"cannot read the einops pattern {pattern!r} ({exc})") from None
    named = sum(1 for g in left.composition if isinstance(g, list))
    ellipsis_axes = [f"…{i}" for i in range(ndim - named)] if left.has_ellipsis else []
    inputs, outputs = _groups(left, ellipsis_axes), _groups(right, ellipsis_axes)
    if len(inputs) != ndim:
        raise ValueError(f"the einops pattern {pattern!r} does not fit a {ndim}-D input")

    # the size of every elementary axis of the input, from its group's dimension
    sizes: dict = {}
    for i, group in enumerate(inputs):
        known = {a: (a.value if isinstance(a, AnonymousAxis) else _length(axes_lengths[a]))
                 for a in group if isinstance(a, AnonymousAxis) or a in axes_lengths}
        unknown = [a for a in group if a not in known]
        sizes.update(known)
        if len(unknown) > 1:
            raise ValueError(f"the einops pattern {pattern!r} leaves the sizes of {unknown} open")
        if unknown:
            divisor = _product(list(known.values()))
            dimension = f"{x}.shape[{i}]"
            sizes[unknown[0]] = dimension if divisor == 1 else f"{dimension} // {divisor if is_atomic(str(divisor)) else f'({divisor})'}"
    elementary = [a for group in inputs for a in group]
    kept_in_output = {a for group in outputs for a in group}
    reduced = [a for a in elementary if a not in kept_in_output]
    if reduced and reduction in ("rearrange", "repeat"):
        raise ValueError(f"the einops pattern {pattern!r} drops the axes {reduced} in a {reduction}")

    code = x
    if any(len(group) != 1 for group in inputs):
        code += f".reshape({_list([sizes[a] for a in elementary])})"
    kept = [a for a in elementary if a not in reduced]
    if reduced:
        axes = [elementary.index(a) for a in reduced]
        code = f"paddle.{reduction}({code}, axis={axes})"
    ordered = [a for group in outputs for a in group if a in kept]
    permutation = [kept.index(a) for a in ordered]
    if permutation != list(range(len(kept))):
        code += f".transpose({permutation})"
    flat = [a for group in outputs for a in group]
    new = [(k, a) for k, a in enumerate(flat) if a not in kept]
    for _, axis in new:
        if isinstance(axis, AnonymousAxis):
            sizes[axis] = axis.value
        elif axis in axes_lengths:
            sizes[axis] = _length(axes_lengths[axis])
        else:
            raise ValueError(f"the einops pattern {pattern!r} gives no size for the new axis {axis!r}")
    if new:
        code += f".unsqueeze({[k for k, _ in new]})"
        if any(sizes[a] != 1 for _, a in new):
            code += f".expand({_list([sizes[a] if a not in kept else -1 for a in flat])})"
    if any(len(group) != 1 for group in outputs):
        code += f".reshape({_list([_product([sizes[a] for a in group]) for group in outputs])})"
    return Code(code)


def einsum_code(operands: tuple) -> Code:
    """einops.einsum(*tensors, pattern) as paddle.einsum, its multi-letter axis names made single letters."""
    *tensors, pattern = operands
    if not isinstance(pattern, str):
        raise ValueError("einops.einsum takes its pattern last")
    letters: dict[str, str] = {}
    out = []
    for token in pattern.replace("->", " -> ").replace(",", " , ").split():
        if token not in ("->", ",", "..."):
            token = letters.setdefault(token, string.ascii_letters[len(letters)])
        out.append(token)
    compact = "".join(out)
    return Code(f"paddle.einsum({compact!r}, {', '.join(_operand(t) for t in tensors)})")


def packing(pattern: str) -> Code:
    """einops.pack / unpack's pattern (`b * c`) as the runtime helpers' arguments: the number of
    axes before and after `*`."""
    axes = pattern.split()
    if axes.count("*") != 1 or any(not (a == "*" or a.isidentifier()) for a in axes):
        raise ValueError(f"the einops packing pattern {pattern!r} is not axis names around one *")
    before = axes.index("*")
    return Code(f"{before}, {len(axes) - before - 1}")
