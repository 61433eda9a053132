"""An inference program as a list of ops over values, read from either of Paddle's program formats.

Both formats become one `Graph`: its ops in program order, each with its kind (PIR's op name
without the dialect, `conv2d`; a legacy program's op type, `elementwise_add`), its operands and
results as `Value`s and its attributes as plain Python values. A PIR operand list is positional
(None where an optional operand is absent); a legacy op's inputs and outputs are named slots. The
translations (`translations/*.toml`) say how each kind's operands are named, so that the emitter
binds both alike. Values keep the program's identity (a PIR value's number, a legacy variable's
name) so that a generated variable can be matched with Paddle's own when comparing layer by layer.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import PortError
from ...formats import paddle_inference, protobuf


@dataclass(eq=False)
class Value:
    """A tensor (or, for PIR's `combine`, a list of tensors) of the program."""

    key: str  # PIR "%12", a legacy variable's name
    shape: tuple[int, ...] = ()
    dtype: str = "float32"
    parameter: str | None = None  # the persistable variable's name
    producer: int | None = None  # the index of the op computing it
    result: int = 0  # which of its producer's results it is

    def __repr__(self):
        return f"Value({self.parameter or self.key}, {list(self.shape)}, {self.dtype})"


@dataclass
class Op:
    index: int
    kind: str
    operands: list[Value | None] | dict[str, list[Value]]
    results: list[Value] | dict[str, list[Value]]
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def all_results(self) -> list[Value]:
        results = self.results.values() if isinstance(self.results, dict) else [self.results]
        return [v for values in results for v in values]

    @property
    def all_operands(self) -> list[Value]:
        operands = self.operands.values() if isinstance(self.operands, dict) else [self.operands]
        return [v for values in operands for v in values if v is not None]


@dataclass
class Graph:
    """The program: `kind` is "pir" or "pdmodel"; `inputs` (feed name, value) in feed order."""

    path: str
    kind: str
    parameters: dict[str, Value]
    inputs: list[tuple[str, Value]]
    outputs: list[Value]
    ops: list[Op]


def read_graph(program_path: str | Path) -> Graph:
    """The graph of the program file `program_path` (checked by the formats reader first)."""
    program = paddle_inference.read_program(program_path)
    data = Path(program_path).read_bytes()
    try:
        if program.kind == "pir":
            return _pir_graph(str(program_path), json.loads(data))
        return _legacy_graph(str(program_path), data)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, struct.error) as exc:
        raise PortError(f"{Path(program_path).name}: a malformed program ({type(exc).__name__}: {str(exc)[:120]})") from None


# --- PIR ----------------------------------------------------------------------------------------


def _pir_attribute(typed: dict) -> Any:
    kind, value = typed.get("#"), typed.get("D")
    if kind == "0.a_array":
        return [_pir_attribute(item) for item in value]
    return value


def _pir_type(tensor_type: dict) -> tuple[tuple[int, ...], str]:
    kind = tensor_type.get("#")
    if kind == "0.t_dtensor":
        element, shape = tensor_type["D"][0]["#"], tensor_type["D"][1]
        return tuple(shape), paddle_inference.PIR_TYPES.get(element, element)
    if kind == "0.t_vec":
        return (len(tensor_type["D"]),), "list"
    return (), kind or "none"


def _pir_graph(path: str, document: dict) -> Graph:
    values: dict[int, Value] = {}
    parameters, inputs, outputs, ops = {}, [], [], []
    for raw in document["program"]["regions"][0]["blocks"][0]["ops"]:
        name = raw["#"]
        if name == "p":
            parameter = raw["A"][-1]
            shape, dtype = _pir_type(raw["O"]["TT"])
            values[raw["O"]["%"]] = parameters[parameter] = Value(f"%{raw['O']['%']}", shape, dtype, parameter)
            continue
        attrs = {a["N"]: _pir_attribute(a["AT"]) for a in raw.get("A", [])}
        attrs.pop("struct_name", None)
        kind = name.partition(".")[2] or name
        if kind == "fetch":
            outputs.append(values[raw["I"][0]["%"]])
            continue
        index = len(ops)
        results = []
        for position, result in enumerate(raw.get("O", [])):
            shape, dtype = _pir_type(result.get("TT", {}))
            values[result["%"]] = value = Value(f"%{result['%']}", shape, dtype, producer=index, result=position)
            results.append(value)
        if kind in ("data", "feed"):
            inputs.append((attrs["name"], results[0]))
            continue
        operands = [values.get(o["%"]) if o.get("%") else None for o in raw.get("I", [])]
        if kind in ("combine", "split") and name.startswith("0."):
            kind = f"builtin.{kind}"
        ops.append(Op(index, kind, operands, results, attrs))
    return Graph(path, "pir", parameters, inputs, outputs, ops)


# --- legacy ProgramDesc -------------------------------------------------------------------------

# framework.proto's OpDesc.Attr fields, by AttrType: (field number, how to read it)
_ATTRIBUTES = {
    0: (3, "int"), 1: (4, "float"), 2: (5, "string"), 3: (6, "ints"), 4: (7, "floats"), 5: (8, "strings"),
    6: (10, "bool"), 7: (11, "bools"), 8: (12, "int"), 9: (13, "int"), 10: (14, "ints"), 11: (15, "ints"),
    12: (16, "doubles"), 13: (17, "string"), 14: (18, "strings"), 15: (19, "double"), 16: (20, "scalars"),
    17: (21, "scalars"),
}


_VARIABLE_ATTRIBUTES = (13, 14)  # VAR, VARS: an attribute naming variables the op reads (an input, then)


