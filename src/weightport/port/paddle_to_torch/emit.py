"""Write the torch twin of a program: a module class whose `__init__` builds one torch layer per
Paddle op holding parameters and whose `forward` computes each op in program order.

Names come from the program: a layer is named by its parameters' common prefix (`conv2d_0` holds
`conv2d_0.w_0` as `weight`) or, for a Layer captured with its structured keys, by that key's path
(`backbone.conv1._conv`); a variable by the op computing it. Constants (`full`, `full_int_array`,
`fill_constant`, `assign_value`) are folded into the code that reads them, so sizes computed from
the input at run time stay computed while fixed ones are written as numbers. A convolution or a
matmul by a parameter followed by the addition of a parameter bias becomes one layer with a bias.
"""
from __future__ import annotations

import builtins
import contextvars
import inspect
import keyword
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import PortError
from ...formats.paddle_inference import DATA_TYPES
from ..templates import Code, NeedsConstant, Spelling, check_requirements, render
from . import runtime
from .program import Graph, Op, Value, linear_weight, unsupported
from .translations import OpTranslation, translations

CONSTANT_OPS = {"full", "full_int_array", "fill_constant", "assign_value", "assign_value_"}
LIST_OPERANDS = {"concat", "stack", "sum", "meshgrid"}  # legacy ops whose X is a list even of one
RESERVED = {"torch", "nn", "F", "np", "math", "self", *dir(builtins)}


class Tensor(Code):
    """A value computed at run time, with the static shape the program gives it (-1: not fixed)."""

    def __init__(self, text: str, value: Value):
        super().__init__(text, value)
        self.shape = value.shape
        self.rank = len(value.shape)


class Param(Tensor):
    """A program parameter, as the twin's code reaches it."""


@dataclass
class Constant:
    """A value the program fixes: folded into the code that reads it."""

    array: np.ndarray

    @property
    def shape(self):
        return self.array.shape

    @property
    def rank(self):
        return self.array.ndim


@dataclass
class Layer:
    """A torch layer of the twin: its path, constructor and the parameters it holds."""

    path: str
    constructor: str
    parameters: dict[str, Value] = field(default_factory=dict)  # torch attribute -> program parameter
    transposed: set[str] = field(default_factory=set)


@dataclass
class Generated:
    code: str
    layers: list[Layer]
    variables: dict[str, dict[str, str]]  # local variable -> {"value": the program value's key, "op": its op}
    inputs: list[tuple[str, Value]]
    outputs: list[str]
    lines: int = 0


# --- generation-time helpers the templates call -------------------------------------------------


def _literal(value: Any) -> str:
    if isinstance(value, Code):
        return value.text
    if isinstance(value, Constant):
        return _constant_code(value.array)
    if isinstance(value, tuple):
        inner = ", ".join(_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, np.generic):
        return repr(value.item())
    return repr(value)


# The constant tensors of the twin being written: a tensor of one or more dimensions is a buffer
# of the module (so that it moves with `.to(device)`); a 0-d one is written in place.
_BUFFERS: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("buffers", default=None)


def _constant_code(array: np.ndarray) -> str:
    code = f"torch.tensor({array.tolist()!r}, dtype={_torch_dtype(str(array.dtype)).text})"
    buffers = _BUFFERS.get()
    if buffers is None or array.ndim == 0:
        return code
    name = next((n for n, c in buffers.items() if c == code), f"constant_{len(buffers)}")
    buffers[name] = code
    return f"self.{name}"


def _torch_dtype(name: Any) -> Code:
    """torch's spelling of a Paddle dtype (a name, or a legacy program's type code)."""
    if isinstance(name, int):
        name = DATA_TYPES.get(name, str(name))
    if name not in DATA_TYPES.values():
        raise PortError(f"dtype {str(name)[:40]!r} is not one weightport translates")
    return Code(f"torch.{name}")


def _value(operand: Any) -> Any:
    if isinstance(operand, Tensor):
        raise NeedsConstant(operand.text)
    if isinstance(operand, Constant):
        return operand.array.tolist()
    return operand


def _scalar(operand: Any) -> Any:
    value = _value(operand)
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def _f32(number: float) -> Code:
    return Code(str(np.float32(number)))


def _conv_padding(paddings, algorithm):
    if algorithm != "EXPLICIT" and algorithm is not None:
        return 0
    if len(paddings) == 2:
        return tuple(paddings)
    top, bottom, left, right = paddings
    return (top, left) if (top, left) == (bottom, right) else 0


def _pre_pad(x, paddings, algorithm, kernel, strides, dilations):
    if algorithm == "SAME":
        return Code(f"pad_same({x.text}, {tuple(kernel)}, {tuple(strides)}, {tuple(dilations)})")
    if algorithm == "EXPLICIT" and len(paddings) == 4 and _conv_padding(paddings, algorithm) == 0:
        top, bottom, left, right = paddings
        return Code(f"F.pad({x.text}, ({left}, {right}, {top}, {bottom}))")
    return x


