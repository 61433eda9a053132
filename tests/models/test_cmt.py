"""CMT twins: parameter counts, mapping table, parity, the official checkpoint layout, the square
Linear transposes, and resizing the resolution-dependent relative position biases.

The official layout below is written out from the reference code (huawei-noah/Efficient-AI-Backbones
`cmt_pytorch/cmt.py`) independently of the twins; its keys, shapes, order and parameter counts were
checked against instances of the reference itself at each default size.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from weightport.conversion import convert_tensors
from weightport.errors import LayoutError
from weightport.formats.checkpoint import LazyTensor
from weightport.frameworks import quiet_paddle_import
from weightport.models.cmt import MODELS, modeling_paddle, modeling_torch
from weightport.models.cmt.resize import bicubic_matrix, resize_relative_pos
from weightport.models.weights import load_paddle, randomize_torch, torch_state
from weightport.testing import check_table, count_trainable, parity

# name -> (img_size, embed_dims, stem_channel, mlp_ratios, depths) of the reference's factories
# and the README's training commands; all use heads (1, 2, 4, 8) and sr_ratios (8, 4, 2, 1).
CONFIGS = {
    "cmt_ti": (160, (46, 92, 184, 368), 16, (3.6,) * 4, (2, 2, 10, 2)),
    "cmt_xs": (192, (52, 104, 208, 416), 16, (3.77,) * 4, (3, 3, 12, 3)),
    "cmt_s": (224, (64, 128, 256, 512), 32, (4,) * 4, (3, 3, 16, 3)),
    "cmt_b": (256, (76, 152, 304, 608), 38, (4,) * 4, (4, 4, 20, 4)),
}
HEADS, SR_RATIOS = (1, 2, 4, 8), (8, 4, 2, 1)
# Trainable parameters of the reference models at their default sizes (counted on the reference code).
PARAMETERS = {"cmt_ti": 9_492_426, "cmt_xs": 15_247_208, "cmt_s": 26_256_160, "cmt_b": 45_715_076}
STATE_DICT_ENTRIES = {"cmt_ti": 708, "cmt_xs": 911, "cmt_s": 1079, "cmt_b": 1366}
# The fp32 twins agree to 4e-6..9e-6 on these O(4..8) logits. Measured on cmt_ti: a tanh GELU costs
# 1.2e-3, an attention scale from the width instead of the head width 2.4e-4, an untransposed square
# Linear far more; a LayerNorm eps of 1e-5 instead of 1e-6 only 1.5e-5, so the eps are checked directly.
PARITY_TOLERANCE = 3e-5

NAMES = list(CONFIGS)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """On a few shared cores torch's intra-op threads spin against each other: a cmt_b forward
    takes ~17 s with 2 threads under load and under 1 s with one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def official_layout(img_size, embed_dims, stem_channel, mlp_ratios, depths, num_classes=1000, fc_dim=1280):
    """State-dict keys and shapes of the reference CMT, in the reference's order."""
    layout: dict[str, tuple[int, ...]] = {}

    def add(prefix, **shapes):
        layout.update({f"{prefix}.{name}" if prefix else name: shape for name, shape in shapes.items()})

    def batchnorm(prefix, channels):
        add(prefix, weight=(channels,), bias=(channels,), running_mean=(channels,), running_var=(channels,),
            num_batches_tracked=())

    stages = "abcd"
    tokens = [(img_size // 2 ** (s + 2)) ** 2 for s in range(4)]
    # nn.Module.state_dict lists a module's own parameters before its children's.
    biases = {f"relative_pos_{x}": (HEADS[s], tokens[s], tokens[s] // SR_RATIOS[s] ** 2) for s, x in enumerate(stages)}
    add("", **biases)
    for i, cin in enumerate((3, stem_channel, stem_channel), start=1):
        add(f"stem_conv{i}", weight=(stem_channel, cin, 3, 3), bias=(stem_channel,))
        batchnorm(f"stem_norm{i}", stem_channel)
    for s, x in enumerate(stages):
        cin = stem_channel if s == 0 else embed_dims[s - 1]
        add(f"patch_embed_{x}.proj", weight=(embed_dims[s], cin, 2, 2), bias=(embed_dims[s],))
        add(f"patch_embed_{x}.norm", weight=(embed_dims[s],), bias=(embed_dims[s],))
    for s, x in enumerate(stages):
        dim, hidden, sr = embed_dims[s], int(embed_dims[s] * mlp_ratios[s]), SR_RATIOS[s]
        for b in range(depths[s]):
            p = f"blocks_{x}.{b}"
            add(f"{p}.norm1", weight=(dim,), bias=(dim,))
            for linear in ("q", "k", "v", "proj"):
                add(f"{p}.attn.{linear}", weight=(dim, dim), bias=(dim,))
            if sr > 1:
                add(f"{p}.attn.sr.0", weight=(dim, 1, sr, sr), bias=(dim,))
                batchnorm(f"{p}.attn.sr.1", dim)
            add(f"{p}.norm2", weight=(dim,), bias=(dim,))
            add(f"{p}.mlp.conv1.0", weight=(hidden, dim, 1, 1), bias=(hidden,))
            batchnorm(f"{p}.mlp.conv1.2", hidden)
            add(f"{p}.mlp.proj", weight=(hidden, 1, 3, 3), bias=(hidden,))
            batchnorm(f"{p}.mlp.proj_bn", hidden)
            add(f"{p}.mlp.conv2.0", weight=(dim, hidden, 1, 1), bias=(dim,))
            batchnorm(f"{p}.mlp.conv2.1", dim)
            add(f"{p}.proj", weight=(dim, 1, 3, 3), bias=(dim,))
    add("_fc", weight=(fc_dim, embed_dims[-1], 1, 1), bias=(fc_dim,))
    batchnorm("_bn", fc_dim)
    add("head", weight=(num_classes, fc_dim), bias=(num_classes,))
    return layout


def official_state_dict(layout, value: float):
    """A state dict of the official layout, every tensor filled with `value` (cheap at 45M parameters)."""
    return {
        key: torch.tensor(7) if key.endswith("num_batches_tracked") else torch.full(shape, value)
        for key, shape in layout.items()
    }


@functools.cache
def torch_twin(name):
    return getattr(modeling_torch, name)()


def max_abs_difference(torch_model, paddle_model, img_size: int, seed: int = 0) -> float:
    """Largest |torch - paddle| logit of the two eval-mode twins on one seeded batch."""
    paddle = quiet_paddle_import()
    batch = np.random.default_rng(seed).standard_normal((1, 3, img_size, img_size)).astype(np.float32)
    torch_model.eval()
    paddle_model.eval()
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(batch)).numpy()
    with paddle.no_grad():
        found = paddle_model(paddle.to_tensor(batch)).numpy()
    return float(np.abs(expected - found).max())


def trainable_in(layout) -> int:
    skipped = ("running_mean", "running_var", "num_batches_tracked")
    return sum(int(np.prod(shape)) for key, shape in layout.items() if not key.endswith(skipped))


def test_registry_entries():
    specs = {spec.name: spec for spec in MODELS}
    assert list(specs) == NAMES
    for name, (img_size, *_rest) in CONFIGS.items():
        spec = specs[name]
        assert spec.input_size == img_size and spec.num_classes == 1000 and spec.table == "cmt"
        assert spec.preprocessing.interpolation == "bicubic"
        # The reference evaluates with Resize(int(256 / 224 * size)) + CenterCrop(size).
        assert int(img_size / spec.preprocessing.crop_pct) == int(256 / 224 * img_size)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.slow
def test_parameter_count(name):
    torch_model = torch_twin(name)
    assert count_trainable(torch_model) == PARAMETERS[name]
    assert len(torch_model.state_dict()) == STATE_DICT_ENTRIES[name]
    assert count_trainable(getattr(modeling_paddle, name)()) == PARAMETERS[name]


@pytest.mark.parametrize("name", NAMES)
def test_official_layout_loads_strictly(name):
    """The reference's state dict (names, shapes, order) loads into the torch twin with strict=True."""
    layout = official_layout(*CONFIGS[name])
    assert len(layout) == STATE_DICT_ENTRIES[name] and trainable_in(layout) == PARAMETERS[name]
    model = torch_twin(name)
    assert list(model.state_dict()) == list(layout)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == layout
    model.load_state_dict(official_state_dict(layout, 0.5), strict=True)
    assert float(model.relative_pos_d.detach().mean()) == 0.5


def test_released_checkpoint_file_loads_strictly(tmp_path):
    """A file as the reference's trainer writes it ({'model': ..., 'model_ema': ...}) loads strictly, both entries."""
    layout = official_layout(*CONFIGS["cmt_ti"])
    path = tmp_path / "cmt_tiny.pth"
    ema = official_state_dict(layout, 2.0)
    torch.save({"model": official_state_dict(layout, 1.0), "model_ema": ema, "epoch": 799}, path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = modeling_torch.cmt_ti()
    for entry, value in (("model", 1.0), ("model_ema", 2.0)):
        model.load_state_dict(checkpoint[entry], strict=True)
        assert float(model.head.weight.detach().mean()) == value


@pytest.mark.parametrize("name", NAMES)
def test_table(name):
    check_table(name)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.slow
def test_parity(name):
    metrics = parity(name, batch_size=1)
    assert metrics.ref_max > 0.5  # non-trivial logits
    assert metrics.max_abs < PARITY_TOLERANCE, metrics


def test_parity_at_another_size():
    check_table("cmt_ti", img_size=128)
    metrics = parity("cmt_ti", batch_size=1, seed=1, img_size=128)
    assert metrics.max_abs < PARITY_TOLERANCE, metrics


def test_normalisation_eps_as_the_reference():
    """LayerNorm eps 1e-6 in the blocks, torch's default 1e-5 after each patch embedding, BatchNorm 1e-5."""
    torch_model, paddle_model = modeling_torch.cmt_ti(img_size=64), modeling_paddle.cmt_ti(img_size=64)
    paddle = quiet_paddle_import()
    torch_norms = (torch.nn.LayerNorm, torch.nn.BatchNorm2d)
    torch_eps = {n: m.eps for n, m in torch_model.named_modules() if isinstance(m, torch_norms)}
    paddle_eps = {
        n: m._epsilon
        for n, m in paddle_model.named_sublayers()
        if isinstance(m, (paddle.nn.LayerNorm, paddle.nn.BatchNorm2D))
    }
    in_blocks = {n for n in torch_eps if n.startswith("blocks_") and n.endswith((".norm1", ".norm2"))}
    assert len(in_blocks) == 2 * sum(CONFIGS["cmt_ti"][4])
    assert torch_eps.keys() == paddle_eps.keys()
    for name, eps in torch_eps.items():
        expected = 1e-6 if name in in_blocks else 1e-5
        assert eps == expected and paddle_eps[name] == pytest.approx(expected, rel=1e-6), name


def test_img_size_must_be_a_multiple_of_32():
    for factory in (modeling_torch.cmt_ti, modeling_paddle.cmt_ti):
        with pytest.raises(ValueError, match="multiple of 32"):
            factory(img_size=200)


def test_square_linear_layers_are_transposed():
    """q, k, v and proj are [dim, dim]: only the table, never the shapes, can say they need transposing."""
    torch_model = modeling_torch.cmt_ti(img_size=64)
    randomize_torch(torch_model, seed=3)
    tensors, summary = convert_tensors("cmt_ti", torch_state(torch_model), "paddle", model_kwargs={"img_size": 64})
    linears = [f"blocks_{x}.{b}.attn.{n}.weight" for x, d in zip("abcd", CONFIGS["cmt_ti"][4])
               for b in range(d) for n in ("q", "k", "v", "proj")]
    assert summary.transposed == len(linears) + 1  # and the head
    state = torch_model.state_dict()
    for key in linears:
        source = state[key].numpy()
        assert source.shape[0] == source.shape[1]
        np.testing.assert_array_equal(tensors[key].load(), source.T)

    # Loaded untransposed (which a shape check cannot notice), the Paddle twin is plainly wrong.
    untransposed = dict(tensors)
    for key in linears:
        untransposed[key] = LazyTensor.of(state[key].numpy(), "float32")
    paddle_model = modeling_paddle.cmt_ti(img_size=64)
    load_paddle(paddle_model, untransposed)
    assert max_abs_difference(torch_model, paddle_model, 64) > 1e-2


def test_resolution_mismatch_is_an_error():
    """A checkpoint trained at another size fails conversion, naming the expected and found shapes."""
    fine_tuned = torch_state(modeling_torch.cmt_ti(img_size=192))
    with pytest.raises(LayoutError) as error:
        convert_tensors("cmt_ti", fine_tuned, "paddle")
    message = str(error.value)
    for stage, found, expected in [("a", [1, 2304, 36], [1, 1600, 25]), ("d", [8, 36, 36], [8, 25, 25])]:
        assert f"relative_pos_{stage}" in message
        assert f"shape {found}, but the target twin expects {expected}" in message
    assert "model_kwargs={'img_size': 'N'}" in message


@pytest.mark.slow
def test_converting_to_another_size_resizes_the_biases_in_both_frameworks():
    """A 160 checkpoint converted for a 192 twin: the Paddle twin equals a 192 torch twin given the same biases."""
    source = modeling_torch.cmt_ti()
    randomize_torch(source, seed=5)
    tensors, summary = convert_tensors(
        "cmt_ti", torch_state(source), "paddle", resize=True, model_kwargs={"img_size": 192}
    )
    assert sorted(summary.resized) == [f"relative_pos_{x}" for x in "abcd"]
    assert tuple(tensors["relative_pos_a"].shape) == (1, 2304, 36)

    target = modeling_torch.cmt_ti(img_size=192)
    state = source.state_dict()
    for key, value in target.state_dict().items():
        if key.startswith("relative_pos_"):
            state[key] = torch.from_numpy(resize_relative_pos(state[key].numpy(), tuple(value.shape)))
    target.load_state_dict(state, strict=True)
    paddle_model = modeling_paddle.cmt_ti(img_size=192)
    load_paddle(paddle_model, tensors)
    assert max_abs_difference(target, paddle_model, 192, seed=2) < PARITY_TOLERANCE


def _two_pass_torch(array, target_shape):
    """Bicubic over the query grid, then over the key grid, with torch's F.interpolate."""
    heads, queries, keys = array.shape
    side, key_side = int(queries ** 0.5), int(keys ** 0.5)
    new_side, new_key_side = int(target_shape[1] ** 0.5), int(target_shape[2] ** 0.5)
    interpolate = torch.nn.functional.interpolate
    x = torch.from_numpy(array).reshape(heads, side, side, keys).permute(0, 3, 1, 2)
    x = interpolate(x, size=(new_side, new_side), mode="bicubic", align_corners=False)
    x = x.permute(0, 2, 3, 1).reshape(heads, new_side ** 2, key_side, key_side)
    x = interpolate(x, size=(new_key_side, new_key_side), mode="bicubic", align_corners=False)
    return x.reshape(target_shape).numpy()


def _two_pass_paddle(array, target_shape):
    paddle = quiet_paddle_import()
    heads, queries, keys = array.shape
    side, key_side = int(queries ** 0.5), int(keys ** 0.5)
    new_side, new_key_side = int(target_shape[1] ** 0.5), int(target_shape[2] ** 0.5)
    interpolate = paddle.nn.functional.interpolate
    x = paddle.to_tensor(array).reshape([heads, side, side, keys]).transpose([0, 3, 1, 2])
    x = interpolate(x, size=[new_side, new_side], mode="bicubic", align_corners=False)
    x = x.transpose([0, 2, 3, 1]).reshape([heads, new_side ** 2, key_side, key_side])
    x = interpolate(x, size=[new_key_side, new_key_side], mode="bicubic", align_corners=False)
    return x.reshape(list(target_shape)).numpy()


# cmt_s 224 -> 256 (stages a and d), a downsizing, and odd ratios
RESIZES = [((1, 3136, 49), (1, 4096, 64)), ((8, 49, 49), (8, 64, 64)), ((2, 256, 16), (2, 144, 9)),
           ((4, 100, 25), (4, 196, 49))]


@pytest.mark.parametrize("source_shape, target_shape", RESIZES)
def test_resize_equals_torch_and_paddle_bicubic(source_shape, target_shape):
    array = np.random.default_rng(0).standard_normal(source_shape)
    resized = resize_relative_pos(array, target_shape)
    assert resized.shape == target_shape and resized.dtype == np.float64
    np.testing.assert_allclose(resized, _two_pass_torch(array, target_shape), rtol=0, atol=1e-12)
    # Paddle computes its scale (in / out) in float32 even for float64 data: off by ~1e-6 at inexact ratios.
    np.testing.assert_allclose(resized, _two_pass_paddle(array, target_shape), rtol=0, atol=1e-5)

    single = array.astype(np.float32)
    resized = resize_relative_pos(single, target_shape)
    assert resized.dtype == np.float32
    np.testing.assert_allclose(resized, _two_pass_torch(single, target_shape), rtol=0, atol=2e-5)
    np.testing.assert_allclose(resized, _two_pass_paddle(single, target_shape), rtol=0, atol=2e-5)


def test_resize_basics():
    np.testing.assert_array_equal(bicubic_matrix(7, 7), np.eye(7))
    np.testing.assert_allclose(bicubic_matrix(5, 9).sum(axis=1), 1.0)  # constants stay constant
    with pytest.raises(ValueError, match="heads"):
        resize_relative_pos(np.zeros((1, 16, 4)), (2, 16, 4))
    with pytest.raises(ValueError, match="square"):
        resize_relative_pos(np.zeros((1, 15, 4)), (1, 16, 4))


@pytest.mark.slow
def test_cmt_s_converted_for_256_verifies_against_a_256_twin(tmp_path):
    """The user's path: `convert cmt_s --input-size 256`, then `verify --input-size 256` with both files."""
    from weightport import convert, verify

    model = modeling_torch.cmt_s()
    randomize_torch(model, seed=5)
    source = tmp_path / "cmt_s.pth"
    torch.save({"model": model.state_dict(), "model_ema": model.state_dict()}, source)
    summary = convert("cmt_s", source, tmp_path / "cmt_s_256.pdparams", model_kwargs={"img_size": 256})
    assert summary.resized == [f"relative_pos_{stage}" for stage in "abcd"]
    result = verify(
        "cmt_s", torch_ckpt=str(source), paddle_ckpt=str(tmp_path / "cmt_s_256.pdparams"),
        model_kwargs={"img_size": 256}, batch_size=1, device="cpu",
    )
    assert result.passed, result.as_dict()
    assert result.models[0].outputs[0].metrics.max_abs < 1e-4
