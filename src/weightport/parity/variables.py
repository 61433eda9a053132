"""Per-variable parity of a ported program: every variable the torch twin computes against the
same variable of Paddle running the program.

A program names every value, and the port records which local variable of the twin's `forward`
holds which (`variables.json`), so no module matching is needed: the twin's locals are read when
its forward returns, Paddle fetches the same values, and the first variable whose error jumps
names the op that parts ways.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .layerwise import COMPARED, JUMP_FACTOR, JUMP_MIN_REL, LayerReport, LayerResult
from .metrics import Metrics


def forward_locals(model, batch) -> dict:
    """The local variables of `model.forward` when it returns, for `batch`."""
    import torch

    code = type(model).forward.__code__
    captured: dict = {}

    def watch(frame, event, _arg):
        if event == "return" and frame.f_code is code:
            captured.update(frame.f_locals)

    previous = sys.getprofile()
    sys.setprofile(watch)
    try:
        with torch.no_grad():
            model(torch.from_numpy(batch))
    finally:
        sys.setprofile(previous)
    return captured


def compare_variables(folder: Path, variables_file: str, torch_model, paddle_model, batch: np.ndarray, *,
                      model64=None, inputs: str = "") -> LayerReport:
    """Each floating variable of the twin against Paddle's, in program order; a variable whose
    relative error exceeds JUMP_FACTOR times the largest before it (and JUMP_MIN_REL) is flagged."""
    variables = json.loads((folder / variables_file).read_text())
    torch_model = torch_model.cpu()
    captured = forward_locals(torch_model, batch)
    floor = forward_locals(model64, batch.astype(np.float64)) if model64 is not None else {}
    names = [n for n, v in variables.items() if v["op"] != "input" and _floating(captured.get(n))]
    paddle_values = paddle_model.values([batch], [variables[n]["value"] for n in names])
    report = LayerReport(inputs=inputs)
    carried = 0.0
    for name, reference in zip(names, paddle_values):
        ours = captured[name].numpy()
        row = LayerResult(torch=name, paddle=variables[name]["value"], call=1, kind=variables[name]["op"],
                          status=COMPARED, shape=list(ours.shape))
        if ours.shape != reference.shape:
            row.status, row.reason = "not comparable", f"shape {list(ours.shape)} vs Paddle's {list(reference.shape)}"
            report.layers.append(row)
            continue
        row.metrics = Metrics.compare(reference, ours)
        row.carried = carried
        if name in floor:
            row.floor = float(np.abs(ours - floor[name].numpy()).max())
            row.floor_ratio = row.metrics.max_abs / row.floor if row.floor > 0 else None
        rel = row.rel
        row.jump = rel > JUMP_MIN_REL and rel > JUMP_FACTOR * carried
        if row.jump and report.first_divergence is None:
            report.first_divergence = row.name
        carried = max(carried, rel)
        report.layers.append(row)
    return report


def _floating(value) -> bool:
    return hasattr(value, "is_floating_point") and value.is_floating_point()
