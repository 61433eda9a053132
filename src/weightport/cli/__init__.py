"""The `weightport` command line: a thin layer over the Python API.

Exit codes: 0 success, 1 a parity gate failed, 2 a usage or input error (one line on stderr,
no traceback). Heavy modules (numpy-based readers, torch, paddle) are imported inside the
commands that need them, so `weightport --help` starts fast.
"""
from __future__ import annotations

import atexit
import json
import os
import sys
import threading
from collections import Counter
from pathlib import Path

import click

from ..errors import UserError

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
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


def without_blas_threads() -> None:
    """Give numpy's BLAS a single thread in this process, unless the user chose a number.

    Conversion multiplies no matrices, yet OpenBLAS starts a thread per CPU when numpy loads, and
    these spin for a while waiting for work: on two CPUs they took 0.07 s of a 0.6 s conversion
    (fcvit_b48), competing with the writing. Effective only before numpy is first imported."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


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


_unsafe_pickle_option = click.option(
    "--unsafe-pickle", is_flag=True,
    help="Trust the checkpoints named here: unpickle them without restrictions, so that code in them RUNS "
    "(see SECURITY.md). Never needed for plain weights.",
)


def _trusting(enabled: bool, *paths):
    """Within the block, the files named on the command line go to the unrestricted loaders (--unsafe-pickle)."""
    from ..formats import trusting_pickles

    return trusting_pickles(paths if enabled else ())


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="weightport")
def cli():
    """Move trained weights between PyTorch and PaddlePaddle, and prove nothing was lost."""


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def list_cmd(as_json: bool):
    """List the registered models."""
    from ..models.pair import TwinPair
    from ..models.registry import list_models

    rows = []
    for name in list_models():
        pair = TwinPair.registered(name)
        rows.append(
            {
                "name": name,
                "family": pair.family,
                "input_size": pair.input_size,
                "parameters": pair.parameter_count(),
                "table": pair.table_file.relative_to(PACKAGE_ROOT).as_posix(),
                "description": pair.description,
            }
        )
    if as_json:
        _print_json(rows)
        return
    from rich.table import Table

    table = Table(title="weightport models")
    for column in ("model", "family", "input", "parameters", "table", "twins (torch <-> Paddle layout)"):
        table.add_column(column, justify="right" if column in ("input", "parameters") else "left")
    for row in rows:
        params = f"{row['parameters']:,}" if row["parameters"] is not None else "?"
        table.add_row(row["name"], row["family"], str(row["input_size"]), params, row["table"], row["description"])
    _console().print(table)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=True))
@click.option("--key", help="Which state dict to show when the file holds several (e.g. state_dict_ema).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--all", "show_all", is_flag=True, help="List every tensor, not only the first 30.")
@_unsafe_pickle_option
def inspect(file: str, key: str | None, as_json: bool, show_all: bool, unsafe_pickle: bool):
    """Show what a checkpoint holds: format, wrapper, tensors, shapes, dtypes, totals."""
    from ..formats.inspection import inspect_checkpoint

    with _trusting(unsafe_pickle, file):
        report = inspect_checkpoint(file, key)
    if as_json:
        _print_json(report)
        return
    from rich.table import Table

    console = _console()
    shards = f" in {report['shards']} shards" if report["shards"] else ""
    console.print(f"[bold]{report['path']}[/]: {report['format_description']}{shards}")
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


def _model_kwargs(img_size: int | None, model_args: tuple[str, ...] = ()) -> dict:
    from ..models.factories import parse_model_args

    kwargs = parse_model_args(model_args)
    if img_size is not None:
        if "img_size" in kwargs:
            raise UserError("give the input size once: --img-size or --model-arg img_size=...")
        kwargs["img_size"] = img_size
    return kwargs


def _model_options(with_mapping: bool = True):
    """The options that name a twin pair by its factories, in place of MODEL (a registered name or a ported folder)."""
    options = [
        click.option("--torch-model", metavar="MODULE:FACTORY",
                     help="Your own torch twin's factory (with --paddle-model, in place of MODEL)."),
        click.option("--paddle-model", metavar="MODULE:FACTORY", help="Your own Paddle twin's factory."),
        click.option("--model-arg", "model_args", multiple=True, metavar="NAME=VALUE",
                     help="Keyword argument for both factories, a Python literal or a word (repeatable), e.g. img_size=256."),
    ]
    if with_mapping:
        options.insert(2, click.option("--mapping", type=click.Path(dir_okay=False),
                                       help="Mapping table of your twins (`weightport map draft` drafts one)."))

    def decorate(command):
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def _pairs(models: tuple[str, ...], torch_model, paddle_model, mapping, table_required: bool = True) -> list:
    """The twin pairs of `models` (registered names or ported folders), or the one given by
    --torch-model/--paddle-model (and --mapping)."""
    from ..models.pair import REGISTERED, TwinPair, resolve

    if not (torch_model or paddle_model):
        if mapping:
            raise UserError("--mapping goes with --torch-model/--paddle-model; a registered model or ported folder has its own table")
        pairs = [resolve(model) for model in models]
        if any(pair.kind != REGISTERED for pair in pairs):
            _import_from_cwd()  # a ported folder's torch twin may be a module:function of the current folder
        return pairs
    if models:
        raise UserError("name a registered model or pass --torch-model/--paddle-model, not both")
    if not (torch_model and paddle_model):
        raise UserError("--torch-model and --paddle-model go together")
    if table_required and not mapping:
        raise UserError("--mapping TABLE.toml is needed with --torch-model/--paddle-model (`weightport map draft` drafts one)")
    _import_from_cwd()
    return [TwinPair.from_factories(torch_model, paddle_model, mapping)]


def _import_from_cwd() -> None:
    """Let factories' modules be found in the current folder, as with `python -m`."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


