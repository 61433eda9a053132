"""Twin pairs: `resolve` of a registered name, a ported folder and a pair, and ported folders end to end.

The ported folders here are made by hand, as `weightport port` writes them: a weightport.json
whose torch twin is the tiny torch twin of tests/tiny_twins.py, a self-contained copy of the tiny
Paddle twin as modeling_paddle.py (reading its class count from a sibling constants.npz), the
tiny twins' table and a layout.json generated from the twins.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import weightport
from weightport.cli import cli
from weightport.errors import UserError
from weightport.formats import read_checkpoint
from weightport.models.pair import PORTED, REGISTERED, TwinPair, resolve

REPO = Path(__file__).resolve().parent.parent

# The tiny Paddle twin's own file, made to read its class count from a sibling constants.npz.
MODELING_PADDLE = (REPO / "tests" / "tiny_paddle_twin.py").read_text() + textwrap.dedent("""

    from pathlib import Path

    import numpy as np

    NUM_CLASSES = int(np.load(Path(__file__).with_name("constants.npz"))["num_classes"])


    def create_model():
        return TinyNet(NUM_CLASSES)
""")


def make_port(folder: Path, num_classes: int = 5, model_args: dict | None = None) -> Path:
    """A ported folder of the tiny twins for `num_classes` classes (`model_args` recorded for the torch twin)."""
    from tests.tiny_twins import torch_tiny
    from weightport.tables.layouts import count_trainable, model_layout

    folder.mkdir(parents=True)
    model_args = {"num_classes": num_classes} if model_args is None else model_args
    (folder / "modeling_paddle.py").write_text(MODELING_PADDLE)
    np.savez(folder / "constants.npz", num_classes=np.array(num_classes))
    (folder / "mapping.toml").write_text((REPO / "tests" / "tiny_twins.toml").read_text())
    torch_model = torch_tiny(**model_args)
    paddle_model = TwinPair.from_folder(_write_meta(folder, model_args, layout=None)).create("paddle")
    layout = {
        "model": "tiny_port",
        "parameters": count_trainable(torch_model),
        "classifier": {},
        **{framework: {k: [list(shape), dtype] for k, (shape, dtype) in model_layout(model, framework).items()}
           for framework, model in (("torch", torch_model), ("paddle", paddle_model))},
    }
    (folder / "layout.json").write_text(json.dumps(layout, indent=1))
    return _write_meta(folder, model_args)


def _write_meta(folder: Path, model_args: dict, **changes) -> Path:
    meta = {
        "format": "weightport-port/1",
        "name": "tiny_port",
        "torch": {"source": "tests.tiny_twins:torch_tiny", "model_args": model_args,
                  "versions": {"torch": "2.14.1", "timm": "1.0.31", "paddle": "3.3.1", "weightport": "0.1.0"}},
        "paddle": {"module": "modeling_paddle.py", "factory": "create_model"},
        "table": "mapping.toml",
        "layout": "layout.json",
        "input_size": 8,
        "num_classes": model_args.get("num_classes", 5),
        "preprocessing": {"interpolation": "bicubic", "crop_pct": 0.95, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        **changes,
    }
    (folder / "weightport.json").write_text(json.dumps(meta, indent=2))
    return folder


@pytest.fixture(scope="module")
def port(tmp_path_factory) -> Path:
    return make_port(tmp_path_factory.mktemp("ports") / "tiny", model_args={})


def invoke(*args) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def one_line_error(*args) -> str:
    code, output = invoke(*args)
    lines = output.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("Error: "), output
    return lines[0]


# --- resolve -------------------------------------------------------------------------------------


def test_resolve_a_name_a_folder_and_a_pair(port, tmp_path, monkeypatch):
    registered = resolve("resnet18")
    assert registered.kind == REGISTERED and registered.name == "resnet18" and registered.family == "resnet"
    assert resolve("resnet18") is registered and registered.table_name == "resnet"
    assert registered.parameter_count() == 11_689_512 and registered.classifier_dims("paddle") == {"fc.weight": 1, "fc.bias": 0}

    for given in (port, str(port)):
        pair = resolve(given)
        assert pair.kind == PORTED and pair.folder == port and pair.name == "tiny_port" and pair.family == "ported"
        assert (pair.input_size, pair.num_classes) == (8, 5)
        assert pair.preprocessing == weightport.models.registry.Preprocessing("bicubic", 0.95)
        assert pair.table().name == "mapping" and pair.table_name == str(port / "mapping.toml")
        assert pair.parameter_count() > 0 and pair.classifier_dims("torch") == {}
        assert resolve(pair) is pair
    assert list(resolve(port).layout("paddle")) == ["conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn._mean",
                                                    "bn._variance", "mix.weight", "mix.bias", "ln.weight", "ln.bias",
                                                    "classifier.weight", "classifier.bias"]

    # A bare name is a registered model's even where a folder of that name lies about; a path reaches the folder.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "resnet18").mkdir()
    assert resolve("resnet18") is registered
    with pytest.raises(UserError, match="not a ported folder: it holds no weightport.json"):
        resolve("./resnet18")
    (tmp_path / "myport").symlink_to(port)
    assert resolve("myport").kind == PORTED
    with pytest.raises(UserError, match="unknown model 'resnet5'; the closest registered: resnet50"):
        resolve("resnet5")
    with pytest.raises(UserError, match="^absent: no such folder"):
        resolve("absent/")


def test_create_model_builds_a_ported_folders_twins(port):
    paddle_model = weightport.create_model(port, framework="paddle")
    assert list(paddle_model.state_dict()) == list(json.loads((port / "layout.json").read_text())["paddle"])
    assert not paddle_model.training
    torch_model = weightport.create_model(str(port), framework="torch")
    assert [k for k in torch_model.state_dict()][:2] == ["stem.weight", "stem.bias"] and not torch_model.training
    # The twins were generated for the recorded model_args only.
    with pytest.raises(UserError, match=r"was ported for its default configuration \(no model_args\); port again to build it "
                                        r"with \{'num_classes': 3\} \(pass model_args=\{'num_classes': 3\} when porting\)"):
        weightport.create_model(port, "paddle", num_classes=3)
    with pytest.raises(UserError, match="was ported for"):
        resolve(port).layout("torch", img_size=16)


def test_recorded_model_args_are_accepted_and_two_folders_live_side_by_side(port, tmp_path):
    """A second folder, ported for three classes: its torch twin gets the model_args, its Paddle
    module (a file of the same name) is loaded under a name of its own."""
    three = make_port(tmp_path / "three", num_classes=3)
    pairs = resolve(port), resolve(three)
    heads = [pair.create("paddle").state_dict()["classifier.weight"].shape for pair in pairs]
    assert heads == [[6, 5], [6, 3]]
    assert pairs[1].create("torch", num_classes=3).state_dict()["head.weight"].shape[0] == 3  # as recorded: accepted
    assert pairs[1].layout("paddle", num_classes=3)["classifier.weight"] == ((6, 3), "float32")
    with pytest.raises(UserError, match=r"ported for model_args \{'num_classes': 3\}; port .* \(pass model_args=\{'num_classes': 4\}"):
        pairs[1].create("torch", num_classes=4)
    modules = {type(pair.create("paddle")).__module__ for pair in pairs}
    assert len(modules) == 2 and all(name.startswith("weightport_ported_") for name in modules)


# --- the command line ------------------------------------------------------------------------------


def test_convert_a_ported_folders_weights_there_and_back_bit_exact(port, tmp_path):
    import torch

    from weightport.models.weights import randomize_torch

    model = weightport.create_model(port, "torch")
    randomize_torch(model, seed=5)
    torch.save(model.state_dict(), tmp_path / "a.pth")
    code, output = invoke("convert", port, tmp_path / "a.pth", tmp_path / "a.pdparams", "--json")
    assert code == 0, output
    summary = json.loads(output)
    assert summary["model"] == "tiny_port" and summary["transposed"] == 2 and summary["tensors"] == 12
    assert invoke("convert", port, tmp_path / "a.pdparams", tmp_path / "back.pth", "-q") == (0, "")
    original, back = read_checkpoint(tmp_path / "a.pth").tensors, read_checkpoint(tmp_path / "back.pth").tensors
    assert list(back) == list(original)
    for key, tensor in original.items():
        assert back[key].dtype == tensor.dtype
        np.testing.assert_array_equal(back[key].load(), tensor.load(), err_msg=key)

    verified = tmp_path / "verify.json"
    code, output = invoke("verify", port, "--torch", tmp_path / "a.pth", "--paddle", tmp_path / "a.pdparams",
                          "--floor", "--device", "cpu", "--json-file", verified)
    assert code == 0, output
    result = json.loads(verified.read_text())["models"][0]
    assert result["model"] == "tiny_port" and result["outputs"][0]["floor"] is not None
    code, output = invoke("verify", port, "--torch", tmp_path / "a.pth", "--layers", "--device", "cpu")
    assert code == 0, output
    assert "tiny_port: per-layer parity" in output and "no module's error jumps" in output
    message = one_line_error("convert", port, tmp_path / "a.pth", tmp_path / "b.pdparams", "--input-size", "16")
    assert message == "Error: --input-size 16: no weight of tiny_port depends on the input size"
    message = one_line_error("convert", port, tmp_path / "a.pth", tmp_path / "b.pdparams", "--model-arg", "img_size=16")
    assert message == (f"Error: {port} was ported for its default configuration (no model_args); "
                       "port again to build it with {'img_size': 16} (pass --model-arg img_size=16 when porting)")


def test_verify_map_check_and_draft_take_a_ported_folder(port, tmp_path):
    code, output = invoke("verify", port, "--device", "cpu", "--batch-size", "1")
    assert code == 0 and "1 passed, 0 failed" in output, output
    code, output = invoke("map", "check", port)
    assert code == 0 and output == f"tiny_port: mapping table {port / 'mapping.toml'} fits both twins\n", output
    broken = tmp_path / "broken.toml"
    broken.write_text((port / "mapping.toml").read_text().replace('"square.weight", ', ""))
    code, output = invoke("map", "check", port, "--mapping", broken)
    assert code == 1 and "square.weight: Linear weight left untransposed" in output, output
    code, output = invoke("map", "draft", port)
    assert code == 0 and f"from tests.tiny_twins:torch_tiny and {port / 'modeling_paddle.py'}:create_model" in output, output
    assert "tiny_port: 12 tensors in 5 modules paired" in output
    assert "--mapping goes with" in one_line_error("convert", port, "a.pth", "b.pdparams", "--mapping", broken)


def test_converting_a_ported_folders_weights_imports_neither_framework(port, tmp_path):
    from weightport.formats import write_checkpoint
    from weightport.formats.checkpoint import LazyTensor

    layout = resolve(port).layout("torch")
    tensors = {k: LazyTensor.of(np.zeros(shape, dtype=dtype), dtype) for k, (shape, dtype) in layout.items()}
    write_checkpoint(tmp_path / "zeros.safetensors", tensors.items())
    code = (
        "import sys\n"
        "from weightport.cli import cli\n"
        f"cli(['convert', {str(port)!r}, {str(tmp_path / 'zeros.safetensors')!r}, {str(tmp_path / 'z.pdparams')!r}, '-q'],"
        " standalone_mode=False)\n"
        "heavy = sorted(m for m in ('torch', 'paddle', 'timm') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    assert len(read_checkpoint(tmp_path / "z.pdparams").tensors) == 12


# --- what is not a ported folder ------------------------------------------------------------------


def _broken(port: Path, tmp_path: Path, **changes) -> Path:
    import shutil

    folder = tmp_path / "broken"
    shutil.copytree(port, folder)
    meta = json.loads((folder / "weightport.json").read_text())
    _write_meta(folder, meta["torch"]["model_args"], **changes)
    return folder


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"format": "weightport-port/2"}, "weightport.json has format 'weightport-port/2'; this weightport reads 'weightport-port/1'"),
        ({"format": None}, "weightport.json has format None"),
        ({"table": "absent.toml"}, "weightport.json names the mapping table 'absent.toml', which the folder does not hold"),
        ({"paddle": {"module": "absent.py"}}, "names the Paddle twin's module 'absent.py', which the folder does not hold"),
        ({"torch": {"model_args": {}}}, "weightport.json: torch.source is missing; expected a string"),
        ({"torch": {"source": "timm:"}}, "torch.source 'timm:': names no timm model"),
        ({"torch": {"source": "tests/tiny_twins.py"}}, "torch.source 'tests/tiny_twins.py': write the factory as module:function"),
        ({"input_size": "224"}, "input_size is '224'; expected an integer"),
        ({"preprocessing": {"resize": 256}}, "preprocessing has unknown keys ['resize']"),
    ],
)
def test_a_broken_ported_folder_gives_one_line_naming_it(port, tmp_path, changes, fragment):
    folder = _broken(port, tmp_path, **changes)
    with pytest.raises(UserError) as raised:
        resolve(folder)
    assert str(raised.value).startswith(f"{folder}: ") and fragment in str(raised.value), raised.value
    assert fragment in one_line_error("verify", folder)


def test_folders_that_are_not_ported_folders(port, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert one_line_error("convert", empty, "a.pth", "b.pdparams") == f"Error: {empty}: not a ported folder: it holds no weightport.json"
    garbled = _broken(port, tmp_path)
    (garbled / "weightport.json").write_text('{"format": "weightport-port/1", ')
    assert f"{garbled}: weightport.json cannot be read: " in one_line_error("map", "check", garbled)
    (garbled / "weightport.json").write_text("[1, 2]")
    assert one_line_error("map", "check", garbled).endswith("weightport.json holds list, not an object")
    with pytest.raises(UserError, match="no such folder"):
        resolve(tmp_path / "absent")
    with pytest.raises(UserError, match="not int"):
        resolve(3)


def test_a_ported_folder_without_table_or_layout(port, tmp_path):
    """Both are optional in weightport.json: without a table nothing converts, without a layout the twins tell it."""
    folder = _broken(port, tmp_path, table=None, layout=None)
    pair = resolve(folder)
    assert pair.layout("paddle") == resolve(port).layout("paddle") and pair.parameter_count() is None
    with pytest.raises(UserError, match="its weightport.json names no mapping table"):
        pair.table()


def test_a_garbled_layout_json_is_named(port, tmp_path):
    folder = _broken(port, tmp_path)
    (folder / "layout.json").write_text('{"torch": {}}')
    message = f"{folder / 'layout.json'}: not a layout manifest (it needs a 'torch' and a 'paddle' layout)"
    assert one_line_error("verify", folder, "--device", "cpu") == f"Error: {message}"
