"""Benchmark converting a sharded multi-GB transformer checkpoint both ways against copying its files.

A real large checkpoint is a folder of shards, and converting one is worth measuring only against
what moving its bytes costs at all: so one run writes a synthetic Llama-like checkpoint (bfloat16,
Hugging Face safetensors shards and index, by weightport's own streaming writer, one tensor in
memory at a time) and times, each step in a fresh process of its own:

  copy           every shard and the index copied (shutil.copyfile) to another folder, each file
                 fsynced: the floor of reading and writing these bytes on this machine
  torch->paddle  `convert` of the HF folder into a Paddle folder (model_state-*.pdparams + index);
                 every 2-D Linear weight is transposed, the embedding and the norms are not
  paddle->torch  `convert` of that Paddle folder back into a HF safetensors folder
  verify         (untimed against the others) the round trip is bit for bit, and every Paddle
                 tensor is the torch one, transposed where the table says: one tensor at a time

For each step: the bytes of its source files, seconds (inside the process, start-up and imports
excluded), GB/s, the ratio to the copy, CPU time (user + sys) over wall time, the peak RSS of the
process (VmHWM, read by the process itself) against the bound a streaming conversion should keep,
twice the largest tensor plus 300 MB, and how much of its source the page cache held when it
started (mincore). The files have just been written, so they are mostly cached for every step alike:
these are the times of a warm cache, not of a cold disk. The table is printed (Markdown), with
--json also written as JSON; the work folder is deleted at the end unless --keep.

    python scripts/bench_sharded.py [--hidden 4096] [--intermediate 11008] [--vocab 32000] [--layers N]
                                    [--max-shard-size 2GB] [--work DIR] [--keep] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DTYPE = "bfloat16"
ITEMSIZE = 2
MIN_BYTES = 10.0e9  # what the default layer count reaches
RSS_SLACK = 300e6  # the bound on peak RSS: 2 x the largest tensor + this
PROJECTIONS = ("q", "k", "v", "o")
MLP = ("gate", "up", "down")
# Names as Hugging Face's Llama names them on both sides; Paddle's Linear stores [in, out].
TABLE = """\
description = "A synthetic Llama-like checkpoint made for scripts/bench_sharded.py: every Linear weight is transposed."
transpose = [
  "model.layers.{i}.self_attn.{proj:q|k|v|o}_proj.weight",
  "model.layers.{i}.mlp.{proj:gate|up|down}_proj.weight",
  "lm_head.weight",
]
"""


# --- the synthetic model -----------------------------------------------------------------------


def torch_layout(hidden: int, intermediate: int, vocab: int, layers: int) -> dict[str, tuple[tuple[int, ...], bool]]:
    """Key -> (torch shape, transposed in Paddle?), in the order the checkpoint holds them."""
    layout = {"model.embed_tokens.weight": ((vocab, hidden), False)}
    for i in range(layers):
        block = f"model.layers.{i}"
        layout[f"{block}.input_layernorm.weight"] = ((hidden,), False)
        for p in PROJECTIONS:
            layout[f"{block}.self_attn.{p}_proj.weight"] = ((hidden, hidden), True)
        layout[f"{block}.post_attention_layernorm.weight"] = ((hidden,), False)
        layout[f"{block}.mlp.gate_proj.weight"] = ((intermediate, hidden), True)
        layout[f"{block}.mlp.up_proj.weight"] = ((intermediate, hidden), True)
        layout[f"{block}.mlp.down_proj.weight"] = ((hidden, intermediate), True)
    layout["model.norm.weight"] = ((hidden,), False)
    layout["lm_head.weight"] = ((vocab, hidden), True)
    return layout


def layouts(dims: list[int]) -> dict[str, dict[str, tuple[tuple[int, ...], str]]]:
    """Both twins' layouts, as TwinPair's manifest takes them."""
    layout = torch_layout(*dims)
    return {
        "torch": {k: (shape, DTYPE) for k, (shape, _) in layout.items()},
        "paddle": {k: (tuple(reversed(shape)) if t else shape, DTYPE) for k, (shape, t) in layout.items()},
    }


def layer_bytes(hidden: int, intermediate: int) -> int:
    return ITEMSIZE * (len(PROJECTIONS) * hidden * hidden + len(MLP) * hidden * intermediate + 2 * hidden)


def model_bytes(hidden: int, intermediate: int, vocab: int, layers: int) -> int:
    return ITEMSIZE * (2 * vocab * hidden + hidden) + layers * layer_bytes(hidden, intermediate)


def default_layers(hidden: int, intermediate: int, vocab: int) -> int:
    """The fewest layers that make the model at least MIN_BYTES (24 for the default widths: 10.24 GB)."""
    return max(1, math.ceil((MIN_BYTES - model_bytes(hidden, intermediate, vocab, 0)) / layer_bytes(hidden, intermediate)))


def random_bfloat16(shape: tuple[int, ...], seed: int):
    """Random finite bfloat16 bits: the exponent's top bit cleared, so |x| < 2 and never inf or NaN.

    PCG64's raw output is about three times as fast as `integers(..., dtype=uint16)`."""
    import numpy as np

    count = math.prod(shape)
    bits = np.random.default_rng(seed).bit_generator.random_raw((count + 3) // 4).view(np.uint16)[:count]
    bits &= 0xBFFF
    return bits.reshape(shape)


# --- the steps, each run in a process of its own (`bench_sharded.py _<step> ...`) ---------------


def _measured(step, *args) -> None:
    """Run `step(*args)` and print what it cost as one JSON line: wall and CPU seconds of the step
    (after importing what it uses), the process's RSS before it and its peak (VmHWM: the process's
    own high-water mark, which an exec'd child does not inherit from its parent the way getrusage's
    ru_maxrss does)."""
    import importlib

    for module in IMPORTS.get(step.__name__, ()):
        importlib.import_module(module)
    rss_before = _status("VmRSS")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    extra = step(*args) or {}
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "rss_before": rss_before, "peak_rss": _status("VmHWM"), **extra}))


