"""Shared fixtures: real checkpoints of a randomly initialised ResNet-50, made once per session."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("GLOG_minloglevel", "2")


@pytest.fixture(scope="session")
def resnet50_torch():
    """timm's resnet50 in eval mode with deterministic non-trivial weights (BatchNorm statistics too)."""
    from weightport.models.pair import create_model
    from weightport.models.weights import randomize_torch

    model = create_model("resnet50", "torch")
    randomize_torch(model, seed=7)
    return model


@pytest.fixture(scope="session")
def resnet50_wrapped_ckpt(resnet50_torch, tmp_path_factory):
    """A timm-trainer-style checkpoint: {'state_dict': ... with 'module.' prefixes, 'epoch': ...}."""
    import torch

    path = tmp_path_factory.mktemp("ckpt") / "resnet50.pth.tar"
    state = {f"module.{k}": v for k, v in resnet50_torch.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 12, "arch": "resnet50"}, path)
    return path


@pytest.fixture
def canary(tmp_path):
    """A path that a hostile payload would create if any code from a file ran."""
    return tmp_path / "canary-was-created"


@pytest.fixture
def tiny_model():
    """Registers the tiny test twins (tests/tiny_twins.py) as a model for the duration of a test."""
    import dataclasses
    from pathlib import Path

    from tests.tiny_twins import SPEC
    from weightport.models.registry import _registry

    specs = _registry()
    table = str(Path(__file__).parent / "tiny_twins.toml")
    specs[SPEC.name] = dataclasses.replace(SPEC, table=table)
    yield SPEC.name
    del specs[SPEC.name]


_HOSTILE_TALLY = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def hostile_tally(request):
    """What the hostile-input tests tried and refused, printed in the run's summary."""
    return request.config.stash.setdefault(
        _HOSTILE_TALLY, {"tried": set(), "refused": set(), "runs": 0, "generated": 0, "generated_refused": 0}
    )


def pytest_sessionfinish(session):
    """Under pytest-xdist, a worker hands its tally to the controller, which prints the summary."""
    tally = session.config.stash.get(_HOSTILE_TALLY, None)
    if tally and hasattr(session.config, "workeroutput"):
        session.config.workeroutput["hostile_tally"] = {k: sorted(v) if isinstance(v, set) else v for k, v in tally.items()}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    worker = getattr(node, "workeroutput", {}).get("hostile_tally")
    if not worker:
        return
    tally = node.config.stash.setdefault(
        _HOSTILE_TALLY, {"tried": set(), "refused": set(), "runs": 0, "generated": 0, "generated_refused": 0}
    )
    for key, value in worker.items():
        tally[key] = tally[key] | set(value) if isinstance(tally[key], set) else tally[key] + value


def pytest_terminal_summary(terminalreporter, config):
    tally = config.stash.get(_HOSTILE_TALLY, None)
    if not tally:
        return
    terminalreporter.write_sep("-", "hostile inputs")
    if tally["tried"]:
        terminalreporter.write_line(
            f"corpus: {len(tally['tried'])} hostile files tried, {len(tally['refused'])} refused by every command "
            f"({tally['runs']} command runs: exit 2, one line, no traceback, no output, no code run)"
        )
    if tally["generated"]:
        terminalreporter.write_line(
            f"generated: {tally['generated']} files read (random bytes, mutated checkpoints, made-up layouts and "
            f"headers): {tally['generated_refused']} refused with weightport's own error, the rest read as declared"
        )
