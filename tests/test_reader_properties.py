"""Property-based tests of the readers: whatever the bytes, reading a file either gives tensors
that are exactly what they declare or raises weightport's own error. Never another exception,
never a hang, and never an allocation far larger than the file (sizes are checked against the
file before anything is allocated). Where a reference reader exists (torch.load, the safetensors
library), whatever weightport accepts, the reference accepts too, with the same values.
"""
from __future__ import annotations

import json
import struct
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_hostile_inputs import StorageId, hand_pickle, legacy_file, tensor_call, torch_zip
from weightport.errors import UserError
from weightport.formats import _LEGACY_MAGIC, read_checkpoint, write_checkpoint
from weightport.formats.checkpoint import LazyTensor
from weightport.formats.dtypes import storage_dtype
from weightport.formats.safetensors_file import CODES

HANG_S = 30  # one small file read in longer than this is a hang
MEMORY_SLACK = 8 << 20  # what reading any small file may allocate, on top of a multiple of its size
MEMORY_PER_BYTE = 64

SETTINGS = settings(
    max_examples=100, deadline=None, database=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

PREFIXES = {  # enough of each format's opening to get past the sniffer into the reader proper
    "none": b"",
    "zip": b"PK\x03\x04",
    "legacy": _LEGACY_MAGIC,
    "pickle-4": b"\x80\x04",
    "pickle-2": b"\x80\x02",
    "safetensors": struct.pack("<Q", 64) + b"{",
}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("properties")


def read_fully(path: Path, tally) -> dict[str, np.ndarray] | None:
    """Read `path` and load every tensor; None when refused with weightport's own error.
    Fails on any other exception, on a hang, and on an allocation out of proportion to the file."""
    size = path.stat().st_size
    tally["generated"] += 1
    started = time.perf_counter()
    tracemalloc.start()
    try:
        ckpt = read_checkpoint(path)
        arrays = {}
        for name, tensor in ckpt.tensors.items():
            array = tensor.load()
            assert array.shape == tensor.shape, name
            assert array.dtype == storage_dtype(tensor.dtype), name
            arrays[name] = array
    except UserError:
        tally["generated_refused"] += 1
        arrays = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - started < HANG_S
    assert peak <= MEMORY_PER_BYTE * size + MEMORY_SLACK, f"{peak} bytes allocated reading a {size}-byte file"
    return arrays


# --- any bytes at all ----------------------------------------------------------------------------


@SETTINGS
@given(prefix=st.sampled_from(sorted(PREFIXES)), body=st.binary(max_size=1024))
def test_any_bytes(scratch, hostile_tally, prefix, body):
    path = scratch / "blob"  # no extension: the content alone decides the reader
    path.write_bytes(PREFIXES[prefix] + body)
    read_fully(path, hostile_tally)


# --- valid files, mutated ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def valid_bytes(tmp_path_factory) -> dict[str, bytes]:
    """Small valid files of every format, as bytes to mutate."""
    import torch

    folder = tmp_path_factory.mktemp("valid-small")
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=g)
    state = {
        "w": torch.randn(3, 4, generator=g),
        "h": torch.randn(5, generator=g).half(),
        "b": torch.randn(2, 3, generator=g).bfloat16(),
        "n": torch.tensor(7),
        "view": base[:, 1:3],
        "base": base,
    }
    torch.save(state, folder / "a.pth")
    torch.save(state, folder / "a.pt", _use_new_zipfile_serialization=False)
    tensors = read_checkpoint(folder / "a.pth").tensors
    for ext in ("pdparams", "safetensors"):
        write_checkpoint(folder / f"a.{ext}", [(k, LazyTensor.of(t.load_contiguous(), t.dtype)) for k, t in tensors.items()])
    return {ext: (folder / f"a.{ext}").read_bytes() for ext in ("pth", "pt", "pdparams", "safetensors")}


def mutations(max_position: int):
    position = st.integers(0, max_position - 1)
    return st.lists(
        st.one_of(
            st.tuples(st.just("flip"), position, st.integers(0, 7)),
            st.tuples(st.just("set"), position, st.integers(0, 255)),
            st.tuples(st.just("truncate"), position, st.just(0)),
            st.tuples(st.just("insert"), position, st.integers(0, 255)),
            st.tuples(st.just("delete"), position, st.integers(1, 16)),
        ),
        min_size=1, max_size=4,
    )


def mutate(data: bytes, changes) -> bytes:
    out = bytearray(data)
    for kind, position, value in changes:
        position = min(position, max(len(out) - 1, 0))
        if kind == "flip" and out:
            out[position] ^= 1 << value
        elif kind == "set" and out:
            out[position] = value
        elif kind == "truncate":
            del out[position:]
        elif kind == "insert":
            out.insert(position, value)
        elif kind == "delete":
            del out[position : position + value]
    return bytes(out)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 0:UserWarning")  # torch, on a mutated legacy file
@pytest.mark.parametrize("ext", ["pth", "pt", "pdparams", "safetensors"])
def test_mutated_valid_files(scratch, valid_bytes, hostile_tally, ext):
    original = valid_bytes[ext]

    @SETTINGS
    @given(changes=mutations(len(original)))
    def check(changes):
        path = scratch / f"mutated.{ext}"
        path.write_bytes(mutate(original, changes))
        read_fully(path, hostile_tally)

    check()


# --- generated layouts, against the reference readers ---------------------------------------------

