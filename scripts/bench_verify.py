"""Time `weightport verify` per model, so that slow twins are visible.

For each model: the whole `weightport verify MODEL` process (wall time and peak RSS), and, in a
separate process, its phases: importing the twins' modules (timm, for every torch twin), building
both twins as verify does (random weights included), converting those weights through the files
(torch.save -> weightport convert -> paddle.load), and one forward pass of each twin on the same
batch. The table is printed and written to docs/benchmarks.md.

    python scripts/bench_verify.py [MODEL ...] [--batch-size 1] [--out docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_convert import PYTHON, ROOT, WEIGHTPORT, measure, write_block

PHASES = ("import", "build", "convert", "torch forward", "paddle forward")


def phases(model: str, batch_size: str) -> None:
    """Time verify's steps for `model` with the package's own functions; print them as JSON."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    import torch

    from weightport import convert
    from weightport.formats import read_checkpoint
    from weightport.frameworks import quiet_paddle_import
    from weightport.models.pair import resolve
    from weightport.models.weights import load_paddle, randomize_torch
    from weightport.parity.inputs import random_batch
    from weightport.parity.running import paddle_forward, torch_forward

    quiet_paddle_import()  # the frameworks' own import time counts only in the whole process
    seconds = {}
    start = time.perf_counter()
    pair = resolve(model)
    for framework in ("torch", "paddle"):
        pair.factory(framework)  # a process pays this once, however many models it verifies
    seconds["import"] = time.perf_counter() - start
    start = time.perf_counter()
    # as verify's _prepare_twins builds them for random weights
    torch_model, paddle_model = pair.create_to_overwrite("torch"), pair.create_to_overwrite("paddle")
    randomize_torch(torch_model, seed=0)
    seconds["build"] = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        src, dst = Path(folder) / f"{model}.pth", Path(folder) / f"{model}.pdparams"
        torch.save(torch_model.state_dict(), src)
        start = time.perf_counter()
        convert(pair, src, dst)
        load_paddle(paddle_model, read_checkpoint(dst).tensors)
        seconds["convert"] = time.perf_counter() - start
    batch = random_batch(int(batch_size), pair.input_size, seed=0)
    for name, forward, twin in (("torch forward", torch_forward, torch_model), ("paddle forward", paddle_forward, paddle_model)):
        forward(twin, batch)  # warm-up: first calls allocate and pick kernels
        start = time.perf_counter()
        forward(twin, batch)
        seconds[name] = time.perf_counter() - start
    print(json.dumps(seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*", help="Models to time (default: every registered model).")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md", help="Markdown file the table goes into.")
    args = parser.parse_args()
    from weightport.models.registry import list_models

    models = args.models or list_models()
    env = {**os.environ, "GLOG_minloglevel": "2", "PYTHONPATH": str(ROOT / "src"), "CUDA_VISIBLE_DEVICES": ""}
    lines = [
        f"| model | `weightport verify` s | peak MB | {' s | '.join(PHASES)} s |",
        "|---|" + "---:|" * (2 + len(PHASES)),
    ]
    for model in models:
        try:
            whole = measure([WEIGHTPORT, "verify", model, "--batch-size", str(args.batch_size), "--device", "cpu"], env=env)
            result = subprocess.run(
                [PYTHON, __file__, "_phases", model, str(args.batch_size)], env=env, capture_output=True, text=True, check=True
            )
        except (SystemExit, subprocess.CalledProcessError) as exc:  # a broken twin: say so, time the others
            detail = (getattr(exc, "stderr", None) or str(exc)).strip().splitlines()[-1][:100]
            lines.append(f"| {model} | failed: {detail} |" + " |" * (1 + len(PHASES)))
            print(lines[-1], flush=True)
            continue
        split = json.loads(result.stdout.strip().splitlines()[-1])
        lines.append(
            f"| {model} | {whole.seconds:.1f} | {whole.peak_rss / 1e6:,.0f} | " + " | ".join(f"{split[p]:.2f}" for p in PHASES) + " |"
        )
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    write_block(
        args.out, "bench_verify", table,
        f"`scripts/bench_verify.py`, batch size {args.batch_size}, CPU; phases timed in a separate process, "
        "forward passes after one warm-up pass",
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_phases":
        phases(*sys.argv[2:])
    else:
        main()
