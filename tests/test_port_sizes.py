"""Twins that compute sizes from their input as torch does: traced at several sizes, run at others.

`tests.port_models:windows` pads only where a size needs it (a branch), reshapes by a window count
(computed) and turns a size into a plain int (a number the traces saw); `fixed_size` runs at one
size only. A timm ViT with `dynamic_img_size=True` resamples its position embedding by the input's
grid: ported at one size, it must match torch at two others.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import weightport
from weightport.formats import read_checkpoint
from weightport.models.weights import load_paddle

REPO = Path(__file__).resolve().parent.parent


def run(*args, check_rc=None):
    result = subprocess.run([sys.executable, "-m", "weightport", *map(str, args)], capture_output=True, text=True, cwd=REPO)
    if check_rc is not None:
        assert result.returncode == check_rc, result.stdout + result.stderr
    return result


def _twins(folder: Path):
    """Both twins of a ported folder with one set of random weights (the torch model's own, converted)."""
    torch_model = weightport.create_model(str(folder), "torch").eval()
    for buffer in (b for name, b in torch_model.named_buffers() if name.endswith(("running_mean", "running_var"))):
        buffer.uniform_(0.5, 1.5)
    torch.save(torch_model.state_dict(), folder.parent / "weights.pth")
    run("convert", folder, folder.parent / "weights.pth", folder.parent / "weights.pdparams", "--force", check_rc=0)
    paddle_model = weightport.create_model(str(folder), "paddle")
    load_paddle(paddle_model, read_checkpoint(folder.parent / "weights.pdparams").tensors)
    paddle_model.eval()
    return torch_model, paddle_model


def _outputs(twins, size: int):
    import paddle

    torch_model, paddle_model = twins
    batch = np.random.default_rng(size).standard_normal((2, 3, size, size)).astype("float32")
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(batch)).numpy()
    return expected, paddle_model(paddle.to_tensor(batch)).numpy()


@pytest.fixture(scope="module")
def windows(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sizes") / "windows"
    result = run("port", "tests.port_models:windows", "--input-size", "64", "--out", folder, "--json", check_rc=0)
    report = json.loads(result.stdout)
    assert report["sizes"] == [64, 48, 80] and report["size_limit"] is None
    assert [m["input_size"] for m in report["verify"]["models"]] == [64, 48, 80]
    return folder


@pytest.mark.slow
def test_the_manifest_records_the_sizes_traced(windows):
    manifest = json.loads((windows / "weightport.json").read_text())
    assert manifest["input_sizes"] == [64, 48, 80] and manifest["size_limit"] is None


@pytest.mark.slow
def test_a_branch_torch_takes_on_a_size_stays_a_branch(windows):
    source = (windows / "modeling_paddle.py").read_text()
    assert "if mod:" in source and "else:" in source  # pad only where the size needs it
    twins = _twins(windows)
    for size in (56, 72, 40):  # 56 and 72 need padding, 40 does not: neither was traced
        if size == 40:
            continue
        expected, got = _outputs(twins, size)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_number_taken_from_a_size_is_computed_again_where_the_traces_show_it(windows):
    source = (windows / "modeling_paddle.py").read_text()
    assert "int_floordiv" in source and "= int(" in source  # one body, the count computed
    expected, got = _outputs(_twins(windows), 56)  # a size that pads, with a count no trace saw
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_path_no_trace_saw_raises_instead_of_computing_something_else(windows):
    # 40 needs no padding, like 80, the only traced size that took that path: its count (10) is
    # one no trace of that path gave, so the twin must refuse rather than reuse 80's (20)
    source = (windows / "modeling_paddle.py").read_text()
    assert "if int(getitem_2 // 4) != 20:" in source  # the check, in the branch only 80 took
    with pytest.raises(ValueError, match="this twin follows the code torch ran when it was traced"):
        _outputs(_twins(windows), 40)
    result = run("verify", windows, "--input-size", "40")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "this twin follows the code torch ran" in result.stdout + result.stderr


@pytest.mark.slow
def test_a_model_that_runs_at_one_size_keeps_that_limit_and_says_so(tmp_path):
    folder = tmp_path / "fixed"
    report = json.loads(run("port", "tests.port_models:fixed_size", "--input-size", "16", "--out", folder, "--json", check_rc=0).stdout)
    assert report["sizes"] == [16] and "no other size" in report["size_limit"]
    assert json.loads((folder / "weightport.json").read_text())["input_sizes"] == "fixed"
    import paddle

    paddle_model = weightport.create_model(str(folder), "paddle")
    with pytest.raises(ValueError, match="ported for 16x16 inputs and runs at that size only"):
        paddle_model(paddle.zeros([1, 3, 32, 32]))


@pytest.mark.slow
def test_a_vit_with_dynamic_image_size_matches_torch_at_sizes_it_was_not_ported_at(tmp_path):
    folder = tmp_path / "vit"
    run("port", "timm:vit_tiny_patch16_224", "--model-arg", "dynamic_img_size=True", "--model-arg", "depth=2",
        "--input-size", "64", "--out", folder, "--no-verify", check_rc=0)
    source = (folder / "modeling_paddle.py").read_text()
    assert "interpolate(" in source and source.count("self.head(") == 1  # both arms end in one tail
    twins = _twins(folder)
    for size in (32, 112):
        expected, got = _outputs(twins, size)
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
    report = json.loads(run("verify", folder, "--input-size", "96", "--json", check_rc=0).stdout)
    assert report["models"][0]["input_size"] == 96


def test_a_size_the_port_size_does_not_use_is_still_computed_for_the_branch_that_does(tmp_path):
    """timm's efficientvit_m0: the batch size read from x.shape is only used in the windowed branch,
    which the port size does not take. The arms end alike (`return`), but only their own variables
    may be renamed to join them, never an attribute (`paddle.amax` is not `paddle.mean`)."""
    from tests.test_port_translations import _compare, _port

    class Windowed(torch.nn.Module):
        def forward(self, x):
            batch, channels, height, width = x.shape
            if height >= 56:
                return x.mean((2, 3))
            return x.reshape(batch, channels, -1).amax(-1)

    model = Windowed().eval()
    examples = [(torch.randn(2, 3, size, size),) for size in (64, 48, 80)]
    paddle_model, generated = _port(model, examples, tmp_path)
    assert "paddle.amax(" in generated.source
    import paddle

    for size in (40, 72):
        x = torch.randn(2, 3, size, size)
        _compare(model(x), paddle_model(paddle.to_tensor(x.numpy())))


def test_calls_with_other_numbers_become_branches_on_them(tmp_path):
    """pretrainedmodels' PolyNet: one conv module called with `block_index` 0, 1, 2, each picking
    its own BatchNorm. The calls are merged as sizes are, by the number they were called with."""
    from tests.test_port_translations import _compare, _port

    class Picked(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 1)
            self.norms = torch.nn.ModuleList(torch.nn.BatchNorm2d(3) for _ in range(2))

        def forward(self, x, index, scale=1.0):
            return self.norms[index](self.conv(x)) * scale

    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.picked = Picked()

        def forward(self, x):
            return self.picked(x, 0) + self.picked(x, 1, scale=0.5)

    model = Twice().eval()
    for norm in model.picked.norms:
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 8, 8)
    paddle_model, generated = _port(model, (x,), tmp_path)
    assert "if index == 0:" in generated.source
    import paddle

    _compare(model(x), paddle_model(paddle.to_tensor(x.numpy())))
    with pytest.raises(ValueError, match="`index` is 2, which no trace gave"):
        paddle_model.picked(paddle.to_tensor(x.numpy()), 2)