def _status(field: str) -> int:
    """A memory figure of this process from /proc/self/status, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise SystemExit(f"/proc/self/status has no {field}")


def generate(folder: str, dims: str, max_shard_size: str) -> dict:
    from weightport.formats import write_sharded
    from weightport.formats.checkpoint import LazyTensor
    from weightport.formats.sharded import parse_size

    layout = torch_layout(*json.loads(dims))
    entries = [
        (name, LazyTensor(DTYPE, shape, lambda shape=shape, seed=seed: random_bfloat16(shape, seed)))
        for seed, (name, (shape, _)) in enumerate(layout.items())
    ]
    files = write_sharded(folder, entries, "torch", "safetensors", max_shard_size=parse_size(max_shard_size))
    return {"files": len(files)}


def copy(src: str, dst: str) -> dict:
    os.mkdir(dst)
    names = sorted(os.listdir(src))
    for name in names:
        shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
    for name in names:  # as the converter syncs every file it writes
        fd = os.open(os.path.join(dst, name), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return {"files": len(names)}


def convert_folder(src: str, dst: str, to: str, dims: str, table: str, max_shard_size: str) -> dict:
    from weightport.conversion import convert
    from weightport.models.pair import TwinPair

    pair = TwinPair("synthetic-llama", table=table, manifest=layouts(json.loads(dims)))
    summary = convert(pair, src, dst.rstrip("/") + "/", to=to, max_shard_size=max_shard_size)
    return {"files": len(summary.shards), "transposed": summary.transposed}


def verify(original: str, paddle: str, back: str, dims: str) -> dict:
    """The round trip is bit for bit, and the Paddle tensors are the torch ones (transposed where
    the table transposes): every tensor compared, one at a time."""
    import numpy as np

    from weightport.formats import read_checkpoint

    layout = torch_layout(*json.loads(dims))
    a, p, b = (read_checkpoint(path).tensors for path in (original, paddle, back))
    for name, tensors in (("the Paddle folder", p), ("the round trip", b)):
        if set(tensors) != set(layout):
            missing, extra = sorted(set(layout) - set(tensors)), sorted(set(tensors) - set(layout))
            raise SystemExit(f"{name}'s keys differ from the model's: missing {missing[:3]}, extra {extra[:3]}")
    for key, (shape, transposed) in layout.items():
        for name, tensor, want in (("original", a[key], shape), ("round trip", b[key], shape),
                                   ("Paddle", p[key], tuple(reversed(shape)) if transposed else shape)):
            if tensor.dtype != DTYPE or tuple(tensor.shape) != want:
                raise SystemExit(f"{key}: the {name} tensor is {tensor.dtype} {tuple(tensor.shape)}, expected {DTYPE} {want}")
        source = a[key].load()
        if not np.array_equal(source, b[key].load()):
            raise SystemExit(f"{key}: the round trip changed its bytes")
        paddle_array = p[key].load()
        if not np.array_equal(paddle_array.T if transposed else paddle_array, source):
            raise SystemExit(f"{key}: the Paddle tensor is not the torch one{' transposed' if transposed else ''}")
        del source, paddle_array
    return {"tensors": len(layout)}


STEPS = {"_generate": generate, "_copy": copy, "_convert": convert_folder, "_verify": verify}
# What each step imports, imported before it is timed (the copy imports nothing).
IMPORTS = {
    "generate": ("numpy", "weightport.formats", "weightport.formats.safetensors_file"),
    "convert_folder": ("numpy", "weightport.conversion", "weightport.models.pair", "weightport.formats.safetensors_file",
                       "weightport.formats.pdparams"),
    "verify": ("numpy", "weightport.formats", "weightport.formats.safetensors_file", "weightport.formats.pdparams"),
}


# --- the benchmark ---------------------------------------------------------------------------


def run_step(step: str, *args: str) -> dict:
    """Run one step in a fresh process: what it printed, and the process's own wall time."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the weightport CLI runs (cli.convert_cmd.without_blas_threads)
    start = time.perf_counter()
    proc = subprocess.run([PYTHON, __file__, f"_{step}", *args], env=env, capture_output=True, text=True)
    process_seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"step {step} failed ({proc.returncode}):\n{(proc.stderr or proc.stdout)[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "process_seconds": process_seconds}


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def cached_fraction(folder: Path) -> float | None:
    """The share of `folder`'s file bytes the page cache holds now (mincore), None where it cannot tell."""
    import ctypes
    import mmap

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    page = mmap.PAGESIZE
    resident = total = 0
    for path in folder.iterdir():
        size = path.stat().st_size if path.is_file() else 0
        if size == 0:
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            if address in (None, ctypes.c_void_p(-1).value):
                return None
            try:
                pages = (size + page - 1) // page
                vector = (ctypes.c_ubyte * pages)()
                if libc.mincore(address, size, vector) != 0:
                    return None
                resident += pages - bytes(vector).count(0)  # Linux sets 1 for a resident page, 0 otherwise
                total += pages
            finally:
                libc.munmap(address, size)
        finally:
            os.close(fd)
    return resident / total if total else None


