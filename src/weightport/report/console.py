"""Reports on the console: rich tables of a conversion, a verify run, its per-layer and training
parity. Logs (CI, pipes) get 120 columns instead of the 80 rich assumes there."""
from __future__ import annotations

import sys
from collections import Counter


def console():
    from rich.console import Console

    # Logs (CI, pipes) get room for the tables instead of the 80 columns rich assumes there.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def fraction(value) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def percent(ratio: float) -> str:
    """How much of the gate's limit an error used: '1.2%', '1100%'."""
    return "NaN" if ratio != ratio else f"{100 * ratio:.2g}%" if ratio < 0.1 else f"{100 * ratio:.0f}%"


def print_conversion(summary) -> None:
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
        ("bytes", human_bytes(summary.bytes)),
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
    console().print(table)


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


def print_verify(result) -> None:
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
                fraction(m.top1), f"{out.floor['ratio']:.2f}" if out.floor else "-",
                f"{out.gate.rule[:3]} {percent(out.gate.ratio)}",
                "[green]pass[/]" if out.passed else f"[bold red]FAIL[/] {out.reason}",
            )
    devices = sorted({f"torch on {m.devices['torch']}, paddle on {m.devices['paddle']}" for m in result.models})
    table.caption = "; ".join(devices)
    out = console()
    out.print(table)
    for model in result.models:
        if model.conversion and len(result.models) == 1:
            c = model.conversion
            classes = c["classes_from_checkpoint"]
            out.print(
                f"{model.model}: weights {model.weights}; converted {c['tensors']} tensors to {c['to']} "
                f"({c['renamed']} renamed, {c['transposed']} transposed, {c['dropped']} dropped, {c['filled']} created)"
                + (f"; twins built for the checkpoint's {classes} classes" if classes is not None else "")
            )
        if model.non_finite_weights:
            out.print(f"[yellow]{model.model}: non-finite values in {len(model.non_finite_weights)} weight tensors[/]")
    failed = [m.model for m in result.models if not m.passed]
    if failed:
        out.print(f"[bold red]failed:[/] {', '.join(failed)}")
    out.print(f"verify: {len(result.models) - len(failed)} passed, {len(failed)} failed")


def print_layers(result) -> None:
    """Each model's modules in execution order, their errors, and a log-scale chart of them."""
    for model in result.models:
        _print_layer_report(model.model, model.layers, "per-layer parity", "first diverging module")


def _print_layer_report(model: str, report, title: str, verdict: str, order: str = "execution order") -> None:
    from rich.table import Table

    from ..parity.layerwise import NOT_COMPARABLE
    from .chart import error_chart

    out = console()
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
    out.print(table)
    if report.placeholders:
        out.print(f"[dim]{report.placeholders} calls of Identity placeholders that one side alone has are not listed[/]")
    out.print(error_chart(report, out.width, order))
    if report.first_divergence:
        first = next(layer for layer in report.layers if layer.jump)
        detail = first.reason if first.rel is None else (
            f"relative error {first.rel:.2e}, its inputs carried {'-' if first.carried is None else f'{first.carried:.2e}'}")
        out.print(f"[bold red]{model}: {verdict}: {report.first_divergence}[/] ({detail})")
    else:
        out.print(f"{model}: no module's error jumps (largest relative error "
                      f"{max((layer.rel for layer in report.layers if layer.rel is not None), default=0.0):.2e})")


def print_training(result, layers: bool) -> None:
    """Per model: what was compared in training mode, the worst figures, and each fault by name."""
    from rich.table import Table

    out = console()
    for model in result.models:
        training = model.training
        if training is None:
            continue
        if training.differs_by_design:
            out.print(f"[yellow]{model.model}: these twins train differently by design: {training.differs_by_design}[/]")
        if layers and training.layers is not None:
            _print_layer_report(model.model, training.layers, "gradient parity per module",
                                "first module whose gradient diverges, in backward order", "backward order")
        table = Table(title=f"{model.model}: training parity in float64 (gate: error <= {training.tol:g} x each tensor's "
                            "largest value)")
        for column in ("compared", "tensors", "worst", "max abs", "max rel", "of limit", "result"):
            table.add_column(column, justify="left" if column in ("compared", "worst", "result") else "right")
        table.add_row("loss", "1", training.loss, f"{abs(training.torch_loss - training.paddle_loss):.2e}",
                      f"{training.loss_rel:.2e}", percent(training.loss_rel / training.tol),
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
                          percent(worst[0].ratio) if worst[0].ratio < 10 else f"{worst[0].ratio:.3g}x",
                          "[green]pass[/]" if not failed else f"[bold red]FAIL[/] {failed} tensors")
        out.print(table)
        off = {side: names for side, names in training.switched_off.items() if names}
        if off:
            out.print("switched off on both sides (stochastic in training): "
                          + "; ".join(f"{side}: {', '.join(names)}" for side, names in off.items()))
        drawn = {side: draws for side, draws in training.random_draws.items() if draws}
        if drawn:
            out.print("random ops drawing the same numbers on both sides (one seeded stream): "
                      + "; ".join(f"{side}: {', '.join(f'{name} x{n}' for name, n in draws.items())}" for side, draws in drawn.items()))
        if training.unused:
            out.print(f"[yellow]no gradient on either side (unused in both twins): {', '.join(training.unused)}[/]")
        for line in training.failures()[:20]:
            out.print(f"[bold red]{model.model}:[/] {line}")



def print_inspection(report: dict, show_all: bool) -> None:
    """A checkpoint's report (`formats.inspection.inspect_checkpoint`): format, totals, the first 30 keys (or all)."""
    from rich.table import Table

    out = console()
    shards = f" in {report['shards']} shards" if report["shards"] else ""
    out.print(f"[bold]{report['path']}[/]: {report['format_description']}{shards}")
    if report["wrapper"]:
        out.print(f"weights taken from [bold]{report['wrapper']}[/] (state dicts in the file: {', '.join(report['candidates'])})")
    if report["stripped_prefix"]:
        out.print(f"prefix stripped from every key: {report['stripped_prefix']!r}")
    for name, value in report["extras"].items():
        out.print(f"  {name}: {value}")
    out.print(
        f"{report['tensors']} tensors, {report['parameters']:,} values, {human_bytes(report['bytes'])}; "
        f"dtypes: {', '.join(f'{d} x{n}' for d, n in report['dtypes'].items())}"
    )
    if report["non_finite"]:
        out.print(f"[bold yellow]non-finite values[/] in {len(report['non_finite'])} tensors: " + ", ".join(
            f"{k} ({v['nan']} NaN, {v['inf']} Inf)" for k, v in list(report["non_finite"].items())[:10]
        ))
    table = Table()
    table.add_column("key")
    table.add_column("shape")
    table.add_column("dtype")
    entries = report["keys"] if show_all else report["keys"][:30]
    for entry in entries:
        table.add_row(entry["name"], str(entry["shape"]), entry["dtype"])
    out.print(table)
    if len(entries) < len(report["keys"]):
        out.print(f"... and {len(report['keys']) - len(entries)} more (--all lists them)")
