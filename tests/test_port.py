"""`weightport port` end to end: the folder it writes, the code in it, and the twin's behaviour.

Translations are tested one by one in test_port_translations.py; here whole models go through
the command: a small model of our own with every feature a twin must get right
(tests/port_models.py), and timm models (convnext_atto as the README shows it, a ViT).
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import weightport
from weightport.formats import read_checkpoint

REPO = Path(__file__).resolve().parent.parent
TINY = "tests.port_models:tiny_net"


def run(*args, check_rc=None):
    result = subprocess.run([sys.executable, "-m", "weightport", *map(str, args)], capture_output=True, text=True, cwd=REPO)
    if check_rc is not None:
        assert result.returncode == check_rc, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("port") / "tiny"
    result = run("port", TINY, "--out", folder, "--input-size", "16", "--json", check_rc=0)
    report = json.loads(result.stdout)
    assert report["verify"]["passed"] and report["classes"] >= 2
    return folder


@pytest.fixture(scope="module")
def tiny_without_dropout(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("port") / "tiny"
    run("port", TINY, "--model-arg", "drop=0.0", "--out", folder, "--input-size", "16", "--no-verify", check_rc=0)
    return folder


def _imports(source: str) -> set[str]:
    tree = ast.parse(source)
    names = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return names | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}


@pytest.mark.slow
def test_the_folder_holds_code_table_layout_and_manifest(tiny):
    assert {p.name for p in tiny.iterdir()} == {"modeling_paddle.py", "constants.npz", "mapping.toml", "layout.json", "weightport.json"}
    manifest = json.loads((tiny / "weightport.json").read_text())
    assert manifest["torch"]["source"] == TINY and manifest["input_size"] == 16
    assert {"torch", "timm", "paddlepaddle", "weightport"} <= set(manifest["torch"]["versions"])


@pytest.mark.slow
def test_the_generated_code_imports_only_paddle_numpy_and_the_standard_library(tiny):
    source = (tiny / "modeling_paddle.py").read_text()
    assert _imports(source) <= {"paddle", "numpy", "os", "math"}
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('twin', {str(tiny / 'modeling_paddle.py')!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); module.create_model()\n"
        "heavy = sorted(m for m in ('torch', 'timm', 'weightport') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")


def test_one_class_per_torch_class_with_torch_names(tiny):
    source = (tiny / "modeling_paddle.py").read_text()
    classes = [node.name for node in ast.parse(source).body if isinstance(node, ast.ClassDef)]
    assert classes.count("Block") == 1 and "TinyNet" in classes  # three Blocks differing in numbers: one class
    paddle_keys = set(weightport.create_model(str(tiny), "paddle").state_dict())
    torch_keys = {k.replace("running_mean", "_mean").replace("running_var", "_variance")
                  for k in weightport.create_model(str(tiny), "torch").state_dict() if not k.endswith("num_batches_tracked")}
    assert paddle_keys == torch_keys
    assert "if self.training:" in source  # Block's branch on the mode survives as a branch


@pytest.mark.slow
def test_converting_through_the_folder_is_bit_exact_both_ways(tiny, tmp_path):
    model = weightport.create_model(str(tiny), "torch")
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape) + 0.5 if key.endswith("running_var") else torch.randn(tensor.shape))
    torch.save(model.state_dict(), tmp_path / "a.pth")
    run("convert", tiny, tmp_path / "a.pth", tmp_path / "a.pdparams", check_rc=0)
    run("convert", tiny, tmp_path / "a.pdparams", tmp_path / "b.pth", check_rc=0)
    before, after = read_checkpoint(tmp_path / "a.pth").tensors, read_checkpoint(tmp_path / "b.pth").tensors
    assert set(before) == set(after)
    for key, tensor in before.items():
        assert np.array_equal(tensor.load(), after[key].load()), key
    run("verify", tiny, "--torch", tmp_path / "a.pth", "--paddle", tmp_path / "a.pdparams", "--floor", check_rc=0)
    run("map", "check", tiny, check_rc=0)


def _paired_twins(tiny, drop: float):
    """The folder's twins (ported with stochastic layers at probability `drop`), identical random weights."""
    from tests.port_models import tiny_net
    from weightport.conversion import convert_tensors
    from weightport.models.weights import load_paddle, randomize_torch, torch_state

    torch_model = tiny_net(drop=drop)
    randomize_torch(torch_model, seed=3)
    pair = weightport.resolve(str(tiny))
    paddle_model = pair.create("paddle")
    tensors, _ = convert_tensors(pair, torch_state(torch_model), "paddle")
    load_paddle(paddle_model, tensors)
    return torch_model, paddle_model


