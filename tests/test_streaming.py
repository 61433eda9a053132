"""The streaming path: lazily mapped reading, tile-by-tile transposing and one-tensor-at-a-time
writing give exactly the bytes of an in-memory conversion, and the lazy .pdparams reader agrees
with paddle.load and with the restricted unpickler."""
from __future__ import annotations

import gc
import mmap
import pickle
import weakref

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from weightport import convert
from weightport.conversion import TILE_COLS, TILE_ROWS, convert_tensors, transposed
from weightport.errors import CheckpointError
from weightport.formats import checkpoint, pdparams, read_checkpoint, write_checkpoint
from weightport.formats.checkpoint import LazyTensor
from weightport.formats.pickles import restricted, scan
from weightport.models.pair import TwinPair, create_model, resolve
from weightport.models.weights import randomize_torch, torch_state
from weightport.tables.loading import load_table


@pytest.fixture
def paddle():
    from weightport.frameworks import quiet_paddle_import

    return quiet_paddle_import()


@pytest.fixture(params=["mapped", "default"])
def map_everything(request, monkeypatch):
    """Map every tensor's bytes from the file (tiny ones and a .pdparams' tiny byte strings
    included), or, as by default, read the small ones and map only the large."""
    if request.param == "mapped":
        monkeypatch.setattr(scan, "MIN_MAPPED", 1)
        monkeypatch.setattr(checkpoint, "READ_BELOW", 0)


def _sources(tiny_model, tmp_path, paddle) -> dict[str, str]:
    """The tiny twins' weights in every format: torch names in a .pth (written by torch.save) and a
    .safetensors, Paddle names in a .pdparams (written by paddle.save) and a .safetensors."""
    model = create_model(tiny_model, "torch")
    randomize_torch(model, seed=3)
    torch.save(model.state_dict(), tmp_path / "torch.pth")
    torch_named = torch_state(model)
    write_checkpoint(tmp_path / "torch.safetensors", torch_named.items())
    paddle_named, _ = convert_tensors(tiny_model, torch_named, "paddle")
    paddle.save({k: paddle.to_tensor(np.array(t.load())) for k, t in paddle_named.items()}, str(tmp_path / "paddle.pdparams"))
    write_checkpoint(tmp_path / "paddle.safetensors", paddle_named.items())
    return {name: str(tmp_path / name) for name in ("torch.pth", "torch.safetensors", "paddle.pdparams", "paddle.safetensors")}


def _in_memory(model: str, src: str, dst, to: str):
    """Every source array read into memory first and transposed by numpy, then written."""
    source = {k: LazyTensor.of(np.array(t.load()), t.dtype) for k, t in read_checkpoint(src).tensors.items()}
    tensors, _ = convert_tensors(model, source, to)
    for step in resolve(model).table().plan(source, to).steps:
        array = source[step.source].load()
        tensors[step.target] = LazyTensor.of(np.ascontiguousarray(array.T) if step.transpose else array, tensors[step.target].dtype)
    return write_checkpoint(dst, tensors.items(), safetensors_format="np" if to == "paddle" else "pt")


CASES = [
    ("torch.pth", ".pdparams", "paddle"),
    ("torch.pth", ".safetensors", "paddle"),
    ("torch.safetensors", ".pdparams", "paddle"),
    ("paddle.pdparams", ".pth", "torch"),
    ("paddle.pdparams", ".safetensors", "torch"),
    ("paddle.safetensors", ".pth", "torch"),
]


def test_streaming_output_is_bit_identical_to_in_memory_conversion(tiny_model, tmp_path, paddle, map_everything):
    sources = _sources(tiny_model, tmp_path, paddle)
    for src, ext, to in CASES:
        streamed = convert(tiny_model, sources[src], tmp_path / f"streamed-{src}{ext}", to=to)
        in_memory = _in_memory(tiny_model, sources[src], tmp_path / f"memory-{src}{ext}", to)
        assert streamed.transposed == 2
        assert open(streamed.destination, "rb").read() == in_memory.read_bytes(), f"{src} -> {ext} differs"