def _legacy_attribute(attr: dict[int, list]) -> Any:
    kind = protobuf.integer(attr.get(2, []), -1)
    number, how = _ATTRIBUTES.get(kind, (None, None))
    raw = attr.get(number, []) if number else []
    if how == "int":
        return protobuf.integer(raw)
    if how == "bool":
        return bool(protobuf.integer(raw))
    if how == "float":
        return protobuf.floating(raw)
    if how == "double":
        return struct.unpack("<d", raw[-1])[0] if raw else 0.0
    if how == "string":
        return protobuf.string(raw)
    if how in ("ints", "bools"):
        numbers = [protobuf.signed(v) for v in protobuf.packed_varints(raw)]
        return [bool(v) for v in numbers] if how == "bools" else numbers
    if how == "floats":
        return [v for chunk in raw for v in (struct.unpack(f"<{len(chunk) // 4}f", chunk) if isinstance(chunk, bytes) else ())]
    if how == "doubles":
        return [v for chunk in raw for v in struct.unpack(f"<{len(chunk) // 8}d", chunk)]
    if how == "strings":
        return [protobuf.string([s]) for s in raw]
    if how == "scalars":  # framework.proto's Scalar: type 1 bool (field 2), 2 int64 (3), 3 double (4)
        values = [_scalar(protobuf.fields(message)) for message in raw]
        return values if kind == 17 else (values[-1] if values else None)
    return None  # blocks: no translated op reads them


def _scalar(message: dict[int, list]) -> Any:
    kind = protobuf.integer(message.get(1, []))
    if kind == 1:
        return bool(protobuf.integer(message.get(2, [])))
    if kind == 2:
        return protobuf.integer(message.get(3, []))
    if kind == 3 and message.get(4):
        return struct.unpack("<d", message[4][-1])[0]
    return None  # a complex number: no translated op reads one


def _legacy_graph(path: str, data: bytes) -> Graph:
    block = protobuf.fields(protobuf.fields(data)[1][0])
    variables: dict[str, Value] = {}
    parameters = {}
    for raw in block.get(3, []):
        var = protobuf.fields(raw)
        name = protobuf.string(var.get(1, []))
        var_type = protobuf.fields(var[2][-1]) if var.get(2) else {}
        shape, dtype = (), "none"
        if var_type.get(3):
            tensor = protobuf.fields(var_type[3][-1])
            if tensor.get(1):
                code, shape = paddle_inference._tensor_desc(tensor[1][-1])
                dtype = paddle_inference.DATA_TYPES.get(code, str(code))
        variables[name] = Value(name, tuple(shape), dtype)
        if protobuf.integer(var.get(3, []), 0) and name not in ("feed", "fetch"):
            variables[name].parameter = name
            parameters[name] = variables[name]
    inputs, outputs, ops = [], [], []
    for raw in block.get(4, []):
        op = protobuf.fields(raw)
        kind = protobuf.string(op.get(3, []))
        slots = {}
        for direction, number in (("in", 1), ("out", 2)):
            slots[direction] = {}
            for slot in map(protobuf.fields, op.get(number, [])):
                names = [protobuf.string([a]) for a in slot.get(2, [])]
                slots[direction][protobuf.string(slot.get(1, []))] = [
                    variables.setdefault(n, Value(n)) for n in names]
        attrs = {}
        for attr in map(protobuf.fields, op.get(4, [])):
            name = protobuf.string(attr.get(1, []))
            attrs[name] = _legacy_attribute(attr)
            if protobuf.integer(attr.get(2, []), -1) in _VARIABLE_ATTRIBUTES and attrs[name]:
                names = [attrs[name]] if isinstance(attrs[name], str) else attrs[name]
                slots["in"].setdefault(name, [variables.setdefault(n, Value(n)) for n in names])
        if kind == "feed":
            inputs.append((attrs.get("col", 0), slots["out"]["Out"][0]))
            continue
        if kind == "fetch":
            outputs.append((attrs.get("col", 0), slots["in"]["X"][0]))
            continue
        index = len(ops)
        for values in slots["out"].values():
            for position, value in enumerate(values):
                if value.producer is None and value.parameter is None:
                    value.producer, value.result = index, position
        ops.append(Op(index, kind, slots["in"], slots["out"], attrs))
    return Graph(path, "pdmodel", parameters, [(v.key, v) for _, v in sorted(inputs, key=lambda c: c[0])],
                 [v for _, v in sorted(outputs, key=lambda c: c[0])], ops)


MATMULS = ("matmul", "matmul_v2")  # PIR's and the legacy ops (v1 with alpha and transpose_X/Y)
TRANSPOSES = ("transpose_x", "transpose_y", "trans_x", "trans_y", "transpose_X", "transpose_Y")


def linear_weight(op: Op) -> Value | None:
    """The 2-D parameter `op` multiplies by as a Linear layer does (x @ W, W of [in, out], no
    transposes, no scaling), or None: the twin's nn.Linear and the table's transposes follow it."""
    if op.kind not in MATMULS or op.attrs.get("alpha", 1.0) != 1.0 or any(op.attrs.get(k) for k in TRANSPOSES):
        return None
    weight = op.operands["Y"][0] if isinstance(op.operands, dict) else op.operands[1]
    return weight if weight is not None and weight.parameter is not None and len(weight.shape) == 2 else None


def unsupported(graph: Graph, op: Op, reason: str) -> PortError:
    """The one-line refusal of `op`: its kind, its position and the variable it would produce."""
    produced = op.all_results[0] if op.all_results else None
    what = f", producing {produced.key} {list(produced.shape)}" if produced is not None else ""
    return PortError(f"{Path(graph.path).name}: op {op.index} ({op.kind}{what}): {reason}")
