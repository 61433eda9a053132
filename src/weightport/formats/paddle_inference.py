"""Paddle inference models, read without Paddle: a program and one parameter file.

The program is a legacy `.pdmodel` (a protobuf ProgramDesc: blocks -> vars and ops) or Paddle 3's
`.json` (a PIR program: regions -> blocks -> ops, parameter ops `"p"` naming their parameter). It
gives the parameters' names, shapes and dtypes, and the model's inputs and outputs. `.pdiparams`
holds the persistable tensors in sorted-name order, each as: u32 version 0; u64 LoD level count,
then per level a u64 byte size and that many bytes; u32 version 0; i32 size of a TensorDesc
protobuf, the TensorDesc (data type, dims); the raw little-endian data. Nothing names the tensors
in that file: the program's sorted parameter names do, so every tensor's type and dims are checked
against the program's, and the file must end with the last tensor.

`write_params` writes a parameter file as Paddle does (byte for byte: no LoD, dims unpacked), after
`check_params` has found the tensors to be the ones a program loads.

A model is named by its folder (holding `inference.pdmodel` or `inference.json` beside
`inference.pdiparams`, or one such pair under another prefix), by its path prefix (`dir/inference`)
or by either of its files: `locate` finds its two files, `read_program` and `read_params` read them
(`formats.read_checkpoint` does all three).
"""
from __future__ import annotations

import json
import math
import os
import struct
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, InvalidArgument, LayoutError, UserError
from . import protobuf
from .checkpoint import LazyTensor, OpenFile, check_shape, paddle_array_tensor, raw_bytes
from .dtypes import itemsize, storage_dtype

PARAMS = ".pdiparams"
PROGRAMS = (".json", ".pdmodel")  # Paddle 3's PIR program first, where a folder holds both
MAX_PROGRAM = 1 << 31  # a protobuf message's own limit; far more than any real program's JSON too
MAX_LOD_LEVELS = 64
MAX_DESC = 1 << 16

# VarType.Type codes (framework.proto) of the tensor element types, and PIR's type names.
DATA_TYPES = {0: "bool", 1: "int16", 2: "int32", 3: "int64", 4: "float16", 5: "float32", 6: "float64",
              20: "uint8", 21: "int8", 22: "bfloat16"}
PIR_TYPES = {"0.t_bool": "bool", "0.t_i16": "int16", "0.t_i32": "int32", "0.t_i64": "int64", "0.t_f16": "float16",
             "0.t_f32": "float32", "0.t_f64": "float64", "0.t_ui8": "uint8", "0.t_i8": "int8", "0.t_bf16": "bfloat16"}
CODES = {name: code for code, name in DATA_TYPES.items()}
DENSE_TENSOR = 7  # VarType.Type of a tensor variable (LOD_TENSOR before Paddle 3)