def test_converted_files_load_in_the_frameworks(tiny_model, tmp_path, paddle):
    """The streamed files hold the right arrays by the frameworks' own loaders, not only ours."""
    sources = _sources(tiny_model, tmp_path, paddle)
    original = torch.load(sources["torch.pth"])
    to_paddle = convert(tiny_model, sources["torch.pth"], tmp_path / "out.pdparams").destination
    loaded = paddle.load(to_paddle, return_numpy=True)
    np.testing.assert_array_equal(loaded["mix.weight"], original["square.weight"].numpy().T)
    np.testing.assert_array_equal(loaded["conv.weight"], original["stem.weight"].numpy())
    back = torch.load(convert(tiny_model, to_paddle, tmp_path / "back.pth").destination)
    for key, tensor in original.items():
        assert torch.equal(back[key], tensor), key


@pytest.mark.parametrize("ext", ["pth", "pdparams", "safetensors"])
@pytest.mark.slow
def test_writers_hold_one_tensor_at_a_time(tmp_path, ext):
    loaded: list[weakref.ref] = []
    most = 0

    def loader(i):
        def load():
            nonlocal most
            gc.collect()
            array = np.full((64, 32), i, dtype=np.float32)
            loaded.append(weakref.ref(array))
            most = max(most, sum(ref() is not None for ref in loaded))
            return array

        return load

    tensors = [(f"t{i}", LazyTensor("float32", (64, 32), loader(i))) for i in range(8)]
    path = write_checkpoint(tmp_path / f"out.{ext}", tensors)
    assert most == 1, f"{most} loaded tensors alive at once"
    back = read_checkpoint(path).tensors
    assert [int(back[f"t{i}"].load()[0, 0]) for i in range(8)] == list(range(8))


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(0, 2 * TILE_ROWS + 3),
    cols=st.integers(0, 2 * TILE_COLS + 3),
    dtype=st.sampled_from(["<f4", "<f2", "<u2", "<f8", "<i8"]),
    strided=st.booleans(),
)
def test_tiled_transpose_equals_numpy(rows, cols, dtype, strided):
    base = (np.arange(rows * cols * (2 if strided else 1)) % 2000).astype(dtype).reshape(rows, cols * (2 if strided else 1))
    matrix = base[:, ::2] if strided else base
    out = transposed(matrix)
    assert out.flags.c_contiguous and out.dtype == matrix.dtype
    np.testing.assert_array_equal(out, matrix.T)


# --- the lazy .pdparams reader -----------------------------------------------------------------


def _paddle_state(paddle):
    paddle.seed(0)
    return {
        "w32": paddle.randn([40, 30]),
        "w16": paddle.randn([7, 5]).astype("float16"),
        "wbf16": paddle.randn([33, 64]).astype("bfloat16"),
        "step": paddle.to_tensor([3, 1 << 40], dtype="int64"),
        "scalar": paddle.to_tensor(2.5),
        "empty": paddle.zeros([0, 4]),
    }


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_lazy_reader_matches_paddle_load(tmp_path, paddle, protocol, map_everything):
    path = str(tmp_path / f"p{protocol}.pdparams")
    paddle.save(_paddle_state(paddle), path, protocol=protocol)
    expected = paddle.load(path, return_numpy=True)
    ckpt = read_checkpoint(path)
    assert list(ckpt.tensors) == list(expected)
    for key, array in expected.items():
        tensor = ckpt.tensors[key]
        loaded = tensor.load()
        assert tensor.shape == array.shape and loaded.dtype == array.dtype, key
        assert loaded.tobytes() == array.tobytes(), key
    assert ckpt.tensors["wbf16"].dtype == "bfloat16"


