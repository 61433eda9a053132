"""`weightport inspect`: what a checkpoint holds."""
from __future__ import annotations

import click

from . import options
from .output import print_json


@click.command("inspect")
@click.argument("file", type=click.Path(dir_okay=True))
@click.option("--key", help="Which state dict to show when the file holds several (e.g. state_dict_ema).")
@options.json_flag
@click.option("--all", "show_all", is_flag=True, help="List every tensor, not only the first 30.")
@options.unsafe_pickle
def inspect_cmd(file: str, key: str | None, as_json: bool, show_all: bool, unsafe_pickle: bool):
    """Show what a checkpoint holds: format, wrapper, tensors, shapes, dtypes, totals."""
    from ..formats.inspection import inspect_checkpoint

    with options.trusting(unsafe_pickle, file):
        report = inspect_checkpoint(file, key)
    if as_json:
        print_json(report)
        return
    from ..report.console import print_inspection

    print_inspection(report, show_all)
