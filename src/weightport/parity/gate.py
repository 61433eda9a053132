"""The gate of `verify`, relative to each output's scale.

An output passes when its largest absolute error is at most `tol` times the reference's largest
magnitude. fp32 rounding is a fixed fraction of the values computed, so the same tolerance means the
same thing for logits of 1e-3 and of 1e3 (a faithful ResNet-50 sits near 1.2e-6 at both, one conv
weight off by 1 % near 1.1e-3). `atol` adds a strictly absolute gate for whoever wants one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics import Metrics, share_of_limit

DEFAULT_TOL = 1e-4
RELATIVE, ABSOLUTE = "relative", "absolute"


@dataclass
class Gate:
    """The rule that decided an output's verdict, and how close the error came to its limit."""

    rule: str  # RELATIVE: max abs error <= tol x the reference's largest magnitude; ABSOLUTE: <= atol
    error: float  # max abs error
    limit: float  # the largest error the rule allows for this output
    ratio: float  # error / limit: under 1 passes

    @classmethod
    def of(cls, rule: str, error: float, limit: float) -> Gate:
        return cls(rule, error, limit, share_of_limit(error, limit))

    @property
    def passed(self) -> bool:
        return self.ratio <= 1.0  # False for NaN


def decide(metrics: Metrics, tol: float, atol: float | None = None) -> Gate:
    """Apply the gate to one output: the rule that failed, else the one closest to its limit."""
    gates = [Gate.of(RELATIVE, metrics.max_abs, tol * metrics.ref_max)]
    if atol is not None:
        gates.append(Gate.of(ABSOLUTE, metrics.max_abs, atol))
    return max(gates, key=lambda g: np.inf if np.isnan(g.ratio) else g.ratio)


def failure(metrics: Metrics, gate: Gate) -> str:
    """Why an output failed its gate, in words."""
    if np.isnan(metrics.max_abs):
        return "NaN in the outputs: they cannot be shown to agree"
    if gate.rule == RELATIVE:
        return f"max abs error {metrics.max_abs:.3g} > tol x largest |reference| = {gate.limit:.3g} ({gate.ratio:.3g}x)"
    return f"max abs error {metrics.max_abs:.3g} > atol {gate.limit:g} ({gate.ratio:.3g}x)"


def rule_in_words(tol: float, atol: float | None) -> str:
    """The gate in words, as the reports state it."""
    rule = f"max abs error <= {tol:g} x the reference's largest magnitude"
    return rule + (f" and <= {atol:g}" if atol is not None else "")
