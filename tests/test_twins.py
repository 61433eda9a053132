"""Twins built to be overwritten (`TwinPair.create_to_overwrite`) behave as normally built ones once
their weights are loaded, and `randomize_torch` gives them weights at their initialisation's scale."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from weightport.formats.checkpoint import paddle_array_tensor
from weightport.frameworks import quiet_paddle_import
from weightport.models.pair import create_model, resolve
from weightport.models.weights import load_paddle, randomize_torch, torch_state
from weightport.parity.inputs import random_batch
from weightport.parity.running import paddle_forward, torch_forward
from weightport.tables.layouts import model_layout

paddle = quiet_paddle_import()

# The smallest model of each family.
FAMILIES = ["resnet18", "fcvit_tiny", "cmt_ti", "botnet26t_256", "botnet50", "botnet50_mhsa", "mobilenet_v3_small", "inception_v3"]


def _trainable(model, framework):
    return {k: (not p.stop_gradient) if framework == "paddle" else p.requires_grad for k, p in model.named_parameters()}


def _buffers(model, framework):
    return {k: np.asarray(v.numpy() if framework == "paddle" else v.detach().numpy()) for k, v in model.named_buffers()}


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.slow
def test_overwritten_twins_match_normal_ones_once_loaded(name):
    """Same layout, trainable parameters and buffers (non-persistent ones included), and, loaded with
    the same weights, bit-identical outputs: nothing __init__ computes besides the weights is skipped."""
    torch.manual_seed(0)
    batch = random_batch(1, resolve(name).input_size, seed=0)
    for framework, forward in (("torch", torch_forward), ("paddle", paddle_forward)):
        normal, fast = create_model(name, framework), resolve(name).create_to_overwrite(framework)
        assert model_layout(fast, framework) == model_layout(normal, framework)
        assert _trainable(fast, framework) == _trainable(normal, framework)
        normal_buffers, fast_buffers = _buffers(normal, framework), _buffers(fast, framework)
        assert normal_buffers.keys() == fast_buffers.keys()
        for key, value in normal_buffers.items():
            np.testing.assert_array_equal(fast_buffers[key], value, err_msg=key)
        if framework == "torch":
            fast.load_state_dict(normal.state_dict(), strict=True)
        else:
            load_paddle(fast, {k: paddle_array_tensor(v.numpy()) for k, v in normal.state_dict().items()})
        for (out_name, ref), (_, out) in zip(forward(normal, batch), forward(fast, batch)):
            np.testing.assert_array_equal(out, ref, err_msg=f"{framework} {out_name}")


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.slow
def test_random_weights_keep_the_initialisation_scale(name):
    """Each weight's std after `randomize_torch` on an overwritten twin is its normal init's, to the
    sampling error; tensors up to 1-D and BatchNorm statistics are randomised too."""
    torch.manual_seed(0)
    normal = create_model(name, "torch")
    fast = resolve(name).create_to_overwrite("torch")
    randomize_torch(fast, seed=1)
    init, random = normal.state_dict(), fast.state_dict()
    for key, value in init.items():
        if not value.is_floating_point():
            continue
        new = random[key]
        assert torch.isfinite(new).all(), key
        if value.numel() < 16:
            continue
        assert float(new.std()) > 0, key
        if value.ndim >= 2 and value.numel() >= 1024 and float(value.std()) > 0:
            assert float(new.std()) == pytest.approx(float(value.std()), rel=0.15), key
        elif value.ndim <= 1:
            assert float((new - value).std()) > 0.1, key  # biases, norms, layer scales, BN statistics


@pytest.mark.slow
def test_random_weights_are_deterministic_and_leave_no_trace():
    """Two overwritten twins randomised with one seed are identical, whatever the thread count;
    another seed differs. Building one leaves torch's generator, thread count and later
    `create_model` calls as they were."""
    torch.manual_seed(123)
    threads, rng = torch.get_num_threads(), torch.get_rng_state()
    states = []
    for seed, draw_threads in ((4, threads), (4, 1), (5, threads)):
        model = resolve("cmt_ti").create_to_overwrite("torch")
        torch.set_num_threads(draw_threads)
        randomize_torch(model, seed=seed)
        torch.set_num_threads(threads)
        states.append({k: v.load() for k, v in torch_state(model).items()})
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(np.array_equal(states[0][k], states[1][k]) for k in states[0])
    assert not np.array_equal(states[0]["head.weight"], states[2]["head.weight"])
    torch.manual_seed(123)
    expected = create_model("cmt_ti", "torch").state_dict()
    torch.manual_seed(123)
    resolve("cmt_ti").create_to_overwrite("torch")
    got = create_model("cmt_ti", "torch").state_dict()
    assert all(torch.equal(got[k], expected[k]) for k in expected)
