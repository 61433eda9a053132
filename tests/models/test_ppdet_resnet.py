"""PaddleDetection's ResNet backbones and the BoTNet port's backbone against their torch twins.

For every pair: a checkpoint saved from the torch twin (random non-trivial weights) converts and
loads strictly into the Paddle twin, whose four feature maps then agree with the torch twin's; a
`paddle.save`d checkpoint converts back and loads strictly into the torch twin. Then the cases
people meet: a timm classification checkpoint (its classifier dropped and listed), a detector's
checkpoint (`--prefix backbone.` both ways), the BoTNet at another input size (rel_h / rel_w
resized as F.interpolate resizes them in both frameworks), and the reference's shortcut bias
(folded into the BatchNorm after it).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import timm
import torch
from click.testing import CliRunner

from weightport.cli import cli
from weightport.conversion import convert
from weightport.frameworks import quiet_paddle_import
from weightport.models.pair import resolve
from weightport.models.ppdet_resnet import MODELS
from weightport.models.weights import randomize_torch
from weightport.parity.inputs import random_batch
from weightport.parity.metrics import Metrics
from weightport.parity.running import paddle_forward, torch_forward
from weightport.parity.verification import verify_model
from weightport.testing import check_table, checkpoint_round_trip, count_trainable, load_paddle_strictly, parity

paddle = quiet_paddle_import()

NAMES = [spec.name for spec in MODELS]
BOTNET = "ppdet_botnet50_mhsa"
SIZE = 64  # every map stays at least 2 x 2; the BoTNet's MHSA attends over 4 x 4 and 2 x 2
TOL = 2e-5  # fp32 twins; the measured worst is about 1e-6


def _worst(reference, outputs) -> float:
    assert len(reference) == len(outputs) == 4
    return max(Metrics.compare(r[1], o[1]).max_rel for r, o in zip(reference, outputs, strict=True))


def _random_torch_twin(pair, seed=3, **kwargs):
    model = pair.create_to_overwrite("torch", **kwargs)
    randomize_torch(model, seed=seed)  # the BoTNet's shortcut biases too: the table folds them
    return model.eval()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.slow
def test_four_maps_agree_both_ways(name, tmp_path):
    trip = checkpoint_round_trip(name, tmp_path, SIZE, **({"img_size": SIZE} if name == BOTNET else {}))
    assert [list(shape)[1:] for shape in trip.shapes] == [[256, 16, 16], [512, 8, 8], [1024, 4, 4], [2048, 2, 2]]
    assert trip.there.max_rel < TOL and trip.back.max_rel < 1e-6, trip


@pytest.mark.slow
def test_botnet_trains_alike_but_for_the_shortcut_biases_paddle_lacks():
    """The folded bias: the running means agree through the fold, and the biases themselves are
    the only training difference (ModelSpec.training_differs)."""
    result = verify_model(BOTNET, batch_size=2, device="cpu", train=True, input_size=SIZE, model_kwargs={"img_size": SIZE})
    training = result.training
    assert all(check.passed for check in training.running_stats) and training.running_stats
    assert sorted(training.problems) == [f"layer{s}.0.shortcut.0.bias: trainable in torch, dropped by the table "
                                         "(Paddle would not train it)" for s in (1, 2, 3, 4)]


def test_paddledetection_names():
    """The keys PaddleDetection's checkpoints hold, from the layout manifests."""
    keys = {name: set(resolve(name).layout("paddle")) for name in NAMES}
    assert {"conv1.conv1.conv.weight", "res2.res2a.branch2a.conv.weight", "res2.res2a.branch2a.norm._mean",
            "res3.res3a.short.conv.weight", "res5.res5c.branch2c.norm._variance"} <= keys["ppdet_resnet50"]
    assert {"conv1.conv1_1.conv.weight", "conv1.conv1_3.norm.weight", "res2.res2a.short.conv.weight",
            "res3.res3a.short.conv.conv.weight", "res5.res5a.short.conv.norm._mean"} <= keys["ppdet_resnet50_vd"]
    for name in ("ppdet_resnet101", "ppdet_resnet101_vd"):
        blocks = {k.split(".")[1] for k in keys[name] if k.startswith("res4.")}
        assert blocks == {"res4a", *(f"res4b{i}" for i in range(1, 23))}
    assert {"res5.res5a.branch2b.0.query.weight", "res5.res5a.branch2b.0.rel_h", "res5.res5a.branch2b_norm._mean",
            "res5.res5b.branch2b.key.bias", "res5.res5c.branch2b.rel_w", "res4.res4f.branch2b.conv.weight"} <= keys[BOTNET]
    assert not any(k.endswith(".short.conv.bias") for k in keys[BOTNET])  # the reference's shortcut bias has no place


