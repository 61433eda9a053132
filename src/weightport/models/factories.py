"""Twin factories named "module:function", and the keyword arguments given to them.

A registered model names its twins' factories so; people porting a network by hand name theirs
on the command line (`--torch-model`, `--paddle-model`; `pair.TwinPair.from_factories` makes the
pair), and `parse_model_args` reads the factories' keyword arguments from `--model-arg key=value`.
"""
from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import UserError

_FACTORY = re.compile(r"(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<function>[A-Za-z_]\w*)")


def function_name(factory: str, option: str) -> str:
    """The function's name in a "module:function" factory; `option` names where it was given."""
    match = _FACTORY.fullmatch(factory or "")
    if match is None:
        raise UserError(f"{option} {factory!r}: write the factory as module:function (e.g. mynet.torch_model:build)")
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


def parse_model_args(items: Iterable[str]) -> dict[str, Any]:
    """`key=value` strings as factory keyword arguments; values are Python literals, else strings."""
    kwargs: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UserError(f"--model-arg {item!r}: write it as name=value (e.g. img_size=256)")
        if key in kwargs:
            raise UserError(f"--model-arg {key} given twice")
        try:
            kwargs[key] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            kwargs[key] = text.strip()  # a bare word such as act=gelu
    return kwargs