# Mostly plausible numbers, now and then a negative or an enormous one.
dims = st.one_of(st.integers(0, 4), st.integers(0, 4), st.integers(0, 4), st.sampled_from([-1, 1 << 40, 1 << 62]))
steps = st.one_of(st.integers(0, 8), st.integers(0, 8), st.integers(0, 8), st.sampled_from([-1, 1 << 62]))


@SETTINGS
@given(
    numel=st.integers(0, 120),
    stored=st.one_of(st.none(), st.integers(0, 128)),
    offset=st.one_of(st.integers(0, 16), st.sampled_from([-1, 1 << 62])),
    size=st.lists(dims, max_size=4),
    stride=st.lists(steps, max_size=4),
    legacy=st.booleans(),
)
def test_torch_layouts_agree_with_torch(scratch, hostile_tally, numel, stored, offset, size, stride, legacy):
    """Whatever storage and view a checkpoint declares (zip or legacy format), weightport either
    refuses it or reads exactly what torch.load reads; and torch never sees a legacy file whose
    storages do not fit in it."""
    import torch

    stride = (stride + [1] * len(size))[: len(size)] if len(stride) != len(size) and numel % 3 else stride
    tensor = tensor_call(StorageId("FloatStorage", "0", numel, legacy), offset, tuple(size), tuple(stride))
    data = {"0": np.arange(numel if stored is None else stored, dtype="<f4").tobytes()}
    if legacy:
        path = legacy_file(scratch / "layout.pt", {"w": tensor}, data)
    else:
        path = torch_zip(scratch / "layout.pth", hand_pickle({"w": tensor}), data)
    ours = read_fully(path, hostile_tally)
    if ours is not None:
        np.testing.assert_array_equal(ours["w"], torch.load(path, weights_only=True)["w"].numpy())


@st.composite
def safetensors_files(draw) -> bytes:
    """A safetensors file laid out correctly, then, half the time, one lie in its header."""
    names = draw(st.lists(st.sampled_from("abcde"), unique=True, max_size=4))
    header, offset = {}, 0
    for name in names:
        code = draw(st.sampled_from(sorted(CODES)))
        shape = draw(st.lists(st.integers(0, 4), max_size=3))
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(storage_dtype(CODES[code])).itemsize
        header[name] = {"dtype": code, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    data = draw(st.binary(min_size=offset, max_size=offset))
    if names and draw(st.booleans()):
        entry = header[draw(st.sampled_from(names))]
        lie = draw(st.sampled_from(["dtype", "shape", "begin", "end", "data"]))
        if lie == "dtype":
            entry["dtype"] = draw(st.sampled_from(sorted(CODES) + ["C64", ""]))
        elif lie == "shape":
            entry["shape"] = draw(st.lists(st.one_of(st.integers(-1, 5), st.just(1 << 40)), max_size=3))
        elif lie in ("begin", "end"):
            entry["data_offsets"][lie == "end"] += draw(st.sampled_from([-8, -1, 1, 2, 1 << 40]))
        else:
            data += draw(st.binary(min_size=1, max_size=8))
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


@SETTINGS
@given(raw=safetensors_files())
def test_safetensors_headers_agree_with_the_reference_library(scratch, hostile_tally, raw):
    """Whatever a header claims, weightport either refuses it or reads what the safetensors
    library reads (bfloat16 compared by its bits)."""
    import torch
    from safetensors.torch import load as reference_load

    path = scratch / "generated.safetensors"
    path.write_bytes(raw)
    ours = read_fully(path, hostile_tally)
    if ours is not None:
        theirs = reference_load(raw)
        assert set(theirs) == set(ours)
        for name, tensor in theirs.items():
            bits = tensor.view(torch.int16).numpy().view(np.uint16) if tensor.dtype == torch.bfloat16 else tensor.numpy()
            np.testing.assert_array_equal(ours[name], bits)


# --- Paddle inference models, mutated ------------------------------------------------------------


@pytest.fixture(scope="module")
def inference_parts() -> dict[str, bytes]:
    """A small inference model's files (both program formats) as bytes to mutate."""
    from tests.inference_models import legacy_program, params_bytes, pir_program, sample_tensors

    tensors = sample_tensors()
    return {"inference.pdiparams": params_bytes(tensors), "inference.json": pir_program(tensors).encode(),
            "inference.pdmodel": legacy_program(tensors)}


@SETTINGS
@given(part=st.sampled_from(["inference.pdiparams", "inference.json", "inference.pdmodel"]), data=st.data())
def test_mutated_inference_models(scratch, hostile_tally, inference_parts, part, data):
    """One byte flipped, a run cut out or the end cut off, in the parameters or either program: read as
    the program declares, or refused with weightport's own error."""
    folder = scratch / "inference"
    folder.mkdir(exist_ok=True)
    program = "inference.pdmodel" if part == "inference.pdmodel" else "inference.json"
    for name in ("inference.json", "inference.pdmodel"):
        (folder / name).unlink(missing_ok=True)
    original = inference_parts[part]
    cut = data.draw(st.integers(0, len(original) - 1))
    mutation = data.draw(st.sampled_from(["flip", "drop", "truncate"]))
    if mutation == "flip":
        mutated = original[:cut] + bytes([original[cut] ^ data.draw(st.integers(1, 255))]) + original[cut + 1:]
    elif mutation == "drop":
        mutated = original[:cut] + original[cut + data.draw(st.integers(1, 16)):]
    else:
        mutated = original[:cut]
    for name in ("inference.pdiparams", program):
        (folder / name).write_bytes(mutated if name == part else inference_parts[name])
    read_fully(folder, hostile_tally)
