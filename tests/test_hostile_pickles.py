"""Pickles that try to run code are refused by every reader, and nothing runs."""
from __future__ import annotations

import builtins
import os
import pickle
import subprocess

import numpy as np
import pytest
import torch

from weightport.errors import CheckpointError
from weightport.formats import read_checkpoint


class Payload:
    """Pickles as a call to `func(*args)`, as an attacker's file would."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def payloads(canary):
    command = f"touch {canary}"
    return {
        "os.system": Payload(os.system, command),
        "subprocess.call": Payload(subprocess.call, ["touch", str(canary)]),
        "builtins.eval": Payload(builtins.eval, f"open({str(canary)!r}, 'w').close()"),
        "builtins.exec": Payload(builtins.exec, f"open({str(canary)!r}, 'w').close()"),
    }


def _write(path, kind, content):
    if kind == "torch":
        torch.save(content, path)
    elif kind == "torch-legacy":
        torch.save(content, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(content, protocol=4))


@pytest.mark.parametrize("kind, suffix", [("torch", ".pth"), ("torch-legacy", ".pt"), ("paddle", ".pdparams")])
@pytest.mark.parametrize("payload", ["os.system", "subprocess.call", "builtins.eval", "builtins.exec"])
@pytest.mark.parametrize("nesting", ["top", "inside state_dict", "beside state_dict"])
def test_code_in_a_pickle_is_refused_and_never_runs(tmp_path, canary, kind, suffix, payload, nesting):
    evil = payloads(canary)[payload]
    weight = torch.ones(2) if kind != "paddle" else np.ones(2, dtype=np.float32)
    content = {
        "top": evil,
        "inside state_dict": {"state_dict": {"w": weight, "x": evil}},
        "beside state_dict": {"state_dict": {"w": weight}, "meta": [1, {"deep": evil}]},
    }[nesting]
    path = tmp_path / f"hostile{suffix}"
    _write(path, kind, content)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    assert str(path) in str(info.value)
    assert not canary.exists(), "code from the file ran"


def test_refusal_names_the_global(tmp_path, canary):
    path = tmp_path / "hostile.pdparams"
    _write(path, "paddle", {"w": np.ones(1), "x": payloads(canary)["os.system"]})
    with pytest.raises(CheckpointError, match=r"refused to load: the pickle asks for (posix|os)\.system"):
        read_checkpoint(path)
    assert not canary.exists()
