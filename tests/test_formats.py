"""Readers and writers of every format, against the frameworks' own loaders."""
from __future__ import annotations

import gc
import pickle
import zipfile

import numpy as np
import pytest
import torch

from weightport.errors import CheckpointError, UserError
from weightport.formats import read_checkpoint, read_raw, sniff, write_checkpoint
from weightport.formats.checkpoint import LazyTensor
from weightport.formats.pdparams import SPLIT_INFO


def _bits(t: torch.Tensor) -> np.ndarray:
    """A torch tensor as weightport stores it (bfloat16 as uint16 bits)."""
    if t.dtype == torch.bfloat16:
        return t.contiguous().view(torch.int16).numpy().view(np.uint16)
    return t.contiguous().numpy()


def _mixed_state():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=g)
    return {
        "w32": torch.randn(3, 4, generator=g),
        "w16": torch.randn(5, generator=g).half(),
        "wbf16": torch.randn(2, 3, generator=g).bfloat16(),
        "w64": torch.randn(2, generator=g).double(),
        "count": torch.tensor(7),
        "flags": torch.tensor([True, False]),
        "view": base[:, 1:3],  # a strided view into a shared storage
        "same_storage": base,
        "empty": torch.zeros(0, 3),
    }


@pytest.mark.parametrize("legacy", [False, True])
def test_torch_reader_matches_torch(tmp_path, legacy):
    state = _mixed_state()
    path = tmp_path / "mixed.pth"
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    ckpt = read_checkpoint(path)
    assert ckpt.format == ("torch-legacy" if legacy else "torch")
    assert list(ckpt.tensors) == list(state)
    for key, tensor in state.items():
        lazy = ckpt.tensors[key]
        assert lazy.shape == tuple(tensor.shape)
        assert lazy.dtype == str(tensor.dtype).removeprefix("torch.")
        np.testing.assert_array_equal(lazy.load(), _bits(tensor))


