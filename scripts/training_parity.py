"""Measure training parity of registered models: the float64 check `verify --train` gates on, and,
beside it, what the same comparison looks like in float32 against torch's own fp32 error.

    python scripts/training_parity.py [MODEL ...] [--json build/training-parity.json]

Prints one markdown row per model for docs/training.md. The float32 columns are why the check runs
in float64: there, per-tensor gradient errors are compared with torch's fp32-vs-fp64 error (the
noise floor) of the same tensor.
"""
from __future__ import annotations

import argparse
import copy
import json
import time

import numpy as np

from weightport.models.pair import resolve
from weightport.models.registry import list_models
from weightport.parity.inputs import random_batch
from weightport.parity.training import GRADIENT_ZERO, run_paddle, run_torch
from weightport.parity.verification import VerifyOptions, configure, verify, weigh


def float64_figures(name: str) -> dict:
    started = time.perf_counter()
    training = verify(name, train=True, batch_size=2, device="cpu").models[0].training
    largest = max(c.ref_max for c in training.gradients)
    live = [c for c in training.gradients if c.ref_max > GRADIENT_ZERO * largest]
    return {
        "passed": training.passed,
        "loss_rel": training.loss_rel,
        "gradients": len(training.gradients),
        "zero_gradients": len(training.gradients) - len(live),
        "gradient_worst_rel": max(c.max_rel for c in live),
        "gradient_median_rel": float(np.median([c.max_rel for c in live])),
        "gradient_worst_of_limit": max(c.ratio for c in training.gradients),
        "running_stats": len(training.running_stats),
        "running_stats_worst_rel": max((c.max_rel for c in training.running_stats), default=0.0),
        "variance_convention_gap": max((c.convention or 0.0 for c in training.running_stats), default=0.0),
        "steps_worst_of_limit": {s.optimizer: max(c.ratio for c in s.tensors) for s in training.steps},
        "seconds": time.perf_counter() - started,
    }


def float32_figures(name: str) -> dict:
    """Per tensor: paddle fp32 vs torch fp32 gradient error over torch fp32 vs fp64 error."""
    import torch

    pair = resolve(name)
    twins = weigh(configure(pair, VerifyOptions(device="cpu")))
    torch_model, paddle_model = twins.torch, twins.paddle
    torch_model.train()
    paddle_model.train()
    model64 = copy.deepcopy(torch_model).double()
    batch = random_batch(2, pair.input_size_for({}), 0)
    torch_run = run_torch(torch_model, batch, 0, "cpu")
    torch64 = run_torch(model64, batch.astype(np.float64), torch_run.objective, "cpu")
    paddle_run = run_paddle(paddle_model, batch, torch_run.objective)
    table = pair.table()
    ratios = []
    for step in table.plan(torch_run.gradients, "paddle").steps:
        ours, theirs, exact = torch_run.gradients[step.source], paddle_run.gradients.get(step.target), torch64.gradients[step.source]
        if ours is None or theirs is None:
            continue
        ours, exact = (a.T if step.transpose else a for a in (ours, exact))
        floor = float(np.abs(ours - exact).max())
        ratios.append(float(np.abs(ours - theirs).max()) / floor if floor > 0 else 1.0)
    del torch
    return {"floor_ratio_median": float(np.median(ratios)), "floor_ratio_max": max(ratios),
            "over_10x_floor": sum(r > 10 for r in ratios)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    rows = {}
    print("| model | tensors (zero) | loss rel | gradient worst / median rel | running stats worst rel (convention gap) "
          "| SGD / AdamW of limit | s | fp32: floor x median / max (> 10x) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models or list_models():
        f64, f32 = float64_figures(name), float32_figures(name)
        rows[name] = {"float64": f64, "float32": f32}
        steps = f64["steps_worst_of_limit"]
        print(f"| {name} | {f64['gradients']} ({f64['zero_gradients']}) | {f64['loss_rel']:.1e} | "
              f"{f64['gradient_worst_rel']:.1e} / {f64['gradient_median_rel']:.1e} | "
              f"{f64['running_stats_worst_rel']:.1e} ({f64['variance_convention_gap']:.1e}) | "
              f"{steps['sgd']:.1e} / {steps['adamw']:.1e} | {f64['seconds']:.0f} | "
              f"{f32['floor_ratio_median']:.2f} / {f32['floor_ratio_max']:.1f} ({f32['over_10x_floor']}) |", flush=True)
    if args.json_path:
        with open(args.json_path, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
