"""The framework-free core: reading and writing every format, `inspect`, `convert` of a registered model
from its layout manifest, and folders of shards, with neither torch nor paddle imported.

This file imports only numpy, click and weightport, so that CI runs it under the oldest Python
weightport declares, in an environment where torch and paddle are not installed at all (.ci/run).
Each command runs in a fresh interpreter that fails if torch, paddle or timm was imported.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from weightport.formats import read_checkpoint, write_checkpoint
from weightport.formats.checkpoint import LazyTensor
from weightport.formats.dtypes import storage_dtype
from weightport.formats.paddle_inference import write_params
from weightport.models.pair import resolve

MODEL = "resnet50"
FRAMEWORKS = ("torch", "paddle", "timm", "torchvision")
# Runs the command line as the `weightport` script does (its exit included), failing with exit 3
# if a framework was imported on the way.
RUN_CLI = (
    "import atexit, os, sys\n"
    "def check():\n"
    f"    loaded = sorted(set(sys.modules) & set({FRAMEWORKS!r}))\n"
    "    if loaded:\n"
    "        print('imported', loaded, file=sys.stderr, flush=True)\n"
    "        os._exit(3)\n"
    "atexit.register(check)\n"
    "sys.argv[0] = 'weightport'\n"
    "from weightport.cli import main\n"
    "main()\n"
)


def weightport(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUN_CLI, *map(str, args)], capture_output=True, text=True, timeout=300)


def succeeds(*args) -> str:
    result = weightport(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    """resnet50's torch state dict, made from its layout manifest: random values of every dtype it holds."""
    rng = np.random.default_rng(0)
    arrays = {}
    for key, (shape, dtype) in resolve(MODEL).layout("torch").items():
        if dtype == "int64":
            arrays[key] = rng.integers(0, 1000, size=shape).astype(storage_dtype(dtype))
        else:
            arrays[key] = rng.standard_normal(shape).astype(storage_dtype(dtype))
    return arrays


def entries(arrays: dict[str, np.ndarray]) -> list[tuple[str, LazyTensor]]:
    return [(key, LazyTensor.of(array, "int64" if array.dtype == np.int64 else "float32")) for key, array in arrays.items()]


def test_the_core_imports_no_framework():
    code = "import sys, weightport, weightport.formats, weightport.conversion, weightport.models.pair, weightport.cli\n" \
           f"assert not set(sys.modules) & set({FRAMEWORKS!r}), sorted(set(sys.modules) & set({FRAMEWORKS!r}))"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_every_format_round_trips_through_weightports_own_writers(weights, tmp_path):
    for name in ("w.pth", "w.safetensors", "w.pdparams"):
        write_checkpoint(tmp_path / name, entries(weights))
        tensors = read_checkpoint(tmp_path / name).tensors
        assert list(tensors) == list(weights)
        for key, array in weights.items():
            assert np.array_equal(np.asarray(tensors[key].load()), array), (name, key)


def test_inspect_and_convert_a_registered_model_both_ways_bit_for_bit(weights, tmp_path):
    write_checkpoint(tmp_path / "a.pth", entries(weights))
    report = json.loads(succeeds("inspect", tmp_path / "a.pth", "--json"))
    assert report["format"] == "torch" and report["tensors"] == len(weights)
    summary = json.loads(succeeds("convert", MODEL, tmp_path / "a.pth", tmp_path / "b.pdparams", "--json"))
    assert summary["transposed"] == 1 and summary["tensors"] == len(resolve(MODEL).layout("paddle"))
    paddle = read_checkpoint(tmp_path / "b.pdparams").tensors
    assert np.array_equal(np.asarray(paddle["fc.weight"].load()), weights["fc.weight"].T)
    assert np.array_equal(np.asarray(paddle["bn1._mean"].load()), weights["bn1.running_mean"])
    succeeds("convert", MODEL, tmp_path / "a.pth", tmp_path / "b.pdiparams")  # the same tensors, as an inference model's
    write_params(tmp_path / "d.pdiparams", paddle)
    assert (tmp_path / "b.pdiparams").read_bytes() == (tmp_path / "d.pdiparams").read_bytes()
    succeeds("convert", MODEL, tmp_path / "b.pdparams", tmp_path / "c.pth")
    back = read_checkpoint(tmp_path / "c.pth").tensors
    assert list(back) == list(weights)
    for key, array in weights.items():
        if not key.endswith("num_batches_tracked"):  # Paddle has no counter: recreated as 0
            assert np.array_equal(np.asarray(back[key].load()), array), key


