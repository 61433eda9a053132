"""Options several commands share, and turning them into the API's arguments: the twin pair named by
MODEL or by --torch-model/--paddle-model/--mapping, --model-arg, --unsafe-pickle, --json."""
from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterable
from typing import Any

import click

from ..errors import UserError

json_flag = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout (nothing else).")

unsafe_pickle = click.option(
    "--unsafe-pickle", is_flag=True,
    help="Trust the checkpoints named here: unpickle them without restrictions, so that code in them RUNS "
    "(see SECURITY.md). Never needed for plain weights.",
)


def input_size(help_text: str):
    return click.option("--input-size", type=click.IntRange(min=1), help=help_text)


def trusting(enabled: bool, *paths):
    """Within the block, the files named on the command line go to the unrestricted loaders (--unsafe-pickle)."""
    from ..formats import trusting_pickles

    return trusting_pickles(paths if enabled else ())


def twin_pair_options(with_mapping: bool = True):
    """The options that name a twin pair by its factories, in place of MODEL (a registered name or a ported folder)."""
    options = [
        click.option("--torch-model", metavar="MODULE:FACTORY",
                     help="Your own torch twin's factory (with --paddle-model, in place of MODEL)."),
        click.option("--paddle-model", metavar="MODULE:FACTORY", help="Your own Paddle twin's factory."),
        click.option("--model-arg", "model_args", multiple=True, metavar="NAME=VALUE",
                     help="Keyword argument for both factories, a Python literal or a word (repeatable), e.g. num_classes=10."),
    ]
    if with_mapping:
        options.insert(2, click.option("--mapping", type=click.Path(dir_okay=False),
                                       help="Mapping table of your twins (`weightport map draft` drafts one)."))

    def decorate(command):
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def parse_model_args(items: Iterable[str]) -> dict[str, Any]:
    """`--model-arg key=value` strings as factory keyword arguments; values are Python literals, else strings."""
    kwargs: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UserError(f"--model-arg {item!r}: write it as name=value (e.g. num_classes=10)")
        if key in kwargs:
            raise UserError(f"--model-arg {key} given twice")
        try:
            kwargs[key] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            kwargs[key] = text.strip()  # a bare word such as act=gelu
    return kwargs


def parse_inputs(names: tuple[str, ...], shapes: tuple[str, ...], dtypes: tuple[str, ...]) -> list | None:
    """--input-name/--input-shape/--input-dtype, paired by position, as the port's input requests
    (None: found from the model). Shapes and dtypes without names describe forward's first parameters."""
    from ..port.torch_to_paddle.calling import InputRequest

    count = max(len(names), len(shapes), len(dtypes))
    if not count:
        return None
    if names and len(names) != count:
        raise UserError(f"{len(names)} --input-name for {count} inputs: name every input, or none")
    if not names and count > 1:
        raise UserError("several inputs need their names (--input-name)")
    requests = []
    for i in range(count):
        shape = _shape(shapes[i]) if i < len(shapes) else None
        dtype, low, high = _dtype(dtypes[i]) if i < len(dtypes) else (None, None, None)
        requests.append(InputRequest(names[i] if names else None, shape, dtype, low, high))
    return requests


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise UserError(f"--input-shape {text!r}: write the dimensions as whole numbers, batch first (e.g. 1,3,224,224)")
    return shape


def _dtype(text: str) -> tuple[str, int | None, int | None]:
    name, *bounds = text.split(":")
    if len(bounds) not in (0, 2):
        raise UserError(f"--input-dtype {text!r}: write a dtype, with an integer range as DTYPE:LOW:HIGH (e.g. int64:0:30522)")
    try:
        low, high = (int(b) for b in bounds) if bounds else (None, None)
    except ValueError:
        raise UserError(f"--input-dtype {text!r}: the range's bounds are whole numbers") from None
    return name, low, high


def twin_pairs(models: tuple[str, ...], torch_model, paddle_model, mapping, table_required: bool = True) -> list:
    """The twin pairs of `models` (registered names or ported folders), or the one given by
    --torch-model/--paddle-model (and --mapping)."""
    from ..models.pair import REGISTERED, TwinPair, resolve

    if not (torch_model or paddle_model):
        if mapping:
            raise UserError("--mapping goes with --torch-model/--paddle-model; a registered model or ported folder has its own table")
        pairs = [resolve(model) for model in models]
        if any(pair.kind != REGISTERED for pair in pairs):
            import_from_cwd()  # a ported folder's torch twin may be a module:function of the current folder
        return pairs
    if models:
        raise UserError("name a registered model or pass --torch-model/--paddle-model, not both")
    if not (torch_model and paddle_model):
        raise UserError("--torch-model and --paddle-model go together")
    if table_required and not mapping:
        raise UserError("--mapping TABLE.toml is needed with --torch-model/--paddle-model (`weightport map draft` drafts one)")
    import_from_cwd()
    return [TwinPair.from_factories(torch_model, paddle_model, mapping)]


def import_from_cwd() -> None:
    """Let factories' modules be found in the current folder, as with `python -m`."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
