"""The `weightport` command line: a thin layer over the Python API, one module per command.

Exit codes: 0 success, 1 a parity gate failed, 2 a usage or input error (one line on stderr, no
traceback; `errors.py` words the library's errors in the command line's flags). Heavy modules
(numpy-based readers, torch, paddle) are imported inside the commands that need them, so
`weightport --help` starts fast.
"""
from __future__ import annotations

import sys
import threading

import click

from .._compat import exit_now
from ..errors import UserError
from .convert_cmd import convert_cmd
from .errors import EXIT_USAGE, message
from .inspect_cmd import inspect_cmd
from .list_cmd import list_cmd
from .map_cmd import map_group
from .port_cmd import port_cmd
from .verify_cmd import verify_cmd


class _Group(click.Group):
    """Turns weightport's own errors into one line on stderr and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"Error: {message(exc)}", err=True)
            ctx.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="weightport")
def cli():
    """Move trained weights between PyTorch and PaddlePaddle, and prove nothing was lost."""


for command in (list_cmd, inspect_cmd, convert_cmd, verify_cmd, port_cmd, map_group):
    cli.add_command(command)


def main() -> None:
    """Run the command line, then leave without tearing the interpreter down (as mypy does).

    The teardown frees every object numpy and the readers left, after a full cycle collection:
    about 0.03 s, a twentieth of converting fcvit_b48. What an exit must do is still done
    (`_compat.exit_now`); with other threads still running, or an exit status that is not a number,
    Python leaves the ordinary way."""
    try:
        cli(prog_name="weightport")
        code = 0
    except SystemExit as exc:
        code = exc.code
    if not (code is None or isinstance(code, int)) or threading.active_count() > 1:
        sys.exit(code)
    exit_now(code or 0)
