"""Twin pairs named by their factories ("module:function") instead of a registered name.

People porting a network by hand have a torch factory, a Paddle factory and (once drafted) a
mapping table; `custom_model` makes that pair usable wherever a registered model name is, and
`parse_model_args` reads the factories' keyword arguments from `--model-arg key=value`.
"""
from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import UserError
from .registry import ModelSpec, use_custom

_FACTORY = re.compile(r"(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<function>[A-Za-z_]\w*)")
CUSTOM_FAMILY = "custom"


def _function_name(factory: str, option: str) -> str:
    match = _FACTORY.fullmatch(factory or "")
    if match is None:
        raise UserError(f"{option} {factory!r}: write the factory as module:function (e.g. mynet.torch_model:build)")
    return match["function"]


def custom_model(torch_factory: str, paddle_factory: str, table: str | Path | None = None, input_size: int = 224) -> str:
    """Make the twin pair built by these factories known for this process; returns its model name.

    The name is the two function names joined by '+' (one name when they agree). Without a
    table the pair can be drafted (`weightport map draft`) but not converted or checked.
    """
    torch_name = _function_name(torch_factory, "--torch-model")
    paddle_name = _function_name(paddle_factory, "--paddle-model")
    if table is not None and not Path(table).is_file():
        raise UserError(f"mapping table {str(table)!r} not found")
    spec = ModelSpec(
        name=torch_name if torch_name == paddle_name else f"{torch_name}+{paddle_name}",
        family=CUSTOM_FAMILY,
        table=str(Path(table).resolve()) if table is not None else "",
        torch_factory=torch_factory,
        paddle_factory=paddle_factory,
        input_size=input_size,
        description=f"{torch_factory} <-> {paddle_factory}",
    )
    return use_custom(spec)


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