def _eager_read(monkeypatch, path):
    """The same file through the restricted unpickler, which reads everything into memory."""

    def unsupported(*_args):
        raise scan.Unsupported("forced")

    with monkeypatch.context() as patch:
        patch.setattr(restricted, "scan", unsupported)
        return pdparams.read(path)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_lazy_reader_matches_the_restricted_unpickler_and_pickle(tmp_path, monkeypatch, protocol, map_everything):
    rng = np.random.default_rng(protocol)
    content = {
        "c": rng.standard_normal((50, 60)).astype(np.float32),
        "f": np.asfortranarray(rng.standard_normal((70, 20))),  # Fortran order: bytes in column order
        "big_endian": np.arange(2000, dtype=">i4"),
        "zero_d": np.array(1.5, dtype=np.float16),
        "bits": rng.integers(0, 1 << 16, 3000, dtype=np.uint16),
        "nested": {"list": [np.ones(3, dtype=np.int64), 7, "text", None, 2.5, b"raw"]},
    }
    path = tmp_path / "w.pdparams"
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    lazy, eager = pdparams.read(str(path)), _eager_read(monkeypatch, str(path))
    reference = pickle.loads(path.read_bytes())  # a file we made ourselves: safe to unpickle
    for key in ("c", "f", "big_endian", "zero_d", "bits"):
        for got in (lazy[key], eager[key]):
            array = got.load()
            # numpy itself turns a big-endian array native when unpickling; the values are what count
            assert array.dtype.name == reference[key].dtype.name and array.shape == reference[key].shape
            np.testing.assert_array_equal(array, reference[key])
    assert lazy["bits"].dtype == "bfloat16" and lazy["f"].load().flags.f_contiguous
    nested, expected = lazy["nested"]["list"], reference["nested"]["list"]
    np.testing.assert_array_equal(nested[0].load(), expected[0])
    assert nested[1:] == expected[1:] == eager["nested"]["list"][1:]


