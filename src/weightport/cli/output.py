"""What the commands print besides the reports: JSON on stdout, and a progress bar."""
from __future__ import annotations

import json

import click


def print_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


class Progress:
    """A rich progress bar by bytes: sized when the plan is known, advanced after each tensor."""

    def __init__(self, enabled: bool, label: str = "converting"):
        self.enabled = enabled
        self.label = label
        self.bar = None

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        self.bar = Bar(TextColumn(self.label), BarColumn(), DownloadColumn(), TimeRemainingColumn(), transient=True)
        self.task = self.bar.add_task(self.label, total=None)
        return self

    def start(self, total_bytes: int) -> None:
        self.bar.update(self.task, total=total_bytes)
        self.bar.start()

    def advance(self, name, tensor) -> None:
        self.bar.update(self.task, advance=tensor.nbytes)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False
