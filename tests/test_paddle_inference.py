"""Paddle inference models read without Paddle: the tensors of models Paddle itself exported (legacy
ProgramDesc and PIR JSON) equal the Layer's, and every broken file is one line and exit 2."""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

from tests.inference_models import sample_tensors, tensor_record, write_model
from tests.released_models import released_model
from weightport.cli import cli
from weightport.errors import CheckpointError
from weightport.formats import read_checkpoint

EXPORT = textwrap.dedent('''
    import json, sys
    from weightport.frameworks import quiet_paddle_import
    paddle = quiet_paddle_import()
    from paddle import nn

    class Net(nn.Layer):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2D(3, 4, 3, padding=1)
            self.bn = nn.BatchNorm2D(4)
            self.fc = nn.Linear(4, 5)

        def forward(self, x):
            return self.fc(nn.functional.relu(self.bn(self.conv(x))).mean([2, 3]))

    paddle.seed(3)
    net = Net()
    for p in net.parameters():
        p.set_value(paddle.randn(p.shape))
    net.bn._mean.set_value(paddle.randn([4]))
    net.bn._variance.set_value(paddle.rand([4]) + 0.5)
    net.eval()
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", name="x")]
    paddle.jit.save(paddle.jit.to_static(net, input_spec=spec), sys.argv[1] + "/inference")
    paddle.save(net.state_dict(), sys.argv[1] + "/net.pdparams")
    (open(sys.argv[1] + "/names.json", "w")).write(json.dumps({k: v.name for k, v in net.state_dict().items()}))
''')


@pytest.fixture(scope="module", params=["pir", "legacy"])
def exported(request, tmp_path_factory):
    """A small Layer exported by paddle.jit.save as Paddle 3 does (PIR JSON) and as before (ProgramDesc)."""
    import os

    folder = tmp_path_factory.mktemp(request.param)
    (folder / "export.py").write_text(EXPORT)  # to_static reads the Layer's source from a file
    env = {**os.environ, "FLAGS_enable_pir_api": "0" if request.param == "legacy" else "1"}
    subprocess.run([sys.executable, str(folder / "export.py"), str(folder)], check=True, env=env, timeout=300)
    return folder


def test_the_tensors_are_the_layers_own_by_the_programs_names(exported):
    names = json.loads((exported / "names.json").read_text())
    layer = read_checkpoint(exported / "net.pdparams").tensors
    model = read_checkpoint(exported)
    assert model.format == "paddle-inference" and sorted(model.tensors) == sorted(names.values())
    for key, name in names.items():
        assert np.array_equal(np.asarray(model.tensors[name].load()), np.asarray(layer[key].load())), key
    assert "x float32 [-1, 3, -1, -1]" in model.extras["inputs"]
    assert "conv2d" in model.extras["ops"] and model.extras["outputs"].endswith("float32 [-1, 5]")
    for path in (exported / "inference", exported / "inference.pdiparams"):  # the prefix or either file
        assert sorted(read_checkpoint(path).tensors) == sorted(model.tensors)