def _aligned(y, x, axis):
    """A legacy elementwise op's Y, shaped to broadcast against X from `axis` on."""
    if axis is None or axis == -1 or y.rank == x.rank:
        return y
    trailing = x.rank - axis - y.rank
    if trailing <= 0:
        return y
    if isinstance(y, Constant):
        return Constant(y.array.reshape(y.shape + (1,) * trailing))
    return Code(f"{_atom(y)}[(...{', None' * trailing})]")


def _atom(code) -> str:
    text = _literal(code)
    return text if Code(text).atomic else f"({text})"


def _scaled(x, scale, bias, bias_after_scale):
    """x * scale + bias (or (x + bias) * scale); whole numbers stay integers on an integer tensor."""
    integral = isinstance(x, Code) and isinstance(x.value, Value) and x.value.dtype.startswith(("int", "uint"))

    def number(v):
        return repr(int(v)) if integral and float(v).is_integer() else repr(float(v))

    try:
        factor = _scalar(scale)
        factor_text = None if factor == 1 else number(factor)
    except NeedsConstant:
        factor, factor_text = None, _literal(scale)
    if isinstance(x, Constant) and factor is not None:  # a constant scaled by a constant: folded
        array = x.array * factor + bias if bias_after_scale else (x.array + bias) * factor
        return Constant(np.asarray(array).astype(x.array.dtype))
    source = _literal(x)
    text = source if not factor_text else f"{_atom(x)} * {factor_text}"
    if not bias:
        return Code(text)
    offset = f" + {number(bias)}" if bias > 0 else f" - {number(-bias)}"
    if bias_after_scale:
        return Code(f"{text}{offset}")
    return Code(f"({source}{offset})" + (f" * {factor_text}" if factor_text else ""))


def _transposed_if(x, flag):
    return Code(f"{_atom(x)}.transpose(-1, -2)") if flag else x


def _flat(value: Any) -> list:
    if isinstance(value, (list, tuple)):
        return [item for v in value for item in _flat(v)]
    return [value]


def _ints(operand: Any) -> list[int]:
    """The integers a constant operand holds (an attribute's list, a folded constant, or PIR's
    combined list of constants), flattened; NeedsConstant where any of them is computed."""
    items = operand if isinstance(operand, list) else [operand]
    return [int(v) for item in items for v in _flat(_value(item))]


def _sizes(operand: Any) -> Code:
    """Code for a list of sizes: the numbers where the program fixes them, else read at run time."""
    try:
        return Code(repr(_ints(operand)))
    except NeedsConstant:
        return Code(f"paddle_sizes({_literal(operand)})")


def _number(operand: Any) -> Any:
    """A scalar operand: its number where it is constant, else its tensor's value read at run time."""
    if isinstance(operand, Code):
        return Code(f"{_atom(operand)}.item()")
    return _scalar(operand)


def _dtype_of(operand: Any) -> str:
    if isinstance(operand, Constant):
        return str(operand.array.dtype)
    return operand.value.dtype if isinstance(operand, Code) and isinstance(operand.value, Value) else "float32"


def _like_dtype(dtype: Any) -> Code:
    """`, dtype=...` for a *_like op, nothing where it keeps its input's dtype."""
    if dtype in (None, "", -1) or (isinstance(dtype, str) and dtype.startswith("Undefined")):
        return Code("")
    return Code(f", dtype={_torch_dtype(dtype).text}")


def _pool2d(x, kind, kernel, strides, paddings, ceil_mode, exclusive, global_pooling, adaptive, algorithm):
    """torch's pooling where it computes what Paddle's does, `paddle_pool2d` otherwise (asymmetric
    or SAME padding, padding over half the window, ceil_mode with padding)."""
    reduce = "amax" if kind == "max" else "mean"
    kernel = _ints(kernel)
    if global_pooling or (adaptive and kernel == [1, 1]):
        return Code(f"{_atom(x)}.{reduce}((2, 3), keepdim=True)")
    if adaptive:
        return Code(f"F.adaptive_{'max' if kind == 'max' else 'avg'}_pool2d({x.text}, {tuple(kernel)})")
    paddings = [0, 0, 0, 0] if algorithm in ("VALID", "SAME") else list(paddings)
    if len(paddings) == 2:
        paddings = [paddings[0], paddings[0], paddings[1], paddings[1]]
    top, bottom, left, right = paddings
    like_torch = (algorithm != "SAME" and (top, left) == (bottom, right) and 2 * top <= kernel[0] and 2 * left <= kernel[1]
                  and not (ceil_mode and any(paddings)))
    if not like_torch:
        same = ", same=True" if algorithm == "SAME" else ""
        return Code(f"paddle_pool2d({x.text}, {kind!r}, {tuple(kernel)}, {tuple(strides)}, {tuple(paddings)}, "
                    f"{bool(ceil_mode)}, {bool(exclusive)}{same})")
    common = f"{x.text}, {tuple(kernel)}, {tuple(strides)}, {(top, left) if top or left else 0}"
    ceil = ", ceil_mode=True" if ceil_mode else ""
    if kind == "max":
        return Code(f"F.max_pool2d({common}{ceil})")
    return Code(f"F.avg_pool2d({common}{ceil}{', count_include_pad=False' if exclusive and (top or left) else ''})")


