"""Hostile and broken inputs, generated here (no binary blobs): every one is refused by every
command with exit code 2 and one line naming the file and the reason; nothing from a file runs,
no output file appears and an existing destination stays as it was.

The corpus is built once per session from the tiny test twins, so that a file whose structure is
intact but whose tensor bytes are not goes all the way to the point where those bytes are read.
"""
from __future__ import annotations

import builtins
import io
import json
import os
import pickle
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from weightport.formats import read_checkpoint, write_checkpoint
from weightport.formats.checkpoint import LazyTensor

HANG_LIMIT_S = 120  # a CLI run on one small file that takes longer than this is a hang


# --- writing pickles and archives by hand --------------------------------------------------------


class Global:
    """A global written into a pickle by name: nothing is imported, nothing can run here."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle insists that a reduce function be callable
        raise TypeError("only a name to write")


class Call:
    """Pickles as `func(*args)`, the way an attacker's file asks for a call."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args

    def __call__(self, *args):  # a call whose result is called in turn, e.g. getattr(...)(...)
        raise TypeError("only a call to write")


class Built(Call):
    """`func(*args)` then BUILD with `state`, the way numpy pickles arrays and dtypes."""

    def __init__(self, state, func, *args):
        super().__init__(func, *args)
        self.state = state

    def __reduce__(self):
        return self.func, self.args, self.state


PLAIN_DTYPE_STATE = (3, "<", None, None, None, -1, -1, 0)  # what numpy writes for a plain little-endian dtype


def numpy_array(shape, data: bytes, spec: str = "f4", dtype_state=PLAIN_DTYPE_STATE) -> Built:
    """A numpy array as numpy pickles it (protocols 2-4), with whatever shape, data and dtype state."""
    dtype = Built(dtype_state, Global("numpy", "dtype"), spec, False, True)
    reconstruct = Global("numpy._core.multiarray", "_reconstruct")
    return Built((1, shape, dtype, False, data), reconstruct, Global("numpy", "ndarray"), (0,), b"b")


@dataclass(frozen=True)
class StorageId:
    """A torch storage reference: `('storage', torch.<cls>, key, 'cpu', numel)` as a persistent id
    (the legacy format adds a sixth field, view metadata)."""

    cls: str
    key: str
    numel: int
    legacy: bool = False


class HandPickler(pickle._Pickler):
    """Pure-Python pickler that writes `Global`s by name and `StorageId`s as persistent ids."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_global_by_name(self, obj: Global) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())

    dispatch[Global] = save_global_by_name

    def persistent_id(self, obj):
        if isinstance(obj, StorageId):
            return ("storage", Global("torch", obj.cls), obj.key, "cpu", obj.numel) + ((None,) if obj.legacy else ())
        return None


def hand_pickle(obj, protocol: int = 2) -> bytes:
    buf = io.BytesIO()
    HandPickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


def tensor_call(storage: StorageId, offset, size, stride) -> Call:
    """`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` as torch.save writes it."""
    return Call(
        Global("torch._utils", "_rebuild_tensor_v2"), storage, offset, size, stride, False,
        Call(Global("collections", "OrderedDict")),
    )


def torch_zip(path: Path, pkl: bytes, storages: dict[str, bytes], root: str = "archive", extra=()) -> Path:
    """A zip laid out as torch.save lays it out, with whatever pickle and storages it is given."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{root}/data.pkl", pkl)
        zf.writestr(f"{root}/byteorder", "little")
        for key, data in storages.items():
            zf.writestr(f"{root}/data/{key}", data)
        for name, data in extra:
            zf.writestr(name, data)
        zf.writestr(f"{root}/version", "3\n")
    return path


def single_tensor_zip(path: Path, offset, size, stride, numel: int = 16, stored: int | None = None) -> Path:
    """A checkpoint {'w': tensor} over one float32 storage of `numel` elements (`stored` actually there)."""
    storage = StorageId("FloatStorage", "0", numel)
    pkl = hand_pickle({"w": tensor_call(storage, offset, size, stride)})
    data = np.arange(numel if stored is None else stored, dtype="<f4").tobytes()
    return torch_zip(path, pkl, {"0": data})


