"""Per-layer parity: matching modules across the twins, and naming the first one whose error jumps."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from weightport.formats import read_checkpoint, write_checkpoint
from weightport.parity.layerwise import (
    COMPARED,
    NOT_COMPARABLE,
    PADDLE_ONLY,
    TORCH_ONLY,
    LayerReport,
    LayerResult,
    _flag_jumps,
    _pair_in_call_order,
    compare_layers,
    match_modules,
)
from weightport.parity.metrics import Metrics
from weightport.parity.verification import verify
from weightport.report.chart import error_chart
from weightport.tables.loading import load_table


@pytest.mark.slow
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
         "--paddle", str(bad), "--layers", "--json-file", str(report), "--html", str(page), "--batch-size", "1"],
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
    # timm's act1/act2/act3 against Paddle's one relu per block (and the stem's): paired by call order.
    acts = [layer for layer in layers["layers"] if (layer["torch"] or "").rpartition(".")[2] in ("act1", "act2", "act3")]
    assert len(acts) == 1 + 16 * 3
    for act in acts:
        parent = act["torch"].rpartition(".")[0]
        assert act["status"] == COMPARED and act["metrics"] is not None and act["carried"] is not None
        assert act["paddle"] == (f"{parent}.relu" if parent else "relu")
        assert act["paddle_call"] == (int(act["torch"][-1]) if parent else 1)
    assert not [layer for layer in layers["layers"] if layer["status"] in (TORCH_ONLY, PADDLE_ONLY) and "ReLU" in layer["kind"]]
    # Through timm's global_pool wrapper, its pool pairs with Paddle's avgpool; the Identity
    # placeholders (drop_block and aa in every block) are counted, not listed.
    one_sided = [layer["torch"] or layer["paddle"] for layer in layers["layers"] if layer["status"] in (TORCH_ONLY, PADDLE_ONLY)]
    assert sorted(one_sided) == ["global_pool", "global_pool.flatten"] and layers["placeholders"] == 32
    html = page.read_text()
    assert "layer1.0.relu (call 2)" in html and "layer1.0.act2 (paddle: layer1.0.relu (call 2))" in html
    assert "layer3.2.conv2" in html and "<script" not in html and "http" not in html.replace(
        "http://www.w3.org/2000/svg", "")
    ET.fromstring(re.search(r"<svg.*?</svg>", html, re.S).group(0))  # well-formed inline SVG


@pytest.mark.slow
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


@pytest.mark.slow
def test_correct_conversions_flag_nothing(tiny_model):
    for name in (tiny_model, "resnet18"):
        result = verify(name, layers=True, floor=True, batch_size=1, device="cpu")
        report = result.models[0].layers
        assert result.passed and report.first_divergence is None and not report.flagged
        compared = [layer for layer in report.layers if layer.status == COMPARED]
        assert len(compared) >= 6
        assert all(layer.rel < 1e-5 for layer in compared)
        assert all(layer.floor_ratio is not None and layer.floor_ratio < 50 for layer in compared)
        assert not [layer for layer in report.layers if layer.status in (TORCH_ONLY, PADDLE_ONLY) and layer.kind == "ReLU"]
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
            self.extra = nn.Hardtanh(-1e9, 1e9)  # a no-op here; Paddle's `aux` is a Dropout: no pairing by call order
            self.skip = nn.Identity()  # a placeholder Paddle lacks: counted, not listed
            self.pair = TorchPair()
            self.pool = TorchPool()
            self.head = nn.Linear(4, 3)

        def forward(self, x):
            a, b = self.pair(self.skip(self.extra(self.tokens(self.stem(x)))))
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
            self.aux = paddle.nn.Dropout(0.5)
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
    assert "skip" not in by_name and report.placeholders == 1
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


def _shared_activation_twins():
    """Twins computing the same function: a block with separate ReLUs and a pool against one shared
    ReLU and a pool of another name; a tail and a root whose ReLUs order cannot pair."""
    import torch
    from torch import nn

    from weightport.frameworks import quiet_paddle_import

    paddle = quiet_paddle_import()

    class TorchBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.act1 = nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()
            self.conv2, self.act2 = nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()
            self.pool = nn.MaxPool2d(2)

        def forward(self, x):
            return self.pool(self.act2(self.conv2(self.act1(self.conv1(x)))))

    class TorchTail(nn.Module):
        def __init__(self):
            super().__init__()
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(2 * torch.relu(x))  # its first ReLU is functional: in order, act is Paddle's second

    class TorchNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.block, self.tail = nn.Conv2d(3, 4, 3, padding=1), TorchBlock(), TorchTail()
            self.head, self.act = nn.Linear(4, 3), nn.ReLU()

        def forward(self, x):
            return self.act(self.head(self.tail(self.block(self.stem(x))).mean((2, 3))))

    class PaddleBlock(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = paddle.nn.Conv2D(4, 4, 3, padding=1), paddle.nn.Conv2D(4, 4, 3, padding=1)
            self.relu, self.down = paddle.nn.ReLU(), paddle.nn.MaxPool2D(2)

        def forward(self, x):
            return self.down(self.relu(self.conv2(self.relu(self.conv1(x)))))

    class PaddleTail(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.relu = paddle.nn.ReLU()

        def forward(self, x):
            return self.relu(2 * self.relu(x))

    class PaddleNet(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.stem, self.block, self.tail = paddle.nn.Conv2D(3, 4, 3, padding=1), PaddleBlock(), PaddleTail()
            self.head, self.leaky = paddle.nn.Linear(4, 3), paddle.nn.LeakyReLU(0.0)  # ReLU under another kind

        def forward(self, x):
            return self.leaky(self.head(self.tail(self.block(self.stem(x))).mean([2, 3])))

    torch_model, paddle_model = TorchNet().eval(), PaddleNet()
    paddle_model.eval()
    for name, tensor in torch_model.state_dict().items():
        value = tensor.numpy()
        paddle_model.state_dict()[name].set_value(value.T if name == "head.weight" else value)
    return torch_model, paddle_model


def test_unpaired_activations_are_paired_by_call_order_within_their_parent(tmp_path):
    table_path = tmp_path / "same.toml"
    table_path.write_text('description = "same names"\ntranspose = ["head.weight"]\n')
    torch_model, paddle_model = _shared_activation_twins()
    batch = np.random.default_rng(0).standard_normal((1, 3, 6, 6)).astype(np.float32)
    report = compare_layers(load_table(table_path), torch_model, paddle_model, batch)
    rows = {(layer.torch, layer.paddle, layer.paddle_call): layer for layer in report.layers}
    # The block's ReLUs are its shared relu's first and second calls; MaxPool2d is MaxPool2D.
    for torch_path, paddle_path, call in (("block.act1", "block.relu", 1), ("block.act2", "block.relu", 2),
                                          ("block.pool", "block.down", 1)):
        layer = rows[(torch_path, paddle_path, call)]
        assert layer.status == COMPARED and layer.rel < 1e-5 and layer.carried is not None
    assert rows[("block.act2", "block.relu", 2)].counterpart == "block.relu (call 2)"
    # One ReLU module against two (the other functional), a ReLU against a LeakyReLU: left one-sided.
    assert rows[("tail.act", None, None)].status == TORCH_ONLY and rows[("act", None, None)].status == TORCH_ONLY
    for paddle_path, call in (("tail.relu", 1), ("tail.relu", 2), ("leaky", 1)):
        assert rows[(None, paddle_path, call)].status == PADDLE_ONLY
    assert report.first_divergence is None
    assert [layer.name for layer in report.layers][:6] == ["stem", "block.conv1", "block.act1", "block.conv2", "block.act2",
                                                           "block.pool"]


@pytest.mark.parametrize(
    "torch_calls, paddle_calls, pairs",
    [
        # a kind the other side lacks is skipped; the ReLUs still pair in order
        ([("t.a", "ReLU", [4]), ("t.i", "Identity", [4]), ("t.b", "ReLU", [4])], [("p.r1", "ReLU", [4]), ("p.r2", "ReLU", [4])],
         [("t.a", "p.r1"), ("t.b", "p.r2")]),
        # shapes that differ mean the sequences do not line up: nothing of that kind is paired
        ([("t.a", "ReLU", [4]), ("t.b", "ReLU", [2])], [("p.r1", "ReLU", [2]), ("p.r2", "ReLU", [4])], []),
        # an output that is not one tensor is never paired
        ([("t.a", "ReLU", None)], [("p.r", "ReLU", None)], []),
        # class names that name one function: case-folded, and SiLU is Swish
        ([("t.a", "SiLU", [4]), ("t.p", "AdaptiveAvgPool2d", [1])], [("p.s", "Swish", [4]), ("p.p", "AdaptiveAvgPool2D", [1])],
         [("t.a", "p.s"), ("t.p", "p.p")]),
    ],
)
def test_pairing_by_call_order_needs_kinds_counts_and_shapes_to_agree(torch_calls, paddle_calls, pairs):
    def keyed(calls):
        return [((path, 1), kind, shape) for path, kind, shape in calls]

    found = _pair_in_call_order(keyed(torch_calls), keyed(paddle_calls))
    assert sorted((t[0], p[0]) for t, p in found) == sorted(pairs)
