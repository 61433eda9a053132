"""Benchmark `weightport convert` against the naive script and a plain copy, as whole processes.

One run builds the checkpoints (resnet50 and fcvit_b48 from their torch twins, and a synthetic
multi-GB transformer-like one), then times every contender on each, interleaved and repeated:

  copy       cp + sync of the source file: the physical floor of reading and writing it
  weightport `weightport convert` (the synthetic checkpoint, which has no registered twins,
             goes through a driver running the same read_checkpoint -> convert_tensors ->
             write_checkpoint path with its table and target layout given directly)
  back       the converted .pdparams converted back to a torch .pth, through the same path
  naive      torch.load -> numpy -> paddle.to_tensor -> paddle.save, as walkthroughs write it

and reports the median wall time and the peak RSS of each process (from GNU time), the ratios, and
the start-up of `weightport --help` and `weightport convert --help` against `python -c pass`.
Each naive output is checked to hold exactly the arrays weightport wrote. The table is printed
and written to docs/benchmarks.md; the checkpoints are deleted at the end.

    python scripts/bench_convert.py [--synthetic-gb 2.5] [--repeat 3] [--out docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
WEIGHTPORT = str(Path(PYTHON).with_name("weightport"))
TIME = "/usr/bin/time"  # GNU time
HIDDEN = 2048  # width of the synthetic checkpoint's blocks
SYNTHETIC_TABLE = """\
description = "A transformer-like checkpoint made for the benchmark: every Linear weight is transposed."
transpose = [
  "blocks.{i}.attn.qkv.weight",
  "blocks.{i}.attn.proj.weight",
  "blocks.{i}.mlp.fc1.weight",
  "blocks.{i}.mlp.fc2.weight",
  "head.weight",
]
"""


@dataclass
class Run:
    seconds: float
    peak_rss: int  # bytes


def measure(command: list[str], env: dict | None = None) -> Run:
    """Run `command` to completion: its wall time and its peak RSS.

    The peak comes from GNU time, whose own small process forks the command: a child forked
    from this (large) process would report this process's RSS as its own peak."""
    with tempfile.NamedTemporaryFile("r") as rss, tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        proc = subprocess.run([TIME, "-f", "%M", "-o", rss.name, *command], stdout=subprocess.DEVNULL, stderr=errors, env=env)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{errors.read().decode()[-3000:]}")
        return Run(seconds, int(rss.read().split()[-1]) * 1024)


# --- the processes being timed (run as `bench_convert.py _<role> ...`) ---------------------


def naive(src: str, dst: str, mapping_json: str) -> None:
    """The usual hand conversion: everything in memory, then paddle.save."""
    import torch

    from weightport.frameworks import quiet_paddle_import

    paddle = quiet_paddle_import()
    mapping = json.loads(Path(mapping_json).read_text())
    state = torch.load(src, map_location="cpu")
    converted = {}
    for key, tensor in state.items():
        if key not in mapping:
            continue
        target, transpose = mapping[key]
        array = tensor.numpy()
        converted[target] = paddle.to_tensor(array.T if transpose else array)
    paddle.save(converted, dst)


def drive(src: str, dst: str, table_path: str, to: str) -> None:
    """What `weightport convert` runs, for a pair without twins whose table and target layout are given directly."""
    from weightport.cli.convert_cmd import without_blas_threads

    without_blas_threads()
    from weightport.conversion import convert_tensors
    from weightport.formats import read_checkpoint, write_checkpoint
    from weightport.models.pair import TwinPair
    from weightport.tables.loading import load_table

    table = load_table(table_path)
    source = read_checkpoint(src)
    layout = {
        step.target: (
            tuple(reversed(source.tensors[step.source].shape)) if step.transpose else source.tensors[step.source].shape,
            source.tensors[step.source].dtype,
        )
        for step in table.plan(source.tensors, to).steps
    }
    tensors, _ = convert_tensors(TwinPair("synthetic", table=table, manifest={to: layout}), source.tensors, to)
    write_checkpoint(dst, tensors.items())


