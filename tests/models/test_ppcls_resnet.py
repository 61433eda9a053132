"""PaddleClas ResNets (vb, vd) in PaddleClas's layout against timm's ResNets.

For every pair: a checkpoint saved from the torch twin (timm) with random non-trivial weights
converts and loads strictly into the PaddleClas-layout twin with the same logits, and a
`paddle.save`d checkpoint of that twin converts back and loads strictly into timm. The vd
shortcut's average pool is checked on odd feature maps, and the finding that PaddleClas's
ResNet18/34 project the first block's shortcut where timm's do not is asserted both ways: the
twins differ from timm by exactly those tensors, and a plain timm checkpoint is refused, naming them.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import timm
import torch

from weightport.conversion import convert
from weightport.errors import LayoutError
from weightport.frameworks import quiet_paddle_import
from weightport.models.pair import resolve
from weightport.models.ppcls_resnet import MODELS
from weightport.models.weights import randomize_torch
from weightport.parity.inputs import random_batch
from weightport.parity.metrics import Metrics
from weightport.parity.running import paddle_forward, torch_forward
from weightport.testing import load_paddle_strictly

paddle = quiet_paddle_import()

NAMES = [spec.name for spec in MODELS]
TIMM_NAME = {spec.name: f"resnet{spec.name[len('ppcls_resnet'):].replace('_vd', 'd')}" for spec in MODELS}
PROJECTED = [name for name in NAMES if name.startswith(("ppcls_resnet18", "ppcls_resnet34"))]
# What PaddleClas's ResNet18/34 hold in layer1.0 and timm's do not, as timm names it.
VB_PROJECTION = ["layer1.0.downsample.0.weight", "layer1.0.downsample.1.weight", "layer1.0.downsample.1.bias",
                 "layer1.0.downsample.1.running_mean", "layer1.0.downsample.1.running_var",
                 "layer1.0.downsample.1.num_batches_tracked"]
VD_PROJECTION = ["layer1.0.downsample.1.weight", "layer1.0.downsample.2.weight", "layer1.0.downsample.2.bias",
                 "layer1.0.downsample.2.running_mean", "layer1.0.downsample.2.running_var",
                 "layer1.0.downsample.2.num_batches_tracked"]


def _logits(forward, model, batch) -> np.ndarray:
    return forward(model, batch)[0][1]


def _randomized_torch_twin(name: str, seed: int = 3):
    model = resolve(name).create_to_overwrite("torch")
    randomize_torch(model, seed=seed)
    return model.eval()


def _to_paddle(name: str, torch_model, tmp_path):
    """The torch twin's weights through torch.save -> convert -> paddle.load, strictly loaded into the Paddle twin."""
    torch.save(torch_model.state_dict(), tmp_path / "timm.pth")
    convert(name, tmp_path / "timm.pth", tmp_path / "ppcls.pdparams")
    (tmp_path / "timm.pth").unlink()
    paddle_model = resolve(name).create("paddle")
    load_paddle_strictly(paddle_model, paddle.load(str(tmp_path / "ppcls.pdparams")))
    (tmp_path / "ppcls.pdparams").unlink()
    return paddle_model.eval()


def _fp64_floor(torch_model, batch, reference) -> float:
    """torch's own fp32 error against an fp64 run of the same weights: the yardstick for a conversion."""
    exact = _logits(torch_forward, torch_model.double(), batch.astype(np.float64))
    torch_model.float()
    return Metrics.compare(exact, reference).max_abs


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.slow
def test_checkpoints_convert_to_the_paddleclas_layout_and_back(name, tmp_path):
    timm_model = _randomized_torch_twin(name)
    paddle_model = _to_paddle(name, timm_model, tmp_path)
    batch = random_batch(2, 64, seed=1)
    reference = _logits(torch_forward, timm_model, batch)
    metrics = Metrics.compare(reference, _logits(paddle_forward, paddle_model, batch))
    floor = _fp64_floor(timm_model, batch, reference)
    print(f"{name}: max_rel {metrics.max_rel:.3g} (max_abs {metrics.max_abs:.3g}, fp64 floor {floor:.3g})")
    assert metrics.ref_max > 0.1, "logits too small to show anything"
    assert metrics.max_rel < 2e-5 and metrics.max_abs < 8 * floor, (name, metrics, floor)

    paddle.save(paddle_model.state_dict(), str(tmp_path / "saved.pdparams"))
    convert(name, tmp_path / "saved.pdparams", tmp_path / "back.pth")
    (tmp_path / "saved.pdparams").unlink()
    back = timm.create_model(TIMM_NAME[name], pretrained=False) if name not in PROJECTED else resolve(name).create("torch")
    back.load_state_dict(torch.load(tmp_path / "back.pth", weights_only=True), strict=True)
    (tmp_path / "back.pth").unlink()
    back_metrics = Metrics.compare(reference, _logits(torch_forward, back.eval(), batch))
    print(f"{name}: back to timm, max_rel {back_metrics.max_rel:.3g}")
    assert back_metrics.max_rel < 1e-6