def _interpolate(x, out_size, size_tensor, scale_tensor, out_h, out_w, scale, method, align_corners, align_mode):
    """Paddle's resize: sizes as the program gives them (fixed, or computed at run time), or the input's
    size times a scale factor; align_corners and Paddle's align_mode 1, which torch lacks, followed."""
    mode = {"nearest": "nearest", "bilinear": "bilinear"}.get(method)
    if mode is None:
        raise PortError(f"interpolation {method!r} is not translated")
    if mode == "nearest" and align_corners:
        raise PortError("nearest interpolation with align_corners is not translated")
    scale = [scale] if isinstance(scale, (int, float)) else list(scale or [])
    factors = None
    if size_tensor is not None:
        size = _sizes(size_tensor).text
    elif out_size is not None:
        size = _sizes(out_size).text
    elif scale_tensor is not None:
        raise PortError("interpolation by a scale computed at run time is not translated")
    elif scale and any(s > 0 for s in scale):
        factors = tuple(float(_f32(s).text) for s in (scale if len(scale) == 2 else scale * 2))
        if mode == "nearest" or (align_mode == 0 and not align_corners):
            return Code(f"F.interpolate({x.text}, scale_factor={factors}, mode={mode!r}"
                        + (", align_corners=False" if mode != "nearest" else "") + ")")
        size = f"[int({x.text}.shape[2] * {factors[0]!r}), int({x.text}.shape[3] * {factors[1]!r})]"
    else:
        size = repr([out_h, out_w])
    if mode == "nearest":
        return Code(f"F.interpolate({x.text}, size={size}, mode='nearest')")
    if align_corners or align_mode == 0:
        return Code(f"F.interpolate({x.text}, size={size}, mode='bilinear', align_corners={bool(align_corners)})")
    return Code(f"interpolate_asymmetric({x.text}, {size}, 'bilinear'{f', scale={factors}' if factors else ''})")


def _sliced(x, axes, starts, ends, strides, decrease):
    """Python indexing where the bounds are fixed and the strides positive, `paddle_slice` otherwise."""
    try:
        first, last = _ints(starts), _ints(ends)
        steps = _ints(strides) if strides is not None else [1] * len(axes)
    except NeedsConstant:
        return Code(f"paddle_slice({x.text}, {list(axes)}, {_literal(starts)}, {_literal(ends)}, "
                    f"{_literal(strides)}, {list(decrease)})")
    if any(step < 0 for step in steps) or not x.rank:
        return Code(f"paddle_slice({x.text}, {list(axes)}, {first}, {last}, {steps}, {list(decrease)})")
    rank = x.rank
    index = [":"] * rank
    decrease = {axis % rank for axis in decrease}
    for axis, start, end, step in zip(axes, first, last, steps):
        axis = axis % rank
        if axis in decrease:
            index[axis] = str(start)
            continue
        text = (str(start) if start != 0 else "") + ":" + (str(end) if -(1 << 31) < end < (1 << 31) - 1 else "")
        index[axis] = text + (f":{step}" if step != 1 else "")
    while index and index[-1] == ":":
        index.pop()
    return Code(f"{_atom(x)}[{', '.join(index) or '...'}]")


def _reshaped(x, shape):
    try:
        sizes = _ints(shape)
    except NeedsConstant:
        return Code(f"{_atom(x)}.reshape(paddle_shape({x.text}, {_literal(shape)}))")
    if isinstance(x, Constant):
        return Constant(x.array.reshape([x.shape[i] if v == 0 else v for i, v in enumerate(sizes)]))
    parts = [f"{x.text}.shape[{i}]" if v == 0 else str(v) for i, v in enumerate(sizes)]
    return Code(f"{_atom(x)}.reshape({', '.join(parts) or '()'}{',' if len(parts) == 1 else ''})")


def _unsqueezed(x, axes):
    text = _atom(x)
    for axis in _ints(axes):
        text = f"{text}.unsqueeze({axis})"
    return Code(text)


