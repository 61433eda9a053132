"""ResNet-50-MHSA twins (leaderj1001/BottleneckTransformers `model.py`): size, table, parity, reference layout."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from weightport.models.pair import create_model
from weightport.testing import check_table, count_trainable, parity

MODEL = "botnet50_mhsa"
# A second configuration shows that img_size and heads reach the position embeddings' shapes.
CONFIGS = [
    pytest.param({}, id="default-224"),
    pytest.param({"num_classes": 10, "img_size": 256, "heads": 8}, id="256-heads8"),
]


def reference_layout(num_classes: int = 1000, img_size: int = 224, heads: int = 4) -> dict[str, tuple[int, ...]]:
    """State-dict keys and shapes of the reference's `ResNet50(num_classes, (img_size, img_size), heads)`, in its order.

    Spelled out from model.py's naming independently of the twins: Bottleneck registers
    conv1, bn1, conv2, bn2, conv3, bn3, shortcut; an MHSA block's conv2 is
    Sequential(MHSA[, AvgPool2d]) whose own parameters rel_h, rel_w come before query/key/value;
    projection shortcuts are Sequential(Conv2d with bias, BatchNorm2d); fc is Sequential(Dropout, Linear).
    """
    layout: dict[str, tuple[int, ...]] = {}

    def batchnorm(prefix: str, channels: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            layout[f"{prefix}.{name}"] = (channels,)
        layout[f"{prefix}.num_batches_tracked"] = ()

    layout["conv1.weight"] = (64, 3, 7, 7)
    batchnorm("bn1", 64)
    in_planes, resolution = 64, img_size // 4
    for stage, (planes, depth, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], start=1):
        for index in range(depth):
            block_stride = stride if index == 0 else 1
            prefix = f"layer{stage}.{index}"
            layout[f"{prefix}.conv1.weight"] = (planes, in_planes, 1, 1)
            batchnorm(f"{prefix}.bn1", planes)
            if stage == 4:
                layout[f"{prefix}.conv2.0.rel_h"] = (1, heads, planes // heads, 1, resolution)
                layout[f"{prefix}.conv2.0.rel_w"] = (1, heads, planes // heads, resolution, 1)
                for projection in ("query", "key", "value"):
                    layout[f"{prefix}.conv2.0.{projection}.weight"] = (planes, planes, 1, 1)
                    layout[f"{prefix}.conv2.0.{projection}.bias"] = (planes,)
            else:
                layout[f"{prefix}.conv2.weight"] = (planes, planes, 3, 3)
            batchnorm(f"{prefix}.bn2", planes)
            layout[f"{prefix}.conv3.weight"] = (planes * 4, planes, 1, 1)
            batchnorm(f"{prefix}.bn3", planes * 4)
            if block_stride != 1 or in_planes != planes * 4:
                layout[f"{prefix}.shortcut.0.weight"] = (planes * 4, in_planes, 1, 1)
                layout[f"{prefix}.shortcut.0.bias"] = (planes * 4,)
                batchnorm(f"{prefix}.shortcut.1", planes * 4)
            if block_stride == 2:
                resolution //= 2
            in_planes = planes * 4
    layout["fc.1.weight"] = (num_classes, 2048)
    layout["fc.1.bias"] = (num_classes,)
    return layout


@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_trainable_parameter_count(framework):
    # The figure, which the reference's ResNet50() gives at 224 input.
    assert count_trainable(create_model(MODEL, framework)) == 20_875_560


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_table(kwargs):
    check_table(MODEL, **kwargs)


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_parity(kwargs):
    result = parity(MODEL, batch_size=1, seed=0, **kwargs)
    assert result.max_abs < 1e-4, result


def _mhsa_in_float64(x, weights, heads):
    """The reference's attention written out: energy[i, j] = q_i . k_j + r_i . q_j, softmax over j, no scaling."""
    batch, channels, height, width = x.shape
    head_dim = channels // heads

    def project(name):
        projected = np.einsum("oc,bchw->bohw", weights[f"{name}.weight"][:, :, 0, 0], x)
        projected += weights[f"{name}.bias"][:, None, None]
        return projected.reshape(batch, heads, head_dim, height * width)

    q, k, v = project("query"), project("key"), project("value")
    # rel_h [1, heads, d, 1, W] runs along the width, rel_w [1, heads, d, H, 1] along the height.
    position = (weights["rel_h"] + weights["rel_w"]).reshape(1, heads, head_dim, height * width)
    energy = np.einsum("bhdi,bhdj->bhij", q, k) + np.einsum("xhdi,bhdj->bhij", position, q)
    energy -= energy.max(axis=-1, keepdims=True)
    attention = np.exp(energy) / np.exp(energy).sum(axis=-1, keepdims=True)
    out = np.einsum("bhdj,bhij->bhdi", v, attention)
    return out.reshape(batch, channels, height, width)


def test_mhsa_follows_the_reference_formula():
    """A strongly peaked attention on a non-square map, where a wrong axis, scale or position term shows at once."""
    from weightport.models.botnet_mhsa import modeling_paddle, modeling_torch

    paddle = modeling_paddle.paddle
    heads, channels, height, width = 4, 32, 6, 5
    rng = np.random.default_rng(0)
    torch_mhsa = modeling_torch.MHSA(channels, height=height, width=width, heads=heads).eval()
    weights = {
        key: rng.normal(0.0, 0.2 if key.endswith("weight") else 0.5, tuple(value.shape)).astype(np.float32)
        for key, value in torch_mhsa.state_dict().items()
    }
    torch_mhsa.load_state_dict({key: torch.from_numpy(value) for key, value in weights.items()}, strict=True)
    paddle_mhsa = modeling_paddle.MHSA(channels, height=height, width=width, heads=heads)
    assert {key: list(value.shape) for key, value in paddle_mhsa.state_dict().items()} == {
        key: list(value.shape) for key, value in weights.items()
    }
    paddle_mhsa.set_state_dict({key: paddle.to_tensor(value) for key, value in weights.items()})
    paddle_mhsa.eval()

    x = rng.standard_normal((2, channels, height, width)).astype(np.float32)
    expected = _mhsa_in_float64(x.astype(np.float64), {k: v.astype(np.float64) for k, v in weights.items()}, heads)
    with torch.no_grad():
        torch_out = torch_mhsa(torch.from_numpy(x)).numpy()
    paddle_out = paddle_mhsa(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(torch_out, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    np.testing.assert_allclose(paddle_out, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_reference_checkpoint_loads_strictly(kwargs):
    layout = reference_layout(**kwargs)
    generator = torch.Generator().manual_seed(0)
    checkpoint = {
        key: torch.tensor(7) if key.endswith("num_batches_tracked") else torch.randn(shape, generator=generator)
        for key, shape in layout.items()
    }
    model = create_model(MODEL, "torch", **kwargs)
    assert list(model.state_dict()) == list(layout)
    model.load_state_dict(checkpoint, strict=True)
    loaded = model.state_dict()
    for key, value in checkpoint.items():
        assert torch.equal(loaded[key], value), key


@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_img_size_must_fit_the_position_embeddings(framework):
    with pytest.raises(ValueError, match="multiple of 16"):
        create_model(MODEL, framework, img_size=200)
