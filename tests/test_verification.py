"""Parity metrics, the gate, real-image input and the fp64 noise floor."""
from __future__ import annotations

import numpy as np
import pytest

from weightport.errors import UserError
from weightport.parity.gate import decide
from weightport.parity.metrics import Metrics
from weightport.parity.verification import verify


def test_metrics_catch_what_a_mean_comparison_misses():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((4, 100))
    shuffled = ref[:, rng.permutation(100)]  # same mean, same distribution, wrong logits
    assert abs(ref.mean() - shuffled.mean()) < 1e-12
    m = Metrics.compare(ref, shuffled)
    assert m.max_abs > 1.0
    assert m.cosine < 0.5
    assert m.top1 < 1.0 or m.top5 < 1.0


def test_metrics_on_agreeing_outputs():
    ref = np.array([[1.0, -2.0, 3.0, 0.5, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8]])
    out = ref + 1e-6
    m = Metrics.compare(ref, out)
    assert m.max_abs == pytest.approx(1e-6)
    assert m.mean_abs == pytest.approx(1e-6)
    assert m.ref_max == 3.0 and m.max_rel == pytest.approx(1e-6 / 3)
    assert m.cosine == pytest.approx(1.0) and m.top1 == 1.0 and m.top5 == 1.0


def test_nan_never_passes():
    ref = np.ones((1, 3))
    out = ref.copy()
    out[0, 1] = np.nan
    assert np.isnan(Metrics.compare(ref, out).max_abs)


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(UserError, match="differ in shape"):
        Metrics.compare(np.zeros((1, 3)), np.zeros((1, 4)))


def test_gate_and_floor_on_the_tiny_twins(tiny_model):
    result = verify(tiny_model, batch_size=2, batches=2, floor=True, device="cpu")
    assert result.passed
    model = result.models[0]
    out = model.outputs[0]
    assert out.shape == [4, 5]
    assert out.floor["torch_fp32_vs_fp64"] > 0
    assert out.floor["ratio"] < 50
    assert out.gate.rule == "relative" and out.gate.limit == pytest.approx(1e-4 * out.metrics.ref_max)
    assert 0 < out.gate.ratio < 1
    strict = verify(tiny_model, tol=1e-12, device="cpu")
    failed = strict.models[0].outputs[0]
    assert not strict.passed and failed.gate.rule == "relative" and failed.gate.ratio > 1
    assert "tol x largest |reference|" in failed.reason
    absolute = verify(tiny_model, atol=1e-15, device="cpu")
    failed = absolute.models[0].outputs[0]
    assert not absolute.passed and failed.gate.rule == "absolute" and "atol" in failed.reason
    assert absolute.as_dict()["rule"].endswith("and <= 1e-15")


def test_the_gate_decides_by_the_failing_rule_else_the_closest_to_its_limit():
    metrics = Metrics.compare(np.array([[200.0, -1.0]]), np.array([[200.001, -1.0]]))
    assert decide(metrics, 1e-4).passed  # 5e-6 of the scale
    closest = decide(metrics, 1e-4, atol=2e-3)
    assert closest.passed and closest.rule == "absolute" and closest.ratio == pytest.approx(0.5)
    failing = decide(metrics, 1e-4, atol=1e-4)
    assert not failing.passed and failing.rule == "absolute"
    assert not decide(Metrics.compare(np.zeros((1, 2)), np.array([[0.0, 1e-30]])), 1e-4).passed
    assert decide(Metrics.compare(np.zeros((1, 2)), np.zeros((1, 2))), 1e-4).passed
    assert not decide(Metrics.compare(np.ones((1, 2)), np.array([[1.0, np.nan]])), 1e-4, atol=1.0).passed


