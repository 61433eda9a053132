"""Parity metrics, the gate, real-image input and the fp64 noise floor."""
from __future__ import annotations

import numpy as np
import pytest

from weightport.comparison import Metrics
from weightport.errors import UserError
from weightport.verification import verify


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
    strict = verify(tiny_model, tol=1e-12, device="cpu")
    assert not strict.passed and "max abs error" in strict.models[0].outputs[0].reason
    relative = verify(tiny_model, rtol=1e-15, device="cpu")
    assert not relative.passed and "relative" in relative.models[0].outputs[0].reason


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

    from weightport.preprocess import preprocess
    from weightport.registry import Preprocessing

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
