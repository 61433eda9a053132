"""Random ops in train-mode code through `weightport port` and `weightport verify --train`: the twin
keeps them under `if self.training`, and the training check makes both twins draw the same numbers
(parity/random_draws.py), so their random code paths are compared exactly."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.test_port import run
from weightport.frameworks import quiet_paddle_import
from weightport.parity.random_draws import shared_draws


def _training(folder) -> dict:
    result = run("verify", folder, "--train", "--json", check_rc=0)
    return json.loads(result.stdout)["models"][0]["training"]


def test_drop_connect_on_torch_rand_ports_and_trains_alike(tmp_path):
    folder = tmp_path / "drop_connect"
    report = json.loads(run("port", "tests.port_library_models:drop_connect_net", "--out", folder, "--input-size", "32",
                            "--json", check_rc=0).stdout)
    assert report["verify"]["passed"]  # eval mode never reaches the random ops
    source = (folder / "modeling_paddle.py").read_text()
    assert "if self.training:" in source and "paddle.rand(" in source
    training = _training(folder)
    assert training["passed"]
    assert training["random_draws"] == {"torch": {"F.dropout": 2, "torch.rand": 2}, "paddle": {"F.dropout": 2, "paddle.rand": 2}}


def test_stochastic_depth_classes_are_switched_off_and_integer_buffers_stay_integers(tmp_path):
    """torchvision's StochasticDepth becomes two twin classes (off and on: StochasticDepth2), both
    switched off; the float64 training twin keeps its int64 index buffer an index."""
    folder = tmp_path / "stochastic_depth"
    run("port", "tests.port_library_models:stochastic_depth_net", "--out", folder, "--input-size", "16", check_rc=0)
    training = _training(folder)
    assert training["passed"]
    assert "5.stochastic_depth (StochasticDepth2)" in training["switched_off"]["paddle"]


def test_shared_draws_give_both_frameworks_the_same_numbers():
    paddle = quiet_paddle_import()
    with shared_draws("torch", seed=3) as torch_draws:
        t = [torch.rand(2, 3), torch.empty(4).bernoulli_(0.5), torch.nn.functional.dropout(torch.ones(2, 5), 0.4)]
    with shared_draws("paddle", seed=3) as paddle_draws:
        p = [paddle.rand([2, 3]), paddle.bernoulli(paddle.empty([4]), 0.5), paddle.nn.functional.dropout(paddle.ones([2, 5]), 0.4)]
    for a, b in zip(t, p, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert sum(torch_draws.values()) == sum(paddle_draws.values()) == 3
    assert not torch.equal(torch.rand(100), torch.rand(100))  # the originals are back


@pytest.mark.slow
def test_efficientnet_pytorch_b0_ports_and_trains_alike(tmp_path):
    folder = tmp_path / "b0"
    run("port", "tests.port_library_models:efficientnet_b0", "--out", folder, "--input-size", "64", check_rc=0)
    training = _training(folder)
    assert training["passed"] and training["random_draws"]["torch"] == {"torch.rand": 9}


def test_a_random_draw_on_constants_is_refused():
    """vit-pytorch CaiT's layer dropout: a Python decision on `torch.zeros(n).uniform_()`, which a
    trace would fix to one draw."""
    from weightport.errors import PortError
    from weightport.port.torch_to_paddle.emit import generate

    class LayerDrop(torch.nn.Module):
        def forward(self, x):
            if self.training and torch.zeros(1).uniform_(0.0, 1.0) < 0.5:
                return x
            return x * 2

    refusal = r"the model \(.*LayerDrop\): RuntimeError: .*Tensor.uniform_\(\) on a tensor the trace does not follow"
    with pytest.raises(PortError, match=refusal):
        generate(LayerDrop(), [((torch.randn(2, 3),), {})], "test twin")


def test_a_branch_on_a_random_draw_is_refused():
    from weightport.errors import PortError
    from weightport.port.torch_to_paddle.emit import generate

    class RandomBranch(torch.nn.Module):
        def __init__(self, branch: bool):
            super().__init__()
            self.branch = branch

        def forward(self, x):
            if self.training and torch.rand(x.shape[0], 1).shape[0] > 1:  # sizes of a drawn tensor are not random
                x = x * 2
            if self.training and self.branch and torch.rand(1) < 0.5:  # the draw is traced, the branch would be fixed
                return x
            return x * 3

    with pytest.raises(PortError, match=r"RuntimeError: it branches on a random draw \(torch.rand\(\)\)"):
        generate(RandomBranch(branch=True), [((torch.randn(2, 3),), {})], "test twin")
    generate(RandomBranch(branch=False), [((torch.randn(2, 3),), {})], "test twin")