def test_folders_of_shards_in_and_out(weights, tmp_path):
    write_checkpoint(tmp_path / "a.safetensors", entries(weights))
    succeeds("convert", MODEL, tmp_path / "a.safetensors", tmp_path / "pd", "--to", "paddle", "--max-shard-size", "30MB")
    shards = sorted(p.name for p in (tmp_path / "pd").iterdir())
    assert "model_state.pdparams.index.json" in shards and len(shards) > 2
    assert json.loads(succeeds("inspect", tmp_path / "pd", "--json"))["shards"] == len(shards) - 1
    succeeds("convert", MODEL, tmp_path / "pd", tmp_path / "hf", "--max-shard-size", "40MB")
    back = read_checkpoint(tmp_path / "hf").tensors
    for key, array in weights.items():
        if not key.endswith("num_batches_tracked"):
            assert np.array_equal(np.asarray(back[key].load()), array), key


def test_a_user_mistake_is_one_line_and_exit_2(tmp_path):
    result = weightport("convert", MODEL, tmp_path / "missing.pth", tmp_path / "out.pdparams")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [f"Error: {tmp_path / 'missing.pth'}: no such file"]
    assert not (tmp_path / "out.pdparams").exists()


def test_a_paddle_inference_model_is_read_by_its_program(tmp_path):
    from tests.inference_models import sample_tensors, write_model

    for kind in ("pir", "pdmodel"):
        folder = write_model(tmp_path / kind, sample_tensors(), kind)
        report = json.loads(succeeds("inspect", folder, "--json"))
        assert report["format"] == "paddle-inference" and report["tensors"] == len(sample_tensors())
        assert [k["name"] for k in report["keys"]] == sorted(sample_tensors())
        assert report["extras"]["inputs"] == "x float32 [-1, 3, -1, -1]"
        written = write_params(tmp_path / f"{kind}.pdiparams", read_checkpoint(folder).tensors)
        assert written.read_bytes() == (folder / "inference.pdiparams").read_bytes()


def test_a_folder_ported_from_paddle_converts_both_ways_without_frameworks(tmp_path):
    """The ported-folder contract of the Paddle -> torch direction, written by hand: converting an
    inference model's weights into the twin's keys and back needs neither framework."""
    from tests.inference_models import write_model
    from weightport.tables.layouts import manifest_text

    rng = np.random.default_rng(1)
    tensors = {"conv2d_0.w_0": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
               "batch_norm2d_0.w_1": rng.standard_normal(4).astype(np.float32),
               "linear_0.w_0": rng.standard_normal((4, 5)).astype(np.float32)}
    model = write_model(tmp_path / "model", tensors, "pir")
    folder = tmp_path / "twin"
    folder.mkdir()
    (folder / "program.json").write_bytes((model / "inference.json").read_bytes())
    (folder / "modeling_torch.py").write_text("raise ImportError('never imported to convert')\n")
    (folder / "mapping.toml").write_text(
        'transpose = ["linear_0.weight"]\n'
        '[[rename]]\ntorch = "conv2d_0.weight"\npaddle = "conv2d_0.w_0"\n'
        '[[rename]]\ntorch = "batch_norm2d_0.running_mean"\npaddle = "batch_norm2d_0.w_1"\n'
        '[[rename]]\ntorch = "linear_0.weight"\npaddle = "linear_0.w_0"\n'
        '[[drop]]\ntorch = "{module:.+}.num_batches_tracked"\nfill = 0\n')
    layouts = {"torch": {"conv2d_0.weight": ((4, 3, 3, 3), "float32"), "batch_norm2d_0.running_mean": ((4,), "float32"),
                         "batch_norm2d_0.num_batches_tracked": ((), "int64"), "linear_0.weight": ((5, 4), "float32")},
               "paddle": {k: (v.shape, "float32") for k, v in tensors.items()}}
    (folder / "layout.json").write_text(manifest_text("twin", 128, {}, layouts))
    (folder / "weightport.json").write_text(json.dumps({
        "format": "weightport-port/1", "name": "twin",
        "paddle": {"source": f"inference:{model / 'inference'}", "program": "program.json"},
        "torch": {"module": "modeling_torch.py", "factory": "create_model"},
        "table": "mapping.toml", "layout": "layout.json", "input_size": 224, "input_dims": [-1, 3, -1, -1],
        "num_classes": 0, "preprocessing": {}}))
    succeeds("convert", folder, model, tmp_path / "twin.pth")
    converted = read_checkpoint(tmp_path / "twin.pth").tensors
    np.testing.assert_array_equal(np.asarray(converted["linear_0.weight"].load()), tensors["linear_0.w_0"].T)
    succeeds("convert", folder, tmp_path / "twin.pth", tmp_path / "back.pdiparams")
    assert (tmp_path / "back.pdiparams").read_bytes() == (model / "inference.pdiparams").read_bytes()
