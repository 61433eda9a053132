"""The per-layer error chart: each module's relative error as a bar on a log scale, for the console
(rich text) and, through `decade_position` and `colour`, for the HTML page's SVG."""
from __future__ import annotations

import numpy as np

from ..parity.layerwise import LayerReport, LayerResult

CHART_DECADES = (-9, 0)  # relative errors from 1e-9 to 1, on a log scale
_BARS = "▁▂▃▄▅▆▇█"


def decade_position(rel: float) -> float:
    """Where a relative error sits between the chart's lowest and highest decade, from 0 to 1."""
    low, high = CHART_DECADES
    return float(np.clip((np.log10(max(rel, 10.0**low)) - low) / (high - low), 0.0, 1.0))


def colour(layer: LayerResult, report: LayerReport) -> str:
    if layer.jump:
        return "red"
    return "yellow" if layer.rel > report.jump_min_rel else "green"


def error_chart(report: LayerReport, width: int = 80, order: str = "execution order"):
    """Each module's relative error as one bar (log scale) in `order`, as rich text lines."""
    from rich.text import Text

    chart = Text()
    per_line = max(10, width - 7)
    for start in range(0, len(report.layers), per_line):
        chart.append(f"{start + 1:>5}  ", style="dim")
        for layer in report.layers[start : start + per_line]:
            if layer.rel is None:
                chart.append("·", style="dim")
            else:
                chart.append(_BARS[round(decade_position(layer.rel) * (len(_BARS) - 1))], style=colour(layer, report))
        chart.append("\n")
    low, high = CHART_DECADES
    chart.append(f"       {_BARS[0]} 1e{low} ... {_BARS[-1]} 1e{high}: relative error per module, in {order} "
                 "(· not compared; red: the error jumps)", style="dim")
    return chart