def test_torch_zip_reader_does_not_import_torch(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "w.pth"
    torch.save({"a": torch.ones(2)}, path)
    code = (
        "import sys; from weightport.formats import read_checkpoint; "
        f"c = read_checkpoint({str(path)!r}); c.tensors['a'].load(); "
        "assert 'torch' not in sys.modules and 'paddle' not in sys.modules, 'framework imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("ext", ["pth", "pdparams", "safetensors"])
def test_writers_round_trip_every_dtype(tmp_path, ext):
    tensors = {k: LazyTensor.of(_bits(v), str(v.dtype).removeprefix("torch.")) for k, v in _mixed_state().items()}
    path = write_checkpoint(tmp_path / f"out.{ext}", tensors.items())
    back = read_checkpoint(path)
    assert list(back.tensors) == list(tensors)
    for key, tensor in tensors.items():
        assert back.tensors[key].dtype == tensor.dtype
        assert back.tensors[key].shape == tensor.shape
        np.testing.assert_array_equal(back.tensors[key].load(), tensor.load())


def test_torch_writer_output_loads_in_torch(tmp_path):
    state = _mixed_state()
    tensors = {k: LazyTensor.of(_bits(v), str(v.dtype).removeprefix("torch.")) for k, v in state.items()}
    path = write_checkpoint(tmp_path / "out.pth", tensors.items())
    for mmap in (False, True):
        loaded = torch.load(path, weights_only=True, mmap=mmap)
        for key, tensor in state.items():
            assert loaded[key].dtype == tensor.dtype
            assert torch.equal(loaded[key], tensor), key
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        for info in zf.infolist():
            if "/data/" in info.filename:  # storages are 64-byte aligned, as torch writes them
                with open(path, "rb") as f:
                    f.seek(info.header_offset + 26)
                    name_len, extra_len = np.frombuffer(f.read(4), dtype="<u2")
                assert (info.header_offset + 30 + int(name_len) + int(extra_len)) % 64 == 0


def test_pdparams_writer_output_loads_in_paddle(tmp_path):
    from weightport.frameworks import quiet_paddle_import

    paddle = quiet_paddle_import()
    state = _mixed_state()
    tensors = {k: LazyTensor.of(_bits(v), str(v.dtype).removeprefix("torch.")) for k, v in state.items()}
    path = write_checkpoint(tmp_path / "out.pdparams", tensors.items())
    loaded = paddle.load(str(path))
    assert str(loaded["wbf16"].dtype) == "paddle.bfloat16"
    assert str(loaded["w16"].dtype) == "paddle.float16"
    for key, tensor in tensors.items():
        np.testing.assert_array_equal(np.asarray(loaded[key].numpy()).view(tensor.load().dtype), tensor.load())


def test_pdparams_reader_reads_paddle_save(tmp_path):
    from weightport.frameworks import quiet_paddle_import

    paddle = quiet_paddle_import()
    layer = paddle.nn.Sequential(paddle.nn.Linear(3, 4), paddle.nn.BatchNorm1D(4))
    path = tmp_path / "layer.pdparams"
    paddle.save(layer.state_dict(), str(path))
    ckpt = read_checkpoint(path)
    assert "StructuredToParameterName@@" not in ckpt.tensors
    assert set(ckpt.tensors) == set(layer.state_dict())
    for key, value in layer.state_dict().items():
        np.testing.assert_array_equal(ckpt.tensors[key].load(), value.numpy())


def test_pdparams_reader_joins_split_big_arrays(tmp_path):
    big = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    flat = big.reshape(-1)
    content = {
        "small": np.ones(3, dtype=np.float32),
        "big@@.0": flat[:10],
        "big@@.1": flat[10:],
        SPLIT_INFO: {"big": {"OriginShape": [2, 3, 4], "slices": ["big@@.0", "big@@.1"]}},
    }
    path = tmp_path / "split.pdparams"
    path.write_bytes(pickle.dumps(content, protocol=2))
    ckpt = read_checkpoint(path)
    assert set(ckpt.tensors) == {"small", "big"}
    np.testing.assert_array_equal(ckpt.tensors["big"].load(), big)


def test_safetensors_interoperates_with_the_reference_library(tmp_path):
    from safetensors.torch import load_file, save_file

    state = {k: v.contiguous() for k, v in _mixed_state().items() if k not in ("view",)}
    theirs = tmp_path / "theirs.safetensors"
    save_file(state, str(theirs))
    ckpt = read_checkpoint(theirs)
    for key, tensor in state.items():
        np.testing.assert_array_equal(ckpt.tensors[key].load(), _bits(tensor))
    ours = write_checkpoint(tmp_path / "ours.safetensors", ckpt.tensors.items())
    loaded = load_file(str(ours))
    for key, tensor in state.items():
        assert loaded[key].dtype == tensor.dtype and torch.equal(loaded[key], tensor)


def test_wrappers_prefixes_and_key_choice(tmp_path):
    plain = {"module._orig_mod.fc.weight": torch.ones(2, 2)}
    ema = {"module._orig_mod.fc.weight": torch.full((2, 2), 3.0)}
    path = tmp_path / "wrapped.pth.tar"
    torch.save({"state_dict": plain, "state_dict_ema": ema, "epoch": 3, "optimizer": {"lr": 0.1}}, path)
    default = read_checkpoint(path)
    assert default.wrapper == "state_dict"
    assert default.candidates == ("state_dict", "state_dict_ema")
    assert default.stripped_prefix == "module._orig_mod."
    assert list(default.tensors) == ["fc.weight"]
    assert default.extras["epoch"] == "3"
    chosen = read_checkpoint(path, key="state_dict_ema")
    assert chosen.tensors["fc.weight"].load()[0, 0] == 3.0
    with pytest.raises(UserError, match="no state dict under key 'nope'"):
        read_checkpoint(path, key="nope")


@pytest.mark.parametrize("wrapper", ["model", "model_state_dict", "model_ema"])
def test_known_wrapper_keys(tmp_path, wrapper):
    path = tmp_path / "w.pth"
    torch.save({wrapper: {"a": torch.ones(1)}, "args": None}, path)
    assert read_checkpoint(path).wrapper == wrapper


def test_training_args_namespace_is_read_as_inert_data(tmp_path):
    import argparse

    path = tmp_path / "with_args.pth.tar"
    torch.save({"state_dict": {"a": torch.ones(1)}, "args": argparse.Namespace(lr=0.1, model="fcvit_b12")}, path)
    ckpt = read_checkpoint(path)
    assert ckpt.extras["args"] == "argparse.Namespace"
    assert list(ckpt.tensors) == ["a"]


def test_content_decides_the_format_and_a_lying_extension_is_refused(tmp_path):
    path = tmp_path / "real.pdparams"
    write_checkpoint(path, {"a": LazyTensor.of(np.ones(2, dtype=np.float32), "float32")}.items())
    assert sniff(path) == "paddle"
    lying = tmp_path / "lying.pth"
    lying.write_bytes(path.read_bytes())
    with pytest.raises(CheckpointError, match="not what its .pth extension says"):
        read_raw(lying)


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "empty"), (b"hello world, not a checkpoint", "unknown file format")],
)
def test_unreadable_files(tmp_path, content, reason):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=reason):
        read_checkpoint(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        read_checkpoint(tmp_path / "absent.pth")
    with pytest.raises(CheckpointError, match="is a folder without a checkpoint: no index file"):
        read_checkpoint(tmp_path)


@pytest.mark.parametrize("enabled", [True, False])
def test_reading_leaves_the_cycle_collector_as_it_was(tmp_path, enabled):
    """Unpickling pauses the collector; it must come back as it was, also after a refused pickle."""
    good, bad = tmp_path / "good.pdparams", tmp_path / "bad.pdparams"
    good.write_bytes(pickle.dumps({"a": np.ones(3, np.float32)}, protocol=4))
    bad.write_bytes(pickle.dumps({"a": ValueError("not an array")}, protocol=4))
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        read_checkpoint(good)
        with pytest.raises(CheckpointError, match="refused"):
            read_checkpoint(bad)
        assert gc.isenabled() == enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_flipped_bit_in_tensor_bytes_is_caught_by_crc(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"a": torch.arange(64, dtype=torch.float32)}, path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(next(n for n in zf.namelist() if n.endswith("/data/0")))
    name_len, extra_len = np.frombuffer(bytes(data[info.header_offset + 26 : info.header_offset + 30]), dtype="<u2")
    start = info.header_offset + 30 + int(name_len) + int(extra_len)
    data[start + 10] ^= 0x04
    path.write_bytes(bytes(data))
    ckpt = read_checkpoint(path)  # the layout is fine; the bytes are not
    with pytest.raises(CheckpointError, match="CRC mismatch"):
        ckpt.tensors["a"].load()


def test_destination_is_never_overwritten_without_force(tmp_path):
    dst = tmp_path / "out.pdparams"
    dst.write_bytes(b"precious")
    entries = {"a": LazyTensor.of(np.ones(2, dtype=np.float32), "float32")}
    with pytest.raises(UserError, match="already exists"):
        write_checkpoint(dst, entries.items())
    assert dst.read_bytes() == b"precious"
    write_checkpoint(dst, entries.items(), force=True)
    assert read_checkpoint(dst).tensors["a"].shape == (2,)


def test_failed_write_leaves_no_file(tmp_path):
    def explode():
        raise OSError(28, "No space left on device")

    entries = {"a": LazyTensor.of(np.ones(2, dtype=np.float32), "float32"), "b": LazyTensor("float32", (2,), explode)}
    for ext in ("pth", "pdparams", "safetensors"):
        with pytest.raises(UserError, match="No space left"):
            write_checkpoint(tmp_path / f"out.{ext}", entries.items())
    assert list(tmp_path.iterdir()) == []


def test_write_back_error_met_while_writing_fails_the_write(tmp_path, monkeypatch):
    """The kernel reports a write-back error to one flush only: when the flushing thread meets it,
    the write fails as surely as when the final fsync does."""
    import errno
    import time

    from weightport.formats import atomic

    flushed = []

    def failing_datasync(fd):
        flushed.append(fd)
        raise OSError(errno.EIO, "Input/output error")

    def slow():
        time.sleep(0.1)  # long enough for the flushing thread to run
        return np.ones(2, dtype=np.float32)

    monkeypatch.setattr(atomic, "_datasync", failing_datasync)
    monkeypatch.setattr(atomic, "WRITE_BEHIND_EVERY", 0.01)
    for ext in ("pth", "pdparams", "safetensors"):
        with pytest.raises(UserError, match="Input/output error"):
            write_checkpoint(tmp_path / f"out.{ext}", [("a", LazyTensor("float32", (2,), slow))])
    assert flushed and list(tmp_path.iterdir()) == []
