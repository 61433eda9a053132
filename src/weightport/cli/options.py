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
