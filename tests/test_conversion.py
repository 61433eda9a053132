"""Conversion end to end: the layout check, both directions, dtypes, and ResNet-50 parity."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from weightport import convert
from weightport.conversion import convert_tensors
from weightport.errors import LayoutError, UserError
from weightport.formats import read_checkpoint, write_checkpoint
from weightport.formats.checkpoint import LazyTensor
from weightport.models.pair import create_model
from weightport.models.weights import load_paddle, randomize_torch, torch_state


def _tiny_torch(seed=0):
    model = create_model("tiny_test_net", "torch")
    randomize_torch(model, seed)
    return model


def test_tiny_twins_square_linear_is_transposed(tiny_model):
    model = _tiny_torch()
    tensors, summary = convert_tensors(tiny_model, torch_state(model), "paddle")
    square = model.square.weight.detach().numpy()
    assert square.shape[0] == square.shape[1]
    np.testing.assert_array_equal(tensors["mix.weight"].load(), square.T)
    np.testing.assert_array_equal(tensors["classifier.weight"].load(), model.head.weight.detach().numpy().T)
    assert summary.transposed == 2 and summary.dropped == 1
    paddle_model = create_model(tiny_model, "paddle")
    load_paddle(paddle_model, tensors)
    from weightport.parity.inputs import random_batch
    from weightport.parity.running import paddle_forward, torch_forward

    batch = random_batch(3, 8, seed=1)
    (_, ref), = torch_forward(model, batch)
    (_, out), = paddle_forward(paddle_model, batch)
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_layout_errors_list_the_offending_keys(tiny_model):
    state = torch_state(_tiny_torch())
    broken = dict(state)
    del broken["square.bias"]
    broken["extra.weight"] = LazyTensor.of(np.zeros(3, dtype=np.float32), "float32")
    broken["head.weight"] = LazyTensor.of(np.zeros((5, 7), dtype=np.float32), "float32")
    broken["stem.weight"] = LazyTensor.of(np.zeros((6, 3, 3, 3), dtype=np.int64), "int64")
    with pytest.raises(LayoutError) as info:
        convert_tensors(tiny_model, broken, "paddle")
    message = str(info.value)
    assert "(4 problems)" in message
    assert "mix.bias: not produced" in message
    assert "extra.weight -> extra.weight: no such key in the paddle twin" in message
    assert "head.weight -> classifier.weight: shape [7, 5], but the target twin expects [6, 5]" in message
    assert "stem.weight: dtype int64" in message


def test_layout_error_listing_is_capped(tiny_model):
    state = torch_state(_tiny_torch())
    state.update({f"junk.{i}": LazyTensor.of(np.zeros(1, dtype=np.float32), "float32") for i in range(30)})
    with pytest.raises(LayoutError, match=r"and 10 more"):
        convert_tensors(tiny_model, state, "paddle")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_is_kept_both_ways(tiny_model, tmp_path, dtype):
    model = _tiny_torch().to(getattr(torch, dtype))
    src = tmp_path / "tiny.pth"
    torch.save(model.state_dict(), src)
    convert(tiny_model, src, tmp_path / "tiny.pdparams")
    pd = read_checkpoint(tmp_path / "tiny.pdparams")
    assert {t.dtype for k, t in pd.tensors.items()} == {dtype}
    convert(tiny_model, tmp_path / "tiny.pdparams", tmp_path / "back.pth")
    back = torch.load(tmp_path / "back.pth", weights_only=True)
    for key, value in model.state_dict().items():
        assert back[key].dtype == value.dtype and torch.equal(back[key], value), key


def test_dtype_cast_on_request(tiny_model, tmp_path):
    src = tmp_path / "tiny.pth"
    torch.save(_tiny_torch().state_dict(), src)
    summary = convert(tiny_model, src, tmp_path / "tiny.pdparams", dtype="bfloat16")
    assert summary.cast_to == "bfloat16"
    tensors = read_checkpoint(tmp_path / "tiny.pdparams").tensors
    assert {t.dtype for t in tensors.values()} == {"bfloat16"}
    with pytest.raises(UserError, match=r"dtype='int8': choose from"):
        convert(tiny_model, src, tmp_path / "x.pdparams", dtype="int8")


def test_direction_errors(tiny_model, tmp_path):
    src = tmp_path / "tiny.pth"
    torch.save(_tiny_torch().state_dict(), src)
    with pytest.raises(UserError, match="nothing to convert"):
        convert(tiny_model, src, tmp_path / "again.pth")
    with pytest.raises(UserError, match="to='sideways': expected torch or paddle"):
        convert(tiny_model, tmp_path / "tiny.pth", tmp_path / "t.safetensors", to="sideways")
    summary = convert(tiny_model, src, tmp_path / "t.safetensors")
    assert summary.to == "paddle"
    back = convert(tiny_model, tmp_path / "t.safetensors", tmp_path / "t2.pth", to="torch")
    assert back.to == "torch"


@pytest.mark.slow
def test_resnet50_wrapped_checkpoint_to_paddle_and_back(resnet50_torch, resnet50_wrapped_ckpt, tmp_path):
    from weightport.frameworks import quiet_paddle_import

    paddle = quiet_paddle_import()
    pdparams = tmp_path / "resnet50.pdparams"
    summary = convert("resnet50", resnet50_wrapped_ckpt, pdparams)
    assert summary.wrapper == "state_dict" and summary.stripped_prefix == "module."
    assert summary.tensors == 267 and summary.transposed == 1 and summary.dropped == 53

    # Paddle's own loader and set_state_dict accept it with nothing missing or unexpected.
    paddle_model = paddle.vision.models.resnet50()
    paddle_model.eval()
    state = paddle.load(str(pdparams))
    assert set(state) == set(paddle_model.state_dict())
    missing, unexpected = paddle_model.set_state_dict(state)
    assert not missing and not unexpected
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        ref = resnet50_torch(torch.from_numpy(x)).numpy()
    out = paddle_model(paddle.to_tensor(x)).numpy()
    assert np.abs(ref).max() > 0.5  # non-trivial logits
    assert np.abs(out - ref).max() < 1e-4

    # The way back reproduces every tensor bit for bit; the batch counters are recreated.
    back_path = tmp_path / "back.pth"
    back_summary = convert("resnet50", pdparams, back_path)
    assert back_summary.filled == 53
    back = torch.load(back_path, weights_only=True)
    original = resnet50_torch.state_dict()
    assert list(back) == list(original)
    for key, value in original.items():
        if key.endswith("num_batches_tracked"):
            assert back[key].dtype == torch.int64 and back[key].shape == ()
        else:
            assert torch.equal(back[key], value), key


def test_wrong_model_for_checkpoint(resnet50_wrapped_ckpt, tmp_path):
    with pytest.raises(LayoutError, match="does not fit the paddle twin of resnet18"):
        convert("resnet18", resnet50_wrapped_ckpt, tmp_path / "x.pdparams")
    assert not (tmp_path / "x.pdparams").exists()


def test_nothing_written_when_the_layout_is_wrong(tiny_model, tmp_path):
    state = torch_state(_tiny_torch())
    del state["head.bias"]
    src = write_checkpoint(tmp_path / "partial.pth", state.items())
    with pytest.raises(LayoutError):
        convert(tiny_model, src, tmp_path / "out.pdparams")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["partial.pth"]


def _zeros(layout: dict) -> dict[str, LazyTensor]:
    return {k: LazyTensor.of(np.zeros(shape, dtype=dtype), dtype) for k, (shape, dtype) in layout.items()}


def test_a_fine_tuned_head_is_read_from_its_shapes():
    """Only the classifier differs, in its class dimension: the twins are the ones built for that
    many classes, with their layout still from the manifest (no framework imported)."""
    from weightport.models.pair import expected_layout

    tensors = _zeros(expected_layout("resnet18", "torch", num_classes=10))
    assert tensors["fc.weight"].shape == (10, 512) and tensors["conv1.weight"].shape == (64, 3, 7, 7)
    out, summary = convert_tensors("resnet18", tensors, "paddle")
    assert summary.classes_from_checkpoint == 10 and summary.model_kwargs == {"num_classes": 10}
    assert out["fc.weight"].shape == (512, 10) and out["fc.bias"].shape == (10,)
    back, summary = convert_tensors("resnet18", out, "torch")
    assert summary.classes_from_checkpoint == 10 and back["fc.weight"].shape == (10, 512)


def test_a_classifier_that_is_not_the_only_difference_is_named_with_the_option():
    from weightport.models.pair import expected_layout

    tensors = _zeros(expected_layout("resnet18", "torch", num_classes=10))
    tensors["conv1.weight"] = LazyTensor.of(np.zeros((32, 3, 7, 7), np.float32), "float32")
    with pytest.raises(LayoutError, match=r"pass model_kwargs=\{'num_classes': 'N'\} to build twins") as error:
        convert_tensors("resnet18", tensors, "paddle")
    assert "conv1.weight" in str(error.value) and "fc.weight" in str(error.value)
    # A head of another width (a ResNet-50 file read as a ResNet-18) is no class-count question.
    wrong = _zeros(expected_layout("resnet50", "torch"))
    with pytest.raises(LayoutError) as error:
        convert_tensors("resnet18", wrong, "paddle")
    assert "num_classes" not in str(error.value)


def test_a_tensor_both_resized_and_adjusted_is_resized_then_adjusted(tmp_path):
    from weightport.models.pair import TwinPair

    table = tmp_path / "t.toml"
    table.write_text('[[resize]]\ntorch = "pos"\nfunction = "numpy:resize"\n\n'
                     '[[adjust]]\ntorch = "pos"\nscale = 2.0\noffset = 1.0\nwhy = "a test"\n')
    pair = TwinPair("resized and adjusted", table=table, manifest={"paddle": {"pos": ((4,), "float32")}})
    source = {"pos": LazyTensor.of(np.array([1.0, 2.0], dtype=np.float32), "float32")}
    tensors, summary = convert_tensors(pair, source, "paddle", resize=True)
    assert tensors["pos"].load().tolist() == [3.0, 5.0, 3.0, 5.0]
    assert summary.resized == ["pos"] and summary.adjusted == {"pos": "a test"}


def test_a_lossless_drop_refuses_trained_values_and_converts_its_fill(tmp_path):
    from weightport.models.pair import TwinPair

    table = tmp_path / "t.toml"
    table.write_text('[[drop]]\ntorch = "head.bias"\nfill = 0\nlossless = true\nwhy = "the Paddle head has no bias"\n')
    manifest = {"paddle": {"head.weight": ((2, 2), "float32")}, "torch": {"head.weight": ((2, 2), "float32"),
                                                                       "head.bias": ((2,), "float32")}}
    pair = TwinPair("headless", table=table, manifest=manifest)
    weight = LazyTensor.of(np.ones((2, 2), dtype=np.float32), "float32")
    trained = {"head.weight": weight, "head.bias": LazyTensor.of(np.array([0.0, 0.25], dtype=np.float32), "float32")}
    with pytest.raises(UserError, match=r"head.bias holds values other than 0 \(1 of 2, up to 0.25 away\).*the Paddle head has no bias"):
        convert_tensors(pair, trained, "paddle")
    zeros = {**trained, "head.bias": LazyTensor.of(np.zeros(2, dtype=np.float32), "float32")}
    tensors, summary = convert_tensors(pair, zeros, "paddle")
    assert list(tensors) == ["head.weight"] and summary.dropped_keys == ["head.bias"]
    back, summary = convert_tensors(pair, tensors, "torch")
    assert back["head.bias"].load().tolist() == [0.0, 0.0] and summary.filled == 1


@pytest.mark.parametrize("rule, error", [
    ('lossless = true\nwhy = "x"', "needs the fill"),
    ('fill = 0\nlossless = true', "needs the fill"),
    ('fill = 0\nlossless = "yes"\nwhy = "x"', "lossless must be true or false"),
])
def test_a_lossless_drop_must_say_its_fill_and_why(tmp_path, rule, error):
    from weightport.errors import TableError
    from weightport.tables.loading import load_table

    table = tmp_path / "t.toml"
    table.write_text(f'[[drop]]\ntorch = "head.bias"\n{rule}\n')
    with pytest.raises(TableError, match=error):
        load_table(table)


def test_a_folding_drop_carries_its_values_into_another_tensor_and_comes_back_as_its_fill(tmp_path):
    from weightport.models.pair import TwinPair

    table = tmp_path / "t.toml"
    table.write_text('[[drop]]\ntorch = "{m}.conv.bias"\nfill = 0\ninto = "{m}.bn.mean"\nscale = -1.0\nwhy = "no conv bias"\n')
    vector = ((3,), "float32")
    manifest = {"paddle": {"a.bn.mean": vector}, "torch": {"a.conv.bias": vector, "a.bn.mean": vector}}
    pair = TwinPair("folded", table=table, manifest=manifest)
    source = {"a.conv.bias": LazyTensor.of(np.array([1.0, 2.0, 0.5], dtype=np.float32), "float32"),
              "a.bn.mean": LazyTensor.of(np.array([4.0, 4.0, 4.0], dtype=np.float32), "float32")}
    tensors, summary = convert_tensors(pair, source, "paddle")
    assert tensors["a.bn.mean"].load().tolist() == [3.0, 2.0, 3.5]
    assert summary.folded == {"a.conv.bias": "a.bn.mean"} and summary.adjusted == {"a.bn.mean": "no conv bias"}
    back, _ = convert_tensors(pair, tensors, "torch")
    assert back["a.conv.bias"].load().tolist() == [0.0, 0.0, 0.0] and back["a.bn.mean"].load().tolist() == [3.0, 2.0, 3.5]
    with pytest.raises(LayoutError, match="folds it into a.bn.mean, which the checkpoint lacks"):
        convert_tensors(pair, {"a.conv.bias": source["a.conv.bias"]}, "paddle")