def test_lazy_reader_maps_arrays_only_when_loaded(tmp_path):
    array = np.arange(checkpoint.READ_BELOW // 2, dtype=np.float32)  # large enough to be mapped
    path = tmp_path / "big.pdparams"
    path.write_bytes(pickle.dumps({"a": array}, protocol=4))
    tensor = pdparams.read(str(path))["a"]
    data = bytearray(path.read_bytes())
    at = bytes(data).find(array.tobytes())
    data[at : at + 4] = np.float32(-1).tobytes()
    path.write_bytes(bytes(data))  # the same inode, rewritten after reading: only a lazy read sees it
    loaded = tensor.load()
    assert loaded[0] == -1 and loaded[1] == 1
    base = loaded
    while isinstance(base, memoryview) or (isinstance(base, np.ndarray) and base.base is not None):
        base = base.obj if isinstance(base, memoryview) else base.base
    assert isinstance(base, mmap.mmap), "the array is not a view of the mapped file"


@pytest.mark.parametrize("ext", ["pth", "pdparams", "safetensors"])
@pytest.mark.parametrize("which", ["small", "large"])
def test_a_file_cut_short_after_reading_fails_cleanly(tmp_path, ext, which):
    """Small tensors are read, large ones mapped: either way a file truncated between reading its
    index and loading a tensor gives a one-line error, not a crash or short data."""
    arrays = {"small": np.full((32, 64), 1, np.float32), "large": np.full((1024, 128), 2, np.float32)}
    assert arrays["small"].nbytes < checkpoint.READ_BELOW <= arrays["large"].nbytes
    path = write_checkpoint(tmp_path / f"cut.{ext}", [(k, LazyTensor.of(a, "float32")) for k, a in arrays.items()])
    tensors = read_checkpoint(path).tensors
    data = path.read_bytes()
    path.write_bytes(data[: data.find(arrays[which].tobytes()) + 10])  # the same inode, cut inside `which`
    with pytest.raises(CheckpointError, match="cut short"):
        tensors[which].load()


@pytest.mark.parametrize("protocol", [2, 3])
def test_split_big_arrays_are_joined_as_paddle_load_joins_them(tmp_path, paddle, protocol, map_everything):
    flat = np.arange(3000, dtype=np.float32)
    content = {
        "small": np.ones(3, dtype=np.float32),
        "big@@.0": flat[:1100],
        "big@@.1": flat[1100:2200],
        "big@@.2": flat[2200:],
        pdparams.SPLIT_INFO: {"big": {"OriginShape": (10, 300), "slices": ["big@@.0", "big@@.1", "big@@.2"]}},
        pdparams.NAME_TABLE: {"small": "small_0", "big": "big_0"},
    }
    path = tmp_path / "split.pdparams"
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    expected = paddle.load(str(path), return_numpy=True)
    ckpt = read_checkpoint(path)
    assert set(ckpt.tensors) == set(expected) == {"small", "big"}
    for key, array in expected.items():
        assert ckpt.tensors[key].shape == array.shape
        np.testing.assert_array_equal(ckpt.tensors[key].load(), array)


@pytest.mark.parametrize(
    "slices, shape",
    [(["big@@.0", "missing"], (4,)), (["big@@.0"], (5,)), (["big@@.0", "other"], (4,))],
)
def test_malformed_split_tables_are_refused(tmp_path, slices, shape):
    content = {
        "big@@.0": np.ones(2, np.float32),
        "other": np.ones(2, np.float16),
        pdparams.SPLIT_INFO: {"big": {"OriginShape": shape, "slices": slices}},
    }
    path = tmp_path / "split.pdparams"
    path.write_bytes(pickle.dumps(content, protocol=3))
    with pytest.raises(CheckpointError, match="malformed split-array table"):
        read_checkpoint(path)


def test_truncated_or_corrupted_pickles_fail_cleanly(tmp_path):
    """Every truncation and single-byte change of a small file reads or fails with CheckpointError."""
    good = pickle.dumps({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "n": 3}, protocol=4)
    path = tmp_path / "w.pdparams"
    for i in range(2, len(good)):
        for data in (good[:i], good[:i] + bytes([good[i] ^ 0x5A]) + good[i + 1 :]):
            path.write_bytes(data)
            try:
                pdparams.read(str(path))
            except CheckpointError:
                pass


def test_scanner_never_calls_what_it_did_not_resolve(tmp_path):
    """REDUCE only calls allow-listed globals: a dtype or a string on the stack is not callable."""
    stream = pickle.PROTO + b"\x04" + pickle.SHORT_BINUNICODE + b"\x01x" + pickle.EMPTY_TUPLE + pickle.REDUCE + pickle.STOP
    path = tmp_path / "w.pdparams"
    path.write_bytes(stream)
    with pytest.raises(CheckpointError, match="corrupt pickle"):
        pdparams.read(str(path))


def test_pdparams_reading_imports_neither_framework(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "w.pdparams"
    path.write_bytes(pickle.dumps({"a": np.ones((64, 64), dtype=np.float32)}, protocol=4))
    code = (
        "import sys; from weightport.formats import read_checkpoint, write_checkpoint; "
        f"c = read_checkpoint({str(path)!r}); write_checkpoint({str(tmp_path / 'w.pth')!r}, c.tensors.items()); "
        "assert 'torch' not in sys.modules and 'paddle' not in sys.modules, 'framework imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_pair_without_twins_given_its_table_and_layout_converts(tiny_model):
    """What the benchmark's driver does for weights without registered twins."""
    source = torch_state(create_model(tiny_model, "torch"))
    table = load_table(resolve(tiny_model).table_name)
    expected, _ = convert_tensors(tiny_model, source, "paddle")
    layout = {key: (tensor.shape, tensor.dtype) for key, tensor in expected.items()}
    pair = TwinPair("not registered", table=table, manifest={"paddle": layout})
    tensors, summary = convert_tensors(pair, source, "paddle")
    assert summary.model == "not registered" and list(tensors) == list(expected)
    for key, tensor in tensors.items():
        np.testing.assert_array_equal(tensor.load(), expected[key].load())