def make_synthetic(path: str, gigabytes: str) -> None:
    """A torch.save'd checkpoint of transformer-like blocks, `gigabytes` of float32 in all."""
    import torch

    d = HIDDEN
    vocab = 32000
    block_bytes = 4 * (12 * d * d + 9 * d)
    blocks = max(1, round((float(gigabytes) * 1e9 - 8 * vocab * d) / block_bytes))
    g = torch.Generator().manual_seed(0)
    state = {"embed.weight": torch.empty(vocab, d).normal_(generator=g)}
    for i in range(blocks):
        for name, shape in (
            ("norm1.weight", (d,)),
            ("norm1.bias", (d,)),
            ("attn.qkv.weight", (3 * d, d)),
            ("attn.qkv.bias", (3 * d,)),
            ("attn.proj.weight", (d, d)),
            ("attn.proj.bias", (d,)),
            ("norm2.weight", (d,)),
            ("norm2.bias", (d,)),
            ("mlp.fc1.weight", (4 * d, d)),
            ("mlp.fc1.bias", (4 * d,)),
            ("mlp.fc2.weight", (d, 4 * d)),
            ("mlp.fc2.bias", (d,)),
        ):
            state[f"blocks.{i}.{name}"] = torch.empty(shape).normal_(generator=g)
    state["head.weight"] = torch.empty(vocab, d).normal_(generator=g)
    torch.save(state, path)


def make_twin_checkpoint(model: str, path: str) -> None:
    import torch

    from weightport import create_model

    torch.save(create_model(model, "torch").state_dict(), path)


# --- the benchmark ---------------------------------------------------------------------------


def _self(role: str, *args: str) -> list[str]:
    return [PYTHON, __file__, f"_{role}", *args]


def _mapping(src: Path, table_path: str, out: Path) -> None:
    """Source key -> (target key, transpose?) from weightport's own plan, for the naive script."""
    from weightport.formats import read_checkpoint
    from weightport.tables.loading import load_table

    plan = load_table(table_path).plan(read_checkpoint(src).tensors, "paddle")
    out.write_text(json.dumps({s.source: (s.target, s.transpose) for s in plan.steps}))


def _same_arrays(ours: Path, theirs: Path) -> None:
    """The naive script's output holds exactly the arrays weightport wrote (else the race is unfair)."""
    import numpy as np

    from weightport.formats import read_checkpoint

    a, b = read_checkpoint(ours).tensors, read_checkpoint(theirs).tensors
    if set(a) - set(b):
        raise SystemExit(f"{theirs} lacks {sorted(set(a) - set(b))[:5]}")
    for key, tensor in a.items():
        if not np.array_equal(tensor.load(), b[key].load()):
            raise SystemExit(f"{ours} and {theirs} differ at {key}")


@dataclass
class Case:
    name: str
    src: Path
    size: int
    convert: list[str]  # writes <work>/<name>.pdparams
    back: list[str]  # reads it and writes <work>/<name>.back.pth
    mapping_table: str


def _cases(work: Path, gigabytes: float) -> list[Case]:
    from weightport.models.pair import resolve

    cases = []
    for model in ("resnet50", "fcvit_b48"):
        src = work / f"{model}.pth"
        subprocess.run(_self("make_twin", model, str(src)), check=True)
        out, back = work / f"{model}.pdparams", work / f"{model}.back.pth"
        cases.append(
            Case(
                model, src, src.stat().st_size,
                [WEIGHTPORT, "convert", model, str(src), str(out), "--quiet"],
                [WEIGHTPORT, "convert", model, str(out), str(back), "--quiet"],
                str(resolve(model).table_file),
            )
        )
    if gigabytes > 0:
        src = work / "synthetic.pth"
        table = work / "synthetic.toml"
        table.write_text(SYNTHETIC_TABLE)
        subprocess.run(_self("make_synthetic", str(src), str(gigabytes)), check=True)
        out, back = work / "synthetic.pdparams", work / "synthetic.back.pth"
        cases.append(
            Case(
                f"synthetic {src.stat().st_size / 1e9:.1f} GB", src, src.stat().st_size,
                _self("drive", str(src), str(out), str(table), "paddle"),
                _self("drive", str(out), str(back), str(table), "torch"),
                str(table),
            )
        )
    return cases


def _median(runs: list[Run]) -> Run:
    return Run(statistics.median(r.seconds for r in runs), max(r.peak_rss for r in runs))