def test_inspect_lists_the_tensors_without_importing_paddle(exported):
    code = ("import sys\nfrom weightport.formats.inspection import inspect_checkpoint\n"
            f"report = inspect_checkpoint({str(exported)!r})\n"
            "assert not {'paddle', 'torch'} & set(sys.modules), sorted({'paddle', 'torch'} & set(sys.modules))\n"
            "print(report['tensors'])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "8", result.stderr


@pytest.mark.parametrize("kind", ["pir", "pdmodel"])
def test_hand_written_models_of_every_dtype_read_back(tmp_path, kind):
    tensors = sample_tensors()
    model = read_checkpoint(write_model(tmp_path, tensors, kind))
    assert list(model.tensors) == sorted(tensors)
    for name, array in tensors.items():
        loaded = np.asarray(model.tensors[name].load())
        assert loaded.dtype == array.dtype and np.array_equal(loaded, array)


def _broken(tensors: dict[str, np.ndarray]) -> dict[str, bytes]:
    """.pdiparams files each broken in one way, for the program of `tensors`."""
    names = sorted(tensors)
    whole = b"".join(tensor_record(tensors[n]) for n in names)
    first = tensor_record(tensors[names[0]])
    rest = whole[len(first):]
    return {
        "empty": b"",
        "truncated": whole[:-3],
        "bytes left over": whole + b"\0",
        "an unknown version": tensor_record(tensors[names[0]], version=7) + rest,
        "a LoD level past the end": first[:4] + struct.pack("<Q", 1) + struct.pack("<Q", 1 << 40) + first[12:],
        "a descriptor past the end": first[:16] + struct.pack("<i", 1 << 30) + first[20:],
        "a negative descriptor size": first[:16] + struct.pack("<i", -4) + first[20:],
        "one tensor fewer": whole[len(first):],
        "another dtype": tensor_record(tensors[names[0]].astype(np.float64)) + rest,
        "another shape": b"".join(tensor_record(tensors[n].reshape(4, -1) if n == "conv2d_0.w_0" else tensors[n]) for n in names),
        "absurd dims": tensor_record(tensors[names[0]], dims=(1 << 40, 1 << 40)) + rest,
        "negative dims": tensor_record(tensors[names[0]], dims=(-1, 5)) + rest,
        "a broken descriptor": first[:20] + b"\xff" * (len(first) - 20),
    }


@pytest.mark.parametrize("problem", list(_broken(sample_tensors())))
def test_broken_parameter_files_are_one_line_and_exit_2(tmp_path, problem):
    tensors = sample_tensors()
    folder = write_model(tmp_path / "model", tensors, params=_broken(tensors)[problem])
    with pytest.raises(CheckpointError):
        for tensor in read_checkpoint(folder).tensors.values():
            tensor.load()
    for command in (["inspect", str(folder)], ["convert", "resnet18", str(folder), str(tmp_path / "out.pth")]):
        result = CliRunner().invoke(cli, command)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error: "), (problem, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "out.pth").exists()


@pytest.mark.parametrize("program, error", [
    (b"", "empty"),
    (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "not a Paddle ProgramDesc"),
    (b"\x0a\xff\xff\xff\x7f", "not a Paddle ProgramDesc"),
    (b"\x08\x05", "a number where a message belongs"),  # the block list written as a number (found by fuzzing)
])
def test_broken_programs_are_refused(tmp_path, program, error):
    folder = write_model(tmp_path, sample_tensors(), "pdmodel")
    (folder / "inference.pdmodel").write_bytes(program)
    with pytest.raises(CheckpointError, match=error):
        read_checkpoint(folder)


@pytest.mark.parametrize("text, error", [
    ("{", "not a Paddle PIR program"),
    ('{"base_code": {"magic": "onnx"}}', "not a Paddle PIR program"),
    ('{"base_code": {"magic": "pir"}, "program": {"regions": [{"blocks": [{"ops": [{"#": "p"}]}]}]}}', "malformed PIR op"),
    ("[" * 100000 + "]" * 100000, "not a Paddle PIR program"),
])
def test_broken_pir_programs_are_refused(tmp_path, text, error):
    folder = write_model(tmp_path, sample_tensors())
    (folder / "inference.json").write_text(text)
    with pytest.raises(CheckpointError, match=error):
        read_checkpoint(folder)


def test_a_parameter_file_alone_names_nothing_and_two_models_in_a_folder_are_ambiguous(tmp_path):
    folder = write_model(tmp_path / "one", sample_tensors())
    (folder / "inference.json").unlink()
    with pytest.raises(CheckpointError, match="needs its program"):
        read_checkpoint(folder / "inference.pdiparams")
    two = write_model(tmp_path / "two", sample_tensors())
    (two / "other.pdiparams").write_bytes((two / "inference.pdiparams").read_bytes())
    (two / "other.json").write_text((two / "inference.json").read_text())
    with pytest.raises(CheckpointError, match="holds 2 inference models"):
        read_checkpoint(two)
    assert sorted(read_checkpoint(two / "other").tensors) == sorted(sample_tensors())


PADDLE_LOADS = textwrap.dedent('''
    import sys
    import numpy as np
    from weightport.frameworks import quiet_paddle_import
    from weightport.formats import read_checkpoint
    paddle = quiet_paddle_import()
    paddle.enable_static()
    program, feeds, fetches = paddle.static.load_inference_model(sys.argv[1], paddle.static.Executor(paddle.CPUPlace()))
    scope = paddle.static.global_scope()
    ours = read_checkpoint(sys.argv[1]).tensors
    different = [name for name, tensor in ours.items()
                 if not np.array_equal(np.array(scope.find_var(name).get_tensor()), np.asarray(tensor.load()))]
    print(len(ours), len(different), feeds)
''')


@pytest.mark.slow
@pytest.mark.parametrize("name, tensors, shape", [
    ("PP-OCRv5_mobile_det", 234, "x float32 [-1, 3, -1, -1]"),
    ("PP-OCRv5_mobile_rec", None, "x float32 [-1, 3, 48, -1]"),
])
def test_released_pp_ocrv5_models_read_as_paddle_itself_loads_them(name, tensors, shape):
    """PaddleOCR's released PP-OCRv5 mobile detector and recogniser (PIR programs): every tensor as
    Paddle's own static loader gives it, bit for bit; the inputs as the program declares them."""
    prefix = released_model(name) / "inference"
    model = read_checkpoint(prefix)
    assert model.extras["inputs"] == shape and (tensors is None or len(model.tensors) == tensors)
    result = subprocess.run([sys.executable, "-c", PADDLE_LOADS, str(prefix)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    count, different, feeds = result.stdout.strip().split(" ", 2)
    assert int(count) == len(model.tensors) and different == "0" and feeds == "['x']", result.stdout