@pytest.fixture(scope="module")
def resnet18_state():
    """timm's resnet18 with non-trivial random weights, as a state dict."""
    from weightport.models.pair import create_model
    from weightport.models.weights import randomize_torch

    model = create_model("resnet18", "torch")
    randomize_torch(model, seed=3)
    return model.state_dict()


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
@pytest.mark.slow
def test_the_gate_means_the_same_at_every_output_scale(resnet18_state, tmp_path, scale):
    """The classifier scaled by 1e-3, 1 and 1e3: the faithful conversion passes the default gate at
    every scale, and one conv weight off by 1 % fails it at every scale."""
    import torch

    from weightport import convert
    from weightport.formats import read_checkpoint, write_checkpoint

    state = {k: v * scale if k.startswith("fc.") else v for k, v in resnet18_state.items()}
    torch.save(state, tmp_path / "scaled.pth")
    convert("resnet18", tmp_path / "scaled.pth", tmp_path / "scaled.pdparams")
    faithful = verify("resnet18", torch_ckpt=str(tmp_path / "scaled.pth"), paddle_ckpt=str(tmp_path / "scaled.pdparams"),
                      batch_size=1, device="cpu")
    out = faithful.models[0].outputs[0]
    assert faithful.passed, out.reason
    assert 0.1 * scale < out.metrics.ref_max < 10 * scale and out.gate.ratio < 0.1

    tensors = dict(read_checkpoint(tmp_path / "scaled.pdparams").tensors)
    weight = tensors["layer3.1.conv2.weight"]
    tensors["layer3.1.conv2.weight"] = type(weight).of(weight.load() * np.float32(1.01), weight.dtype)
    write_checkpoint(tmp_path / "off.pdparams", tensors.items())
    off = verify("resnet18", torch_ckpt=str(tmp_path / "scaled.pth"), paddle_ckpt=str(tmp_path / "off.pdparams"),
                 batch_size=1, device="cpu")
    assert not off.passed and off.models[0].outputs[0].gate.ratio > 3