@pytest.fixture(scope="module")
def classification_checkpoint(tmp_path_factory):
    """A timm `resnet50` classification checkpoint (fc included), random non-trivial weights."""
    model = timm.create_model("resnet50", pretrained=False)
    randomize_torch(model, seed=5)
    path = tmp_path_factory.mktemp("timm") / "resnet50.pth"
    torch.save(model.state_dict(), path)
    return path


def _timm_features(checkpoint):
    model = timm.create_model("resnet50", pretrained=False, features_only=True, out_indices=(1, 2, 3, 4))
    state = torch.load(checkpoint, weights_only=True)
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=True)
    return model.eval()


@pytest.mark.slow
def test_classification_checkpoint_loses_its_classifier_and_says_so(classification_checkpoint, tmp_path):
    out = tmp_path / "r50.pdparams"
    result = CliRunner().invoke(cli, ["convert", "ppdet_resnet50", str(classification_checkpoint), str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert [k for k in summary["dropped_keys"] if not k.endswith("num_batches_tracked")] == ["fc.weight", "fc.bias"]
    table = CliRunner().invoke(cli, ["convert", "ppdet_resnet50", str(classification_checkpoint), str(out), "--force"])
    assert "fc.weight, fc.bias" in table.output
    paddle_model = resolve("ppdet_resnet50").create("paddle")
    load_paddle_strictly(paddle_model, paddle.load(str(out)))
    paddle_model.eval()
    batch = random_batch(1, SIZE, seed=2)
    assert _worst(torch_forward(_timm_features(classification_checkpoint), batch), paddle_forward(paddle_model, batch)) < TOL


@pytest.mark.slow
def test_prefix_both_ways(classification_checkpoint, tmp_path):
    """Into a detector's layout (backbone.*) through the CLI, and back from a detector checkpoint
    that also holds neck and head tensors through the API."""
    det = tmp_path / "backbone.pdparams"
    result = CliRunner().invoke(cli, ["convert", "ppdet_resnet50", str(classification_checkpoint), str(det),
                                      "--prefix", "backbone."])
    assert result.exit_code == 0, result.output
    assert "backbone. put before every written key" in result.output
    written = convert("ppdet_resnet50", classification_checkpoint, tmp_path / "api.pdparams", prefix="backbone.")
    assert written.prefix_on == "destination" and written.outside_prefix == []  # no key of the source was left out
    state = paddle.load(str(det))
    own = resolve("ppdet_resnet50").layout("paddle")
    assert sorted(state) == sorted(f"backbone.{k}" for k in own)

    state["neck.fpn_inner_convs.0.weight"] = paddle.zeros([256, 2048, 1, 1])
    state["bbox_head.cls_score.weight"] = paddle.zeros([1024, 81])
    paddle.save(state, str(tmp_path / "detector.pdparams"))
    summary = convert("ppdet_resnet50", tmp_path / "detector.pdparams", tmp_path / "back.pth", prefix="backbone.")
    assert summary.prefix_on == "source"
    assert summary.outside_prefix == ["neck.fpn_inner_convs.0.weight", "bbox_head.cls_score.weight"]
    back = resolve("ppdet_resnet50").create("torch")
    back.load_state_dict(torch.load(tmp_path / "back.pth", weights_only=True), strict=True)
    reference = _timm_features(classification_checkpoint)
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in back.state_dict().items()
               if not k.endswith("num_batches_tracked"))

    shown = CliRunner().invoke(cli, ["convert", "ppdet_resnet50", str(tmp_path / "detector.pdparams"),
                                     str(tmp_path / "back2.pth"), "--prefix", "backbone."])
    assert "2 tensors outside backbone.: neck.* (1), bbox_head.* (1)" in shown.output


def test_prefix_mistakes_are_one_line_errors(tmp_path):
    state = {"backbone.conv1.conv1.conv.weight": paddle.zeros([64, 3, 7, 7]), "neck.weight": paddle.zeros([1])}
    paddle.save(state, str(tmp_path / "detector.pdparams"))
    runner = CliRunner()
    without = runner.invoke(cli, ["convert", "ppdet_resnet50", str(tmp_path / "detector.pdparams"), str(tmp_path / "a.pth")])
    assert without.exit_code == 2 and "--prefix backbone." in without.output
    bad = runner.invoke(cli, ["convert", "ppdet_resnet50", str(tmp_path / "detector.pdparams"), str(tmp_path / "b.pth"),
                              "--prefix", "backbone"])
    assert bad.exit_code == 2 and "ending in '.'" in bad.output


@pytest.mark.parametrize("name", NAMES)
def test_listed_with_family_and_description(name):
    result = CliRunner().invoke(cli, ["list", "--json"])
    row = {r["name"]: r for r in json.loads(result.output)}[name]
    assert row["family"] == "ppdet_resnet" and "PaddleDetection" in row["description"]


@pytest.mark.slow
def test_paddledetection_freezing_is_mirrored():
    """PaddleDetection's defaults (freeze_norm=True, freeze_at=0) freeze the same in both twins,
    which then agree (the registered twins train everything, as timm does)."""
    pair, frozen = resolve("ppdet_resnet50"), {"freeze_norm": True, "freeze_at": 0}
    counts = {framework: count_trainable(pair.create(framework, **frozen)) for framework in ("torch", "paddle")}
    assert counts["torch"] == counts["paddle"] < count_trainable(pair.create("torch"))
    check_table(pair, **frozen)
    metrics = parity(pair, batch_size=1, **frozen)
    assert metrics.max_rel < TOL


# --- the BoTNet at other input sizes ---------------------------------------------------------------


def test_botnet_position_embeddings_follow_the_input_size():
    layout = resolve(BOTNET).layout("paddle", img_size=608)  # the port's 38 x 38 at res5a
    assert layout["res5.res5a.branch2b.0.rel_h"][0] == (1, 4, 128, 1, 38)
    assert layout["res5.res5a.branch2b.0.rel_w"][0] == (1, 4, 128, 38, 1)
    assert layout["res5.res5c.branch2b.rel_h"][0] == (1, 4, 128, 1, 19)


@pytest.mark.parametrize("old, new", [(4, 6), (6, 4), (38, 19)])
def test_rel_pos_resize_is_bicubic_interpolation_in_both_frameworks(old, new):
    from weightport.models.ppdet_resnet.resize import resize_rel_pos

    rng = np.random.default_rng(0)
    rel_h, rel_w = rng.standard_normal((1, 4, 8, 1, old)), rng.standard_normal((1, 4, 8, old, 1))
    for array, size in ((rel_h, (1, new)), (rel_w, (new, 1))):
        ours = resize_rel_pos(array, (1, 4, 8, *size))
        image = array.reshape(1, 32, *array.shape[3:])
        by_torch = torch.nn.functional.interpolate(torch.from_numpy(image), size=size, mode="bicubic", align_corners=False)
        by_paddle = paddle.nn.functional.interpolate(paddle.to_tensor(image), size=list(size), mode="bicubic",
                                                     align_corners=False)
        assert np.abs(ours.reshape(1, 32, *size) - by_torch.numpy()).max() < 1e-12
        # Paddle computes its scale (in / out) in float32 even for float64 data (as for CMT's biases).
        assert np.abs(ours.reshape(1, 32, *size) - by_paddle.numpy()).max() < 1e-5


@pytest.mark.slow
def test_botnet_converted_to_another_input_size(tmp_path):
    """A 64-pixel checkpoint converted for 96-pixel twins: rel_h / rel_w resized, the others copied;
    the 96-pixel twins agree (the way back at 96 needs no resize)."""
    pair = resolve(BOTNET)
    torch.save(_random_torch_twin(pair, img_size=SIZE).state_dict(), tmp_path / "64.pth")
    summary = convert(BOTNET, tmp_path / "64.pth", tmp_path / "96.pdparams", model_kwargs={"img_size": 96})
    assert sorted(summary.resized) == sorted(f"res5.{block}.branch2b{index}.{name}" for block, index in
                                             (("res5a", ".0"), ("res5b", ""), ("res5c", "")) for name in ("rel_h", "rel_w"))
    paddle_model = pair.create("paddle", img_size=96)
    state = paddle.load(str(tmp_path / "96.pdparams"))
    assert list(state["res5.res5a.branch2b.0.rel_h"].shape) == [1, 4, 128, 1, 6]
    assert list(state["res5.res5b.branch2b.rel_w"].shape) == [1, 4, 128, 3, 1]
    load_paddle_strictly(paddle_model, state)
    paddle_model.eval()
    convert(BOTNET, tmp_path / "96.pdparams", tmp_path / "96.pth", model_kwargs={"img_size": 96})
    torch_model = pair.create("torch", img_size=96)
    torch_model.load_state_dict(torch.load(tmp_path / "96.pth", weights_only=True), strict=True)
    torch_model.eval()
    batch = random_batch(2, 96, seed=4)
    assert _worst(torch_forward(torch_model, batch), paddle_forward(paddle_model, batch)) < TOL


@pytest.mark.parametrize("img_size", [64, 96])
def test_botnet_parity_at_two_sizes(img_size):
    assert parity(BOTNET, batch_size=1, img_size=img_size).max_rel < TOL


@pytest.mark.slow
def test_shortcut_bias_folds_into_the_running_mean_and_back(tmp_path):
    """BN(Wx + b) with running mean m is BN(Wx) with m - b: a trained bias converts exactly, and
    comes back as zeros with the folded mean, computing the same."""
    pair = resolve(BOTNET)
    model = _random_torch_twin(pair, img_size=SIZE)
    biases = {s: getattr(model, f"layer{s}")[0].shortcut[0].bias.detach().clone() for s in range(1, 5)}
    assert all(b.abs().min() > 0 for b in biases.values())
    torch.save(model.state_dict(), tmp_path / "trained.pth")
    result = CliRunner().invoke(cli, ["convert", BOTNET, str(tmp_path / "trained.pth"), str(tmp_path / "out.pdparams"),
                                      "--input-size", str(SIZE), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["folded"] == {f"layer{s}.0.shortcut.0.bias": f"res{s + 1}.res{s + 1}a.short.norm._mean"
                                                   for s in range(1, 5)}
    paddle_model = pair.create("paddle", img_size=SIZE)
    load_paddle_strictly(paddle_model, paddle.load(str(tmp_path / "out.pdparams")))
    paddle_model.eval()
    batch = random_batch(2, SIZE, seed=6)
    reference = torch_forward(model, batch)
    assert _worst(reference, paddle_forward(paddle_model, batch)) < TOL

    convert(BOTNET, tmp_path / "out.pdparams", tmp_path / "back.pth", model_kwargs={"img_size": SIZE})
    back_state = torch.load(tmp_path / "back.pth", weights_only=True)
    for s, bias in biases.items():
        assert not back_state[f"layer{s}.0.shortcut.0.bias"].any()
        folded = model.state_dict()[f"layer{s}.0.shortcut.1.running_mean"] - bias
        assert torch.allclose(back_state[f"layer{s}.0.shortcut.1.running_mean"], folded, rtol=0, atol=1e-6)
    back = pair.create("torch", img_size=SIZE)
    back.load_state_dict(back_state, strict=True)
    assert _worst(reference, torch_forward(back.eval(), batch)) < TOL
