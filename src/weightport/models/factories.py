"""Twin factories named "module:function".

A registered model names its twins' factories so; people porting a network by hand name theirs
(`pair.TwinPair.from_factories` makes the pair).
"""
from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

from ..errors import InvalidArgument, UserError

_FACTORY = re.compile(r"(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<function>[A-Za-z_]\w*)")


def function_name(factory: str, parameter: str) -> str:
    """The function's name in a "module:function" factory; `parameter` names where it was given."""
    match = _FACTORY.fullmatch(factory or "")
    if match is None:
        raise InvalidArgument(parameter, factory, "write the factory as module:function (e.g. mynet.torch_model:build)")
    return match["function"]


def import_factory(path: str, framework: str) -> Callable[..., Any]:
    """The function a "module:function" path names (Paddle imported quietly first for a Paddle twin)."""
    module_name, _, attr = path.partition(":")
    if framework == "paddle":
        from ..frameworks import quiet_paddle_import

        quiet_paddle_import()
    try:
        return getattr(importlib.import_module(module_name), attr)
    except ImportError as exc:
        raise UserError(f"cannot import the {framework} twin's factory {path!r}: {exc}") from None
    except AttributeError:
        raise UserError(f"{module_name!r} has no {framework} twin factory {attr!r}") from None
