"""Paddle inference models written by hand, without Paddle: a PIR JSON or a ProgramDesc protobuf
naming parameters, and their .pdiparams, byte for byte as Paddle lays them out. The tests use them
where Paddle cannot be imported (tests/core) and to break them in every way a reader must refuse."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

CODES = {"bool": 0, "int16": 1, "int32": 2, "int64": 3, "float16": 4, "float32": 5, "float64": 6, "uint8": 20, "int8": 21}
PIR = {"bool": "0.t_bool", "int32": "0.t_i32", "int64": "0.t_i64", "float16": "0.t_f16", "float32": "0.t_f32", "float64": "0.t_f64"}


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, value: int | bytes) -> bytes:
    """One protobuf field: an int as a varint, bytes as length-delimited."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def tensor_desc(dtype: str, dims) -> bytes:
    return field(1, CODES[dtype]) + b"".join(field(2, int(d)) for d in dims)


def tensor_record(array: np.ndarray, dtype: str | None = None, dims=None, version: int = 0, lod: list[bytes] = ()) -> bytes:
    """One tensor of a .pdiparams file (fields overridable, to make broken ones)."""
    desc = tensor_desc(dtype or str(array.dtype), array.shape if dims is None else dims)
    out = struct.pack("<I", version) + struct.pack("<Q", len(lod))
    out += b"".join(struct.pack("<Q", len(level)) + level for level in lod)
    return out + struct.pack("<I", 0) + struct.pack("<i", len(desc)) + desc + np.ascontiguousarray(array).tobytes()


def params_bytes(tensors: dict[str, np.ndarray]) -> bytes:
    return b"".join(tensor_record(tensors[name]) for name in sorted(tensors))


def pir_program(tensors: dict[str, np.ndarray], input_shape=(-1, 3, -1, -1)) -> str:
    ops = [{"#": "p", "A": [0, 1, 1, name],
            "O": {"%": i + 1, "TT": {"#": "0.t_dtensor", "D": [{"#": PIR[str(a.dtype)]}, list(a.shape), "NCHW", [], 0]}}}
           for i, (name, a) in enumerate(tensors.items())]
    dense = {"#": "0.t_dtensor", "D": [{"#": "0.t_f32"}, list(input_shape), "NCHW", [], 0]}
    ops.append({"#": "1.data", "A": [{"AT": {"#": "0.a_str", "D": "x"}, "N": "name"}], "I": [], "O": [{"%": 100, "TT": dense}]})
    ops.append({"#": "1.relu", "A": [], "I": [{"%": 100}], "O": [{"%": 101, "TT": dense}]})
    ops.append({"#": "1.fetch", "A": [{"AT": {"#": "0.a_str", "D": "fetch_name_0"}, "N": "name"}], "I": [{"%": 101}],
                "O": [{"%": 102, "TT": dense}]})
    return json.dumps({"base_code": {"magic": "pir", "trainable": True, "version": 4},
                       "program": {"regions": [{"blocks": [{"ops": ops}]}]}})


def legacy_program(tensors: dict[str, np.ndarray]) -> bytes:
    def var(name: str, dtype: str, dims, persistable: bool) -> bytes:
        var_type = field(1, 7) + field(3, field(1, tensor_desc(dtype, dims)))
        return field(1, name.encode()) + field(2, var_type) + field(3, int(persistable))

    def op(kind: str, inputs: dict, outputs: dict) -> bytes:
        slots = b"".join(field(1, field(1, k.encode()) + b"".join(field(2, a.encode()) for a in v)) for k, v in inputs.items())
        slots += b"".join(field(2, field(1, k.encode()) + b"".join(field(2, a.encode()) for a in v)) for k, v in outputs.items())
        return field(3, kind.encode()) + slots + field(4, field(1, b"col") + field(2, 0) + field(3, 0))

    block = field(1, 0) + field(2, 0)
    block += b"".join(field(3, var(name, str(a.dtype), a.shape, True)) for name, a in tensors.items())
    block += field(3, var("x", "float32", (-1, 3, -1, -1), False)) + field(3, var("y", "float32", (-1, 3, -1, -1), False))
    block += field(4, op("feed", {"X": ["feed"]}, {"Out": ["x"]})) + field(4, op("relu", {"X": ["x"]}, {"Out": ["y"]}))
    block += field(4, op("fetch", {"X": ["y"]}, {"Out": ["fetch"]}))
    return field(1, block)


def write_model(folder: Path, tensors: dict[str, np.ndarray], kind: str = "pir", params: bytes | None = None) -> Path:
    """inference.json (kind "pir") or inference.pdmodel ("pdmodel") and inference.pdiparams in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "pir":
        (folder / "inference.json").write_text(pir_program(tensors))
    else:
        (folder / "inference.pdmodel").write_bytes(legacy_program(tensors))
    (folder / "inference.pdiparams").write_bytes(params_bytes(tensors) if params is None else params)
    return folder


def sample_tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "conv2d_0.w_0": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "conv2d_0.b_0": rng.standard_normal(4).astype(np.float32),
        "batch_norm2d_0.w_1": rng.standard_normal(4).astype(np.float32),
        "linear_0.w_0": rng.standard_normal((4, 5)).astype(np.float64),
        "step": np.array([7], dtype=np.int64),
    }