@pytest.mark.parametrize("size", [65, 97])
@pytest.mark.parametrize("name", ["ppcls_resnet18_vd", "ppcls_resnet50_vd"])
def test_vd_shortcut_pool_agrees_on_odd_feature_maps(name, size, tmp_path):
    """At 65 px the vd shortcuts pool 17, 9 and 5 px maps, at 97 px 25, 13 and 7: their last
    window hangs over the edge, where PaddleClas's "SAME"-padded exclusive pool and timm's
    ceil-mode pool without padding must both average the pixels that exist."""
    timm_model = _randomized_torch_twin(name)
    paddle_model = _to_paddle(name, timm_model, tmp_path)
    batch = random_batch(1, size, seed=2)
    metrics = Metrics.compare(_logits(torch_forward, timm_model, batch), _logits(paddle_forward, paddle_model, batch))
    print(f"{name} at {size} px: max_rel {metrics.max_rel:.3g}")
    assert metrics.max_rel < 2e-5, metrics


@pytest.mark.parametrize("shape", [(2, 4, 17, 9), (1, 3, 5, 6), (1, 2, 1, 3)])
def test_avg_pools_match_where_the_window_hangs_over(shape):
    from weightport.models.ppcls_resnet.modeling_paddle import ConvBNLayer

    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    timm_pool = timm.models.resnet.downsample_avg(shape[1], shape[1], 1, stride=2)[0]
    expected = timm_pool(torch.from_numpy(x)).numpy()
    got = ConvBNLayer(shape[1], shape[1], 1, stride=2, is_vd_mode=True).avg_pool(paddle.to_tensor(x)).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_only_the_first_projection_of_resnet18_and_34_is_not_timms(name):
    """timm's own model holds exactly the torch twin's tensors, but for PaddleClas's extra 64 -> 64
    projection in layer1.0 of ResNet18/34, which the Paddle twin's blocks.0.short is."""
    twin = {k: tuple(v.shape) for k, v in resolve(name).create_to_overwrite("torch").state_dict().items()}
    plain = {k: tuple(v.shape) for k, v in timm.create_model(TIMM_NAME[name], pretrained=False).state_dict().items()}
    extra = sorted(set(twin) - set(plain))
    assert set(plain) <= set(twin) and all(twin[k] == plain[k] for k in plain)
    if name not in PROJECTED:
        assert extra == []
        return
    assert extra == sorted(VD_PROJECTION if name.endswith("_vd") else VB_PROJECTION)
    short = {k: tuple(v.shape) for k, v in resolve(name).create_to_overwrite("paddle").state_dict().items()
             if k.startswith("blocks.0.short.")}
    assert short == {"blocks.0.short.conv.weight": (64, 64, 1, 1), **{f"blocks.0.short.bn.{p}": (64,)
                     for p in ("weight", "bias", "_mean", "_variance")}}


@pytest.mark.parametrize("name", ["ppcls_resnet18", "ppcls_resnet34_vd"])
def test_plain_timm_checkpoint_is_refused_naming_the_missing_projection(name, tmp_path):
    torch.save(timm.create_model(TIMM_NAME[name], pretrained=False).state_dict(), tmp_path / "plain.pth")
    with pytest.raises(LayoutError) as refused:
        convert(name, tmp_path / "plain.pth", tmp_path / "out.pdparams")
    message = str(refused.value)
    named = [k for k in (VD_PROJECTION if name.endswith("_vd") else VB_PROJECTION) if not k.endswith("num_batches_tracked")]
    assert "(5 problems)" in message and all(f"has no torch {k})" in message for k in named), message
    assert not (tmp_path / "out.pdparams").exists()


def test_the_family_is_listed_as_the_paddleclas_layout():
    from click.testing import CliRunner

    from weightport.cli import cli

    listed = {row["name"]: row for row in json.loads(CliRunner().invoke(cli, ["list", "--json"]).output)}
    ours = {name: row for name, row in listed.items() if row["family"] == "ppcls_resnet"}
    assert set(ours) == set(NAMES)
    assert all("PaddleClas layout" in row["description"] for row in ours.values())
    assert all(("plain timm" in row["description"]) == (name in PROJECTED) for name, row in ours.items())