def _reduced(x, how, axis, keepdim, reduce_all):
    """A reduction over the axes given (all of them where none are, or reduce_all); a list (the legacy
    `sum` op, which adds its inputs) is added up."""
    if isinstance(x, list):
        return Code(" + ".join(_atom(v) for v in x))
    rank = x.rank
    axes = sorted({a % rank for a in _ints(axis)}) if axis is not None and rank else []
    if reduce_all or not axes:
        axes = list(range(rank))
        if not keepdim:
            return Code(f"{_atom(x)}.{how}()")
    if how == "prod":
        text = _atom(x)
        for a in reversed(axes):
            text = f"{text}.prod({a}, keepdim={bool(keepdim)})"
        return Code(text)
    return Code(f"{_atom(x)}.{how}({tuple(axes)}, keepdim={bool(keepdim)})")


def _split(x, num, sections, axis):
    """torch.split by sections (a -1 among them takes what the others leave), torch.chunk by number."""
    axis = int(_scalar(axis))
    parts = _ints(sections) if sections is not None else []
    if not parts:
        return Code(f"torch.chunk({x.text}, {num}, dim={axis})")
    rest = sum(p for p in parts if p != -1)
    texts = [f"{x.text}.shape[{axis}] - {rest}" if p == -1 else str(p) for p in parts]
    return Code(f"torch.split({x.text}, [{', '.join(texts)}], dim={axis})")


def _padded(x, paddings, mode, value, data_format):
    """Paddle's pad3d (and pad2d): paddings as F.pad orders them, last axis first."""
    if data_format not in ("NCDHW", "NCHW"):
        raise PortError(f"padding in data format {data_format} is not translated")
    mode = {"edge": "replicate"}.get(mode, mode)
    value = _scalar(value) if value is not None else 0.0
    extra = f", value={float(value)!r}" if mode == "constant" and value else "" if mode == "constant" else f", mode={mode!r}"
    return Code(f"F.pad({x.text}, {_sizes(paddings).text}{extra})")


def _padded_all(x, paddings, value):
    """Paddle's pad: a (before, after) pair for every axis, first axis first."""
    pairs = [_ints(paddings)[i : i + 2] for i in range(0, len(_ints(paddings)), 2)]
    while pairs and pairs[0] == [0, 0]:
        pairs.pop(0)
    order = tuple(p for pair in reversed(pairs) for p in pair)
    value = _scalar(value) if value is not None else 0.0
    return Code(f"F.pad({x.text}, {order}{f', value={float(value)!r}' if value else ''})")


def _layer_norm(x, scale, bias, axis, epsilon):
    """torch's LayerNorm over the last axis; `PaddleLayerNorm` over several (Paddle keeps their weight flattened)."""
    axis = axis % x.rank
    size = scale.shape[0] if scale is not None else bias.shape[0] if bias is not None else 0
    if axis == x.rank - 1 and (scale is not None or bias is None) and (size or x.shape[-1] > 0):
        return Code(f"nn.LayerNorm({size or x.shape[-1]}, eps={_f32(epsilon).text}, elementwise_affine={scale is not None}, "
                    f"bias={bias is not None})")
    return Code(f"PaddleLayerNorm({axis}, {size}, {_f32(epsilon).text}, affine={scale is not None}, bias={bias is not None})")


def _layer_norm_functional(x, scale, bias, axis, epsilon):
    shape = f"{x.text}.shape[{axis % x.rank}:]"
    weight, offset = (f"{_atom(v)}.reshape({shape})" if v is not None else "None" for v in (scale, bias))
    return Code(f"F.layer_norm({x.text}, {shape}, {weight}, {offset}, {_f32(epsilon).text})")


def _transpose_padding(paddings, algorithm):
    if algorithm == "SAME":
        raise PortError("a transposed convolution with padding_algorithm SAME is not translated")
    return 0 if algorithm == "VALID" else _conv_padding(paddings, "EXPLICIT")


def _conv_transposed(layer, x, output_size, paddings, algorithm, weight=None, bias=None, strides=(), output_padding=(),
                     groups=1, dilations=()):
    """A transposed convolution by `layer` (or, where it is None, F.conv_transpose2d by the weights
    given): to the output size the program gives (fixed or computed at run time), with asymmetric
    padding cropped from its output (torch pads both sides alike)."""
    crop = algorithm == "EXPLICIT" and len(paddings) == 4 and _conv_padding(paddings, algorithm) == 0
    top, bottom, left, right = paddings if crop else (0, 0, 0, 0)
    size = None
    if output_size is not None and (not isinstance(output_size, list) or output_size):
        try:
            fixed = _ints(output_size)
            size = repr([fixed[0] + top + bottom, fixed[1] + left + right]) if fixed else None
        except NeedsConstant:
            size = f"paddle_sizes({_literal(output_size)})"
            if crop:
                size = f"[v + e for v, e in zip({size}, {(top + bottom, left + right)})]"
    if layer is not None:
        text = f"{layer.text}({x.text}{', output_size=' + size if size else ''})"
    elif size is not None:
        raise PortError("a transposed convolution to a given output size, by weights computed at run time, is not translated")
    else:
        text = (f"F.conv_transpose2d({x.text}, {_literal(weight)}, {_literal(bias)}, {tuple(strides)}, "
                f"{_transpose_padding(paddings, algorithm)}, {tuple(output_padding) if output_padding else 0}, {groups}, "
                f"{tuple(dilations)})")
    if crop:
        text = f"{text}[:, :, {top}:{-bottom if bottom else ''}, {left}:{-right if right else ''}]"
    return Code(text)


