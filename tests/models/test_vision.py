"""The torchvision <-> paddle.vision zoo: the libraries' own models as twins, tables only.

For every registered pair, a torchvision-saved checkpoint converts and loads strictly into
paddle.vision's own model, which then gives torchvision's logits; a `paddle.save`d checkpoint of
that model converts back and loads strictly into torchvision's model. Small inputs where the
architecture allows. The architectures the libraries define differently are refused by name.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from weightport.conversion import convert
from weightport.errors import UserError
from weightport.frameworks import quiet_paddle_import
from weightport.models.pair import resolve
from weightport.models.vision import MODELS, REFUSED, TRAINING_DIFFERS
from weightport.parity.inputs import random_batch
from weightport.parity.metrics import Metrics
from weightport.parity.running import paddle_forward, torch_forward
from weightport.testing import checkpoint_round_trip, load_paddle_strictly

paddle = quiet_paddle_import()

NAMES = [spec.name for spec in MODELS]
# paddle.vision's AlexNet flattens a fixed 6 x 6 map (torchvision pools to it adaptively); Inception
# v3 needs 75 pixels; the others pool adaptively and take small inputs.
INPUT_SIZE = {"alexnet": 224, "inception_v3": 107}


def _logits(forward, model, batch) -> np.ndarray:
    return forward(model, batch)[0][1]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.slow
def test_torchvision_checkpoints_load_into_paddle_vision_and_back(name, tmp_path):
    assert type(resolve(name).create("paddle")).__module__.startswith("paddle.vision.models")  # paddle.vision's own
    trip = checkpoint_round_trip(name, tmp_path, INPUT_SIZE.get(name, 64))
    assert trip.there.max_rel < 2e-5, (name, trip.there)
    assert trip.back.max_rel < 1e-6, (name, trip.back)
    assert bool(trip.summary.adjusted) == (name in TRAINING_DIFFERS)


def test_inception_checkpoints_lose_only_their_auxiliary_classifier_and_say_so(tmp_path):
    import torchvision

    with_aux = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False).eval()
    torch.save(with_aux.state_dict(), tmp_path / "inception.pth")
    summary = convert("inception_v3", tmp_path / "inception.pth", tmp_path / "inception.pdparams")
    assert summary.dropped_keys and all(k.startswith("AuxLogits.") or k.endswith("num_batches_tracked") for k in summary.dropped_keys)
    assert set(summary.adjusted) >= {"fc.weight", "inception_stem.conv_1a_3x3.1._variance"}
    paddle_model = resolve("inception_v3").create("paddle")
    load_paddle_strictly(paddle_model, paddle.load(str(tmp_path / "inception.pdparams")))
    paddle_model.eval()
    batch = random_batch(1, 107, seed=2)
    metrics = Metrics.compare(_logits(torch_forward, with_aux, batch), _logits(paddle_forward, paddle_model, batch))
    assert metrics.max_rel < 2e-5


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_different_networks_under_one_name_are_refused_with_the_difference(name):
    with pytest.raises(UserError, match=f"{name} is not supported: .*differ"):
        resolve(name)


def test_the_family_is_listed():
    from click.testing import CliRunner

    from weightport.cli import cli

    result = CliRunner().invoke(cli, ["list", "--json"])
    listed = {row["name"]: row for row in json.loads(result.output)}
    assert {name for name, row in listed.items() if row["family"] == "torchvision"} == set(NAMES)
