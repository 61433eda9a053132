"""PaddleClas PP-HGNet / PP-HGNetV2 <-> timm hgnet_* / hgnetv2_b*.

For every pair, a timm checkpoint with random non-trivial weights converts and loads strictly into
the PaddleClas-layout twin, which then gives timm's logits; a `paddle.save`d checkpoint of that
twin converts back and loads strictly into timm's own model. Also: PPHGNet_base's 0.8 dropout is
folded into fc (and without the fold the logits are 20 % off), and the one architectural difference
left between timm and PaddleClas, the V2 stem's max-pool padding, is confined to where LAB makes
the pool's input negative.
"""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

from weightport.conversion import convert
from weightport.frameworks import quiet_paddle_import
from weightport.models.pair import resolve
from weightport.models.ppcls_hgnet import MODELS, TRAINING_DIFFERS
from weightport.models.weights import randomize_torch
from weightport.parity.inputs import random_batch
from weightport.parity.metrics import Metrics
from weightport.parity.running import paddle_forward, torch_forward
from weightport.tables.loading import load_table
from weightport.testing import checkpoint_round_trip, load_paddle_strictly

paddle = quiet_paddle_import()

NAMES = [spec.name for spec in MODELS]
INPUT_SIZE = 64  # every variant pools adaptively; 64 px leaves a 2 x 2 map after stage 4


def _timm_name(name: str) -> str:
    return name.replace("ppcls_pphgnet", "hgnet")


def _logits(forward, model, batch) -> np.ndarray:
    return forward(model, batch)[0][1]


def _dropout_rates(paddle_model) -> list[float]:
    return [layer.p for layer in paddle_model.sublayers() if isinstance(layer, paddle.nn.Dropout)]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.slow
def test_timm_checkpoints_load_into_paddleclas_twins_and_back(name, tmp_path):
    trip = checkpoint_round_trip(name, tmp_path, INPUT_SIZE)
    assert trip.there.max_rel < 1e-5, (name, trip.there)
    assert trip.back.max_rel < 1e-6, (name, trip.back)
    assert list(trip.summary.adjusted) == (["fc.weight"] if name in TRAINING_DIFFERS else [])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.slow
def test_only_pphgnet_base_has_a_downscale_in_infer_dropout(name):
    # PaddleClas's defaults: a downscale-in-infer dropout with p > 0 in PPHGNet_base alone.
    assert _dropout_rates(resolve(name).create("paddle")) == [0.2 if name == "ppcls_pphgnet_base" else 0.0]


@pytest.mark.slow
def test_pphgnet_base_folds_the_downscale_in_infer_dropout_into_fc(tmp_path):
    """PaddleClas multiplies the features by 0.8 before fc at inference, timm does not: fc's weight
    is 1.25x timm's in Paddle. Converted without that rule, the logits come out 20 % off."""
    name = "ppcls_pphgnet_base"
    pair = resolve(name)
    timm_model = pair.create_to_overwrite("torch")
    randomize_torch(timm_model, seed=5)
    timm_model.eval()
    torch.save(timm_model.state_dict(), tmp_path / "timm.pth")
    folded = convert(name, tmp_path / "timm.pth", tmp_path / "folded.pdparams")
    unfolded = convert(pair.with_table(load_table("ppcls_hgnet")), tmp_path / "timm.pth", tmp_path / "unfolded.pdparams")
    (tmp_path / "timm.pth").unlink()
    assert folded.adjusted == {"fc.weight": load_table("ppcls_hgnet_base").adjusts[0].why}
    assert "downscale_in_infer" in folded.adjusted["fc.weight"]
    assert unfolded.adjusted == {}

    states = {kind: paddle.load(str(tmp_path / f"{kind}.pdparams")) for kind in ("folded", "unfolded")}
    fc_weight = timm_model.head.fc.weight.detach().numpy().T
    np.testing.assert_allclose(states["folded"]["fc.weight"], fc_weight * 1.25, rtol=1e-6)
    np.testing.assert_array_equal(states["unfolded"]["fc.weight"], fc_weight)

    batch = random_batch(1, INPUT_SIZE, seed=2)
    reference = _logits(torch_forward, timm_model, batch)
    fc_bias = timm_model.head.fc.bias.detach().numpy()
    logits = {}
    for kind, state in states.items():
        paddle_model = pair.create("paddle")
        load_paddle_strictly(paddle_model, state)
        paddle_model.eval()
        logits[kind] = _logits(paddle_forward, paddle_model, batch)
    assert Metrics.compare(reference, logits["folded"]).max_rel < 1e-5
    # Without the fold, what fc adds to its bias is exactly 0.8x timm's.
    np.testing.assert_allclose(logits["unfolded"] - fc_bias, 0.8 * (reference - fc_bias), rtol=0, atol=1e-5)
    assert Metrics.compare(reference, logits["unfolded"]).max_rel > 0.05

    # And back: Paddle's weight / 1.25 is timm's again.
    convert(name, tmp_path / "folded.pdparams", tmp_path / "back.pth")
    back = torch.load(tmp_path / "back.pth", weights_only=True)
    np.testing.assert_allclose(back["head.fc.weight"].numpy(), fc_weight.T, rtol=1e-6)


def test_v2_stem_pool_differs_from_timms_only_where_lab_makes_its_input_negative():
    """timm zero-pads stem1's output before the 2x2/1 max-pool; PaddleClas's "SAME" pool ignores the
    padding. Equal for non-negative inputs (a ReLU, or a LAB with scale and bias >= 0); with a
    negative LAB bias, timm's pool returns 0 on the last row and column of the map, where PaddleClas
    (and the B0-B3 torch twins) return the largest real value."""
    twin = resolve("ppcls_pphgnetv2_b0").create_to_overwrite("torch")
    randomize_torch(twin, seed=1)
    stock = timm.create_model("hgnetv2_b0", pretrained=False).eval()
    stock.load_state_dict(twin.state_dict(), strict=True)
    x = torch.from_numpy(random_batch(1, 32, seed=4))

    paddle_pool = paddle.nn.MaxPool2D(kernel_size=2, stride=1, ceil_mode=True, padding="SAME")
    for scale, bias, differs in ((1.2, 0.1, False), (1.2, -0.2, True)):
        with torch.no_grad():
            for model in (twin, stock):
                model.stem.stem1.lab.scale.fill_(scale)
                model.stem.stem1.lab.bias.fill_(bias)
            features = twin.stem.stem1(x)
            paddleclas = paddle_pool(paddle.to_tensor(features.numpy())).numpy()
            ours = twin.stem.pool(torch.nn.functional.pad(features, (0, 1, 0, 1), value=float("-inf"))).numpy()
            timms = stock.stem.pool(torch.nn.functional.pad(features, (0, 1, 0, 1))).numpy()
            np.testing.assert_array_equal(ours, paddleclas)
            gap = np.abs(timms - paddleclas)
            assert gap[..., :-1, :-1].max() == 0  # inside the map the pools agree
            assert (gap.max() > 0) == differs
            if differs:
                assert np.abs(gap.max() + bias) < 1e-6  # timm's 0 where every real value is the LAB bias
            # The whole stem: our twin's forward uses that pool, timm's differs exactly when the pools do.
            stems = twin.stem(x).numpy(), stock.stem(x).numpy()
            assert (np.abs(stems[0] - stems[1]).max() > 0) == differs