def _matmul(x, y, transpose_x, transpose_y, alpha=1.0):
    text = f"torch.matmul({_transposed_if(x, transpose_x).text if transpose_x else _literal(x)}, " \
           f"{_transposed_if(y, transpose_y).text if transpose_y else _literal(y)})"
    return Code(text if alpha == 1 else f"{text} * {_f32(alpha).text}")


def _argmax(x, how, axis, keepdims, flatten, dtype):
    axis = int(_scalar(axis)) if axis is not None else None
    text = f"torch.{how}({_atom(x)}.flatten())" if flatten or axis is None else \
        f"torch.{how}({x.text}, dim={axis}{', keepdim=True' if keepdims else ''})"
    dtype = DATA_TYPES.get(dtype, "int64") if isinstance(dtype, int) else dtype or "int64"
    return Code(text if dtype == "int64" else f"{text}.to({_torch_dtype(dtype).text})")


ENVIRONMENT = {
    "raw": Code, "value": _value, "scalar": _scalar, "f32": _f32, "tuple": tuple, "len": len, "set": set,
    "map": map, "str": str, "list": list, "round": round, "float": float, "int": int, "conv_padding": _conv_padding,
    "pre_pad": _pre_pad, "aligned": _aligned, "scaled": _scaled, "transposed_if": _transposed_if, "pool2d": _pool2d,
    "interpolate": _interpolate, "sliced": _sliced, "reshaped": _reshaped, "unsqueezed": _unsqueezed,
    "torch_dtype": _torch_dtype, "ints": _ints, "sizes": _sizes, "number": _number, "dtype_of": _dtype_of,
    "like_dtype": _like_dtype, "reduced": _reduced, "split": _split, "padded": _padded, "padded_all": _padded_all,
    "layer_norm": _layer_norm, "layer_norm_functional": _layer_norm_functional, "transpose_padding": _transpose_padding,
    "conv_transposed": _conv_transposed, "matmul": _matmul, "argmax": _argmax,
}
SPELLING = Spelling(_literal, ENVIRONMENT)


# --- the emitter ----------------------------------------------------------------------------------


def identifier(text: str) -> str:
    name = re.sub(r"\W", "_", text)
    if not name or name[0].isdigit():
        name = f"v_{name}"
    return f"{name}_out" if keyword.iskeyword(name) or name in RESERVED else name


