"""The `weightport` command line: a thin layer over the Python API.

Exit codes: 0 success, 1 a parity gate failed, 2 a usage or input error (one line on stderr,
no traceback). Heavy modules (numpy-based readers, torch, paddle) are imported inside the
commands that need them, so `weightport --help` starts fast.
"""
from __future__ import annotations

import json
import sys

import click

from .errors import UserError

EXIT_GATE_FAILED = 1
EXIT_USAGE = 2


class _Group(click.Group):
    """Turns weightport's own errors into one line on stderr and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


def _console():
    from rich.console import Console

    # Logs (CI, pipes) get room for the tables instead of the 80 columns rich assumes there.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def _print_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="weightport")
def cli():
    """Move trained weights between PyTorch and PaddlePaddle, and prove nothing was lost."""


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def list_cmd(as_json: bool):
    """List the registered models."""
    from .layout import parameter_count
    from .registry import get_spec, list_models

    rows = []
    for name in list_models():
        spec = get_spec(name)
        rows.append(
            {
                "name": name,
                "family": spec.family,
                "input_size": spec.input_size,
                "parameters": parameter_count(name),
                "table": f"mappings/{spec.table}.toml",
                "description": spec.description,
            }
        )
    if as_json:
        _print_json(rows)
        return
    from rich.table import Table

    table = Table(title="weightport models")
    for column in ("model", "family", "input", "parameters", "table"):
        table.add_column(column, justify="right" if column in ("input", "parameters") else "left")
    for row in rows:
        params = f"{row['parameters']:,}" if row["parameters"] is not None else "?"
        table.add_row(row["name"], row["family"], str(row["input_size"]), params, row["table"])
    _console().print(table)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=True))
@click.option("--key", help="Which state dict to show when the file holds several (e.g. state_dict_ema).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--all", "show_all", is_flag=True, help="List every tensor, not only the first 30.")
def inspect(file: str, key: str | None, as_json: bool, show_all: bool):
    """Show what a checkpoint holds: format, wrapper, tensors, shapes, dtypes, totals."""
    from .inspect import inspect_checkpoint

    report = inspect_checkpoint(file, key)
    if as_json:
        _print_json(report)
        return
    from rich.table import Table

    console = _console()
    console.print(f"[bold]{report['path']}[/]: {report['format_description']}")
    if report["wrapper"]:
        console.print(f"weights taken from [bold]{report['wrapper']}[/] (state dicts in the file: {', '.join(report['candidates'])})")
    if report["stripped_prefix"]:
        console.print(f"prefix stripped from every key: {report['stripped_prefix']!r}")
    for name, value in report["extras"].items():
        console.print(f"  {name}: {value}")
    console.print(
        f"{report['tensors']} tensors, {report['parameters']:,} values, {_human_bytes(report['bytes'])}; "
        f"dtypes: {', '.join(f'{d} x{n}' for d, n in report['dtypes'].items())}"
    )
    if report["non_finite"]:
        console.print(f"[bold yellow]non-finite values[/] in {len(report['non_finite'])} tensors: " + ", ".join(
            f"{k} ({v['nan']} NaN, {v['inf']} Inf)" for k, v in list(report["non_finite"].items())[:10]
        ))
    table = Table()
    table.add_column("key")
    table.add_column("shape")
    table.add_column("dtype")
    entries = report["keys"] if show_all else report["keys"][:30]
    for entry in entries:
        table.add_row(entry["name"], str(entry["shape"]), entry["dtype"])
    console.print(table)
    if len(entries) < len(report["keys"]):
        console.print(f"... and {len(report['keys']) - len(entries)} more (--all lists them)")


def _model_kwargs(img_size: int | None) -> dict:
    return {"img_size": img_size} if img_size is not None else {}


@cli.command()
@click.argument("model")
@click.argument("src", type=click.Path())
@click.argument("dst", type=click.Path())
@click.option("--to", type=click.Choice(["torch", "paddle"]), help="Target framework (default: from DST's extension).")
@click.option("--key", help="Which state dict to convert when SRC holds several (e.g. state_dict_ema).")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), help="Cast floating tensors (default: keep).")
@click.option("--img-size", type=int, help="Convert for a twin built for this input size (resizes size-dependent tensors).")
@click.option("--force", is_flag=True, help="Overwrite DST if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary table.")
def convert(model, src, dst, to, key, dtype, img_size, force, as_json, quiet):
    """Convert checkpoint SRC of MODEL into DST (direction from the extensions, or --to)."""
    from .conversion import convert as run_convert

    with _progress(enabled=not quiet and not as_json and sys.stdout.isatty()) as on_tensor:
        summary = run_convert(
            model, src, dst, to=to, key=key, dtype=dtype, force=force,
            model_kwargs=_model_kwargs(img_size), on_tensor=on_tensor,
        )
    if as_json:
        _print_json(summary.as_dict())
    elif not quiet:
        _print_summary(summary)


class _progress:
    """A rich progress bar by bytes, advanced by the writer after each tensor."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("converting"), BarColumn(), DownloadColumn(), TimeRemainingColumn(), transient=True)
        self.bar.start()
        self.task = self.bar.add_task("convert", total=None)
        return self._advance

    def _advance(self, name, tensor):
        self.bar.update(self.task, advance=tensor.nbytes)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


