"""The two frameworks: their names, and importing them quietly."""
from __future__ import annotations

import os
import warnings

FRAMEWORKS = ("torch", "paddle")


def other(framework: str) -> str:
    """The framework that is not `framework`."""
    return FRAMEWORKS[1 - FRAMEWORKS.index(framework)]


def quiet_paddle_import():
    """Import paddle without its start-up chatter (the ccache warning), and return it."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import paddle
    return paddle


def named_modules(model, framework: str):
    """(path, module) for every module of a torch model or Paddle layer, the root included."""
    return model.named_modules() if framework == "torch" else model.named_sublayers(include_self=True)
