"""Paddle inference parameter files written without Paddle: byte for byte as Paddle writes them (a
released model's file comes back identical), whole or not at all, checked against their program,
loaded by paddle.jit.load, and written by `weightport convert` to a DST ending in .pdiparams."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from tests.inference_models import params_bytes, pir_program, sample_tensors, write_model
from tests.released_models import released_model
from tests.test_paddle_inference import EXPORT
from weightport.cli import cli
from weightport.errors import DestinationExists, InvalidArgument, LayoutError
from weightport.formats import read_checkpoint, write_checkpoint
from weightport.formats.checkpoint import LazyTensor
from weightport.formats.dtypes import storage_dtype
from weightport.formats.paddle_inference import (
    DATA_TYPES,
    Program,
    Variable,
    check_params,
    locate,
    read_params,
    read_program,
    write_params,
)
from weightport.models.pair import resolve

MODEL = "shufflenet_v2_x0_5"  # the smallest registered model


def program_of(tensors: dict[str, LazyTensor]) -> Program:
    return Program("test.json", "pir", {name: Variable(name, tuple(t.shape), t.dtype) for name, t in tensors.items()})


def test_a_released_models_parameters_are_written_back_byte_for_byte(tmp_path):
    folder = released_model("PP-OCRv5_mobile_det")
    program = read_program(folder / "inference.json")
    tensors = read_params(str(folder / "inference.pdiparams"), program)
    written = write_params(tmp_path / "inference.pdiparams", tensors, program)
    assert written.read_bytes() == (folder / "inference.pdiparams").read_bytes()
    assert os.listdir(tmp_path) == ["inference.pdiparams"]


def every_dtype() -> dict[str, LazyTensor]:
    """A tensor of each type the file holds, a 0-d and an empty one among them."""
    rng = np.random.default_rng(1)
    tensors = {}
    for i, dtype in enumerate(DATA_TYPES.values()):
        shape = [(2, 3), (), (0, 4), (5,)][i % 4]
        bits = rng.integers(0, 256, size=int(np.prod(shape)) * storage_dtype(dtype).itemsize, dtype=np.uint8)
        array = (bits % 2).astype(bool) if dtype == "bool" else bits.view(storage_dtype(dtype)).reshape(shape)
        tensors[f"t_{dtype}"] = LazyTensor.of(array, dtype)
    return tensors


def test_every_dtype_round_trips(tmp_path):
    tensors = every_dtype()
    write_params(tmp_path / "m.pdiparams", tensors, program_of(tensors))
    back = read_params(str(tmp_path / "m.pdiparams"), program_of(tensors))
    assert list(back) == sorted(tensors)
    for name, tensor in tensors.items():
        loaded = np.asarray(back[name].load())
        assert back[name].dtype == tensor.dtype and loaded.shape == tensor.shape, name
        assert loaded.tobytes() == tensor.load().tobytes(), name  # bits, NaNs included
    # numpy arrays too (uint16 ones are bfloat16 bits), as the hand-written files of tests/inference_models lay them out
    arrays = {name: np.asarray(t.load()) for name, t in tensors.items() if t.dtype != "bfloat16"}
    write_params(tmp_path / "a.pdiparams", arrays)
    assert (tmp_path / "a.pdiparams").read_bytes() == params_bytes(arrays)
    write_params(tmp_path / "b.pdiparams", {"x": np.arange(3, dtype=np.uint16)})
    bfloat16 = read_params(str(tmp_path / "b.pdiparams"), program_of({"x": LazyTensor.of(np.zeros(3), "bfloat16")}))
    assert np.array_equal(bfloat16["x"].load(), [0, 1, 2])


def test_a_failed_write_leaves_nothing(tmp_path):
    def fail():
        raise RuntimeError("the conversion failed")

    tensors = {**every_dtype(), "t_middle": LazyTensor("float32", (2,), fail)}
    with pytest.raises(RuntimeError, match="the conversion failed"):
        write_params(tmp_path / "m.pdiparams", tensors)
    assert os.listdir(tmp_path) == []
    (tmp_path / "m.pdiparams").write_bytes(b"before")
    with pytest.raises(RuntimeError, match="the conversion failed"):
        write_params(tmp_path / "m.pdiparams", tensors, force=True)
    assert os.listdir(tmp_path) == ["m.pdiparams"] and (tmp_path / "m.pdiparams").read_bytes() == b"before"


@pytest.mark.parametrize("change, error", [
    (lambda t: t.pop("step"), "the program's int64 \\[1\\] tensor 'step' is missing"),
    (lambda t: t.update(extra=np.zeros(2, np.float32)), "tensor 'extra' is not one of the program's"),
    (lambda t: t.update(step=np.zeros(2, np.int64)), "tensor 'step' is int64 \\[2\\], the program's int64 \\[1\\]"),
    (lambda t: t.update(step=np.zeros(1, np.int32)), "tensor 'step' is int32 \\[1\\], the program's int64 \\[1\\]"),
])
def test_tensors_that_differ_from_the_programs_are_refused_before_writing(tmp_path, change, error):
    folder = write_model(tmp_path / "model", sample_tensors())
    program = read_program(folder / "inference.json")
    tensors = sample_tensors()
    check_params(program, tensors)
    change(tensors)
    with pytest.raises(LayoutError, match=f"inference.json: {error}$"):
        write_params(tmp_path / "out.pdiparams", tensors, program)
    assert not (tmp_path / "out.pdiparams").exists()


def test_what_the_format_cannot_hold_is_refused(tmp_path):
    for array in (np.zeros(2, np.uint32), np.zeros(2, np.complex64), np.array(["a"])):
        with pytest.raises(InvalidArgument, match=f"tensors='w': its dtype {array.dtype} is none of those"):
            write_params(tmp_path / "m.pdiparams", {"v": np.zeros(1, np.float32), "w": array})
    with pytest.raises(InvalidArgument, match="by its .pdiparams extension"):
        write_params(tmp_path / "m.pdparams", {"v": np.zeros(1, np.float32)})
    (tmp_path / "m.pdiparams").write_bytes(b"x")
    with pytest.raises(DestinationExists):
        write_params(tmp_path / "m.pdiparams", {"v": np.zeros(1, np.float32)})
    assert os.listdir(tmp_path) == ["m.pdiparams"]


def test_convert_writes_a_parameter_file_that_a_program_of_the_twins_names_reads(tmp_path):
    rng = np.random.default_rng(0)
    weights = [(key, LazyTensor.of(rng.standard_normal(shape).astype(storage_dtype(dtype)), dtype))
               for key, (shape, dtype) in resolve(MODEL).layout("torch").items()]
    write_checkpoint(tmp_path / "a.pth", weights)
    (tmp_path / "model").mkdir()
    dst = tmp_path / "model" / "inference.pdiparams"
    result = CliRunner().invoke(cli, ["convert", MODEL, str(tmp_path / "a.pth"), str(dst), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["destination"] == str(dst) and os.listdir(tmp_path / "model") == [dst.name]
    # Alone it names none of its tensors: read, inspected or converted, it asks for its program.
    for command in (["inspect", str(dst)], ["convert", MODEL, str(dst), str(tmp_path / "back.pth")]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 2 and "needs its program (inference.json or inference.pdmodel) beside it" in result.output
        assert len(result.output.strip().splitlines()) == 1
    # Beside a program naming the Paddle twin's tensors, it holds what a .pdparams conversion holds.
    CliRunner().invoke(cli, ["convert", MODEL, str(tmp_path / "a.pth"), str(tmp_path / "b.pdparams")], catch_exceptions=False)
    expected = {k: np.asarray(t.load()) for k, t in read_checkpoint(tmp_path / "b.pdparams").tensors.items()}
    (tmp_path / "model" / "inference.json").write_text(pir_program(expected))
    model = read_checkpoint(tmp_path / "model")
    assert model.format == "paddle-inference" and list(model.tensors) == sorted(expected)
    for key, array in expected.items():
        assert np.array_equal(np.asarray(model.tensors[key].load()), array), key
    for source, to, error in (("b.pdparams", "torch", "a .pdiparams file cannot hold torch weights"),
                              ("b.pdparams", "paddle", "asks for paddle as well; nothing to convert")):
        result = CliRunner().invoke(cli, ["convert", MODEL, str(tmp_path / source), str(tmp_path / "t.pdiparams"), "--to", to])
        assert result.exit_code == 2 and error in result.output, result.output
    assert not (tmp_path / "t.pdiparams").exists()


@pytest.fixture(scope="module", params=["pir", "legacy"])
def exported(request, tmp_path_factory):
    """A small Layer exported by paddle.jit.save (tests/test_paddle_inference.py's), both ways."""
    folder = tmp_path_factory.mktemp(request.param)
    (folder / "export.py").write_text(EXPORT)
    env = {**os.environ, "FLAGS_enable_pir_api": "0" if request.param == "legacy" else "1"}
    subprocess.run([sys.executable, str(folder / "export.py"), str(folder)], check=True, env=env, timeout=300)
    return folder, env


JIT_LOADS = """
import sys
import numpy as np
from weightport.frameworks import quiet_paddle_import
paddle = quiet_paddle_import()
layer = paddle.jit.load(sys.argv[1])
np.savez(sys.argv[2], **{p.name: p.numpy() for p in layer.state_dict().values()})
"""


@pytest.mark.slow
def test_paddle_loads_the_written_file(exported, tmp_path):
    """Random tensors for the program of a Layer that paddle.jit.save exported: paddle.jit.load gives
    them back (its names carry a `_0` suffix under PIR)."""
    source, env = exported
    folder = tmp_path / "model"
    shutil.copytree(source, folder)
    program = read_program(locate(folder)[0])
    rng = np.random.default_rng(2)
    tensors = {name: rng.standard_normal(v.shape).astype(storage_dtype(v.dtype)) for name, v in program.parameters.items()}
    write_params(folder / "inference.pdiparams", tensors, program, force=True)
    subprocess.run([sys.executable, "-c", JIT_LOADS, str(folder / "inference"), str(tmp_path / "loaded.npz")],
                   check=True, env=env, timeout=300)
    loaded = dict(np.load(tmp_path / "loaded.npz"))
    assert len(loaded) == len(tensors)
    for name, array in loaded.items():
        assert np.array_equal(array, tensors[name if name in tensors else name.removesuffix("_0")]), name
