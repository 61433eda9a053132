"""BoTNet twins: timm's four BoTNets and the paper's BoT50 / BoT50-S1.

Sizes, configs against timm's, the table, twin parity, the attention layer against timm's on
non-square maps, and timm checkpoints converted through files onto the Paddle twin. The paper
models' reference layout is timm's ByobNet by construction (their torch twin is one), so the
table and parity tests cover them.
"""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

from weightport.conversion import convert
from weightport.frameworks import quiet_paddle_import
from weightport.models.botnet import configs
from weightport.models.pair import create_model
from weightport.models.registry import get_spec
from weightport.testing import check_table, count_trainable, parity

paddle = quiet_paddle_import()

# Trainable parameters. timm's four: the figures (what timm gives). The paper models: what
# timm's ByobNet gives for their configs; the paper quotes 20.8M for BoT50.
TRAINABLE = {
    "botnet26t_256": 12_488_672,
    "sebotnet33ts_256": 13_701_984,
    "eca_botnext26ts_256": 10_593_301,
    "botnet50ts_256": 22_742_688,
    "botnet50": 20_852_008,
    "botnet50_s1": 20_859_176,
}
MODELS = list(TRAINABLE)
TIMM_MODELS = MODELS[:4]
# Our framework-free config for each timm model, with the name of timm's `model_cfgs` entry.
TIMM_CONFIGS = {
    "botnet26t_256": ("botnet26t", configs.BOTNET26T),
    "sebotnet33ts_256": ("sebotnet33ts", configs.SEBOTNET33TS),
    "eca_botnext26ts_256": ("eca_botnext26ts", configs.ECA_BOTNEXT26TS),
    "botnet50ts_256": ("botnet50ts", configs.BOTNET50TS),
}


@pytest.mark.parametrize("framework", ["torch", "paddle"])
@pytest.mark.parametrize("name", MODELS)
def test_trainable_parameter_count(name, framework):
    assert count_trainable(create_model(name, framework)) == TRAINABLE[name]


@pytest.mark.parametrize("name", TIMM_MODELS)
def test_configs_match_timm(name):
    """The Paddle port is built from our configs; they must stay equal to the timm ones, field by field."""
    from timm.models.byoanet import model_cfgs

    from weightport.models.botnet.modeling_torch import to_timm_cfg

    timm_name, ours = TIMM_CONFIGS[name]
    assert to_timm_cfg(ours) == model_cfgs[timm_name]


@pytest.mark.parametrize("name", TIMM_MODELS)
def test_preprocessing_matches_timm(name):
    """The registry's preprocessing is timm's pretrained config for the model."""
    from timm.models import get_pretrained_cfg

    timm_cfg, spec = get_pretrained_cfg(name), get_spec(name)
    assert timm_cfg.input_size == (3, spec.input_size, spec.input_size)
    ours = spec.preprocessing
    assert (ours.interpolation, ours.crop_pct) == (timm_cfg.interpolation, timm_cfg.crop_pct)
    assert np.allclose(ours.mean, timm_cfg.mean) and np.allclose(ours.std, timm_cfg.std)


@pytest.mark.parametrize("name", MODELS)
def test_table(name):
    check_table(name)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.slow
def test_parity(name):
    # timm state_dict -> torch.save -> convert -> Paddle's loader, random non-trivial weights.
    result = parity(name, batch_size=1, seed=0)
    print(f"{name}: max_abs {result.max_abs:.3g} mean_abs {result.mean_abs:.3g} ref_max {result.ref_max:.3g}")
    assert result.ref_max > 0.1, "logits too small to show anything"
    assert result.max_abs < 1e-4 * max(1.0, result.ref_max), result


def test_other_configuration():
    """img_size reaches the position tables' shapes and num_classes the head, alike in both twins."""
    kwargs = {"img_size": 128, "num_classes": 10}
    check_table("botnet26t_256", **kwargs)
    result = parity("botnet26t_256", batch_size=1, seed=0, **kwargs)
    assert result.max_abs < 1e-4 * max(1.0, result.ref_max), result


@pytest.mark.parametrize(
    "dim, feat_size, stride, kwargs",
    [
        pytest.param(32, (6, 5), 1, {}, id="timm-default"),
        pytest.param(32, (6, 4), 2, {"scale_pos_embed": True}, id="stride2-scaled"),
        pytest.param(48, (3, 7), 1, {"dim_head": 16, "num_heads": 3, "qkv_bias": True}, id="dim_head-bias"),
    ],
)
def test_bottleneck_attn_matches_timm(dim, feat_size, stride, kwargs):
    """The relative position logits, layer by layer, on non-square maps with large position tables.

    A model's logits average the attention over positions, which hides e.g. swapped axes of the
    relative logits; here they dominate the output.
    """
    from timm.layers.bottleneck_attn import BottleneckAttn

    from weightport.models.botnet.modeling_paddle import BottleneckAttn as PaddleBottleneckAttn

    torch.manual_seed(0)
    reference = BottleneckAttn(dim, feat_size=feat_size, stride=stride, **kwargs).eval()
    with torch.no_grad():
        for table in (reference.pos_embed.height_rel, reference.pos_embed.width_rel):
            table.normal_(0.0, 1.0)
        if reference.qkv.bias is not None:
            reference.qkv.bias.normal_(0.0, 0.5)
    twin = PaddleBottleneckAttn(dim, feat_size=feat_size, stride=stride, **kwargs)
    state = {k: v.numpy() for k, v in reference.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape) for k, v in twin.state_dict().items()}
    twin.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
    twin.eval()

    x = np.random.default_rng(0).standard_normal((2, dim, *feat_size)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    with paddle.no_grad():
        got = twin(paddle.to_tensor(x)).numpy()
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-5 * max(1.0, np.abs(expected).max())


@pytest.mark.parametrize("name", TIMM_MODELS)
@pytest.mark.slow
def test_timm_checkpoint_converts(name, tmp_path):
    """A checkpoint saved from `timm.create_model(name).state_dict()` loads strictly into the torch
    twin and converts onto exactly the Paddle twin's keys and shapes. (Logits through this same
    file path, with non-trivial weights, are `test_parity`'s job.)"""
    source, target = tmp_path / f"{name}.pth", tmp_path / f"{name}.pdparams"
    torch.save(timm.create_model(name, pretrained=False).state_dict(), source)

    create_model(name, "torch").load_state_dict(torch.load(source, weights_only=True), strict=True)

    convert(name, source, target)
    converted = {k: tuple(v.shape) for k, v in paddle.load(str(target)).items()}
    assert converted == {k: tuple(v.shape) for k, v in create_model(name, "paddle").state_dict().items()}
