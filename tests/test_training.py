"""Training parity (`verify --train`): the checks pass on faithful twins and catch, by name, the
faults that eval-mode verification cannot see (tests/faulty_twins.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from weightport.cli import cli
from weightport.models.pair import TwinPair
from weightport.parity.training import _biased_running_var, switch_off_stochastic
from weightport.parity.verification import verify

TABLE = Path(__file__).parent / "faulty_twins.toml"
FAULTY = ("--torch-model", "tests.faulty_twins:torch_net", "--paddle-model", "tests.faulty_twins:paddle_net",
          "--mapping", str(TABLE), "--input-size", "8")


def faulty_pair() -> TwinPair:
    return TwinPair.from_factories("tests.faulty_twins:torch_net", "tests.faulty_twins:paddle_net", table=TABLE, input_size=8)


def cli_verify(*args):
    return CliRunner().invoke(cli, ["verify", *FAULTY, *args])


def test_faithful_twins_pass_and_every_figure_is_there():
    result = verify(faulty_pair(), train=True, batch_size=2)
    training = result.models[0].training
    assert result.passed and training.passed, training.failures()
    assert training.loss.startswith("cross-entropy")
    assert len(training.gradients) == 17  # every trainable tensor of the torch twin
    assert {c.torch for c in training.running_stats} == {
        f"{m}.{s}" for m in ("bn", "block1.bn1", "block1.bn2", "block2.bn1", "block2.bn2") for s in ("running_mean", "running_var")}
    assert all(c.convention > 0 for c in training.running_stats if c.torch.endswith("running_var"))
    assert [s.optimizer for s in training.steps] == ["sgd", "adamw"] and all(len(s.tensors) == 17 for s in training.steps)
    assert training.switched_off == {"torch": ["drop (Dropout, 0.5)"], "paddle": ["drop (Dropout, 0.5)"]}
    assert max(c.max_rel for c in training.gradients) < 1e-6


@pytest.mark.parametrize(("fault", "named"), [
    ("bn_momentum", "running statistic block2.bn1.running_mean"),
    ("cut_residual", "block2.conv1.weight: gets a gradient in torch only"),
    ("unused_parameter", "extra_scale: trainable in Paddle only, but gets no gradient"),
])
def test_eval_passes_but_train_fails_naming_the_fault(fault, named):
    assert cli_verify("--model-arg", f"fault={fault}").exit_code == 0
    result = cli_verify("--model-arg", f"fault={fault}", "--train")
    assert result.exit_code == 1, result.output
    assert named in " ".join(result.output.split())


def test_the_gradient_report_names_the_module_whose_gradient_is_cut():
    result = verify(faulty_pair(), train=True, layers=True, batch_size=2, model_kwargs={"fault": "cut_residual"})
    report = result.models[0].training.layers
    assert report.first_divergence == "block2.bn2"
    first = next(layer for layer in report.layers if layer.jump)
    assert first.reason == "its output gets a gradient in torch only"
    # modules after the cut (in backward order, before it) agree
    assert report.layers[0].torch == "head" and report.layers[0].rel < 1e-6


def test_the_gradient_report_of_faithful_twins_flags_nothing():
    report = verify(faulty_pair(), train=True, layers=True, batch_size=2).models[0].training.layers
    compared = [layer for layer in report.layers if layer.metrics is not None]
    assert report.first_divergence is None and len(compared) >= 10


def test_json_holds_gradients_running_statistics_and_steps(tmp_path):
    path = tmp_path / "r.json"
    assert cli_verify("--train", "--json-file", str(path)).exit_code == 0
    training = json.loads(path.read_text())["models"][0]["training"]
    assert training["passed"] and training["failures"] == []
    gradient = training["gradients"][0]
    assert {"torch", "paddle", "max_abs", "max_rel", "ratio", "passed"} <= set(gradient)
    assert {c["paddle"] for c in training["running_stats"]} >= {"block2.bn1._mean", "block2.bn1._variance"}
    assert [s["optimizer"] for s in training["steps"]] == ["sgd", "adamw"]
    assert training["steps"][1]["hyper_parameters"]["weight_decay"] == 0.05


def test_junit_carries_the_training_fault(tmp_path):
    path = tmp_path / "j.xml"
    assert cli_verify("--model-arg", "fault=bn_momentum", "--train", "--junit", str(path)).exit_code == 1
    assert "block2.bn1.running_mean" in path.read_text()


def test_one_image_per_batch_is_refused():
    result = cli_verify("--train", "--batch-size", "1")
    assert result.exit_code == 2 and "at least 2 images" in result.output


@pytest.mark.filterwarnings("ignore:When training, we now always track")
def test_running_variance_is_reexpressed_as_paddle_updates_it():
    import torch

    from weightport.frameworks import quiet_paddle_import

    paddle = quiet_paddle_import()
    x = np.random.default_rng(1).standard_normal((2, 3, 5, 5)) * 2 + 1
    torch_bn = torch.nn.BatchNorm2d(3).double().train()
    before = torch_bn.running_var.clone().numpy()
    torch_bn(torch.from_numpy(x))
    paddle_bn = paddle.nn.BatchNorm2D(3)
    paddle_bn.to(dtype="float64")
    paddle_bn.train()
    paddle_bn(paddle.to_tensor(x))
    after = torch_bn.running_var.detach().numpy()
    assert not np.allclose(after, paddle_bn._variance.numpy(), rtol=1e-6)  # the conventions differ ...
    np.testing.assert_allclose(_biased_running_var(before, after, 0.1, 50), paddle_bn._variance.numpy(), rtol=1e-6)  # ... by this


def test_stochastic_layers_are_switched_off_and_listed():
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.2), torch.nn.Dropout(0.0)).train()
    assert switch_off_stochastic(model, "torch") == ["1 (Dropout, 0.2)"]
    assert not model[1].training and model[1].p == 0.0 and model[0].training
    x = torch.ones(2, 4)
    assert torch.equal(model(x), model[0](x))


@pytest.mark.slow
def test_a_table_that_rescales_weights_trains_differently_and_says_where():
    """alexnet's table doubles two Linear weights (paddle.vision's inference-scaling dropout): the
    gradients agree through the chain rule, the running forward agrees, and the optimizer steps move
    exactly those two tensors differently; the registry says why."""
    training = verify("alexnet", train=True, batch_size=2).models[0].training
    assert training.differs_by_design and all(c.passed for c in training.gradients) and training.loss_passed
    for step in training.steps:
        assert sorted(c.torch for c in step.tensors if not c.passed) == ["classifier.1.weight", "classifier.4.weight"]
    sgd = next(s for s in training.steps if s.optimizer == "sgd")
    assert all(c.max_rel == pytest.approx(0.75, abs=0.01) for c in sgd.tensors if not c.passed)  # a quarter of the move
