"""The per-layer report as one self-contained HTML page (`verify --html`)."""
from __future__ import annotations

from ..parity.layerwise import LayerReport
from .chart import CHART_DECADES, colour, decade_position


def _figure(value: float | None, spec: str = ".2e") -> str:
    return "-" if value is None else format(value, spec)


def _svg(report: LayerReport) -> str:
    """An inline SVG bar chart of the relative errors, with a tooltip per module."""
    from html import escape

    low, high = CHART_DECADES
    left, top, plot_height = 56, 12, 240
    step = max(3.0, min(14.0, 1100.0 / max(1, len(report.layers))))
    plot_width = step * len(report.layers)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + plot_width + 12:.0f}" '
             f'height="{top + plot_height + 28}" font-family="sans-serif" font-size="11">']
    for decade in range(low, high + 1):
        y = top + plot_height * (1 - (decade - low) / (high - low))
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_width:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">1e{decade}</text>')
    y_jump = top + plot_height * (1 - decade_position(report.jump_min_rel))
    parts.append(f'<line x1="{left}" y1="{y_jump:.1f}" x2="{left + plot_width:.1f}" y2="{y_jump:.1f}" '
                 'stroke="#c62828" stroke-dasharray="4 3"/>')
    colours = {"red": "#c62828", "yellow": "#f9a825", "green": "#2e7d32"}
    for i, layer in enumerate(report.layers):
        x = left + i * step
        tip = f"#{i + 1} {layer.name}{f' (paddle: {layer.counterpart})' if layer.counterpart else ''} [{layer.kind}]: "
        if layer.rel is None:
            tip += f"{layer.status}: {layer.reason}"
            parts.append(f'<rect x="{x:.1f}" y="{top + plot_height - 3}" width="{max(1.0, step - 1):.1f}" height="3" '
                         f'fill="#bbb"><title>{escape(tip)}</title></rect>')
            continue
        height = max(1.0, plot_height * decade_position(layer.rel))
        tip += f"relative error {layer.rel:.2e}, max abs {layer.metrics.max_abs:.2e}, inputs carried {_figure(layer.carried)}"
        if layer.floor_ratio is not None:
            tip += f", floor x {layer.floor_ratio:.2f}"
        parts.append(f'<rect x="{x:.1f}" y="{top + plot_height - height:.1f}" width="{max(1.0, step - 1):.1f}" '
                     f'height="{height:.1f}" fill="{colours[colour(layer, report)]}"><title>{escape(tip)}</title></rect>')
        if layer.name == report.first_divergence:
            anchor = "end" if 2 * i > len(report.layers) else "start"  # the label stays inside the chart
            parts.append(f'<text x="{x:.1f}" y="{max(10.0, top + plot_height - height - 4):.1f}" fill="#c62828" '
                         f'text-anchor="{anchor}">{escape(layer.name)}</text>')
    parts.append(f'<text x="{left}" y="{top + plot_height + 20}">modules in execution order (hover for details); '
                 f'dashed: {report.jump_min_rel:g}, the least relative error that can be flagged</text></svg>')
    return "".join(parts)


def _placeholder_note(report: LayerReport) -> str:
    if not report.placeholders:
        return ""
    return f" {report.placeholders} calls of Identity placeholders that one side alone has are not listed."


def html_page(result) -> str:
    """A self-contained HTML page (inline SVG and CSS, no external assets) with each model's layers."""
    from html import escape

    sections = []
    for model in result.models:
        report = model.layers
        if report is None:
            continue
        verdict = (f"first diverging module: <b>{escape(report.first_divergence)}</b>" if report.first_divergence
                   else "no module's error jumps")
        rows = "".join(
            f"<tr class='{'jump' if layer.jump else ''}'><td>{i + 1}</td><td>{escape(layer.name)}</td>"
            f"<td>{escape(layer.paddle_name or '-')}</td><td>{escape(layer.kind)}</td>"
            f"<td>{_figure(layer.metrics.max_abs if layer.metrics else None)}</td><td>{_figure(layer.rel)}</td>"
            f"<td>{_figure(layer.carried)}</td><td>{_figure(layer.floor_ratio, '.2f')}</td>"
            f"<td>{'error jumps' if layer.jump else escape(layer.status if layer.rel is None else '')}"
            f"{(': ' + escape(layer.reason)) if layer.reason else ''}</td></tr>"
            for i, layer in enumerate(report.layers)
        )
        sections.append(
            f"<h2>{escape(model.model)}: {'pass' if model.passed else 'FAIL'}</h2>"
            f"<p>{verdict}. Weights: {escape(model.weights)}; inputs: {escape(report.inputs)}; "
            f"flagged when the relative error exceeds {report.jump_min_rel:g} and {report.jump_factor:g}x "
            f"what the module's inputs carried.{_placeholder_note(report)}</p>{_svg(report)}"
            "<table><tr><th>#</th><th>module</th><th>paddle layer</th><th>kind</th><th>max abs</th>"
            f"<th>rel err</th><th>inputs carried</th><th>floor x</th><th>note</th></tr>{rows}</table>"
        )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>weightport per-layer parity</title><style>"
        "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}td:nth-child(2),td:nth-child(3),"
        "td:nth-child(4),td:nth-child(9){text-align:left}tr.jump{background:#fdecea}</style></head><body>"
        f"<h1>weightport per-layer parity</h1>{''.join(sections)}</body></html>\n"
    )
    return page