@cli.command()
@click.argument("paths", nargs=-1, metavar="[MODEL] SRC DST")
@click.option("--to", type=click.Choice(["torch", "paddle"]), help="Target framework (default: from DST's extension).")
@click.option("--key", help="Which state dict to convert when SRC holds several (e.g. state_dict_ema).")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), help="Cast floating tensors (default: keep).")
@click.option("--img-size", type=int, help="Convert for a twin built for this input size (resizes size-dependent tensors).")
@click.option("--prefix", metavar="PREFIX.",
              help="Where the model sits in a bigger checkpoint, e.g. a detector's backbone.: taken from SRC's keys "
              "when they have it (only the keys under it), else put before every key written to DST.")
@click.option("--max-shard-size", metavar="SIZE",
              help="Write DST as a folder of shards of at most SIZE each (e.g. 5GB, decimal units as Hugging Face "
              "counts; 2GiB binary). A DST ending in / or an existing folder is a folder too (5GB shards).")
@click.option("--format", "file_format", type=click.Choice(["pdparams", "safetensors", "bin"]),
              help="The shards' format in a folder DST (default: pdparams for Paddle, safetensors for torch).")
@click.option("--force", is_flag=True, help="Overwrite DST if it exists (for a folder: replace the checkpoint it holds).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary table.")
@_unsafe_pickle_option
@_model_options()
def convert(paths, to, key, dtype, img_size, prefix, max_shard_size, file_format, force, as_json, quiet, unsafe_pickle,
            torch_model, paddle_model, mapping, model_args):
    """Convert checkpoint SRC of MODEL into DST (direction from the extensions, or --to).

    SRC is a file, or a folder of shards (Hugging Face's or Paddle's) or its index file; DST a
    file, or a folder of shards written whole or not at all.

    MODEL is a registered model's name or a ported folder. For your own twins, leave out MODEL
    and name their factories and table instead:

    \b
    weightport convert SRC DST --torch-model mynet:torch_net \\
        --paddle-model mynet:paddle_net --mapping mynet.toml"""
    without_blas_threads()
    from ..conversion import convert as run_convert

    custom = bool(torch_model or paddle_model)
    if len(paths) != (2 if custom else 3):
        raise UserError("expected MODEL SRC DST, or SRC DST with --torch-model/--paddle-model/--mapping")
    src, dst = paths[-2:]
    (model,) = _pairs(paths[:-2], torch_model, paddle_model, mapping)

    with _trusting(unsafe_pickle, src), _progress(enabled=not quiet and not as_json and sys.stdout.isatty()) as bar:
        summary = run_convert(
            model, src, dst, to=to, key=key, dtype=dtype, force=force, prefix=prefix,
            max_shard_size=max_shard_size, file_format=file_format,
            model_kwargs=_model_kwargs(img_size, model_args),
            on_start=bar and bar.start, on_tensor=bar and bar.advance,
        )
    if as_json:
        _print_json(summary.as_dict())
    elif not quiet:
        _print_summary(summary)


