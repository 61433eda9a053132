"""Per-layer parity: matching modules across the twins, and naming the first one whose error jumps."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from weightport.comparison import Metrics
from weightport.formats import read_checkpoint, write_checkpoint
from weightport.layerwise import (
    COMPARED,
    NOT_COMPARABLE,
    PADDLE_ONLY,
    TORCH_ONLY,
    LayerReport,
    LayerResult,
    _flag_jumps,
    compare_layers,
    error_chart,
    match_modules,
)
from weightport.mapping import load_table
from weightport.verification import verify


def test_perturbed_conv_in_resnet50_is_named_by_the_cli(resnet50_wrapped_ckpt, tmp_path):
    from weightport.conversion import convert

    pdparams = tmp_path / "good.pdparams"
    convert("resnet50", str(resnet50_wrapped_ckpt), str(pdparams))
    tensors = dict(read_checkpoint(pdparams).tensors)
    weight = tensors["layer3.2.conv2.weight"]
    tensors["layer3.2.conv2.weight"] = type(weight).of(weight.load() * np.float32(1.01), weight.dtype)
    bad = write_checkpoint(tmp_path / "bad.pdparams", tensors.items())
    report, page = tmp_path / "out.json", tmp_path / "layers.html"
    run = subprocess.run(
        [sys.executable, "-m", "weightport", "verify", "resnet50", "--torch", str(resnet50_wrapped_ckpt),
         "--paddle", str(bad), "--layers", "--json", str(report), "--html", str(page), "--batch-size", "1"],
        capture_output=True, text=True,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "first diverging module: layer3.2.conv2" in run.stdout
    layers = json.loads(report.read_text())["models"][0]["layers"]
    assert layers["first_divergence"] in ("layer3.2.conv2", "layer3.2.bn2")
    # Nothing before it is flagged, and the blocks enclosing it are not flagged again.
    assert [layer["torch"] for layer in layers["layers"] if layer["jump"]] == ["layer3.2.conv2"]
    first = next(layer for layer in layers["layers"] if layer["jump"])
    assert first["metrics"]["max_rel"] > 1e-3 and first["carried"] < 1e-5
    html = page.read_text()
    assert "layer3.2.conv2" in html and "<script" not in html and "http" not in html.replace(
        "http://www.w3.org/2000/svg", "")
    ET.fromstring(re.search(r"<svg.*?</svg>", html, re.S).group(0))  # well-formed inline SVG


def test_tanh_gelu_in_one_fcvit_block_is_located(monkeypatch):
    from weightport.frameworks import quiet_paddle_import
    from weightport.models.fcvit import modeling_paddle

    paddle = quiet_paddle_import()
    faithful = modeling_paddle.fcvit_tiny

    def wrong_twin(**kwargs):
        model = faithful(**kwargs)
        model.network[2][1].channel_mixer.act = paddle.nn.GELU(approximate=True)
        return model

    monkeypatch.setattr(modeling_paddle, "fcvit_tiny", wrong_twin)
    report = verify("fcvit_tiny", layers=True, batch_size=1, device="cpu").models[0].layers
    assert report.first_divergence == "network.2.1.channel_mixer.act", report.first_divergence
    assert report.flagged and all(layer.torch.startswith("network.2.1.") for layer in report.flagged)


def test_correct_conversions_flag_nothing(tiny_model):
    for name in (tiny_model, "resnet18"):
        result = verify(name, layers=True, floor=True, batch_size=1, device="cpu")
        report = result.models[0].layers
        assert result.passed and report.first_divergence is None and not report.flagged
        compared = [layer for layer in report.layers if layer.status == COMPARED]
        assert len(compared) >= 6
        assert all(layer.rel < 1e-5 for layer in compared)
        assert all(layer.floor_ratio is not None and layer.floor_ratio < 50 for layer in compared)
        json.dumps(result.as_dict())
    # The tiny twins rename every module: the table pairs them all.
    pairs = {(layer.torch, layer.paddle) for layer in verify(tiny_model, layers=True, device="cpu").models[0].layers.layers}
    assert {("stem", "conv"), ("stem_bn", "bn"), ("square", "mix"), ("norm", "ln"), ("head", "classifier"), ("", "")} <= pairs


def test_renamed_parameter_free_modules_follow_the_table(tmp_path):
    import torch

    from weightport.frameworks import quiet_paddle_import

    paddle = quiet_paddle_import()
    table_path = tmp_path / "wrapped.toml"
    table_path.write_text('description = "head.fc is fc"\n[[rename]]\ntorch = "head.{rest:.+}"\npaddle = "{rest}"\n')

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)
            self.act = torch.nn.ReLU()

    torch_model = torch.nn.Module()
    torch_model.head = Head()
    paddle_model = paddle.nn.Layer()
    paddle_model.fc = paddle.nn.Linear(2, 2)
    paddle_model.act = paddle.nn.ReLU()
    # head.fc holds fc's weights, head.act renames to act, and the wrapper `head` has no counterpart.
    assert match_modules(load_table(table_path), torch_model, paddle_model) == {"": "", "head.fc": "fc", "head.act": "act"}


def _layout_twins():
    """Twins computing the same function, whose modules differ in layout, output type and presence."""
    from torch import nn

    from weightport.frameworks import quiet_paddle_import

    paddle = quiet_paddle_import()

    class TorchTokens(nn.Module):
        def forward(self, x):
            return x.flatten(2).transpose(1, 2)  # [B, HW, C]

    class TorchPair(nn.Module):
        def forward(self, x):
            return x, 2 * x

    class TorchPool(nn.Module):
        def forward(self, x):
            return x.mean(1)  # [B, C]

    class TorchNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 3, padding=1)
            self.tokens = TorchTokens()
            self.extra = nn.Identity()
            self.pair = TorchPair()
            self.pool = TorchPool()
            self.head = nn.Linear(4, 3)

        def forward(self, x):
            a, b = self.pair(self.extra(self.tokens(self.stem(x))))
            return self.head(self.pool(a + b))

    class PaddleTokens(paddle.nn.Layer):
        def forward(self, x):
            return x.flatten(2)  # [B, C, HW]: channels first

    class PaddleTriple(paddle.nn.Layer):
        def forward(self, x):
            return 3 * x

    class PaddlePool(paddle.nn.Layer):
        def forward(self, x):
            return x.mean(1, keepdim=True)  # [B, 1, C]

    class PaddleNet(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.stem = paddle.nn.Conv2D(3, 4, 3, padding=1)
            self.tokens = PaddleTokens()
            self.aux = paddle.nn.Identity()
            self.pair = PaddleTriple()
            self.pool = PaddlePool()
            self.head = paddle.nn.Linear(4, 3)

        def forward(self, x):
            tokens = self.aux(self.tokens(self.stem(x)).transpose([0, 2, 1]))
            return self.head(self.pool(self.pair(tokens)).squeeze(1))

    torch_model, paddle_model = TorchNet().eval(), PaddleNet()
    paddle_model.eval()
    paddle_model.stem.weight.set_value(torch_model.stem.weight.detach().numpy())
    paddle_model.stem.bias.set_value(torch_model.stem.bias.detach().numpy())
    paddle_model.head.weight.set_value(torch_model.head.weight.detach().numpy().T)
    paddle_model.head.bias.set_value(torch_model.head.bias.detach().numpy())
    return torch_model, paddle_model


def test_one_sided_modules_and_layout_mismatches_are_reported(tmp_path):
    table_path = tmp_path / "same.toml"
    table_path.write_text('description = "same names"\ntranspose = ["head.weight"]\n')
    torch_model, paddle_model = _layout_twins()
    batch = np.random.default_rng(0).standard_normal((1, 3, 5, 5)).astype(np.float32)
    report = compare_layers(load_table(table_path), torch_model, paddle_model, batch)
    by_name = {layer.name: layer for layer in report.layers}
    assert by_name["extra"].status == TORCH_ONLY and by_name["aux"].status == PADDLE_ONLY
    assert by_name["tokens"].status == NOT_COMPARABLE and "another order" in by_name["tokens"].reason
    assert by_name["pool"].status == NOT_COMPARABLE and "flattened or reshaped" in by_name["pool"].reason
    assert by_name["pair"].status == NOT_COMPARABLE and "tuple" in by_name["pair"].reason
    for name in ("stem", "head", "(model)"):
        assert by_name[name].status == COMPARED and by_name[name].rel < 1e-5
    assert report.first_divergence is None
    # Execution order: torch's, with Paddle-only layers where Paddle ran them.
    assert [layer.name for layer in report.layers] == ["stem", "tokens", "aux", "extra", "pair", "pool", "head", "(model)"]
    chart = error_chart(report, 60).plain
    assert "·" in chart and "1e-9" in chart


def _layer(torch_path, rel, carried):
    metrics = Metrics(rel, rel, 1.0, rel, 1.0)
    return LayerResult(torch_path, torch_path, 1, "Conv", COMPARED, metrics=metrics, carried=carried)


@pytest.mark.parametrize(
    "layers, flagged",
    [
        # errors growing with depth are not a jump
        ([_layer("a", 1e-6, 0.0), _layer("b", 2e-5, 1e-6), _layer("c", 3e-4, 2e-5)], []),
        # a big jump below the absolute floor is fp32 rounding on an exact input
        ([_layer("a", 5e-6, 0.0), _layer("b", 6e-6, 5e-6)], []),
        # the faulty module is flagged, its enclosing block is not, a later independent fault is
        ([_layer("b.conv", 1e-2, 1e-6), _layer("b", 5e-3, 1e-6), _layer("c", 1e-1, 1e-2), _layer("d.x", 1.0, 1e-3)],
         ["b.conv", "d.x"]),
        # inputs not comparable: what ran before stands for what the module inherited
        ([_layer("a", 1e-3, 1e-6), _layer("b", 2e-3, None)], ["a"]),
        # NaN is infinitely wrong
        ([_layer("a", 1e-6, 0.0), _layer("b", float("nan"), 1e-6)], ["b"]),
    ],
)
def test_jump_detection(layers, flagged):
    report = LayerReport(inputs="", layers=layers)
    _flag_jumps(report)
    assert [layer.torch for layer in report.flagged] == flagged
    assert report.first_divergence == (flagged[0] if flagged else None)