def legacy_file(path: Path, obj, storages: dict[str, bytes]) -> Path:
    """A file in torch's legacy format: magic number, protocol, system info, the object pickle
    (`obj` pickled, or given as bytes), the storage keys, then each storage as an int64 element
    count and its bytes."""
    import torch.serialization as ts

    sys_info = {"protocol_version": ts.PROTOCOL_VERSION, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    head = b"".join(pickle.dumps(v, protocol=2) for v in (ts.MAGIC_NUMBER, ts.PROTOCOL_VERSION, sys_info))
    body = (obj if isinstance(obj, bytes) else hand_pickle(obj)) + pickle.dumps(sorted(storages), protocol=2)
    data = b"".join(struct.pack("<q", len(storages[k]) // 4) + storages[k] for k in sorted(storages))
    return written(path, head + body + data)


def rezip(src: Path, dst: Path, rename: Callable[[str], str] = lambda n: n, replace=None, drop=()) -> Path:
    """Copy torch archive `src` to `dst`, renaming, replacing or dropping entries."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            if any(info.filename.endswith(d) for d in drop):
                continue
            suffix = next((s for s in replace if info.filename.endswith(s)), None)
            data = replace[suffix] if suffix else zin.read(info)
            zout.writestr(rename(info.filename), data)
    return dst


def storage_data_offset(path: Path, suffix: str) -> tuple[zipfile.ZipInfo, int]:
    """The entry ending in `suffix` and the file offset where its bytes start."""
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(suffix))
    raw = path.read_bytes()
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    return info, info.header_offset + 30 + name_len + extra_len


def central_entry_offset(raw: bytes, name: str) -> int:
    """Where the central-directory record of entry `name` starts."""
    return raw.rindex(b"PK\x01\x02", 0, raw.rindex(name.encode()))


def written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def flip(raw: bytes, position: int, bit: int = 0x10) -> bytes:
    data = bytearray(raw)
    data[position] ^= bit
    return bytes(data)


def safetensors_bytes(header, data: bytes = b"", header_len: int | None = None) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text) if header_len is None else header_len) + text + data


# --- the valid files the corpus starts from ------------------------------------------------------


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile-corpus")


@pytest.fixture(scope="session")
def corpus_canary(corpus_dir):
    """The file any payload in the corpus would create."""
    return corpus_dir / "canary-was-created"


@pytest.fixture(scope="session")
def valid_files(tmp_path_factory):
    """The tiny twins' weights as a torch zip, a legacy torch file, a .pdparams and a safetensors file."""
    import torch

    from tests.tiny_twins import torch_tiny
    from weightport.tables.layouts import model_layout

    folder = tmp_path_factory.mktemp("valid")
    torch.manual_seed(0)
    state = torch_tiny().state_dict()
    files = {"torch": folder / "tiny.pth", "torch-legacy": folder / "tiny-legacy.pth"}
    torch.save(state, files["torch"])
    torch.save(state, files["torch-legacy"], _use_new_zipfile_serialization=False)
    tensors = read_checkpoint(files["torch"]).tensors
    files["safetensors"] = write_checkpoint(folder / "tiny.safetensors", tensors.items())
    # The Paddle side, named and laid out as the Paddle twin wants it (the table's renames).
    from tests.tiny_twins import paddle_tiny

    paddle_layout = model_layout(paddle_tiny(), "paddle")
    rng = np.random.default_rng(0)
    arrays = {k: LazyTensor.of(rng.standard_normal(shape).astype(np.float32), "float32") for k, (shape, _) in paddle_layout.items()}
    files["paddle"] = write_checkpoint(folder / "tiny.pdparams", arrays.items())
    return files


# --- the corpus ----------------------------------------------------------------------------------

CORPUS: dict[str, tuple[Callable, str]] = {}


def entry(name: str, reason: str):
    """Register a corpus builder `(folder, canary, valid_files) -> path`; `reason` is a regex the
    one-line error must match."""

    def register(build):
        CORPUS[name] = (build, reason)
        return build

    return register


def _command(canary: Path) -> str:
    return f"touch {canary}"


REFUSED = "refused to load"

# Code that a pickle asks to run, through every entry point.


@entry("pth: os.system at the top", REFUSED)
def _(d, canary, valid):
    import torch

    path = d / "os-system.pth"
    torch.save(Call(os.system, _command(canary)), path)
    return path


@entry("pth: subprocess.Popen inside the state dict", REFUSED)
def _(d, canary, valid):
    import torch

    path = d / "popen.pth.tar"
    state = dict(torch.load(valid["torch"], weights_only=True))
    state["evil"] = Call(subprocess.Popen, ["touch", str(canary)])
    torch.save({"state_dict": state, "epoch": 3}, path)
    return path


@entry("pth: builtins.eval deep beside the weights", REFUSED)
def _(d, canary, valid):
    import torch

    path = d / "eval.pth"
    state = torch.load(valid["torch"], weights_only=True)
    torch.save({"model": state, "meta": [1, {"deep": (Call(builtins.eval, f"open({str(canary)!r}, 'w')"),)}]}, path)
    return path


@entry("pth: handwritten protocol-0 posix.system", REFUSED)
def _(d, canary, valid):
    pkl = f"cposix\nsystem\n(V{_command(canary)}\ntR.".encode()
    return torch_zip(d / "protocol0.pth", pkl, {})


@entry("pth: builtins.getattr(__import__('os'), 'system')", REFUSED)
def _(d, canary, valid):
    evil = Call(Call(Global("builtins", "getattr"), Call(Global("builtins", "__import__"), "os"), "system"), _command(canary))
    return torch_zip(d / "getattr.pth", hand_pickle({"w": evil}), {})


@entry("pth: a payload where the storage should be", REFUSED)
def _(d, canary, valid):
    evil = Call(Global("os", "system"), _command(canary))
    pkl = hand_pickle({"w": Call(Global("torch._utils", "_rebuild_tensor_v2"), evil, 0, (2,), (1,), False, None)})
    return torch_zip(d / "storage-payload.pth", pkl, {})


@entry("pth: numpy.load(allow_pickle=True) of a second file", REFUSED)
def _(d, canary, valid):
    inner = d / "inner.npy"
    np.save(inner, np.array([Call(os.system, _command(canary))], dtype=object), allow_pickle=True)
    evil = Call(Global("numpy", "load"), str(inner), None, True)
    return torch_zip(d / "numpy-load.pth", hand_pickle({"w": evil}), {})


@entry("pth: torch.load of itself without weights_only", REFUSED)
def _(d, canary, valid):
    evil = Call(Global("torch", "load"), str(d / "os-system.pth"), None, None, False)
    return torch_zip(d / "torch-load.pth", hand_pickle({"w": evil}), {})


@entry("pth: an unregistered pickle extension code", r"corrupt pickle")
def _(d, canary, valid):
    return torch_zip(d / "ext-code.pth", b"\x80\x02\x82\xfe.", {})


# The zip's pickle is run by pickle_scan, whose memo is a dict: the index costs nothing.
@entry("pth: a 12-byte pickle asking for a memo of 2**26 entries", r"holds a int, not a dict of tensors")
def _(d, canary, valid):
    return torch_zip(d / "memo-bomb.pth", b"\x80\x02K\x01r" + struct.pack("<I", 1 << 26) + b".", {})


@entry("pth: a byte string claiming 8 GB in a tiny pickle", r"expected 8589934592 bytes")
def _(d, canary, valid):
    return torch_zip(d / "bytes8.pth", b"\x80\x04\x8e" + struct.pack("<Q", 1 << 33) + b"abc.", {})


@entry("legacy pth: a memo of 2**26 entries asked for by the object pickle", r"memo index")
def _(d, canary, valid):
    return legacy_file(d / "legacy-memo-bomb.pt", b"\x80\x02K\x01r" + struct.pack("<I", 1 << 26) + b".", {})


@entry("legacy pth: os.system at the top", REFUSED)
def _(d, canary, valid):
    import torch

    path = d / "legacy-os-system.pt"
    torch.save(Call(os.system, _command(canary)), path, _use_new_zipfile_serialization=False)
    return path


@entry("legacy pth: builtins.exec inside the state dict", REFUSED)
def _(d, canary, valid):
    import torch

    path = d / "legacy-exec.pth"
    state = dict(torch.load(valid["torch"], weights_only=True))
    state["x"] = Call(builtins.exec, f"open({str(canary)!r}, 'w').close()")
    torch.save({"state_dict": state}, path, _use_new_zipfile_serialization=False)
    return path


@entry("pdparams: os.system at the top", REFUSED)
def _(d, canary, valid):
    return written(d / "os-system.pdparams", pickle.dumps(Call(os.system, _command(canary)), protocol=4))


@entry("pdparams: builtins.exec beside the state dict", REFUSED)
def _(d, canary, valid):
    path = d / "exec.pdparams"
    weights = {"w": np.ones(2, dtype=np.float32)}
    path.write_bytes(pickle.dumps({"state_dict": weights, "x": [Call(builtins.exec, "import os")]}, protocol=2))
    return path


@entry("pdparams: numpy _reconstruct of posix.system", REFUSED)
def _(d, canary, valid):
    evil = Call(Global("numpy._core.multiarray", "_reconstruct"), Global("posix", "system"), (0,), _command(canary).encode())
    return written(d / "reconstruct.pdparams", hand_pickle({"w": evil}, protocol=4))


@entry("pdparams: copyreg._reconstructor", REFUSED)
def _(d, canary, valid):
    evil = Call(Global("copyreg", "_reconstructor"), Global("subprocess", "Popen"), Global("builtins", "object"), None)
    return written(d / "copyreg.pdparams", hand_pickle({"w": evil}, protocol=2))


@entry("pdparams: INST opcode calling os.system", REFUSED)
def _(d, canary, valid):
    return written(d / "inst.pdparams", b"\x80\x02" + f"(V{_command(canary)}\nios\nsystem\n.".encode())


@entry("pdparams: __builtin__.eval, the Python 2 name", REFUSED)
def _(d, canary, valid):
    return written(d / "py2-eval.pdparams", b"\x80\x02" + f"c__builtin__\neval\n(Vopen({str(canary)!r}, 'w')\ntR.".encode())


@entry("pdparams: object array", r"refused|object")
def _(d, canary, valid):
    return written(d / "object-array.pdparams", pickle.dumps({"w": np.array([1, "a"], dtype=object)}, protocol=4))


@entry("pdparams: structured dtype", r"not a tensor element type|corrupt pickle")
def _(d, canary, valid):
    return written(d / "structured.pdparams", pickle.dumps({"w": np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")])}, protocol=4))


@entry("pdparams: array claiming 2**40 elements", r"corrupt pickle|without data")
def _(d, canary, valid):
    huge = Call(Global("numpy._core.multiarray", "_reconstruct"), Global("numpy", "ndarray"), (1 << 40,), b"b")
    return written(d / "huge-array.pdparams", hand_pickle({"w": huge}, protocol=4))


@entry("pdparams: an array of 100 dimensions", r"dimensions")
def _(d, canary, valid):
    return written(d / "many-dims.pdparams", hand_pickle({"w": numpy_array((1,) * 100, b"\x00" * 4)}, protocol=4))


@entry("pdparams: an empty array with a dimension of 2**62", r"too large to describe")
def _(d, canary, valid):
    return written(d / "empty-huge.pdparams", hand_pickle({"w": numpy_array((0, 1 << 62), b"")}, protocol=4))


@entry("pdparams: a timedelta dtype whose pickled state crashes numpy's own unpickling", r"not a tensor element type")
def _(d, canary, valid):
    return written(d / "timedelta.pdparams", hand_pickle({"w": numpy_array((1,), b"\x00" * 8, spec="m8")}, protocol=4))


@entry("pdparams: a dtype state with a dict for a subarray (crashes numpy's own unpickling)", r"malformed numpy dtype")
def _(d, canary, valid):
    state = (4, "|", {"a": 1}, 1, 4, -1)
    return written(d / "dtype-state.pdparams", hand_pickle({"w": numpy_array((1,), b"\x00" * 4, dtype_state=state)}, protocol=4))


@entry("pdparams: split-array table naming absent parts", r"split-array")
def _(d, canary, valid):
    path = d / "split.pdparams"
    content = {"a@@.0": np.ones(2, dtype=np.float32), "UnpackBigParamInfor@@": {"a": {"OriginShape": [4], "slices": ["a@@.0", "a@@.1"]}}}
    path.write_bytes(pickle.dumps(content, protocol=2))
    return path


@entry("pdparams: truncated", r"corrupt pickle")
def _(d, canary, valid):
    return written(d / "truncated.pdparams", valid["paddle"].read_bytes()[: valid["paddle"].stat().st_size // 2])


@entry("pdparams: bytes instead of arrays", r"no dict of tensors")
def _(d, canary, valid):
    return written(d / "bytes.pdparams", pickle.dumps({"w": b"\x00" * 16, "b": "text"}, protocol=4))


# Broken archives.


@entry("pth: truncated to half", r"zip|truncated")
def _(d, canary, valid):
    return written(d / "half.pth", valid["torch"].read_bytes()[: valid["torch"].stat().st_size // 2])


@entry("pth: central directory cut off", r"zip")
def _(d, canary, valid):
    path = d / "no-central-directory.pth"
    raw = valid["torch"].read_bytes()
    path.write_bytes(raw[: raw.rindex(b"PK\x01\x02", 0, raw.index(b"PK\x05\x06")) - 1])
    return path


@entry("pth: last byte missing", r"zip")
def _(d, canary, valid):
    return written(d / "one-short.pth", valid["torch"].read_bytes()[:-1])


@entry("pth: a flipped bit inside a tensor's bytes", r"CRC mismatch in tiny/data/7")
def _(d, canary, valid):
    path = d / "flipped-tensor-bit.pth"
    _, start = storage_data_offset(valid["torch"], "/data/7")  # square.weight
    path.write_bytes(flip(valid["torch"].read_bytes(), start + 37))
    return path


@entry("pth: a flipped bit inside the pickle", r"data\.pkl|CRC|corrupt")
def _(d, canary, valid):
    path = d / "flipped-pickle-bit.pth"
    _, start = storage_data_offset(valid["torch"], "/data.pkl")
    path.write_bytes(flip(valid["torch"].read_bytes(), start + 40))
    return path


@entry("pth: the central directory lies about a CRC", r"CRC mismatch")
def _(d, canary, valid):
    raw = valid["torch"].read_bytes()
    record = central_entry_offset(raw, "tiny/data/0")
    return written(d / "lying-crc.pth", flip(raw, record + 16))  # the CRC-32 field


@entry("pth: the central directory points at the wrong local header", r"corrupt zip entry|zip")
def _(d, canary, valid):
    raw = valid["torch"].read_bytes()
    record = central_entry_offset(raw, "tiny/data/3")
    return written(d / "wrong-header-offset.pth", raw[: record + 42] + struct.pack("<I", 3) + raw[record + 46 :])


@entry("pth: the encrypted flag set on the pickle", r"encrypted|cannot read|zip")
def _(d, canary, valid):
    raw = valid["torch"].read_bytes()
    record = central_entry_offset(raw, "tiny/data.pkl")
    return written(d / "encrypted.pth", flip(raw, record + 8, 0x01))


@entry("pth: names climbing out with ../", r"unsafe entry name")
def _(d, canary, valid):
    return rezip(valid["torch"], d / "traversal.pth", rename=lambda n: n.replace("tiny/", "../", 1))


def with_extra_entry(src: Path, dst: Path, name: str, data: bytes) -> Path:
    """A copy of archive `src` with one more entry appended."""
    import warnings

    path = rezip(src, dst)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns when asked to write a name twice
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr(name, data)
    return path


@entry("pth: an absolute entry name beside a valid archive", r"unsafe entry name")
def _(d, canary, valid):
    return with_extra_entry(valid["torch"], d / "absolute-extra.pth", "/etc/cron.d/evil", b"* * * * * root touch /tmp/x\n")


@entry("pth: a ../ entry hidden deep in the archive", r"unsafe entry name")
def _(d, canary, valid):
    return with_extra_entry(valid["torch"], d / "deep-traversal.pth", "tiny/data/../../../home/evil", b"x")


@entry("pth: a backslash path in an entry name", r"unsafe entry name")
def _(d, canary, valid):
    return with_extra_entry(valid["torch"], d / "backslash.pth", "tiny\\..\\..\\evil.dll", b"x")


@entry("pth: two entries with the same name", r"twice")
def _(d, canary, valid):
    return with_extra_entry(valid["torch"], d / "duplicate.pth", "tiny/data/0", b"\x00" * 648)


@entry("pth: a zip that is not a torch checkpoint", r"data\.pkl")
def _(d, canary, valid):
    path = d / "plain.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    return path


@entry("pth: a storage entry missing", r"data/0 is missing")
def _(d, canary, valid):
    return rezip(valid["torch"], d / "missing-storage.pth", drop=("/data/0",))


@entry("pth: a storage longer than its elements", r"holds 1024 bytes, but")
def _(d, canary, valid):
    return single_tensor_zip(d / "long-storage.pth", 0, (4,), (1,), numel=16, stored=256)


@entry("pth: a storage shorter than its tensor", r"holds 100 bytes, but")
def _(d, canary, valid):
    return rezip(valid["torch"], d / "short-storage.pth", replace={"/data/0": b"\x00" * 100})


@entry("pth: a storage claiming 10**12 elements", r"holds 64 bytes, but")
def _(d, canary, valid):
    return single_tensor_zip(d / "huge-storage.pth", 0, (4,), (1,), numel=10**12, stored=16)


@entry("pth: a storage with a negative size", r"negative size")
def _(d, canary, valid):
    return single_tensor_zip(d / "negative-storage.pth", 0, (4,), (1,), numel=-4, stored=16)


@entry("pth: a storage of an unknown type", REFUSED)
def _(d, canary, valid):
    pkl = hand_pickle({"w": tensor_call(StorageId("ComplexFloatStorage", "0", 4), 0, (4,), (1,))})
    return torch_zip(d / "complex.pth", pkl, {"0": b"\x00" * 32})


@entry("pth: a storage key that climbs out", r"storage key|missing")
def _(d, canary, valid):
    pkl = hand_pickle({"w": tensor_call(StorageId("FloatStorage", "../data.pkl", 2), 0, (2,), (1,))})
    return torch_zip(d / "storage-key.pth", pkl, {"0": b"\x00" * 8})


# Absurd layouts.


@entry("layout: negative size", r"invalid layout")
def _(d, canary, valid):
    return single_tensor_zip(d / "negative-size.pth", 0, (-4, 4), (4, 1))


@entry("layout: negative offset", r"invalid layout")
def _(d, canary, valid):
    return single_tensor_zip(d / "negative-offset.pth", -8, (4,), (1,))


@entry("layout: negative stride", r"invalid layout")
def _(d, canary, valid):
    return single_tensor_zip(d / "negative-stride.pth", 15, (4,), (-1,))


@entry("layout: a shape whose product overflows int64", r"too large to describe")
def _(d, canary, valid):
    return single_tensor_zip(d / "overflow.pth", 0, (1 << 32, 1 << 32), (1, 1))


@entry("layout: 2**40 elements over stride 0 (an expanded view)", r"more elements")
def _(d, canary, valid):
    return single_tensor_zip(d / "stride-zero.pth", 0, (1 << 20, 1 << 20), (0, 0))


@entry("layout: strides pointing outside the storage", r"reaches element")
def _(d, canary, valid):
    return single_tensor_zip(d / "stride-outside.pth", 0, (4, 4), (100, 1))


@entry("layout: offset past the end of the storage", r"reaches element")
def _(d, canary, valid):
    return single_tensor_zip(d / "offset-outside.pth", 1000, (4,), (1,))


@entry("layout: size and stride of different lengths", r"invalid layout")
def _(d, canary, valid):
    return single_tensor_zip(d / "rank-mismatch.pth", 0, (4, 4), (1,))


@entry("layout: a fractional size", r"malformed")
def _(d, canary, valid):
    return single_tensor_zip(d / "float-size.pth", 0, (2.5,), (1,))


@entry("layout: 100 dimensions", r"dimensions")
def _(d, canary, valid):
    return single_tensor_zip(d / "many-dims.pth", 0, (1,) * 100, (1,) * 100)


@entry("legacy pth: a storage claiming 10**12 elements", r"storages need")
def _(d, canary, valid):
    storage = StorageId("FloatStorage", "0", 10**12, legacy=True)
    return legacy_file(d / "legacy-huge.pt", {"w": tensor_call(storage, 0, (4,), (1,))}, {"0": b"\x00" * 16})


@entry("legacy pth: a tensor reaching outside its storage", r"reaches element")
def _(d, canary, valid):
    storage = StorageId("FloatStorage", "0", 4, legacy=True)
    return legacy_file(d / "legacy-outside.pt", {"w": tensor_call(storage, 2, (4,), (1,))}, {"0": b"\x00" * 16})


@entry("legacy pth: truncated", r"legacy|storages need")
def _(d, canary, valid):
    return written(d / "legacy-truncated.pt", valid["torch-legacy"].read_bytes()[:-100])


# safetensors that lie.


def _st_valid(valid) -> tuple[dict, bytes]:
    raw = valid["safetensors"].read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


@entry("safetensors: header longer than the file", r"header claims")
def _(d, canary, valid):
    header, data = _st_valid(valid)
    return written(d / "long-header.safetensors", safetensors_bytes(header, data, header_len=10**6))


@entry("safetensors: a gigantic header", r"header claims")
def _(d, canary, valid):
    return written(d / "gigantic-header.safetensors", struct.pack("<Q", 1 << 62) + b"{" + b" " * 64)


@entry("safetensors: header not JSON", r"not valid JSON")
def _(d, canary, valid):
    return written(d / "not-json.safetensors", safetensors_bytes(b"{not json at all"))


@entry("safetensors: header nested 100000 deep", r"not valid JSON|nested")
def _(d, canary, valid):
    return written(d / "deep.safetensors", safetensors_bytes(b"{" + b'"a":' + b"[" * 100000 + b"]" * 100000 + b"}"))


@entry("safetensors: a number of 100000 digits", r"not valid JSON")
def _(d, canary, valid):
    header = b'{"a": {"dtype": "F32", "shape": [' + b"9" * 100000 + b'], "data_offsets": [0, 0]}}'
    return written(d / "long-number.safetensors", safetensors_bytes(header))


@entry("safetensors: offsets past the end", r"claims bytes")
def _(d, canary, valid):
    header, data = _st_valid(valid)
    name = next(k for k in header if k != "__metadata__")
    header[name]["data_offsets"][1] += 10**9
    return written(d / "past-end.safetensors", safetensors_bytes(header, data))


@entry("safetensors: two tensors on the same bytes", r"overlaps")
def _(d, canary, valid):
    path = d / "overlap.safetensors"
    header = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
    path.write_bytes(safetensors_bytes(header, b"\x00" * 16))
    return path


@entry("safetensors: bytes nobody claims", r"unused")
def _(d, canary, valid):
    path = d / "gap.safetensors"
    header = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}
    path.write_bytes(safetensors_bytes(header, b"\x00" * 16))
    return path


@entry("safetensors: a dtype that lies about the byte count", r"bytes for shape")
def _(d, canary, valid):
    header, data = _st_valid(valid)
    name = next(k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32")
    header[name]["dtype"] = "F64"
    return written(d / "lying-dtype.safetensors", safetensors_bytes(header, data))


@entry("safetensors: an unknown dtype", r"malformed safetensors entry")
def _(d, canary, valid):
    header = {"a": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}
    return written(d / "unknown-dtype.safetensors", safetensors_bytes(header, b"\x00" * 8))


@entry("safetensors: a negative shape", r"malformed safetensors entry")
def _(d, canary, valid):
    header = {"a": {"dtype": "F32", "shape": [-1, -4], "data_offsets": [0, 16]}}
    return written(d / "negative-shape.safetensors", safetensors_bytes(header, b"\x00" * 16))


@entry("safetensors: offsets the wrong way round", r"claims bytes")
def _(d, canary, valid):
    header = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}}
    return written(d / "reversed.safetensors", safetensors_bytes(header, b"\x00" * 16))


@entry("safetensors: a tensor named twice", r"twice")
def _(d, canary, valid):
    path = d / "twice.safetensors"
    one = b'"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}'
    path.write_bytes(safetensors_bytes(b"{" + one + b", " + one + b"}", b"\x00" * 4))
    return path


@entry("safetensors: a shape of 100 dimensions", r"dimensions")
def _(d, canary, valid):
    header = {"a": {"dtype": "F32", "shape": [1] * 100, "data_offsets": [0, 4]}}
    return written(d / "many-dims.safetensors", safetensors_bytes(header, b"\x00" * 4))


# Not checkpoints at all, or not what their name says.


@entry("empty .pth", r"the file is empty")
def _(d, canary, valid):
    return written(d / "empty.pth", b"")


@entry("empty .pdparams", r"the file is empty")
def _(d, canary, valid):
    return written(d / "empty.pdparams", b"")


@entry("empty .safetensors", r"the file is empty")
def _(d, canary, valid):
    return written(d / "empty.safetensors", b"")


@entry("a directory named like a checkpoint", r"is a folder without a checkpoint")
def _(d, canary, valid):
    path = d / "folder.pth"
    path.mkdir()
    return path


@entry("a named pipe that nobody writes to", r"not a regular file")
def _(d, canary, valid):
    path = d / "fifo.pth"
    os.mkfifo(path)
    return path


@entry("a symbolic link loop", r"cannot read|no such file|symbolic links")
def _(d, canary, valid):
    a, b = d / "loop-a.pth", d / "loop-b.pth"
    os.symlink(b, a)
    os.symlink(a, b)
    return a


@entry("text with a .pth name", r"unknown file format")
def _(d, canary, valid):
    path = d / "text.pth"
    path.write_text("this is not a checkpoint\n" * 10)
    return path


# A valid file of one format under another format's name.
for _fmt, _name in {
    "paddle": "paddle-as.pth",
    "torch": "torch-as.pdparams",
    "safetensors": "safetensors-as.pth",
    "torch-legacy": "legacy-as.safetensors",
}.items():
    entry(f"a {_fmt} file named {_name}", rf"not what its \{Path(_name).suffix} extension says")(
        lambda d, canary, valid, fmt=_fmt, name=_name: Path(shutil.copy(valid[fmt], d / name))
    )


# --- running every command on every entry -------------------------------------------------------

MODEL = "tiny_test_net"


@pytest.fixture(scope="session")
def build_entry(corpus_dir, corpus_canary, valid_files):
    """Builds a corpus entry on first use (the session's files are shared by every command)."""
    built: dict[str, Path] = {}

    def build(name: str) -> Path:
        if name not in built:
            built[name] = CORPUS[name][0](corpus_dir, corpus_canary, valid_files)
        return built[name]

    return build


def _side(path: Path) -> str:
    return "paddle" if path.name.endswith(".pdparams") else "torch"


def commands(path: Path, out: Path) -> dict[str, list[str]]:
    """Every command that reads a checkpoint, each asked to read `path`."""
    side = _side(path)
    dst = out / ("converted.pth" if side == "paddle" else "converted.pdparams")
    return {
        "inspect": ["inspect", str(path)],
        "inspect --json": ["inspect", "--json", str(path)],
        "convert": ["convert", MODEL, str(path), str(dst)],
        "convert --force over a file": ["convert", MODEL, str(path), str(dst), "--force"],
        "verify": [
            "verify", MODEL, f"--{side}", str(path), "--device", "cpu", "--batch-size", "1",
            "--json-file", str(out / "report.json"), "--junit", str(out / "report.xml"),
        ],
    }


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f"no answer within {HANG_LIMIT_S} s")


def invoke(args: list[str]):
    """The CLI in this process (so that the whole corpus stays fast), with a hang guard."""
    from click.testing import CliRunner

    from weightport.cli import cli

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_LIMIT_S)
    try:
        return CliRunner().invoke(cli, args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def assert_refused(result, path: Path, reason: str) -> None:
    """Exit code 2, no traceback, exactly one line on stderr naming the file and matching `reason`."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.output}"
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and str(path) in lines[0], lines[0]
    assert re.search(reason, lines[0]), lines[0]


@pytest.mark.parametrize("name", list(CORPUS))
def test_every_command_refuses_every_entry(name, build_entry, corpus_canary, tiny_model, tmp_path, hostile_tally):
    path = build_entry(name)
    reason = CORPUS[name][1]
    hostile_tally["tried"].add(name)
    for label, args in commands(path, tmp_path).items():
        dst = Path(args[3]) if args[0] == "convert" else None
        if label.startswith("convert --force"):
            dst.write_bytes(b"precious")
        result = invoke(args)
        hostile_tally["runs"] += 1
        assert_refused(result, path, reason)
        assert not corpus_canary.exists(), f"{label}: code from the file ran"
        left = sorted(p.name for p in tmp_path.iterdir())
        if label.startswith("convert --force"):
            assert left == [dst.name] and dst.read_bytes() == b"precious", f"{label} changed the destination"
            dst.unlink()
        else:
            assert left == [], f"{label} left {left}"
    hostile_tally["refused"].add(name)


CODE_EXECUTION = [name for name, (_, reason) in CORPUS.items() if reason == REFUSED]


@pytest.mark.parametrize("name", CODE_EXECUTION)
def test_payloads_do_not_run_in_a_real_process(name, build_entry, corpus_canary):
    """The same refusal from the installed command in its own process: exit 2, one line, no canary."""
    path = build_entry(name)
    result = subprocess.run(
        [sys.executable, "-m", "weightport", "inspect", str(path)], capture_output=True, text=True, timeout=HANG_LIMIT_S
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"Error: {path}: refused to load"), result.stderr
    assert not corpus_canary.exists()


def test_the_valid_files_are_accepted(valid_files, tiny_model, tmp_path):
    """The corpus's starting points are good files: the refusals come from what was broken."""
    for fmt, path in valid_files.items():
        ckpt = read_checkpoint(path)
        assert ckpt.format == fmt and all(t.load().shape == t.shape for t in ckpt.tensors.values())
    result = invoke(["convert", MODEL, str(valid_files["torch"]), str(tmp_path / "ok.pdparams"), "--quiet"])
    assert result.exit_code == 0, result.output + result.stderr
    result = invoke(["convert", MODEL, str(valid_files["paddle"]), str(tmp_path / "ok.pth"), "--quiet"])
    assert result.exit_code == 0, result.output + result.stderr


# --- non-finite weights: accepted, and reported ----------------------------------------------------


@pytest.mark.parametrize("ext", ["pth", "pdparams", "safetensors"])
def test_non_finite_weights_are_reported_by_inspect(tmp_path, ext):
    from weightport.formats.dtypes import float32_to_bfloat16

    values = np.array([1.0, np.nan, np.inf, -np.inf, 2.0], dtype=np.float32)
    tensors = {
        "f32": LazyTensor.of(values, "float32"),
        "bf16": LazyTensor.of(float32_to_bfloat16(values), "bfloat16"),
        "f16": LazyTensor.of(values.astype(np.float16), "float16"),
        "fine": LazyTensor.of(np.ones(3, dtype=np.float32), "float32"),
        "count": LazyTensor.of(np.array(3, dtype=np.int64), "int64"),
    }
    path = write_checkpoint(tmp_path / f"nan.{ext}", tensors.items())
    result = invoke(["inspect", "--json", str(path)])
    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads(result.output)
    assert report["non_finite"] == {k: {"nan": 1, "inf": 2} for k in ("f32", "bf16", "f16")}
    text = invoke(["inspect", str(path)]).output
    assert "non-finite values" in text and "f32 (1 NaN, 2 Inf)" in text


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # Inf - Inf in the comparison
def test_non_finite_weights_are_reported_by_verify(valid_files, tiny_model, tmp_path):
    ckpt = read_checkpoint(valid_files["torch"])
    tensors = dict(ckpt.tensors)
    bias = tensors["head.bias"].load().copy()
    bias[0], bias[1] = np.nan, np.inf
    tensors["head.bias"] = LazyTensor.of(bias, "float32")
    path = write_checkpoint(tmp_path / "nan.pth", tensors.items())
    result = invoke(["verify", MODEL, "--torch", str(path), "--device", "cpu", "--batch-size", "1", "--json"])
    assert result.exit_code == 1, result.output + result.stderr  # NaN outputs fail the gate; not an input error
    report = json.loads(result.output)
    assert report["models"][0]["non_finite_weights"] == {"head.bias": {"nan": 1, "inf": 1}}
    table = invoke(["verify", MODEL, "--torch", str(path), "--device", "cpu", "--batch-size", "1"]).output
    assert "non-finite values in 1 weight tensors" in table


# --- destinations: races, full disks ---------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet18_checkpoint(tmp_path_factory):
    """resnet18's torch layout with seeded values, written by weightport (no framework needed)."""
    from weightport.models.pair import expected_layout

    rng = np.random.default_rng(0)
    tensors = {}
    for key, (shape, dtype) in expected_layout("resnet18", "torch").items():
        if dtype == "float32":
            tensors[key] = LazyTensor.of(rng.standard_normal(shape).astype(np.float32), dtype)
        else:
            tensors[key] = LazyTensor.of(np.zeros(shape, dtype=np.int64), dtype)
    return write_checkpoint(tmp_path_factory.mktemp("r18") / "resnet18.pth", tensors.items())


def _convert_process(src: Path, dst: Path, *extra: str, preexec=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "weightport", "convert", "resnet18", str(src), str(dst), "--quiet", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=preexec,
    )


def _assert_complete(dst: Path, src: Path) -> None:
    """`dst` is a whole conversion of `src`: every tensor there, every byte right."""
    from weightport.conversion import convert_tensors

    expected, _ = convert_tensors("resnet18", read_checkpoint(src).tensors, "paddle")
    got = read_checkpoint(dst).tensors
    assert list(got) == list(expected)
    for key, tensor in expected.items():
        np.testing.assert_array_equal(got[key].load(), tensor.load())


@pytest.mark.parametrize("force", [False, True])
def test_racing_conversions_leave_one_complete_file(resnet18_checkpoint, tmp_path, force):
    dst = tmp_path / "raced.pdparams"
    processes = [_convert_process(resnet18_checkpoint, dst, *(["--force"] if force else [])) for _ in range(3)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in processes]
    for p in processes:
        p.stdout.close()
        p.stderr.close()
    codes = sorted(rc for rc, _ in results)
    assert all("Traceback" not in err for _, err in results), results
    if force:
        assert codes == [0, 0, 0], results
    else:  # exactly one wins; the others are told the destination exists
        assert codes == [0, 2, 2], results
        assert all("already exists" in err for rc, err in results if rc == 2)
    _assert_complete(dst, resnet18_checkpoint)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raced.pdparams"]


def _file_size_limit(limit: int):
    def apply():
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("ext", ["pdparams", "safetensors"])
def test_a_full_disk_leaves_no_partial_file(resnet18_checkpoint, tmp_path, ext):
    """A real 'file too large' from the kernel (RLIMIT_FSIZE) half way through the write."""
    dst = tmp_path / f"out.{ext}"
    extra = ["--to", "paddle"] if ext == "safetensors" else []
    process = _convert_process(resnet18_checkpoint, dst, *extra, preexec=_file_size_limit(1 << 20))
    out, err = process.communicate(timeout=300)
    assert process.returncode == 2, out + err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"Error: {dst}: cannot write") and "File too large" in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_leaves_an_existing_destination_untouched(resnet18_checkpoint, tmp_path):
    dst = tmp_path / "out.pdparams"
    dst.write_bytes(b"precious")
    process = _convert_process(resnet18_checkpoint, dst, "--force", preexec=_file_size_limit(1 << 20))
    _, err = process.communicate(timeout=300)
    assert process.returncode == 2 and "File too large" in err, err
    assert dst.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.pdparams"]


@pytest.mark.parametrize("existing", [False, True])
def test_a_full_file_system_leaves_no_partial_file(resnet18_checkpoint, tmp_path, existing):
    """A real 'No space left on device': a 1 MiB tmpfs mounted in a private mount namespace
    (where the system allows one), with or without an existing destination to overwrite."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare here")
    folder = tmp_path / "tiny-fs"
    folder.mkdir()
    mount = f"mount -t tmpfs -o size=1m tmpfs {shlex.quote(str(folder))}"
    if subprocess.run(["unshare", "-m", "sh", "-c", mount], capture_output=True).returncode != 0:
        pytest.skip("no private mount namespace here (unshare -m)")
    dst = folder / "out.pdparams"
    command = [sys.executable, "-m", "weightport", "convert", "resnet18", str(resnet18_checkpoint), str(dst), "--quiet"]
    script = "\n".join([
        mount,
        f"printf precious > {shlex.quote(str(dst))}" if existing else "true",
        shlex.join(command + (["--force"] if existing else [])),
        'echo "rc=$?"',
        f"ls -A {shlex.quote(str(folder))}",
        f"cat {shlex.quote(str(dst))} 2>/dev/null",
    ])
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    assert "rc=2" in result.stdout, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"Error: {dst}: cannot write") and "No space left on device" in result.stderr
    listing = result.stdout.split("rc=2", 1)[1].split()
    assert listing == (["out.pdparams", "precious"] if existing else []), result.stdout


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
def test_an_unwritable_folder_is_a_clear_error(resnet18_checkpoint, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "weightport", "convert", "resnet18", str(resnet18_checkpoint), str(folder / "x.pdparams")],
            capture_output=True, text=True,
        )
    finally:
        folder.chmod(0o700)
    assert result.returncode == 2 and "Permission denied" in result.stderr, result.stderr
    assert list(folder.iterdir()) == []


def test_a_destination_whose_folder_is_a_file(resnet18_checkpoint, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    result = invoke(["convert", "resnet18", str(resnet18_checkpoint), str(blocker / "x.pdparams")])
    assert result.exit_code == 2 and "does not exist" in result.stderr, result.stderr


# --- --unsafe-pickle: off by default, loud, and really unrestricted -------------------------------


def _warning_line(result, path: Path, loader: str) -> None:
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"Warning: unpickling {path} without restrictions ({loader});"), result.stderr


def test_unsafe_pickle_reads_a_whole_saved_module(tmp_path):
    import torch

    path = tmp_path / "whole-module.pth"
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 3)), path)
    refused = invoke(["inspect", str(path)])
    assert_refused(refused, path, r"refused to load: the pickle asks for torch\.nn\.modules\.container\.Sequential")
    assert "--unsafe-pickle" in refused.stderr
    trusted = invoke(["inspect", "--json", "--unsafe-pickle", str(path)])
    assert trusted.exit_code == 0, trusted.stderr
    _warning_line(trusted, path, "torch.load(weights_only=False)")
    assert [k["name"] for k in json.loads(trusted.stdout)["keys"]] == ["0.weight", "0.bias"]


def test_unsafe_pickle_converts_and_verifies_only_with_the_flag(valid_files, tiny_model, tmp_path):
    import collections

    import torch

    path = tmp_path / "with-counter.pth.tar"
    state = torch.load(valid_files["torch"], weights_only=True)
    torch.save({"state_dict": state, "classes_seen": collections.Counter(a=3)}, path)
    dst = tmp_path / "out.pdparams"
    assert_refused(invoke(["convert", MODEL, str(path), str(dst)]), path, r"asks for collections\.Counter")
    assert not dst.exists()
    converted = invoke(["convert", MODEL, str(path), str(dst), "--quiet", "--unsafe-pickle"])
    assert converted.exit_code == 0, converted.stderr
    _warning_line(converted, path, "torch.load(weights_only=False)")
    plain = tmp_path / "plain.pdparams"
    assert invoke(["convert", MODEL, str(valid_files["torch"]), str(plain), "--quiet"]).exit_code == 0
    assert dst.read_bytes() == plain.read_bytes()
    verify = ["verify", MODEL, "--torch", str(path), "--device", "cpu", "--batch-size", "1"]
    assert_refused(invoke(verify), path, r"asks for collections\.Counter")
    verified = invoke([*verify, "--unsafe-pickle"])
    assert verified.exit_code == 0, verified.output + verified.stderr
    _warning_line(verified, path, "torch.load(weights_only=False)")


def test_unsafe_pickle_reads_pdparams_with_plain_pickle(tmp_path):
    import collections

    path = tmp_path / "with-counter.pdparams"
    content = {"state_dict": {"w": np.ones(3, dtype=np.float32)}, "meta": collections.Counter(a=1)}
    path.write_bytes(pickle.dumps(content, protocol=4))
    assert_refused(invoke(["inspect", str(path)]), path, r"asks for collections\.Counter")
    trusted = invoke(["inspect", "--json", "--unsafe-pickle", str(path)])
    assert trusted.exit_code == 0, trusted.stderr
    _warning_line(trusted, path, "pickle.load")
    assert json.loads(trusted.stdout)["keys"] == [{"name": "w", "shape": [3], "dtype": "float32"}]


@pytest.mark.slow
def test_unsafe_pickle_really_runs_code_which_is_why_it_is_never_the_default(tmp_path, canary):
    """The flag is an honest opt-out: a payload in a trusted file runs (here, harmlessly)."""
    import torch

    path = tmp_path / "payload.pth"
    torch.save(Call(os.system, _command(canary)), path)
    result = subprocess.run(
        [sys.executable, "-m", "weightport", "inspect", "--unsafe-pickle", str(path)], capture_output=True, text=True
    )
    assert canary.exists()
    assert result.stderr.startswith(f"Warning: unpickling {path} without restrictions"), result.stderr
    assert result.returncode == 2 and "not a dict of tensors" in result.stderr  # os.system returned an int


def test_the_hand_written_files_are_right_when_nothing_is_wrong(tmp_path):
    """The builders that make the corpus's layouts write files torch reads: what weightport refuses
    there is the lie in them, not a slip of the builder."""
    import torch

    values = np.arange(16, dtype="<f4")
    zipped = single_tensor_zip(tmp_path / "ok.pth", 2, (3, 4), (4, 1))
    legacy = legacy_file(
        tmp_path / "ok.pt", {"w": tensor_call(StorageId("FloatStorage", "0", 16, legacy=True), 2, (3, 4), (4, 1))},
        {"0": values.tobytes()},
    )
    expected = values[2:14].reshape(3, 4)
    for path in (zipped, legacy):
        np.testing.assert_array_equal(torch.load(path, weights_only=True)["w"].numpy(), expected)
        np.testing.assert_array_equal(read_checkpoint(path).tensors["w"].load(), expected)
    array = written(tmp_path / "ok.pdparams", hand_pickle({"w": numpy_array((2, 3), values[:6].tobytes())}, protocol=4))
    np.testing.assert_array_equal(pickle.loads(array.read_bytes())["w"], values[:6].reshape(2, 3))
    np.testing.assert_array_equal(read_checkpoint(array).tensors["w"].load(), values[:6].reshape(2, 3))


@pytest.mark.parametrize("kind, suffix", [("torch", ".pth"), ("torch-legacy", ".pt"), ("paddle", ".pdparams")])
@pytest.mark.slow
def test_a_list_shared_2_to_the_40_times_is_read_at_once(tmp_path, kind, suffix):
    """'Billion laughs': a few hundred bytes of pickle can reference one list 2**40 times through
    its memo; a reader that walks what it unpickled must visit each object once, or never finish."""
    import torch

    shared = [1]
    for _ in range(40):
        shared = [shared, shared]
    weights = {"w": torch.ones(2) if kind != "paddle" else np.ones(2, dtype=np.float32)}
    path = tmp_path / f"laughs{suffix}"
    if kind == "paddle":
        path.write_bytes(pickle.dumps({"state_dict": weights, "meta": shared}, protocol=4))
    else:
        torch.save({"state_dict": weights, "meta": shared}, path, _use_new_zipfile_serialization=kind == "torch")
    assert path.stat().st_size < 4096
    result = subprocess.run(
        [sys.executable, "-m", "weightport", "inspect", "--json", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["extras"]["meta"] == "list of 2"
