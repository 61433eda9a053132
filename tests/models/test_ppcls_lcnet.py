"""PP-LCNet in PaddleClas's layout <-> timm `lcnet_*`: round trips, the head's two traps.

PaddleClas's `Dropout(p=0.2, mode="downscale_in_infer")` before `fc` scales by 0.8 at inference
(the table scales the classifier); timm's `conv_head` has a bias that PaddleClas's `last_conv` lacks
(a zero one converts, a trained one is refused by name).
"""
from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from weightport.cli import cli
from weightport.frameworks import quiet_paddle_import
from weightport.models.pair import resolve
from weightport.models.ppcls_lcnet import MODELS
from weightport.models.weights import randomize_torch
from weightport.parity.inputs import random_batch
from weightport.parity.metrics import Metrics
from weightport.parity.running import paddle_forward, torch_forward
from weightport.testing import checkpoint_round_trip, load_paddle_strictly

paddle = quiet_paddle_import()
NAMES = [spec.name for spec in MODELS]


@pytest.mark.parametrize("name", NAMES)
def test_timm_checkpoints_load_into_the_paddleclas_layout_and_back(name, tmp_path):
    trip = checkpoint_round_trip(name, tmp_path, input_size=64)
    assert trip.there.max_rel < 2e-6, trip.there
    assert trip.back.max_rel < 1e-6, trip.back
    assert set(trip.summary.adjusted) == {"fc.weight"} and "conv_head.bias" in trip.summary.dropped_keys


def _lcnet_050_checkpoint(path, head_bias: float):
    model = resolve("ppcls_pplcnet_x0_5").create_to_overwrite("torch")
    randomize_torch(model, seed=5)
    with torch.no_grad():
        model.conv_head.bias.fill_(0.0)
        model.conv_head.bias[3] = head_bias
    torch.save(model.eval().state_dict(), path)
    return model


def test_a_trained_conv_head_bias_is_refused_by_name_and_a_zero_one_converts(tmp_path):
    _lcnet_050_checkpoint(tmp_path / "trained.pth", head_bias=0.5)
    result = CliRunner().invoke(cli, ["convert", "ppcls_pplcnet_x0_5", str(tmp_path / "trained.pth"), str(tmp_path / "out.pdparams")])
    assert result.exit_code == 2, result.output
    assert "conv_head.bias holds values other than 0" in result.output and "last_conv has no bias" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out.pdparams").exists()

    model = _lcnet_050_checkpoint(tmp_path / "zero.pth", head_bias=0.0)
    result = CliRunner().invoke(cli, ["convert", "ppcls_pplcnet_x0_5", str(tmp_path / "zero.pth"), str(tmp_path / "out.pdparams")])
    assert result.exit_code == 0, result.output
    paddle_model = resolve("ppcls_pplcnet_x0_5").create("paddle")
    load_paddle_strictly(paddle_model, paddle.load(str(tmp_path / "out.pdparams")))
    batch = random_batch(2, 64, seed=2)
    reference = torch_forward(model, batch)[0][1]
    assert Metrics.compare(reference, paddle_forward(paddle_model.eval(), batch)[0][1]).max_rel < 2e-6

    # Without the table's 1.25 the logits would be 20 % off: PaddleClas's dropout scales by 0.8.
    unscaled = paddle_model.state_dict()
    unscaled["fc.weight"] = paddle.to_tensor(unscaled["fc.weight"].numpy() / 1.25)
    paddle_model.set_state_dict(unscaled)
    off = Metrics.compare(reference - model.classifier.bias.detach().numpy(),
                          paddle_forward(paddle_model, batch)[0][1] - unscaled["fc.bias"].numpy())
    assert 0.19 < off.max_rel < 0.21