def test_real_images_with_the_models_preprocessing(tmp_path, tiny_model):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i, size in enumerate([(40, 30), (30, 50), (64, 64)]):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(tmp_path / f"img{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    result = verify(tiny_model, images=str(tmp_path), batch_size=2, batches=2, device="cpu")
    assert result.passed
    assert result.models[0].outputs[0].shape == [3, 5]
    assert "images from" in result.models[0].inputs


def test_preprocessing_resizes_crops_and_normalises():
    from PIL import Image

    from weightport.models.registry import Preprocessing
    from weightport.parity.images import preprocess

    image = Image.new("RGB", (300, 200), (255, 0, 128))
    array = preprocess(image, Preprocessing(crop_pct=0.875), 224)
    assert array.shape == (3, 224, 224) and array.dtype == np.float32
    np.testing.assert_allclose(array[:, 100, 100], [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225], rtol=1e-5)


def test_bad_inputs(tiny_model, tmp_path):
    with pytest.raises(UserError, match="not a folder"):
        verify(tiny_model, images=str(tmp_path / "absent"), device="cpu")
    with pytest.raises(UserError, match="no images"):
        verify(tiny_model, images=str(tmp_path), device="cpu")
    with pytest.raises(UserError, match="exactly one model"):
        verify([tiny_model, "resnet18"], torch_ckpt="x.pth", device="cpu")
    with pytest.raises(UserError, match="unknown model"):
        verify("nope", device="cpu")


def test_input_size_the_model_cannot_take():
    # timm's BoTNet attention is built for 256x256 inputs (its relative positions are sized for it)
    with pytest.raises(UserError, match="botnet26t_256 cannot run on a 224x224 input"):
        verify("botnet26t_256", input_size=224, batch_size=1, device="cpu")
    with pytest.raises(UserError, match="at least 1"):
        verify("resnet18", input_size=0, device="cpu")


def test_one_element_batch_counters_load_as_the_scalars_they_are(resnet18_state, tmp_path):
    """Early torch versions saved `num_batches_tracked` with shape [1]; torch's load_state_dict takes
    its one element, and so do conversion and verify."""
    import torch

    from weightport import convert
    from weightport.models.pair import create_model

    state = {k: v.reshape(1) if k.endswith("num_batches_tracked") else v for k, v in resnet18_state.items()}
    assert sum(k.endswith("num_batches_tracked") for k in state) == 20
    create_model("resnet18", "torch").load_state_dict(state)  # what torch accepts
    torch.save(state, tmp_path / "old.pth")
    convert("resnet18", tmp_path / "old.pth", tmp_path / "old.pdparams")
    result = verify("resnet18", torch_ckpt=str(tmp_path / "old.pth"), batch_size=1, device="cpu")
    assert result.passed and result.models[0].conversion["dropped"] == 20


def _conversions(monkeypatch) -> list[str]:
    """Each conversion verify makes, by target framework, counted at the converter."""
    from weightport.parity import verification

    made: list[str] = []
    real = verification.convert_tensors

    def counting(pair, tensors, to, **kwargs):
        made.append(to)
        return real(pair, tensors, to, **kwargs)

    monkeypatch.setattr(verification, "convert_tensors", counting)
    return made


@pytest.mark.slow
def test_a_checkpoint_is_converted_once_and_the_twins_learn_their_class_count_once(tmp_path, monkeypatch):
    """A fine-tuned head (10 classes, not the twins' 1000): the torch file alone is converted once,
    to Paddle; with both files given nothing is converted, and the class count is read from the shapes."""
    import torch

    from weightport.conversion import convert
    from weightport.models.pair import create_model
    from weightport.models.weights import randomize_torch

    model = create_model("resnet18", "torch", num_classes=10)
    randomize_torch(model, seed=1)
    torch.save(model.state_dict(), tmp_path / "r18.pth")
    convert("resnet18", tmp_path / "r18.pth", tmp_path / "r18.pdparams")
    made = _conversions(monkeypatch)
    result = verify("resnet18", torch_ckpt=str(tmp_path / "r18.pth"), device="cpu")
    assert result.passed and made == ["paddle"] and result.models[0].conversion["classes_from_checkpoint"] == 10
    made.clear()
    both = verify("resnet18", torch_ckpt=str(tmp_path / "r18.pth"), paddle_ckpt=str(tmp_path / "r18.pdparams"), device="cpu")
    assert both.passed and made == [] and both.models[0].outputs[0].shape == [2, 10]


@pytest.mark.slow
def test_another_input_size_resizes_each_file_on_its_own_side_without_more_conversions(tmp_path, monkeypatch):
    """cmt_ti's files, made at 160, checked at 192: the torch file is converted once; its own tensors
    sized by the input are resized where they are, as the conversion resizes them for Paddle."""
    import torch

    from weightport.conversion import convert
    from weightport.models.pair import create_model
    from weightport.models.weights import randomize_torch

    model = create_model("cmt_ti", "torch")
    randomize_torch(model, seed=2)
    torch.save({"model": model.state_dict()}, tmp_path / "cmt.pth")
    convert("cmt_ti", tmp_path / "cmt.pth", tmp_path / "cmt.pdparams")
    made = _conversions(monkeypatch)
    one = verify("cmt_ti", torch_ckpt=str(tmp_path / "cmt.pth"), input_size=192, batch_size=1, device="cpu")
    assert one.passed and made == ["paddle"] and "192x192" in one.models[0].inputs
    made.clear()
    both = verify("cmt_ti", torch_ckpt=str(tmp_path / "cmt.pth"), paddle_ckpt=str(tmp_path / "cmt.pdparams"),
                  input_size=192, batch_size=1, device="cpu")
    assert both.passed and made == []
    assert both.models[0].outputs[0].metrics.max_rel < 1e-5


def test_verify_options_are_checked_and_named_as_the_api_names_them():
    from weightport.errors import InvalidArgument
    from weightport.parity.verification import VerifyOptions

    with pytest.raises(InvalidArgument, match=r"batch_size=0: must be a whole number of at least 1"):
        VerifyOptions(batch_size=0)
    with pytest.raises(InvalidArgument, match=r"batch_size=1: training parity needs at least 2 images"):
        VerifyOptions(train=True, batch_size=1)
    with pytest.raises(InvalidArgument, match=r"tol=0: must be positive"):
        VerifyOptions.of(tol=0)
    with pytest.raises(InvalidArgument, match=r"bach_size=4: not a verify option"):
        VerifyOptions.of(bach_size=4)
