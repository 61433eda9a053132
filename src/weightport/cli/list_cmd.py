"""`weightport list`: the registered models."""
from __future__ import annotations

from pathlib import Path

import click

from .options import json_flag
from .output import print_json

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@click.command("list")
@json_flag
def list_cmd(as_json: bool):
    """List the registered models."""
    from ..models.pair import TwinPair
    from ..models.registry import list_models

    rows = []
    for name in list_models():
        pair = TwinPair.registered(name)
        rows.append({
            "name": name,
            "family": pair.family,
            "input_size": pair.input_size,
            "parameters": pair.parameter_count(),
            "table": _shown(pair.table_file),
            "description": pair.description,
        })
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    from ..report.console import console

    table = Table(title="weightport models")
    for column in ("model", "family", "input", "parameters", "table", "twins (torch <-> Paddle layout)"):
        table.add_column(column, justify="right" if column in ("input", "parameters") else "left")
    for row in rows:
        params = f"{row['parameters']:,}" if row["parameters"] is not None else "?"
        table.add_row(row["name"], row["family"], str(row["input_size"]), params, row["table"], row["description"])
    console().print(table)


def _shown(path: Path) -> str:
    """A built-in table relative to the package (models/resnet/resnet.toml), another as it is."""
    return path.relative_to(PACKAGE_ROOT).as_posix() if path.is_relative_to(PACKAGE_ROOT) else str(path)