class Emitter:
    def __init__(self, graph: Graph, keys: dict[str, str] | None = None, class_name: str = "PortedModel"):
        self.graph = graph
        self.keys = keys or {}  # program parameter name -> the structured key it is known by
        for name in graph.parameters:
            _check_key(self.keys.get(name, name), graph)
        self.class_name = class_name
        self.table = translations()
        self.constants: dict[int, Constant] = {}
        self.names: dict[int, str] = {}  # id(Value) -> local variable
        self.variables: dict[str, dict[str, str]] = {}  # local variable -> the program value's key, its op
        self.taken: set[str] = set()
        self.counts: Counter = Counter()
        self.layers: dict[str, Layer] = {}
        self.loose: dict[str, Value] = {}  # parameters used directly: their key -> value
        self.needed: set[int] = set()  # the values the outputs depend on
        self.lists: dict[int, list] = {}  # PIR's combined values: their items' code
        self.buffers: dict[str, str] = {}  # constant tensors held as buffers: name -> their code

    # which program value is which

    def key_of(self, value: Value) -> str:
        return self.keys.get(value.parameter, value.parameter)

    def local(self, value: Value, hint: str, op: str) -> str:
        name = identifier(hint)
        if name in self.taken:
            self.counts[name] += 1
            while f"{name}_{self.counts[name]}" in self.taken:
                self.counts[name] += 1
            name = f"{name}_{self.counts[name]}"
        self.taken.add(name)
        self.names[id(value)] = name
        self.variables[name] = {"value": value.key, "op": op}
        return name

    def operand(self, value: Value | None):
        if value is None:
            return None
        if isinstance(value, list):
            return [self.operand(v) for v in value]
        if id(value) in self.constants:
            return self.constants[id(value)]
        if id(value) in self.lists:
            return self.lists[id(value)]
        if value.parameter is not None:
            return self.loose_parameter(value)
        if id(value) not in self.names:
            raise PortError(f"{self.graph.path}: value {value.key} is read before any op computes it")
        return Tensor(self.names[id(value)], value)

    def loose_parameter(self, value: Value) -> Param:
        key = self.key_of(value)
        self.loose[key] = value
        path, _, attribute = key.rpartition(".")
        return Param(_attribute_code(path, attribute), value)

    # the passes

    def fold_constants(self) -> None:
        for op in self.graph.ops:  # (PIR's assign_value_ reads the tensor it overwrites, nothing else)
            if op.kind in CONSTANT_OPS and (not _operands_list(op) or op.kind == "assign_value_"):
                self.constants[id(op.all_results[0])] = Constant(_constant_of(op))

    def fuse_biases(self) -> list[Op]:
        """Convolutions and matmuls by a parameter, with the parameter bias added to their output
        folded in (a matmul by a 2-D parameter becomes a `linear` op either way)."""
        readers = Counter(id(v) for op in self.graph.ops for v in _operands_list(op))
        readers.update(id(v) for v in self.graph.outputs)
        producer = {id(v): op for op in self.graph.ops for v in op.all_results}
        adders = {id(_operands_list(op)[0]): op for op in self.graph.ops if op.kind in ("add", "elementwise_add")}
        dropped = set()
        for op in self.graph.ops:
            weight = linear_weight(op)
            if weight is not None:
                op.kind, op.operands, op.results = "linear", [self.bind_values(op)["x"], weight, None], op.all_results[:1]
            elif op.kind not in ("conv2d", "depthwise_conv2d", "conv2d_transpose"):
                continue
            elif (weight := self.bind_values(op).get("weight")) is None or weight.parameter is None:
                continue
            out, add = op.all_results[0], adders.get(id(op.all_results[0]))
            if add is None or readers[id(out)] != 1:
                continue
            added = _operands_list(add)[1]
            bias, reshape = added, producer.get(id(added))
            if reshape is not None and reshape.kind in ("reshape", "reshape2"):
                bias = _operands_list(reshape)[0]
            else:
                reshape = None
            if bias.parameter is None or len(bias.shape) != 1 or readers[id(added)] != 1:
                continue
            dropped.update({add.index} | ({reshape.index} if reshape is not None else set()))
            entry = self.table[op.kind]
            if isinstance(op.operands, dict):
                op.operands = {**op.operands, "Bias": [bias]}
                op.results = {entry.outputs[0]: add.all_results[:1]}
            else:
                position = entry.operands.index("bias")
                operands = [*op.operands, *[None] * (position + 1 - len(op.operands))]
                operands[position] = bias
                op.operands = operands
                op.results = add.all_results[:1]
        return [op for op in self.graph.ops if op.index not in dropped]

    def bind_values(self, op: Op) -> dict[str, Any]:
        entry = self.table.get(op.kind)
        if entry is None:
            return {}
        if isinstance(op.operands, dict):  # a slot of several values (concat's X) binds as a list
            listed = op.kind in LIST_OPERANDS
            return {entry.slots[slot]: values if len(values) > 1 or listed else values[0]
                    for slot, values in op.operands.items() if slot in entry.slots and values}
        return {name: value for name, value in zip(entry.operands, op.operands)}

    def live(self, ops: list[Op]) -> list[Op]:
        """The ops the outputs depend on, constants aside (they are folded into their readers)."""
        needed = self.needed = {id(v) for v in self.graph.outputs}
        kept = []
        for op in reversed(ops):
            if id(op.all_results[0]) in self.constants or not any(id(v) in needed for v in op.all_results):
                continue
            kept.append(op)
            for v in _operands_list(op):
                needed.update(id(item) for item in (v if isinstance(v, list) else [v]))
        return kept[::-1]

    def emit(self) -> Generated:
        self.fold_constants()
        ops = self.live(self.fuse_biases())
        inputs = []
        for name, value in self.graph.inputs:
            inputs.append((self.local(value, name, "input"), value))
        token = _BUFFERS.set(self.buffers)
        try:
            lines = [line for line in map(self.statement, ops) if line is not None]
            outputs = [self.operand(v) for v in self.graph.outputs]
            returned = ", ".join(_literal(o) for o in outputs)
        finally:
            _BUFFERS.reset(token)
        return self.module(lines, inputs, returned, outputs)

    def statement(self, op: Op) -> str | None:
        if op.kind == "builtin.combine":  # a list of values: written where it is read
            self.lists[id(op.results[0])] = [self.operand(v) for v in op.operands]
            return None
        if op.kind == "builtin.split":
            source = self.operand(op.operands[0])
            targets = [self.local(v, "part", f"split (op {op.index})") for v in op.results]
            return f"{', '.join(targets)}{',' if len(targets) == 1 else ''} = {source.text}"
        entry = self.table.get(op.kind)
        if entry is None:
            raise unsupported(self.graph, op, "no torch translation for this op")
        where = f"{self.graph.path}: op {op.index} ({op.kind})"
        names = {**entry.defaults, **{k: v for k, v in op.attrs.items() if v is not None}}
        bound = self.bind_values(op)
        for name in (*entry.operands, *entry.slots.values()):
            names.setdefault(name, None)
        for name, attr in entry.from_attrs.items():
            if bound.get(name) is None and attr in op.attrs:
                bound[name] = _AttributeConstant(op.attrs[attr])
        owned = {o: bound.get(o) for o in entry.parameters}
        as_module = entry.module is not None and all(
            v is None or (isinstance(v, Value) and v.parameter is not None and id(v) not in self.constants) for v in owned.values())
        for name, value in bound.items():
            if as_module and name in owned:
                names[name] = Param("", value) if value is not None else None
            else:
                names[name] = value.value if isinstance(value, _AttributeConstant) else self.operand(value)
        if entry.module is not None and not as_module and entry.functional is None:
            raise unsupported(self.graph, op, "its parameters are computed, and this op has no functional translation")
        check_requirements(list(entry.require), names, where, SPELLING)
        template = entry.functional if entry.module is not None and not as_module else entry.torch
        if as_module:
            path = self.layer_path(op, owned)
            layer = Layer(path, render(entry.module, names, where, SPELLING))
            for o, v in owned.items():
                if v is not None:
                    layer.parameters[entry.parameters[o]] = v
                    if o in entry.transposed:
                        layer.transposed.add(entry.parameters[o])
            self.layers[path] = layer
            names["self"] = Code(_module_code(path))
        try:
            code = render(template, names, where, SPELLING)
        except PortError as exc:
            raise unsupported(self.graph, op, str(exc).split("): ", 1)[-1]) from None
        results = self.results(op, entry)
        targets = [self.local(v, self.hint(op, v), f"{op.kind} (op {op.index})") for v in results]
        return f"{', '.join(targets)} = {code}"

    def results(self, op: Op, entry: OpTranslation) -> list[Value]:
        if isinstance(op.results, dict):
            values = [v for slot in entry.outputs for v in op.results.get(slot, [])]
            others = [v for slot, vs in op.results.items() if slot not in entry.outputs for v in vs]
        else:
            values, others = op.results[: entry.results], op.results[entry.results :]
        if any(id(v) in self.needed and v.parameter is None for v in others):  # (legacy ops update parameters in place)
            raise unsupported(self.graph, op, "the program reads a result of this op that its translation does not compute")
        return values

    def hint(self, op: Op, value: Value) -> str:
        if self.graph.kind == "pdmodel":
            return value.key
        return op.kind.rstrip("_")

    def layer_path(self, op: Op, owned: dict[str, Value | None]) -> str:
        keys = [self.key_of(v) for v in owned.values() if v is not None and not isinstance(v, _AttributeConstant)]
        prefixes = {k.rpartition(".")[0] for k in keys}
        if len(prefixes) == 1 and next(iter(prefixes)) and next(iter(prefixes)) not in self.layers:
            return next(iter(prefixes))
        base = identifier(op.kind.rstrip("_"))
        self.counts["layer:" + base] += 1
        path = f"{base}_{self.counts['layer:' + base] - 1}"
        while path in self.layers:
            self.counts["layer:" + base] += 1
            path = f"{base}_{self.counts['layer:' + base] - 1}"
        return path

    def module(self, lines: list[str], inputs, returned: str, outputs) -> Generated:
        init = []
        containers = set()
        layer_paths = set(self.layers)

        def ensure_container(path: str):
            parent, _, _ = path.rpartition(".")
            if not parent or parent in containers or parent in layer_paths:
                return
            ensure_container(parent)
            containers.add(parent)
            init.append(_assignment(parent, "Container()"))

        for layer in self.layers.values():
            ensure_container(layer.path)
            init.append(_assignment(layer.path, layer.constructor))
        holders: dict[str, dict[str, Value]] = {}
        for key, value in self.loose.items():
            path, _, attribute = key.rpartition(".")
            holders.setdefault(path, {})[attribute] = value
        for path, params in holders.items():
            if not path or path in self.layers or path in containers:  # beside a module's own tensors
                for attribute, value in params.items():
                    init.append(f"{_attribute_code(path, attribute)} = nn.Parameter(torch.zeros({tuple(value.shape)!r}))")
            else:
                ensure_container(path)
                shapes = ", ".join(f"{a}={tuple(v.shape)!r}" for a, v in params.items())
                init.append(_assignment(path, f"Parameters({shapes})"))
                containers.add(path)
        init += [f"self.register_buffer({name!r}, {code}, persistent=False)" for name, code in self.buffers.items()]
        body = "\n".join(f"        {line}" for line in lines)
        signature = ", ".join(name for name, _ in inputs)
        paths = [*self.layers, *(key.rpartition(".")[0] for key in self.loose)]
        base = "Container" if any(p.split(".")[0].isdigit() for p in paths) else "nn.Module"  # self[0] for a key "0.weight"
        helpers = "\n\n\n".join(_runtime_sources("\n".join((base, body, *init))))
        source = re.sub(r"[^\w.\- ]", "_", Path(self.graph.path).name)  # written into a docstring
        used = "\n".join((helpers, *init, body))
        imports = "".join(f"{line}\n" for module, line in (("math", "import math"), ("np", "import numpy as np"))
                          if re.search(rf"\b{module}\.", used))
        code = f'''"""The torch twin of the Paddle program {source}, generated by weightport port.

It imports torch, numpy and the standard library only. Each layer is named after the Paddle
parameters it holds; each variable after the op computing it.
"""
{imports}{chr(10) if imports else ""}import torch
import torch.nn.functional as F
from torch import nn


{helpers}


class {self.class_name}({base}):
    def __init__(self):
        super().__init__()
{chr(10).join(f"        {line}" for line in init) or "        pass"}

    def forward(self, {signature}):
{body}
        return {returned}


def create_model():
    return {self.class_name}()
'''
        return Generated(code, list(self.layers.values()), self.variables, inputs, [_literal(o) for o in outputs],
                         lines=code.count("\n"))