class _progress:
    """A rich progress bar by bytes: sized when the plan is known, advanced after each tensor."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("converting"), BarColumn(), DownloadColumn(), TimeRemainingColumn(), transient=True)
        self.task = self.bar.add_task("convert", total=None)
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


def _print_summary(summary) -> None:
    from rich.table import Table

    table = Table(title=f"{summary.model}: {summary.source} -> {summary.destination}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("direction", f"{summary.source_format} -> {summary.to}"),
        *([("source shards", str(summary.source_shards))] if summary.source_shards else []),
        *([("written", f"{len(summary.shards)} files: " + ", ".join(summary.shards[:3])
            + (", ..." if len(summary.shards) > 3 else ""))] if summary.shards else []),
        ("weights from", summary.wrapper or "(bare state dict)"),
        ("prefix stripped", summary.stripped_prefix or "-"),
        *_prefix_rows(summary),
        ("tensors", str(summary.tensors)),
        ("values", f"{summary.parameters:,}"),
        ("bytes", _human_bytes(summary.bytes)),
        ("renamed", str(summary.renamed)),
        ("transposed", str(summary.transposed)),
        ("dropped", str(summary.dropped)),
        ("created", str(summary.filled)),
    ]
    if summary.classes_from_checkpoint is not None:
        rows.append(("classes", f"{summary.classes_from_checkpoint}, read from the checkpoint's classifier "
                                f"(twins built with num_classes={summary.classes_from_checkpoint})"))
    if summary.cast_to:
        rows.append(("cast to", summary.cast_to))
    if summary.resized:
        rows.append(("resized", f"{len(summary.resized)} tensors for {summary.model_kwargs}: " + ", ".join(summary.resized)))
    if summary.adjusted:
        by_reason: dict[str, list[str]] = {}
        for key, why in summary.adjusted.items():
            by_reason.setdefault(why, []).append(key)
        rows += [("adjusted", f"{', '.join(keys)}: {why}") for why, keys in by_reason.items()]
    if summary.folded:
        rows.append(("folded", ", ".join(f"{k} into {t}" for k, t in list(summary.folded.items())[:4])
                     + (f" (+{len(summary.folded) - 4} more)" if len(summary.folded) > 4 else "")))
    trained = [k for k in summary.dropped_keys if not k.endswith("num_batches_tracked") and k not in summary.folded]
    if trained:
        rows.append(("dropped keys", ", ".join(trained[:8]) + (f" (+{len(trained) - 8} more)" if len(trained) > 8 else "")))
    for row in rows:
        table.add_row(*row)
    _console().print(table)


def _prefix_rows(summary) -> list[tuple[str, str]]:
    """--prefix: where it applied, and what the source held outside it, by leading module name."""
    if summary.prefix_on == "destination":
        return [("prefix", f"{summary.prefix} put before every written key")]
    if summary.prefix_on != "source":
        return []
    rows = [("prefix", f"{summary.prefix} taken off the keys under it; only those converted")]
    if summary.outside_prefix:
        groups = Counter(key.split(".", 1)[0] for key in summary.outside_prefix)
        listed = ", ".join(f"{name}.* ({count})" for name, count in groups.items())
        rows.append(("left out", f"{len(summary.outside_prefix)} tensors outside {summary.prefix}: {listed}"))
    return rows


@cli.command()
@click.argument("models", nargs=-1)
@click.option("--all", "all_models", is_flag=True, help="Verify every registered model.")
@click.option("--torch", "torch_ckpt", type=click.Path(), help="Torch checkpoint to check (converted in memory if --paddle is absent).")
@click.option("--paddle", "paddle_ckpt", type=click.Path(), help=".pdparams to check (converted back in memory if --torch is absent).")
@click.option("--key", help="Which state dict of the torch checkpoint (e.g. state_dict_ema).")
@click.option("--tol", type=float, default=1e-4, show_default=True,
              help="Gate: largest error allowed, as a fraction of each output's largest magnitude (the same at every scale).")
@click.option("--atol", type=float, help="Also gate on the absolute error: largest allowed, whatever the outputs' scale.")
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
@click.option("--layers", is_flag=True, help="Compare every module's output on the first batch and name the first whose error jumps.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False),
              help="Write the per-layer report (computed as for --layers) to this self-contained HTML page.")
@click.option("--train", is_flag=True,
              help="Also check training on the first batch: loss, every gradient, running statistics, SGD and AdamW steps.")
@click.option("--train-tol", type=float, default=1e-5, show_default=True,
              help="Gate of --train (float64 twins): largest error allowed, as a fraction of each tensor's largest value.")
@_unsafe_pickle_option
@_model_options()
def verify(models, all_models, torch_ckpt, paddle_ckpt, key, tol, atol, batch_size, batches, seed,
           input_size, img_size, images, device, floor, keep, json_path, junit_path, layers, html_path,
           train, train_tol, unsafe_pickle, torch_model, paddle_model, mapping, model_args):
    """Run both twins on identical batches and gate on the error (exit 1 when any model fails).

    Each MODEL is a registered model's name or a ported folder. Without --torch/--paddle, each
    model gets deterministic non-trivial random weights that go through the real converter. With
    --train, both twins also run in training mode (with --layers: each module's output gradient)."""
    from ..models.registry import list_models
    from ..parity.verification import verify as run_verify

    if all_models:
        if models or torch_model or paddle_model:
            raise click.UsageError("name models or pass --all, not both")
        models = list_models()
    models = _pairs(models, torch_model, paddle_model, mapping)
    if not models:
        raise click.UsageError("name at least one model, or pass --all")
    # --all --train checks training parity where the twins claim it; the others (named one by one,
    # they are checked and fail) get the eval gate, and the reason is printed.
    eval_only = [pair for pair in models if all_models and train and pair.training_differs]
    options = dict(tol=tol, atol=atol, torch_ckpt=torch_ckpt, paddle_ckpt=paddle_ckpt, key=key, batch_size=batch_size,
                   batches=batches, seed=seed, input_size=input_size, images=images, device=device, floor=floor,
                   model_kwargs=_model_kwargs(img_size, model_args), keep=keep, layers=layers or bool(html_path),
                   train_tol=train_tol)
    with _trusting(unsafe_pickle, torch_ckpt, paddle_ckpt):
        result = run_verify([pair for pair in models if pair not in eval_only], train=train, **options)
        if eval_only:
            result.models += run_verify(eval_only, **options).models
    if json_path == "-":
        _print_json(result.as_dict())
    else:
        if layers:
            _print_layers(result)
        _print_verify(result)
        if train:
            _print_training(result, layers)
            for pair in eval_only:
                _console().print(f"[yellow]{pair.name}: training not compared (eval gate only): {pair.training_differs}[/]")
        if json_path:
            Path(json_path).write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    if junit_path:
        from ..report.junit import write_junit

        write_junit(result, junit_path)
    if html_path:
        from ..parity.layerwise import write_html

        write_html(result, html_path)
    if not result.passed:
        sys.exit(EXIT_GATE_FAILED)


@cli.command()
@click.argument("source", metavar="SOURCE")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Folder to write the twin into.")
@click.option("--model-arg", "model_args", multiple=True, metavar="NAME=VALUE",
              help="Keyword argument for the torch model (repeatable), e.g. num_classes=10.")
@click.option("--input-size", type=int, help="Input height and width the twin is generated for (default: the model's).")
@click.option("--torch", "torch_ckpt", type=click.Path(dir_okay=False), help="Also convert this torch checkpoint into OUT/model.pdparams.")
@click.option("--tol", type=float, default=1e-4, show_default=True, help="Gate of the verification that follows.")
@click.option("--no-verify", is_flag=True, help="Write the twin without verifying it.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists (only once the new twin is complete).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_unsafe_pickle_option
def port(source, out, model_args, input_size, torch_ckpt, tol, no_verify, force, as_json, unsafe_pickle):
    """Generate the Paddle twin of a torch model: code, mapping table, layout and manifest in OUT.

    SOURCE is timm:NAME (any timm.create_model name) or module:factory. OUT then works wherever a
    model name does (convert, verify, map check). Exit 0 when the twin passes verification, 1 when
    it was written but fails the gate (the per-layer report says where), 2 when it cannot be
    ported (nothing is written; the message names the op or module)."""
    from ..models.factories import parse_model_args
    from ..port import port as run_port

    _import_from_cwd()
    with _trusting(unsafe_pickle, torch_ckpt):
        result = run_port(source, out, model_args=parse_model_args(model_args), input_size=input_size,
                          torch_ckpt=torch_ckpt, force=force, verify=not no_verify, tol=tol)
    if as_json:
        _print_json(result.as_dict())
    else:
        console = _console()
        console.print(f"{source} -> {result.folder}: {result.classes} classes, {result.lines} lines, "
                      f"{result.tensors} tensors ({result.parameters:,} parameters) for {result.input_size}x{result.input_size} inputs, "
                      f"in {result.seconds:.1f} s; files: {', '.join(result.files)}")
        if result.verify is not None:
            if not result.verify.passed:
                _print_layers(result.verify)
            _print_verify(result.verify)
    if not result.passed:
        sys.exit(EXIT_GATE_FAILED)


def _print_verify(result) -> None:
    from rich.table import Table

    table = Table(title=f"weightport verify (gate: {result.rule})")
    for column in ("model", "max abs", "mean abs", "max rel", "1-cos", "top-1", "floor x", "of limit", "result"):
        table.add_column(column, justify="left" if column in ("model", "result") else "right")
    for model in result.models:
        for out in model.outputs:
            m = out.metrics
            label = model.model if len(model.outputs) == 1 else f"{model.model} {out.name}"
            table.add_row(
                label, f"{m.max_abs:.2e}", f"{m.mean_abs:.2e}", f"{m.max_rel:.2e}", f"{1 - m.cosine:.1e}",
                _fraction(m.top1), f"{out.floor['ratio']:.2f}" if out.floor else "-",
                f"{out.gate.rule[:3]} {_percent(out.gate.ratio)}",
                "[green]pass[/]" if out.passed else f"[bold red]FAIL[/] {out.reason}",
            )
    devices = sorted({f"torch on {m.devices['torch']}, paddle on {m.devices['paddle']}" for m in result.models})
    table.caption = "; ".join(devices)
    console = _console()
    console.print(table)
    for model in result.models:
        if model.conversion and len(result.models) == 1:
            c = model.conversion
            classes = c["classes_from_checkpoint"]
            console.print(
                f"{model.model}: weights {model.weights}; converted {c['tensors']} tensors to {c['to']} "
                f"({c['renamed']} renamed, {c['transposed']} transposed, {c['dropped']} dropped, {c['filled']} created)"
                + (f"; twins built for the checkpoint's {classes} classes" if classes is not None else "")
            )
        if model.non_finite_weights:
            console.print(f"[yellow]{model.model}: non-finite values in {len(model.non_finite_weights)} weight tensors[/]")
    failed = [m.model for m in result.models if not m.passed]
    if failed:
        console.print(f"[bold red]failed:[/] {', '.join(failed)}")
    console.print(f"verify: {len(result.models) - len(failed)} passed, {len(failed)} failed")


def _fraction(value) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _percent(ratio: float) -> str:
    """How much of the gate's limit an error used: '1.2%', '1100%'."""
    return "NaN" if ratio != ratio else f"{100 * ratio:.2g}%" if ratio < 0.1 else f"{100 * ratio:.0f}%"


def _print_layers(result) -> None:
    """Each model's modules in execution order, their errors, and a log-scale chart of them."""
    for model in result.models:
        _print_layer_report(model.model, model.layers, "per-layer parity", "first diverging module")


def _print_layer_report(model: str, report, title: str, verdict: str, order: str = "execution order") -> None:
    from rich.table import Table

    from ..parity.layerwise import NOT_COMPARABLE, error_chart

    console = _console()
    table = Table(title=f"{model}: {title} ({report.inputs})")
    for column in ("#", "module", "kind", "max abs", "rel err", "inputs", "floor x", "note"):
        table.add_column(column, justify="left" if column in ("module", "kind", "note") else "right",
                         no_wrap=column == "kind", max_width=28 if column == "kind" else None)
    for i, layer in enumerate(report.layers, 1):
        if layer.metrics is None:
            figures = ["-"] * 4
        else:
            figures = [f"{layer.metrics.max_abs:.2e}", f"{layer.rel:.2e}",
                       "-" if layer.carried is None else f"{layer.carried:.2e}",
                       "-" if layer.floor_ratio is None else f"{layer.floor_ratio:.2f}"]
        renamed = f" (paddle: {layer.counterpart})" if layer.counterpart else ""
        if layer.jump:
            note = f"[bold red]{layer.reason or 'error jumps'}[/]"
        elif layer.status == NOT_COMPARABLE:
            note = f"[yellow]{layer.status}: {layer.reason}[/]"
        else:
            note = "" if layer.metrics else f"[dim]{layer.status}[/]"
        table.add_row(str(i), layer.name + renamed, layer.kind, *figures, note)
    console.print(table)
    if report.placeholders:
        console.print(f"[dim]{report.placeholders} calls of Identity placeholders that one side alone has are not listed[/]")
    console.print(error_chart(report, console.width, order))
    if report.first_divergence:
        first = next(layer for layer in report.layers if layer.jump)
        detail = first.reason if first.rel is None else (
            f"relative error {first.rel:.2e}, its inputs carried {'-' if first.carried is None else f'{first.carried:.2e}'}")
        console.print(f"[bold red]{model}: {verdict}: {report.first_divergence}[/] ({detail})")
    else:
        console.print(f"{model}: no module's error jumps (largest relative error "
                      f"{max((layer.rel for layer in report.layers if layer.rel is not None), default=0.0):.2e})")


def _print_training(result, layers: bool) -> None:
    """Per model: what was compared in training mode, the worst figures, and each fault by name."""
    from rich.table import Table

    console = _console()
    for model in result.models:
        training = model.training
        if training is None:
            continue
        if training.differs_by_design:
            console.print(f"[yellow]{model.model}: these twins train differently by design: {training.differs_by_design}[/]")
        if layers and training.layers is not None:
            _print_layer_report(model.model, training.layers, "gradient parity per module",
                                "first module whose gradient diverges, in backward order", "backward order")
        table = Table(title=f"{model.model}: training parity in float64 (gate: error <= {training.tol:g} x each tensor's "
                            "largest value)")
        for column in ("compared", "tensors", "worst", "max abs", "max rel", "of limit", "result"):
            table.add_column(column, justify="left" if column in ("compared", "worst", "result") else "right")
        table.add_row("loss", "1", training.loss, f"{abs(training.torch_loss - training.paddle_loss):.2e}",
                      f"{training.loss_rel:.2e}", _percent(training.loss_rel / training.tol),
                      "[green]pass[/]" if training.loss_passed else "[bold red]FAIL[/]")
        groups = [("gradients", training.gradients), ("running statistics", training.running_stats)]
        groups += [(f"{step.optimizer} x{step.hyper_parameters['steps']}", step.tensors) for step in training.steps]
        for label, checks in groups:
            worst = training.worst(checks, 1)
            if not worst:
                table.add_row(label, "0", "-", "-", "-", "-", "-")
                continue
            failed = sum(not c.passed for c in checks)
            table.add_row(label, str(len(checks)), worst[0].torch, f"{worst[0].max_abs:.2e}", f"{worst[0].max_rel:.2e}",
                          _percent(worst[0].ratio) if worst[0].ratio < 10 else f"{worst[0].ratio:.3g}x",
                          "[green]pass[/]" if not failed else f"[bold red]FAIL[/] {failed} tensors")
        console.print(table)
        off = {side: names for side, names in training.switched_off.items() if names}
        if off:
            console.print("switched off on both sides (stochastic in training): "
                          + "; ".join(f"{side}: {', '.join(names)}" for side, names in off.items()))
        if training.unused:
            console.print(f"[yellow]no gradient on either side (unused in both twins): {', '.join(training.unused)}[/]")
        for line in training.failures()[:20]:
            console.print(f"[bold red]{model.model}:[/] {line}")


@cli.group("map")
def map_group():
    """Draft and check mapping tables, for registered models, ported folders or your own twins."""


@map_group.command("draft")
@click.argument("model", required=False)
@_model_options(with_mapping=False)
@click.option("--input-size", type=int,
              help="Height and width of the batch traced through both twins (default: the model's, 224 for your own).")
def map_draft(model, torch_model, paddle_model, model_args, input_size):
    """Draft the mapping table of a twin pair and print it as TOML (redirect it into a file).

    Both twins run once on the same batch; the modules holding weights are paired in execution
    order by layer class and shapes, and the pairs become a few general rename rules, transposes
    on the Linear weights and the shared BatchNorm rules. Exits 1 when the draft leaves something
    unpaired or fails `map check`; the draft lists what in comments."""
    from ..tables.draft import draft_table

    pairs = _pairs((model,) if model else (), torch_model, paddle_model, None, table_required=False)
    if not pairs:
        raise UserError("name a registered model or a ported folder, or your twins with --torch-model and --paddle-model")
    draft = draft_table(pairs[0], input_size, **_model_kwargs(None, model_args))
    click.echo(draft.text, nl=False)
    left = len(draft.unpaired) + len(draft.problems)
    click.echo(
        f"{pairs[0].name}: {draft.pairs} tensors in {draft.modules} modules paired"
        + (f"; {left} things to fix by hand, listed at the top of the draft" if left else "; the draft passes `map check`"),
        err=True,
    )
    if left:
        sys.exit(EXIT_GATE_FAILED)


@map_group.command("check")
@click.argument("model", required=False)
@_model_options()
def map_check(model, torch_model, paddle_model, mapping, model_args):
    """Check a mapping table against both twins, without any checkpoint (exit 1 with a listing when wrong).

    Every key paired exactly once and back, transposes exactly on the Linear weights, shapes and
    dtypes agreeing. MODEL (a registered model or a ported folder) is checked against its own
    table, or against --mapping when given."""
    from ..tables.check import table_problems

    custom = bool(torch_model or paddle_model)  # MODEL may be checked against another table
    pairs = _pairs((model,) if model else (), torch_model, paddle_model, mapping if custom else None)
    if not pairs:
        raise UserError("name a registered model or a ported folder, or your twins with --torch-model, --paddle-model and --mapping")
    pair = pairs[0] if custom or not mapping else pairs[0].with_table(mapping)
    problems = table_problems(pair, **_model_kwargs(None, model_args))
    where = pair.table_name
    if not problems:
        click.echo(f"{pair.name}: mapping table {where} fits both twins")
        return
    click.echo(f"{pair.name}: {len(problems)} problems with mapping table {where}:")
    for problem in problems:
        click.echo(f"  {problem}")
    sys.exit(EXIT_GATE_FAILED)


def main() -> None:
    """Run the command line, then leave without tearing the interpreter down (as mypy does).

    The teardown frees every object numpy and the readers left, after a full cycle collection:
    about 0.03 s, a twentieth of converting fcvit_b48. What an exit must do is still done: the
    atexit handlers run and the standard streams are flushed; with other threads still running,
    or an exit status that is not a number, Python leaves the ordinary way."""
    try:
        cli(prog_name="weightport")
        code = 0
    except SystemExit as exc:
        code = exc.code
    if not (code is None or isinstance(code, int)) or threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # e.g. a closed pipe: the ordinary exit reports it
        sys.exit(code)
    os._exit(code or 0)