@dataclass(frozen=True)
class Variable:
    """A program variable: its name, shape (-1 where the program leaves a size open) and dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass
class Program:
    """What weightport reads of an inference program."""

    path: str
    kind: str  # "pdmodel" (a protobuf ProgramDesc) or "pir" (Paddle 3's JSON)
    parameters: dict[str, Variable]  # the persistable tensors, by name
    inputs: list[Variable] = field(default_factory=list)
    outputs: list[Variable] = field(default_factory=list)
    ops: Counter = field(default_factory=Counter)  # op type -> how many


def locate(path: str | os.PathLike) -> tuple[Path, Path] | None:
    """(program, parameters) of the inference model `path` names, or None when it names none."""
    path = Path(path)
    if path.is_dir():
        pairs = [(program, params) for params in sorted(path.glob(f"*{PARAMS}"))
                 for program in (params.with_suffix(suffix) for suffix in PROGRAMS) if program.is_file()]
        prefixes = {params for _, params in pairs}
        if len(prefixes) > 1:
            listed = ", ".join(p.name for p in sorted(prefixes))
            raise CheckpointError(path, f"holds {len(prefixes)} inference models ({listed}): name the prefix of one")
        return pairs[0] if pairs else None
    prefix = path.with_suffix("") if path.suffix in (PARAMS, *PROGRAMS) else path
    params = prefix.with_name(prefix.name + PARAMS)
    if not params.is_file():
        return None
    programs = [prefix.with_name(prefix.name + suffix) for suffix in PROGRAMS]
    found = next((program for program in programs if program.is_file()), None)
    if found is None:
        if path.suffix == PARAMS:
            raise CheckpointError(path, "a .pdiparams file names none of its tensors: it needs its program "
                                        f"({prefix.name}.json or {prefix.name}.pdmodel) beside it")
        return None
    return found, params


def read_program(path: str | os.PathLike) -> Program:
    path = str(path)
    try:
        size = os.path.getsize(path)
        if size > MAX_PROGRAM:
            raise CheckpointError(path, f"a program of {size} bytes is larger than any Paddle writes")
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CheckpointError(path, f"cannot read: {exc.strerror or exc}") from None
    if not data:
        raise CheckpointError(path, "the program file is empty")
    if path.endswith(".json"):
        return _pir_program(path, data)
    try:
        return _legacy_program(path, data)
    except protobuf.ProtobufError as exc:
        raise CheckpointError(path, f"not a Paddle ProgramDesc ({exc})") from None


# --- legacy programs (protobuf) ---------------------------------------------------------------


def _tensor_desc(data: bytes) -> tuple[int, tuple[int, ...]]:
    """A TensorDesc: (data type code, dims)."""
    desc = protobuf.fields(data)
    if 1 not in desc:
        raise protobuf.ProtobufError("a TensorDesc without a data type")
    return protobuf.integer(desc[1]), tuple(protobuf.signed(d) for d in protobuf.packed_varints(desc.get(2, [])))


def _legacy_program(path: str, data: bytes) -> Program:
    blocks = protobuf.fields(data).get(1, [])
    if not blocks:
        raise CheckpointError(path, "the ProgramDesc has no block")
    block = protobuf.fields(blocks[0])
    variables, parameters = {}, {}
    for raw in block.get(3, []):
        var = protobuf.fields(raw)
        name = protobuf.string(var.get(1, []))
        var_type = protobuf.fields(var[2][-1]) if var.get(2) else {}
        kind = protobuf.integer(var_type.get(1, []), -1)
        if kind != DENSE_TENSOR or not var_type.get(3):
            continue
        tensor = protobuf.fields(var_type[3][-1])
        if not tensor.get(1):
            raise protobuf.ProtobufError(f"variable {name!r} has no TensorDesc")
        code, dims = _tensor_desc(tensor[1][-1])
        variable = Variable(name, dims, _data_type(path, name, code))
        variables[name] = variable
        if protobuf.integer(var.get(3, []), 0):
            parameters[name] = variable
    ops, feeds, fetches = Counter(), [], []
    for raw in block.get(4, []):
        op = protobuf.fields(raw)
        kind = protobuf.string(op.get(3, []))
        slots = {direction: {protobuf.string(slot.get(1, [])): [protobuf.string([a]) for a in slot.get(2, [])]
                             for slot in map(protobuf.fields, op.get(number, []))}
                 for direction, number in (("in", 1), ("out", 2))}
        column = next((protobuf.integer(attr.get(3, [])) for attr in map(protobuf.fields, op.get(4, []))
                       if protobuf.string(attr.get(1, [])) == "col"), 0)
        if kind == "feed":
            feeds += [(column, name) for name in slots["out"].get("Out", [])]
        elif kind == "fetch":
            fetches += [(column, name) for name in slots["in"].get("X", [])]
        else:
            ops[kind] += 1
    return Program(path, "pdmodel", parameters,
                   [variables.get(name, Variable(name, (), "?")) for _, name in sorted(feeds)],
                   [variables.get(name, Variable(name, (), "?")) for _, name in sorted(fetches)], ops)


def _data_type(path: str, name: str, code: int) -> str:
    if code not in DATA_TYPES:
        raise CheckpointError(path, f"variable {name!r} has data type {code}, which weightport does not read")
    return DATA_TYPES[code]


# --- PIR programs (JSON) ----------------------------------------------------------------------


def _pir_program(path: str, data: bytes) -> Program:
    try:
        document = json.loads(data)
        if document["base_code"]["magic"] != "pir":
            raise ValueError("its base_code.magic is not 'pir'")
        ops = document["program"]["regions"][0]["blocks"][0]["ops"]
        if not isinstance(ops, list):
            raise TypeError("ops is not a list")
    except (ValueError, RecursionError, KeyError, IndexError, TypeError) as exc:
        raise CheckpointError(path, f"not a Paddle PIR program ({str(exc)[:200]})") from None
    parameters, inputs, outputs, counts = {}, [], [], Counter()
    for op in ops:
        try:
            kind = op["#"]
            if kind == "p":
                name = op["A"][-1]
                parameters[name] = _pir_variable(path, name, op["O"]["TT"])
            elif kind in ("1.data", "1.feed"):
                attrs = {a["N"]: a["AT"].get("D") for a in op["A"]}
                inputs.append(_pir_variable(path, attrs["name"], op["O"][0]["TT"]))
            elif kind == "1.fetch":
                attrs = {a["N"]: a["AT"].get("D") for a in op["A"]}
                outputs.append(_pir_variable(path, attrs["name"], op["O"][0]["TT"]))
            else:
                counts[kind.partition(".")[2] or kind] += 1
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise CheckpointError(path, f"malformed PIR op {str(op)[:120]} ({type(exc).__name__}: {exc})") from None
    return Program(path, "pir", parameters, inputs, outputs, counts)


def _pir_variable(path: str, name, tensor_type) -> Variable:
    if not isinstance(name, str) or tensor_type.get("#") != "0.t_dtensor":
        raise CheckpointError(path, f"PIR value {name!r} is not a dense tensor")
    element, shape = tensor_type["D"][0]["#"], tensor_type["D"][1]
    if element not in PIR_TYPES:
        raise CheckpointError(path, f"variable {name!r} has element type {element!r}, which weightport does not read")
    if not isinstance(shape, list) or not all(type(n) is int for n in shape):
        raise CheckpointError(path, f"variable {name!r} has shape {str(shape)[:80]}")
    return Variable(name, tuple(shape), PIR_TYPES[element])


# --- .pdiparams -------------------------------------------------------------------------------


def read_params(path: str, program: Program) -> dict[str, LazyTensor]:
    """The parameter file's tensors, in the program's sorted-name order, each checked against it."""
    try:
        file = OpenFile(path)
        size = os.fstat(file.fd).st_size
    except OSError as exc:
        raise CheckpointError(path, f"cannot read: {exc.strerror or exc}") from None
    if size == 0:
        raise CheckpointError(path, "the parameter file is empty")
    tensors, position = {}, 0
    for name in sorted(program.parameters):
        tensors[name], position = _tensor_at(path, file, size, position, program.parameters[name])
    if position != size:
        raise CheckpointError(path, f"{size - position} bytes are left after the program's {len(tensors)} tensors")
    return tensors


def _tensor_at(path: str, file: OpenFile, size: int, position: int, expected: Variable) -> tuple[LazyTensor, int]:
    name = expected.name

    def take(count: int, what: str) -> bytes:
        nonlocal position
        if count > size - position:
            raise CheckpointError(path, f"tensor {name!r}: the file ends inside its {what}")
        data = file.read(position, count)
        position += count
        return data

    if struct.unpack("<I", take(4, "version"))[0] != 0:
        raise CheckpointError(path, f"tensor {name!r}: unknown version field (not 0)")
    (levels,) = struct.unpack("<Q", take(8, "LoD level count"))
    if levels > MAX_LOD_LEVELS:
        raise CheckpointError(path, f"tensor {name!r}: {levels} LoD levels")
    for _ in range(levels):
        (length,) = struct.unpack("<Q", take(8, "LoD level size"))
        if length > size - position:
            raise CheckpointError(path, f"tensor {name!r}: a LoD level of {length} bytes, {size - position} left in the file")
        position += length
    if struct.unpack("<I", take(4, "tensor version"))[0] != 0:
        raise CheckpointError(path, f"tensor {name!r}: unknown tensor version field (not 0)")
    (desc_size,) = struct.unpack("<i", take(4, "descriptor size"))
    if not 0 < desc_size <= MAX_DESC:
        raise CheckpointError(path, f"tensor {name!r}: a descriptor of {desc_size} bytes")
    try:
        code, dims = _tensor_desc(take(desc_size, "descriptor"))
    except protobuf.ProtobufError as exc:
        raise CheckpointError(path, f"tensor {name!r}: malformed descriptor ({exc})") from None
    if any(d < 0 for d in dims):
        raise CheckpointError(path, f"tensor {name!r}: negative dims {list(dims)}")
    check_shape(path, dims)
    dtype = _data_type(path, name, code)
    if (dims, dtype) != (expected.shape, expected.dtype):
        raise CheckpointError(path, f"tensor {name!r} is {dtype} {list(dims)} in the file, "
                                    f"{expected.dtype} {list(expected.shape)} in the program")
    numel = math.prod(dims)
    length = numel * itemsize(dtype)
    if length > size - position:
        raise CheckpointError(path, f"tensor {name!r}: {length} bytes of data, {size - position} left in the file")
    start = position

    def load() -> np.ndarray:
        if numel == 0:
            return np.zeros(dims, dtype=storage_dtype(dtype))
        return np.frombuffer(file.region(start, length), dtype=storage_dtype(dtype), count=numel).reshape(dims)

    return LazyTensor(dtype, dims, load), position + length


# --- writing .pdiparams -----------------------------------------------------------------------


def write_params(path: str | os.PathLike, tensors: Mapping[str, np.ndarray | LazyTensor], program: Program | None = None,
                 force: bool = False) -> Path:
    """Write `tensors` (arrays, uint16 ones being bfloat16 bits as Paddle keeps them, or lazy tensors)
    as the parameter file `path`, whole or not at all; with `program`, only once `check_params` passes."""
    if Path(path).suffix != PARAMS:
        raise InvalidArgument("path", str(path), f"Paddle finds a parameter file by its {PARAMS} extension")
    lazy = {name: _lazy(name, value) for name, value in tensors.items()}
    if program is not None:
        check_params(program, lazy)
    from . import write_checkpoint

    return write_checkpoint(path, lazy.items(), force=force)


def check_params(program: Program, tensors: Mapping[str, np.ndarray | LazyTensor]) -> None:
    """Refuse tensors other than those the program loads, in one line naming the first difference (in
    name order): the file names none of them, so a missing or extra one would shift every later one."""
    lazy = {name: _lazy(name, value) for name, value in tensors.items()}
    problems = []
    for name in sorted(program.parameters.keys() | lazy.keys()):
        want, have = program.parameters.get(name), lazy.get(name)
        if have is None:
            problems.append(f"the program's {want.dtype} {list(want.shape)} tensor {name!r} is missing")
        elif want is None:
            problems.append(f"tensor {name!r} is not one of the program's")
        elif (tuple(have.shape), have.dtype) != (want.shape, want.dtype):
            problems.append(f"tensor {name!r} is {have.dtype} {list(have.shape)}, the program's {want.dtype} {list(want.shape)}")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise LayoutError(f"the tensors do not fit {program.path}: {problems[0]}{more}")


def _lazy(name: str, value: np.ndarray | LazyTensor) -> LazyTensor:
    """`value` as a lazy tensor of a dtype the file holds (a uint16 array is bfloat16 bits)."""
    if not isinstance(value, LazyTensor):
        array = np.asarray(value)
        try:
            value = paddle_array_tensor(array)
        except UserError:  # a dtype weightport has no name for
            value = LazyTensor(str(array.dtype), array.shape, lambda: array)
    if value.dtype not in CODES:
        raise InvalidArgument("tensors", name, f"its dtype {value.dtype} is none of those a {PARAMS} file holds "
                                               f"({', '.join(CODES)})")
    return value


def tensor_desc(dtype: str, dims: Iterable[int]) -> bytes:
    """A TensorDesc as Paddle writes it: its dims, a proto2 repeated field, one field each, not packed."""
    return protobuf.field(1, CODES[dtype]) + b"".join(protobuf.field(2, int(d)) for d in dims)


def write(file, entries: Iterable[tuple[str, LazyTensor]], on_tensor=None) -> None:
    """The tensors in sorted-name order, the order a program loads them in, one in memory at a time."""
    for name, tensor in sorted(entries, key=lambda entry: entry[0]):
        array = tensor.load_contiguous()
        if array.shape != tuple(tensor.shape):
            raise UserError(f"tensor {name!r}: {list(array.shape)} loaded where {list(tensor.shape)} was declared")
        desc = tensor_desc(tensor.dtype, tensor.shape)
        file.write(struct.pack("<IQIi", 0, 0, 0, len(desc)) + desc)  # versions 0, no LoD levels
        file.write(raw_bytes(array))
        if on_tensor:
            on_tensor(name, tensor)