class _AttributeConstant:
    def __init__(self, value):
        self.value = value


def _attribute_code(path: str, attribute: str) -> str:
    return f"{_module_code(path)}.{attribute}"


def _module_code(path: str) -> str:
    """The code reaching the module at `path` ("" is the twin itself)."""
    text = "self"
    for part in path.split(".") if path else ():
        if part.isdigit():
            text += f"[{int(part)}]"
        else:
            text += f".{part}" if part.isidentifier() and not keyword.iskeyword(part) else f"[{part!r}]"
    return text


def _assignment(path: str, code: str) -> str:
    """The statement putting the module `code` at `path` (by add_module where a name is no identifier)."""
    parent, _, name = path.rpartition(".")
    if name.isidentifier() and not keyword.iskeyword(name):
        return f"{_module_code(parent)}.{name} = {code}" if parent else f"self.{name} = {code}"
    return f"{_module_code(parent)}.add_module({name!r}, {code})"


_KEY_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")


def _check_key(key: str, graph: Graph) -> None:
    """A parameter's name must be a path of attributes (or indices) for the twin to hold it under it."""
    parts = key.split(".")
    if not all(_KEY_PART.fullmatch(p) and not keyword.iskeyword(p) for p in parts) or parts[-1].isdigit():
        raise PortError(f"{Path(graph.path).name}: parameter {key[:80]!r} cannot be named so in a torch module "
                        "(each dotted part must be an identifier or an index)")