@pytest.mark.slow
def test_train_mode_matches_torch_and_every_parameter_gets_a_gradient(tiny_without_dropout):
    import paddle

    torch_model, paddle_model = _paired_twins(tiny_without_dropout, drop=0.0)
    torch_model.train()
    paddle_model.train()
    batch = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype("float32")
    torch_out = torch_model(torch.from_numpy(batch))
    paddle_out = paddle_model(paddle.to_tensor(batch))
    np.testing.assert_allclose(paddle_out.numpy(), torch_out.detach().numpy(), rtol=1e-4, atol=1e-5)
    # BatchNorm's running statistics moved the same way (Paddle's momentum is 1 - torch's)
    np.testing.assert_allclose(paddle_model.stem[1]._mean.numpy(), torch_model.stem[1].running_mean.numpy(), rtol=1e-5, atol=1e-6)
    paddle_out.sum().backward()
    trainable = [(name, p) for name, p in paddle_model.named_parameters() if not p.stop_gradient]
    missing = [name for name, p in trainable if p.grad is None or not np.any(p.grad.numpy())]
    assert not missing


def test_dropout_and_drop_path_stay_stochastic_in_training(tiny):
    import paddle

    _, paddle_model = _paired_twins(tiny, drop=0.1)
    paddle_model.train()
    batch = paddle.to_tensor(np.ones((4, 3, 16, 16), "float32"))
    paddle.seed(0)
    first = paddle_model(batch)
    second = paddle_model(batch).numpy()
    assert not np.allclose(first.numpy(), second)
    first.mean().backward()  # it trains with its dropout and drop-path active
    assert all(p.grad is not None for p in paddle_model.parameters() if not p.stop_gradient)
    paddle_model.eval()
    assert np.allclose(paddle_model(batch).numpy(), paddle_model(batch).numpy())


@pytest.mark.slow
def test_convnext_atto_ports_converts_and_verifies(tmp_path):
    import timm

    folder = tmp_path / "convnext"
    run("port", "timm:convnext_atto", "--out", folder, check_rc=0)
    torch.save(timm.create_model("convnext_atto").state_dict(), tmp_path / "a.pth")
    run("convert", folder, tmp_path / "a.pth", tmp_path / "a.pdparams", check_rc=0)
    result = run("verify", folder, "--torch", tmp_path / "a.pth", "--paddle", tmp_path / "a.pdparams", "--floor", "--json", check_rc=0)
    output = json.loads(result.stdout)["models"][0]["outputs"][0]
    assert output["floor"]["ratio"] < 10
    keys = set(weightport.create_model(str(folder), "paddle").state_dict())
    assert "stages.0.blocks.0.gamma" in keys and "head.fc.weight" in keys


@pytest.mark.slow
def test_a_vision_transformer_ports_with_the_torch_checkpoint(tmp_path):
    import timm

    model = timm.create_model("vit_tiny_patch16_224", depth=2)
    torch.save(model.state_dict(), tmp_path / "vit.pth")
    folder = tmp_path / "vit"
    result = run("port", "timm:vit_tiny_patch16_224", "--model-arg", "depth=2", "--out", folder, "--torch", tmp_path / "vit.pth", "--json",
                 check_rc=0)
    report = json.loads(result.stdout)
    assert (folder / "model.pdparams").is_file() and "vit.pth" in report["verify"]["models"][0]["weights"]


@pytest.mark.slow
def test_an_untranslatable_op_is_named_and_nothing_is_left_behind(tmp_path):
    result = run("port", "tests.port_models:untranslatable", "--out", tmp_path / "out")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "torch.special" in line or "special_i0" in line, line
    assert "Untranslatable" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_an_existing_folder_needs_force(tiny, tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    result = run("port", TINY, "--out", folder, "--input-size", "16", "--no-verify")
    assert result.returncode == 2 and "--force" in result.stderr
    assert (folder / "keep.txt").read_text() == "mine"
    run("port", TINY, "--out", folder, "--input-size", "16", "--no-verify", "--force", check_rc=0)
    assert not (folder / "keep.txt").exists() and (folder / "weightport.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


@pytest.mark.slow
def test_a_failed_gate_keeps_the_files_and_says_where(tmp_path):
    folder = tmp_path / "tiny"
    result = run("port", TINY, "--out", folder, "--input-size", "16", "--tol", "1e-12")
    assert result.returncode == 1, result.stdout + result.stderr
    assert (folder / "modeling_paddle.py").is_file()
    assert "per-layer parity" in result.stdout


@pytest.mark.slow
def test_unknown_timm_names_are_refused_cleanly(tmp_path):
    result = run("port", "timm:resnet_51", "--out", tmp_path / "x")
    assert result.returncode == 2 and "timm has no model 'resnet_51'" in result.stderr


@pytest.mark.slow
def test_a_ported_folder_passes_training_parity(tiny):
    result = run("verify", tiny, "--train", "--layers", "--json", check_rc=0)
    training = json.loads(result.stdout)["models"][0]["training"]
    assert training["passed"] and training["layers"]["first_divergence"] is None
    # its dropout and drop-path are switched off on both sides, and said so
    assert len(training["switched_off"]["torch"]) == len(training["switched_off"]["paddle"]) == 6
    assert all(s["passed"] for s in training["steps"])
