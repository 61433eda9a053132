"""Eval and training parity of every model of one registered family, as a markdown table.

    python scripts/family_parity.py torchvision [--json build/torchvision-parity.json]

Per model: the eval gate's figures with the fp64 noise floor (`verify --floor`, batch of 2 at the
model's input size, random non-trivial weights), then the training check (`verify --train`) unless
the model declares that its twins train differently, and the seconds the whole check took here.
"""
from __future__ import annotations

import argparse
import json
import time

from weightport.models.pair import resolve
from weightport.models.registry import get_spec, list_models
from weightport.parity.verification import verify


def measure(name: str) -> dict:
    started = time.perf_counter()
    pair = resolve(name)
    model = verify(name, floor=True, train=not pair.training_differs, batch_size=2, device="cpu").models[0]
    out = model.worst
    row = {"passed": model.passed, "max_rel": out.metrics.max_rel, "floor_ratio": out.floor["ratio"],
           "top1": out.metrics.top1, "seconds": time.perf_counter() - started, "training": None}
    if model.training is not None:
        training = model.training
        row["training"] = {"passed": training.passed,
                           "gradients": max(c.ratio for c in training.gradients),
                           "running_stats": max((c.ratio for c in training.running_stats), default=0.0),
                           "steps": max(c.ratio for s in training.steps for c in s.tensors)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    names = [n for n in list_models() if get_spec(n).family == args.family]
    print("| model | eval max rel | floor x | train: gradients / statistics / steps, share of the limit | s |")
    print("|---|---|---|---|---|")
    rows = {}
    for name in names:
        row = rows[name] = measure(name)
        training = row["training"]
        train = ("eval only: " + "trains differently by design" if training is None else
                 f"{'pass' if training['passed'] else 'FAIL'}: {100 * training['gradients']:.2g} % / "
                 f"{100 * training['running_stats']:.2g} % / {100 * training['steps']:.2g} %")
        print(f"| {name} | {row['max_rel']:.1e} | {row['floor_ratio']:.2f} | {train} | {row['seconds']:.0f} |", flush=True)
    if args.json_path:
        with open(args.json_path, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