def bench_case(case: Case, work: Path, repeat: int) -> dict[str, Run]:
    out, back, naive_out, copy_out = (work / f"{case.src.stem}{s}" for s in (".pdparams", ".back.pth", ".naive.pdparams", ".copy"))
    mapping = work / f"{case.src.stem}.mapping.json"
    _mapping(case.src, case.mapping_table, mapping)
    commands = {  # name -> (command, the file it writes)
        "copy": (["sh", "-c", f'cp --reflink=never "{case.src}" "{copy_out}" && sync "{copy_out}"'], copy_out),
        "weightport": (case.convert, out),
        "back": (case.back, back),  # reads what "weightport" just wrote
        "naive": (_self("naive", str(case.src), str(naive_out), str(mapping)), naive_out),
    }
    runs: dict[str, list[Run]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, (command, written) in commands.items():  # interleaved: drifting load hits all alike
            written.unlink(missing_ok=True)
            os.sync()  # untimed: nobody pays for deleting the last run's output or writing back others' pages
            runs[name].append(measure(command, env=_env()))
            run = runs[name][-1]
            print(f"  {case.name:>18} {name:>10}: {run.seconds:7.2f} s  {run.peak_rss / 1e6:8.0f} MB", flush=True)
    _same_arrays(out, naive_out)
    for path in (out, back, naive_out, copy_out, mapping):
        path.unlink(missing_ok=True)
    return {name: _median(r) for name, r in runs.items()}


def bench_startup(repeat: int) -> dict[str, Run]:
    commands = {
        "python -c pass": [PYTHON, "-c", "pass"],
        "weightport --help": [WEIGHTPORT, "--help"],
        "weightport convert --help": [WEIGHTPORT, "convert", "--help"],
    }
    runs: dict[str, list[Run]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, command in commands.items():
            runs[name].append(measure(command, env=_env()))
    return {name: Run(min(r.seconds for r in rs), max(r.peak_rss for r in rs)) for name, rs in runs.items()}


def _env() -> dict:
    return {**os.environ, "GLOG_minloglevel": "2", "PYTHONPATH": str(ROOT / "src")}


def report(results: dict[str, dict[str, Run]], startup: dict[str, Run], sizes: dict[str, int], repeat: int) -> str:
    mb = lambda n: f"{n / 1e6:,.0f}"  # noqa: E731
    lines = [
        "| checkpoint | size MB | copy s | weightport s | back s | naive s | naive / weightport | weightport / (copy + start-up) "
        "| copy MB | weightport MB | back MB | naive MB | weightport RSS / size |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    python = startup["python -c pass"].seconds
    for name, runs in results.items():
        size = sizes[name]
        c, w, b, n = (runs[k] for k in ("copy", "weightport", "back", "naive"))
        lines.append(
            f"| {name} | {mb(size)} | {c.seconds:.2f} | {w.seconds:.2f} | {b.seconds:.2f} | {n.seconds:.2f} "
            f"| {n.seconds / w.seconds:.1f}x | {w.seconds / (c.seconds + python):.1f}x "
            f"| {mb(c.peak_rss)} | {mb(w.peak_rss)} | {mb(b.peak_rss)} | {mb(n.peak_rss)} | {w.peak_rss / size:.2f} |"
        )
    lines += ["", f"| start-up | s (best of {repeat}) | minus `python -c pass` | peak MB |", "|---|---:|---:|---:|"]
    for name, run in startup.items():
        lines.append(f"| `{name}` | {run.seconds:.3f} | {run.seconds - python:+.3f} | {mb(run.peak_rss)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--synthetic-gb", type=float, default=2.5, help="Size of the synthetic checkpoint (0: skip it).")
    parser.add_argument("--repeat", type=int, default=3, help="Runs of each contender; the median time is reported.")
    parser.add_argument("--work", type=Path, help="Folder for the checkpoints (default: a temporary one, deleted).")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md", help="Markdown file the table goes into.")
    args = parser.parse_args()
    # An installed package carries its compiled bytecode; give this tree its own, or every timed
    # process would compile weightport's sources first (PYTHONDONTWRITEBYTECODE keeps it uncached).
    compileall.compile_dir(ROOT / "src" / "weightport", quiet=1)
    work = Path(tempfile.mkdtemp(prefix="weightport-bench-", dir=args.work))
    try:
        cases = _cases(work, args.synthetic_gb)
        results, sizes = {}, {}
        for case in cases:
            print(f"{case.name}: {case.size / 1e6:,.0f} MB", flush=True)
            results[case.name] = bench_case(case, work, args.repeat)
            sizes[case.name] = case.size
            case.src.unlink()
        startup = bench_startup(max(5, args.repeat))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = report(results, startup, sizes, max(5, args.repeat))
    print(table)
    write_block(args.out, "bench_convert", table, f"`scripts/bench_convert.py`, median of {args.repeat} runs")


def write_block(path: Path, name: str, table: str, how: str) -> None:
    """Put `table` into `path` between the markers of block `name`, keeping the prose around it."""
    begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    stamp = (
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by {how} "
        f"({os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} {platform.release()})."
    )
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin not in text:
        text += f"\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    path.write_text(f"{head}{begin}\n{stamp}\n\n{table}\n{end}{rest.split(end, 1)[1]}")


ROLES = {"_naive": naive, "_drive": drive, "_make_synthetic": make_synthetic, "_make_twin": make_twin_checkpoint}

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ROLES:
        ROLES[sys.argv[1]](*sys.argv[2:])
    else:
        main()
