"""What a `weightport verify MODEL` process costs, against importing the frameworks it needs.

Usage: python scripts/bench_startup.py [MODEL ...] [--runs N] [--compare PATH]
Each run is a fresh process: `weightport verify MODEL --device cpu` (random weights, one batch),
`python -c "import torch, paddle"` and `python -c "import torch, paddle, timm"` (the baselines), and,
with --compare, the same verify with another checkout's src/ first on the path (e.g. a worktree of an
earlier commit). Runs are interleaved, so that the machine's drift falls on all alike; the table gives
each command's median wall time and its ratio to `import torch, paddle`.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def timed(command: list[str], pythonpath: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "GLOG_minloglevel": "2"}
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=["cmt_ti", "resnet18"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--compare", type=Path, help="another checkout whose src/ to time the same verify from")
    args = parser.parse_args()
    commands = {
        "import torch, paddle": ([sys.executable, "-c", "import torch, paddle"], SRC),
        "import torch, paddle, timm": ([sys.executable, "-c", "import torch, paddle, timm"], SRC),
    }
    for model in args.models:
        verify = [sys.executable, "-m", "weightport", "verify", model, "--device", "cpu"]
        commands[f"verify {model}"] = (verify, SRC)
        if args.compare:
            commands[f"verify {model} ({args.compare.name})"] = (verify, args.compare / "src")
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, (command, path) in commands.items():
            times[name].append(timed(command, path))
    base = statistics.median(times["import torch, paddle"])
    print(f"| command | median wall (s), {args.runs} runs | x import torch, paddle |")
    print("|---|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| `{name}` | {median:.2f} | {median / base:.2f} |")


if __name__ == "__main__":
    main()