def _print_summary(summary) -> None:
    from rich.table import Table

    table = Table(title=f"{summary.model}: {summary.source} -> {summary.destination}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("direction", f"{summary.source_format} -> {summary.to}"),
        ("weights from", summary.wrapper or "(bare state dict)"),
        ("prefix stripped", summary.stripped_prefix or "-"),
        ("tensors", str(summary.tensors)),
        ("values", f"{summary.parameters:,}"),
        ("bytes", _human_bytes(summary.bytes)),
        ("renamed", str(summary.renamed)),
        ("transposed", str(summary.transposed)),
        ("dropped", str(summary.dropped)),
        ("created", str(summary.filled)),
    ]
    if summary.cast_to:
        rows.append(("cast to", summary.cast_to))
    if summary.resized:
        rows.append(("resized", f"{len(summary.resized)} tensors for {summary.model_kwargs}: " + ", ".join(summary.resized)))
    for row in rows:
        table.add_row(*row)
    _console().print(table)


@cli.command()
@click.argument("models", nargs=-1)
@click.option("--all", "all_models", is_flag=True, help="Verify every registered model.")
@click.option("--torch", "torch_ckpt", type=click.Path(), help="Torch checkpoint to check (converted in memory if --paddle is absent).")
@click.option("--paddle", "paddle_ckpt", type=click.Path(), help=".pdparams to check (converted back in memory if --torch is absent).")
@click.option("--key", help="Which state dict of the torch checkpoint (e.g. state_dict_ema).")
@click.option("--tol", type=float, default=1e-4, show_default=True, help="Gate: largest absolute error allowed.")
@click.option("--rtol", type=float, help="Gate: largest error allowed relative to the reference's largest magnitude.")
@click.option("--batch-size", type=int, default=2, show_default=True)
@click.option("--batches", type=int, default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random weights and batches.")
@click.option("--input-size", type=int, help="Input height and width (default: the model's).")
@click.option("--img-size", type=int, help="Build twins for this input size (models whose weights depend on it).")
@click.option("--images", type=click.Path(), help="Folder of images fed instead of random batches, preprocessed per model.")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto", show_default=True)
@click.option("--floor", is_flag=True, help="Also run torch in float64 and report the error against fp32 rounding.")
@click.option("--keep", type=click.Path(file_okay=False), help="Keep the generated checkpoints here (random-weight runs).")
@click.option("--json", "json_path", type=click.Path(), help="Write the full report as JSON to this path ('-' for stdout).")
@click.option("--junit", "junit_path", type=click.Path(), help="Write a JUnit XML report (one testcase per model).")
def verify(models, all_models, torch_ckpt, paddle_ckpt, key, tol, rtol, batch_size, batches, seed,
           input_size, img_size, images, device, floor, keep, json_path, junit_path):
    """Run both twins on identical batches and gate on the error (exit 1 when any model fails).

    Without --torch/--paddle, each model gets deterministic non-trivial random weights that go
    through the real converter."""
    from .registry import list_models
    from .verification import verify as run_verify

    if all_models:
        if models:
            raise click.UsageError("name models or pass --all, not both")
        models = list_models()
    if not models:
        raise click.UsageError("name at least one model, or pass --all")
    result = run_verify(
        list(models), tol=tol, rtol=rtol, torch_ckpt=torch_ckpt, paddle_ckpt=paddle_ckpt, key=key,
        batch_size=batch_size, batches=batches, seed=seed, input_size=input_size, images=images,
        device=device, floor=floor, model_kwargs=_model_kwargs(img_size), keep=keep,
    )
    if json_path == "-":
        _print_json(result.as_dict())
    else:
        _print_verify(result)
        if json_path:
            from pathlib import Path

            Path(json_path).write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    if junit_path:
        from .reports import write_junit

        write_junit(result, junit_path)
    if not result.passed:
        sys.exit(EXIT_GATE_FAILED)


def _print_verify(result) -> None:
    from rich.table import Table

    gate = f"tol {result.tol:g}" + (f", rtol {result.rtol:g}" if result.rtol else "")
    table = Table(title=f"weightport verify ({gate})")
    for column in ("model", "max abs", "mean abs", "max rel", "1-cos", "top-1", "floor x", "result"):
        table.add_column(column, justify="left" if column in ("model", "result") else "right")
    for model in result.models:
        for out in model.outputs:
            m = out.metrics
            label = model.model if len(model.outputs) == 1 else f"{model.model} {out.name}"
            table.add_row(
                label, f"{m.max_abs:.2e}", f"{m.mean_abs:.2e}", f"{m.max_rel:.2e}", f"{1 - m.cosine:.1e}",
                _fraction(m.top1), f"{out.floor['ratio']:.2f}" if out.floor else "-",
                "[green]pass[/]" if out.passed else f"[bold red]FAIL[/] {out.reason}",
            )
    devices = sorted({f"torch on {m.devices['torch']}, paddle on {m.devices['paddle']}" for m in result.models})
    table.caption = "; ".join(devices)
    console = _console()
    console.print(table)
    for model in result.models:
        if model.non_finite_weights:
            console.print(f"[yellow]{model.model}: non-finite values in {len(model.non_finite_weights)} weight tensors[/]")
    failed = [m.model for m in result.models if not m.passed]
    if failed:
        console.print(f"[bold red]failed:[/] {', '.join(failed)}")
    console.print(f"verify: {len(result.models) - len(failed)} passed, {len(failed)} failed")


def _fraction(value) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def main() -> None:
    cli(prog_name="weightport")