def _runtime_sources(code: str) -> list[str]:
    """The sources of the runtime helpers `code` calls, and of those they call, in runtime.py's order."""
    defined = {name: inspect.getsource(obj).rstrip() for name, obj in vars(runtime).items()
               if getattr(obj, "__module__", None) == runtime.__name__}
    used, text = set(), code
    while True:
        found = {name for name in defined if name not in used and re.search(rf"\b{name}\b", text)}
        if not found:
            return [source for name, source in defined.items() if name in used]
        used |= found
        text = "\n".join(defined[name] for name in found)


def _operands_list(op: Op) -> list:
    if isinstance(op.operands, dict):
        return [v for values in op.operands.values() for v in values]
    return list(op.operands)


def _entry_outputs(table, op: Op) -> tuple[str, ...]:
    entry = table.get(op.kind)
    return entry.outputs if entry is not None else ("Out",)


def _constant_of(op: Op) -> np.ndarray:
    attrs = op.attrs
    dtype = attrs.get("dtype")
    if isinstance(dtype, int):
        dtype = DATA_TYPES.get(dtype, "float32")
    dtype = np.dtype(dtype or "float32") if dtype != "bfloat16" else np.dtype("float32")
    if op.kind == "full_int_array":
        return np.asarray(attrs["value"], dtype=dtype)
    if op.kind in ("full", "fill_constant"):
        value = attrs.get("value", 0.0)
        if attrs.get("str_value"):
            value = float(attrs["str_value"])
        return np.full(attrs.get("shape", []), value, dtype=dtype)
    values = attrs.get("values") or attrs.get("fp32_values") or attrs.get("int32_values") or attrs.get("int64_values") or []
    return np.asarray(values, dtype=dtype).reshape(attrs.get("shape", [len(values)]))