def percent(fraction: float | None) -> str:
    return "?" if fraction is None else f"{100 * fraction:.0f}%"


def report(results: dict[str, dict], largest: int) -> str:
    mb = lambda n: f"{n / 1e6:,.0f}"  # noqa: E731
    bound = 2 * largest + RSS_SLACK
    copy_seconds = results["copy"]["seconds"]
    lines = [
        "| step | source GB | files written | s | GB/s | / copy | CPU / wall | peak RSS MB | RSS before MB "
        "| largest tensor MB | bound MB (2 x largest + 300) | peak / bound | source cached |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for step, r in results.items():
        cached = percent(r["cached"])
        ratio = "1.00" if step == "copy" else f"{r['seconds'] / copy_seconds:.2f}"
        written = r["files"] if "files" in r else "-"
        lines.append(
            f"| {step} | {r['bytes'] / 1e9:.2f} | {written} | {r['seconds']:.2f} | {r['bytes'] / 1e9 / r['seconds']:.2f} | {ratio} "
            f"| {r['cpu_seconds'] / r['seconds']:.2f} | {mb(r['peak_rss'])} | {mb(r['rss_before'])} | {mb(largest)} | {mb(bound)} "
            f"| {r['peak_rss'] / bound:.2f} | {cached} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=4096, help="Hidden width (default 4096).")
    parser.add_argument("--intermediate", type=int, default=11008, help="MLP width (default 11008).")
    parser.add_argument("--vocab", type=int, default=32000, help="Vocabulary size (default 32000).")
    parser.add_argument("--layers", type=int, help=f"Decoder layers (default: the fewest making the model >= {MIN_BYTES / 1e9:.0f} GB).")
    parser.add_argument("--max-shard-size", default="2GB", help="Shard size limit, for the source and both conversions (default 2GB).")
    parser.add_argument("--work", type=Path, help="Folder in which a fresh work folder is made (default: the system's temporary folder).")
    parser.add_argument("--keep", action="store_true", help="Keep the work folder (its path is printed).")
    parser.add_argument("--json", type=Path, help="Also write the results to this JSON file.")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from weightport.formats.sharded import parse_size

    parse_size(args.max_shard_size)  # a bad size fails here, not after minutes of writing
    layers = args.layers if args.layers is not None else default_layers(args.hidden, args.intermediate, args.vocab)
    dims = [args.hidden, args.intermediate, args.vocab, layers]
    total = model_bytes(*dims)
    largest = ITEMSIZE * max(args.vocab * args.hidden, args.intermediate * args.hidden, args.hidden * args.hidden)
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="weightport-bench-sharded-", dir=args.work))
    free = shutil.disk_usage(work).free
    if free < 3.2 * total:  # the source, the Paddle folder and the round trip (the copy is deleted first)
        shutil.rmtree(work)
        raise SystemExit(f"{work.parent} has {free / 1e9:.1f} GB free; this model needs about {3.2 * total / 1e9:.1f} GB")
    hf, copied, paddle, back = work / "hf", work / "copy", work / "paddle", work / "back"
    table = work / "synthetic_llama.toml"
    table.write_text(TABLE)
    print(f"model: {layers} layers, hidden {args.hidden}, intermediate {args.intermediate}, vocab {args.vocab}, "
          f"{DTYPE}: {total / 1e9:.2f} GB, largest tensor {largest / 1e6:,.0f} MB; shards of at most {args.max_shard_size}; "
          f"work folder {work}", flush=True)
    dims_json = json.dumps(dims)
    results: dict[str, dict] = {}
    try:
        generated = run_step("generate", str(hf), dims_json, args.max_shard_size)
        print(f"  generate: {generated['seconds']:.1f} s, {generated['files']} files", flush=True)
        steps = (
            ("copy", hf, ("copy", str(hf), str(copied))),
            ("torch->paddle", hf, ("convert", str(hf), str(paddle), "paddle", dims_json, str(table), args.max_shard_size)),
            ("paddle->torch", paddle, ("convert", str(paddle), str(back), "torch", dims_json, str(table), args.max_shard_size)),
        )
        for name, source, command in steps:
            os.sync()  # untimed: no step pays for writing back what an earlier one left dirty
            cached = cached_fraction(source)
            results[name] = {**run_step(*command), "bytes": folder_bytes(source), "cached": cached}
            r = results[name]
            print(f"  {name}: {r['seconds']:.2f} s, peak RSS {r['peak_rss'] / 1e6:,.0f} MB", flush=True)
            if name == "copy":
                shutil.rmtree(copied)  # room for the conversions
        cached = cached_fraction(hf)
        checked = run_step("verify", str(hf), str(paddle), str(back), dims_json)
        print(f"  verify: {checked['tensors']} tensors bit for bit in {checked['seconds']:.1f} s "
              f"(peak RSS {checked['peak_rss'] / 1e6:,.0f} MB, original {percent(cached)} cached)", flush=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    text = report(results, largest)
    cache_note = ", ".join(f"{name} {percent(r['cached'])}" for name, r in results.items())
    notes = (
        f"\nSynthetic Llama-like checkpoint: {layers} layers, hidden {args.hidden}, intermediate {args.intermediate}, "
        f"vocab {args.vocab}, {DTYPE}, {total / 1e9:.2f} GB of tensors in shards of at most {args.max_shard_size}; "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} {platform.release()}.\n"
        f"Seconds are the step's own (process start-up and imports excluded); every step ran in a fresh process. "
        f"The sources had just been written, so the page cache held them when each step began ({cache_note}): "
        "warm-cache times, not a cold disk's. CPU / wall near 1 means one CPU was busy throughout, so a second one "
        "could only help if the step were split; well below 1, the step waited on the disk. "
        f"Round trip verified bit for bit ({checked['tensors']} tensors, Paddle side transposed as the table says)."
    )
    print()
    print(text)
    print(notes)
    if args.json is not None:
        args.json.write_text(json.dumps({
            "model": {"layers": layers, "hidden": args.hidden, "intermediate": args.intermediate, "vocab": args.vocab,
                      "dtype": DTYPE, "bytes": total, "largest_tensor_bytes": largest},
            "max_shard_size": args.max_shard_size,
            "rss_bound_bytes": 2 * largest + RSS_SLACK,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "generate": generated,
            "steps": results,
            "verify": checked,
        }, indent=2) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in STEPS:
        _measured(STEPS[sys.argv[1]], *sys.argv[2:])
    else:
        main()
