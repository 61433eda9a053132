"""How much of timm and of other libraries `weightport port` handles: port, convert and verify each model, one process each.

    python scripts/port_coverage.py --public             # the public list (docs/port-coverage.md)
    python scripts/port_coverage.py --sweep              # the smallest model of every timm module
    python scripts/port_coverage.py --sweep --second-size 160 --dynamic-img-size   # ViTs built to run at any size
    python scripts/port_coverage.py --others             # models from outside timm (port_coverage_models.py)
    python scripts/port_coverage.py resnet50 vit_tiny_patch16_224 --second-size 160

Each model goes through `weightport port SOURCE --out DIR --json` in a fresh process (with a
time limit), so one model's crash or memory cannot touch the next. Where the port writes a twin and
the model has a second input size (--second-size, or the others' own), torch's model is first run
there alone (in its own process: a model that runs at one size only says so), then
`weightport verify DIR --input-size N --floor --json` checks the twin there. The markdown table
(pass rate, errors, floor ratios, generated lines, time per model, failures grouped by cause) is
printed and, with --markdown, appended to a file; --json keeps the raw rows. With --peer,
X2Paddle's `pytorch2paddle` (the `peer` extra) runs on the same timm model in the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from port_coverage_models import OTHERS

PUBLIC = [
    "resnet50", "regnetx_002", "efficientnet_b0", "mobilenetv3_large_100", "convnext_atto", "densenet121", "dla34",
    "ghostnet_100", "rexnet_100", "cspresnet50", "res2net50_14w_8s", "dpn68", "vgg11_bn", "hrnet_w18_small",
    "inception_v3", "xception41", "resnetv2_50", "nf_resnet50", "vit_tiny_patch16_224", "deit_tiny_patch16_224",
    "swin_tiny_patch4_window7_224", "swinv2_tiny_window8_256", "cait_xxs24_224", "pit_ti_224", "levit_128s",
    "mobilevit_xxs", "efficientformer_l1", "poolformer_s12", "mixer_s16_224", "convit_tiny", "coat_tiny",
    "crossvit_tiny_240", "twins_svt_small", "eva02_tiny_patch14_224", "beit_base_patch16_224", "coatnet_0_rw_224",
    "mvitv2_tiny", "hiera_tiny_224",
]
TIME_LIMIT = 900
SCRIPTS = Path(__file__).resolve().parent
# The others' factories are `port_coverage_models:NAME` sources: every process run here finds them.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(SCRIPTS), os.environ.get("PYTHONPATH")]))}
# Runs torch's model alone at an input shape: a second size is checked only where torch runs there.
PROBE = (
    "import sys, torch\n"
    "from weightport.models.ported import torch_factory\n"
    "model = torch_factory(sys.argv[1], {})().eval()\n"
    "shape = [int(n) for n in sys.argv[2].split(',')]\n"
    "x = torch.randint(0, 16, shape) if sys.argv[3].startswith('int') else torch.randn(shape)\n"
    "with torch.no_grad():\n"
    "    model(x)\n"
)


@dataclass(frozen=True)
class Target:
    """One model to port: its `weightport port` source and options, the calling-convention options
    it needs that this weightport does not offer, and the second input size to check it at."""

    name: str
    source: str
    options: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    second: int | None = None
    second_shape: tuple[int, ...] | None = None
    dtype: str = "float32"
    library: str | None = None


def timm_target(name: str, second: int | None, dynamic: bool = False) -> Target:
    """A timm model; with `dynamic`, built with dynamic_img_size=True where its class takes it (timm's
    ViTs: their position embedding is then resampled to the input's grid, so they run at any size)."""
    options = ("--model-arg", "dynamic_img_size=True") if dynamic and _takes_dynamic_size(name) else ()
    return Target(name, f"timm:{name}", options, second=second, second_shape=(1, 3, second, second) if second else None)


def _takes_dynamic_size(name: str) -> bool:
    import timm
    import torch

    try:
        with torch.device("meta"):
            timm.create_model(name, dynamic_img_size=True)
    except Exception:
        return False
    return True


def port_options() -> set[str]:
    """The options this weightport's `port` offers (the calling-convention ones are recent)."""
    done = subprocess.run([sys.executable, "-m", "weightport", "port", "--help"], capture_output=True, text=True, env=ENV)
    return set(re.findall(r"--[a-z][a-z-]*", done.stdout))


def other_target(name: str, second: int | None, offered: set[str]) -> Target:
    """A model of port_coverage_models.OTHERS with the options its input needs, those this weightport
    offers passed, the others named in `needs`."""
    spec = OTHERS[name]
    wanted: list[tuple[str, str]] = []
    if spec.shape is not None:
        wanted.append(("--input-shape", ",".join(map(str, spec.input_shape()))))
    if spec.dtype != "float32":
        wanted.append(("--input-dtype", spec.dtype))
    if spec.input_name != "x":
        wanted.append(("--input-name", spec.input_name))
    options = [item for option, value in wanted if option in offered for item in (option, value)]
    if spec.size != 224 and "--input-shape" not in options:
        options += ["--input-size", str(spec.size)]
    # a keyword name is only needed where the input is not the first positional argument
    needs = tuple(option for option, _ in wanted if option not in offered and option != "--input-name")
    second = second or spec.second
    return Target(name, f"port_coverage_models:{name}", tuple(options), needs, second,
                  spec.input_shape(second) if second else None, spec.dtype, spec.library)


def smallest_per_module(cache: Path) -> dict[str, str]:
    """timm's architecture modules, each with its model of fewest parameters (counted on the meta
    device, each build cut off after a few seconds; the choice is cached in `cache`)."""
    if cache.is_file():
        return json.loads(cache.read_text())
    import signal

    import timm
    import torch
    from timm.models._registry import _model_to_module

    def give_up(*_):
        raise TimeoutError

    signal.signal(signal.SIGALRM, give_up)
    best: dict[str, tuple[int, str]] = {}
    for n, name in enumerate(timm.list_models()):
        module = _model_to_module[name]
        signal.alarm(5)
        try:
            with torch.device("meta"):
                count = sum(p.numel() for p in timm.create_model(name).parameters())
        except Exception:
            continue
        finally:
            signal.alarm(0)
        if module not in best or count < best[module][0]:
            best[module] = (count, name)
        if n % 100 == 0:
            print(f"counted {n} models", file=sys.stderr, flush=True)
    chosen = {module: name for module, (_, name) in sorted(best.items())}
    cache.write_text(json.dumps(chosen, indent=1) + "\n")
    return chosen


def port_one(target: Target, folder: Path) -> dict:
    """Port `target` (then check it at its second size): the table's row."""
    started = time.perf_counter()
    out = folder / target.name
    command = [sys.executable, "-m", "weightport", "port", target.source, "--out", str(out), "--json", *target.options]
    row: dict = {"model": target.name}
    if target.library:
        row["library"] = target.library
    if target.needs:
        row["needs"] = list(target.needs)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIME_LIMIT, env=ENV)
    except subprocess.TimeoutExpired:
        return {**row, "status": "timeout", "cause": f"over {TIME_LIMIT} s", "seconds": TIME_LIMIT}
    row.update(seconds=round(time.perf_counter() - started, 1), exit=done.returncode)
    if done.returncode in (0, 1) and done.stdout.strip():
        report = json.loads(done.stdout)
        row.update(status="pass" if done.returncode == 0 else "gate", lines=report["lines"], classes=report["classes"],
                   parameters=report["parameters"], size=report.get("input_size"), **_verdict(report["verify"]))
        if target.second:
            row.update(_second_size(target, out))
        return row
    return {**row, **_failure(done, "cannot port" if done.returncode == 2 else "crash")}


def _verdict(verify: dict, suffix: str = "") -> dict:
    """Errors and floor ratio of the worst output of one verification, and the first diverging module."""
    output = verify["models"][0]
    worst = max(output["outputs"], key=lambda o: o["gate"]["ratio"])
    metrics = worst["metrics"]
    return {f"max_abs{suffix}": metrics["max_abs"], f"rel{suffix}": metrics["max_abs"] / max(metrics["ref_max"], 1e-30),
            f"floor{suffix}": (worst.get("floor") or {}).get("ratio"),
            f"first_divergence{suffix}": (output.get("layers") or {}).get("first_divergence")}


def _failure(done: subprocess.CompletedProcess, status: str) -> dict:
    """A failed process's status and its one-line cause (weightport's `Error:` line, else the last)."""
    lines = [line for line in done.stderr.strip().splitlines() if line.startswith("Error:")] or done.stderr.strip().splitlines()[-1:]
    if done.returncode < 0:  # the kernel's out-of-memory killer sends SIGKILL
        lines = [f"killed by signal {-done.returncode}" + (" (out of memory on this machine)" if done.returncode == -9 else "")]
    return {"status": status, "cause": lines[0].removeprefix("Error: ") if lines else ""}


def _second_size(target: Target, out: Path) -> dict:
    """The twin in `out` checked at the target's second size, where torch's model runs there."""
    row = {"size2": target.second}
    shape = ",".join(map(str, target.second_shape))
    try:
        probe = subprocess.run([sys.executable, "-c", PROBE, target.source, shape, target.dtype],
                               capture_output=True, text=True, timeout=TIME_LIMIT, env=ENV)
        if probe.returncode != 0:
            return {**row, "status2": "torch fails", "cause2": _failure(probe, "")["cause"]}
        done = subprocess.run([sys.executable, "-m", "weightport", "verify", str(out), "--input-size", str(target.second),
                               "--floor", "--json"], capture_output=True, text=True, timeout=TIME_LIMIT, env=ENV)
    except subprocess.TimeoutExpired:
        return {**row, "status2": "timeout", "cause2": f"over {TIME_LIMIT} s"}
    if done.returncode in (0, 1) and done.stdout.strip():
        return {**row, "status2": "pass" if done.returncode == 0 else "gate", **_verdict(json.loads(done.stdout), "2")}
    failure = _failure(done, "error")
    return {**row, "status2": failure["status"], "cause2": failure["cause"]}


def x2paddle_one(name: str, folder: Path) -> str:
    """The peer on the same model, with weights randomised as verify's are: its logits' error
    relative to torch's largest, or why it failed."""
    save = folder / f"x2paddle_{name}"
    code = (
        "import sys, numpy, timm, torch\n"
        "from weightport.models.weights import randomize_torch\n"
        "from x2paddle.convert import pytorch2paddle\n"
        f"model = timm.create_model({name!r}).eval(); randomize_torch(model, seed=0)\n"
        "x = torch.randn(1, *model.pretrained_cfg['input_size'], generator=torch.Generator().manual_seed(0))\n"
        f"pytorch2paddle(model, save_dir={str(save)!r}, jit_type='trace', input_examples=[x])\n"
        f"sys.path.insert(0, {str(save)!r})\n"
        "import paddle, x2paddle_code\n"
        "with torch.no_grad(): reference = model(x).numpy()\n"
        "out = x2paddle_code.main(paddle.to_tensor(x.numpy()))\n"
        "out = (out[0] if isinstance(out, (list, tuple)) else out).numpy()\n"
        "print('RESULT', float(numpy.abs(out - reference).max() / numpy.abs(reference).max()))\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIME_LIMIT,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        return "timeout"
    result = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if result:
        error = float(result[-1].split()[1])
        return "NaN" if error != error else (f"rel {error:.1e}" if error <= 1e-4 else f"wrong: rel {error:.1e}")
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "failed")[:100]


def cause_of(row: dict, suffix: str = "") -> str:
    """A failure's cause with the model-specific parts blanked, to group failures (`suffix` "2": at
    the second size); the calling-convention options the model needed but this weightport lacks
    come first."""
    diverging = row.get(f"first_divergence{suffix}")
    cause = row.get(f"cause{suffix}", "") or (f"first diverging module {diverging}" if row[f"status{suffix}"] == "gate" else "")
    cause = re.sub(r"module '[^']*' \(([^)]*)\)", r"\1", cause)
    cause = re.sub(r"`[^`]*`", "", cause)
    cause = re.sub(r"\(called in [^)]*\)\)?", "", cause).strip(" ,:")
    cause = re.sub(r"(/[^\s:/]+)+: ", "", cause)  # the port's staging folder
    if row.get("needs") and not suffix:
        cause = f"[without {', '.join(row['needs'])}] {cause}"
    return cause


def group_of(row: dict, suffix: str = "") -> str:
    """The cause a failure is grouped under: a class that cannot be traced named by its library alone
    (the same transformers bug hits every transformers model)."""
    return re.sub(r"cannot trace (?:the model \()?([A-Za-z_]\w*)(?:\.\w+)+\)?:", r"cannot trace a class of \1:", cause_of(row, suffix))


def _figure(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def markdown(rows: list[dict], title: str) -> str:
    passed = [r for r in rows if r["status"] == "pass"]
    out = [f"### {title}", "", f"{len(passed)} of {len(rows)} port and pass `verify` ({100 * len(passed) / max(len(rows), 1):.0f} %).", ""]
    second = any("size2" in r for r in rows)
    if second:
        checked = [r for r in rows if r.get("status2") not in (None, "torch fails")]
        out[-1:] = ["", f"At the second size, {sum(r['status2'] == 'pass' for r in checked)} of the {len(checked)} twins checked where "
                    f"torch's model runs there pass; torch's own model does not run at the second size for "
                    f"{sum(r.get('status2') == 'torch fails' for r in rows)}.", ""]
    header = "| model | result | max abs | rel | floor x |"
    if second:
        header += " size | 2nd size | 2nd result | 2nd max abs | 2nd rel | 2nd floor x |"
    header += " classes | lines | seconds |"
    if any("library" in r for r in rows):
        header = "| library " + header
    if any("module" in r for r in rows):
        header = "| module " + header
    if any("x2paddle" in r for r in rows):
        header += " X2Paddle |"
    out += [header, "|" + "---|" * (header.count("|") - 1)]
    for r in rows:
        figures = [_figure(r.get("max_abs"), ".2e"), _figure(r.get("rel"), ".2e"), _figure(r.get("floor"), ".2f")]
        if second:
            status2 = r.get("status2")
            result2 = "" if status2 is None else status2 if status2 == "pass" else f"{status2}: {cause_of(r, '2')}"
            figures += [str(r.get("size", "")), str(r.get("size2", "")), result2.replace("|", "/"),
                        _figure(r.get("max_abs2"), ".2e"), _figure(r.get("rel2"), ".2e"), _figure(r.get("floor2"), ".2f")]
        figures += [str(r.get("classes", "")), str(r.get("lines", "")), str(r["seconds"])]
        result = r["status"] if r["status"] == "pass" else f"{r['status']}: {cause_of(r)}"
        cells = [r[key] for key in ("module", "library") if key in r] + [r["model"], result.replace("|", "/")]
        peer = [r["x2paddle"].replace("|", "/")] if "x2paddle" in r else []
        out.append("| " + " | ".join(cells + figures + peer) + " |")
    out += _grouped(rows, "", "Failures by cause:")
    out += _grouped(rows, "2", "At the second size, by cause (torch's own failures included):")
    peers = [r for r in rows if r.get("x2paddle") is not None]
    if peers:
        correct = sum(r["x2paddle"].startswith("rel ") for r in peers)
        out += ["", f"X2Paddle 1.6 `pytorch2paddle` (trace) on the same models in the same run: {correct} of {len(peers)} give",
                "logits within 1e-4 of torch's (relative to the largest); the others:", ""]
        out += [f"- {r['model']}: {r['x2paddle']}" for r in peers if not r["x2paddle"].startswith("rel ")]
    return "\n".join(out) + "\n"


def _grouped(rows: list[dict], suffix: str, heading: str) -> list[str]:
    """The failures (at the port's size, or with `suffix` "2" at the second) grouped by cause, most common first."""
    by_cause = defaultdict(list)
    for r in rows:
        status = r.get(f"status{suffix}")
        if status not in (None, "pass"):
            by_cause[f"{status}: {group_of(r, suffix)}"].append(r["model"])
    if not by_cause:
        return []
    ranked = sorted(by_cause.items(), key=lambda item: -len(item[1]))
    return ["", heading, ""] + [f"- {len(models)} x {cause}: {', '.join(models)}" for cause, models in ranked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*")
    parser.add_argument("--public", action="store_true")
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--others", action="store_true", help="The models from outside timm of port_coverage_models.py.")
    parser.add_argument("--second-size", type=int, help="Also check each twin at this input size (the others have their own).")
    parser.add_argument("--dynamic-img-size", action="store_true",
                        help="Build the timm models that take it with dynamic_img_size=True (ViTs that then run at any size).")
    parser.add_argument("--peer", action="store_true", help="Run X2Paddle's pytorch2paddle on each model too (pip install '.[peer]').")
    parser.add_argument("--json", type=Path, help="Write the rows as JSON.")
    parser.add_argument("--markdown", type=Path, help="Append the table to this file.")
    parser.add_argument("--rerun-failed", action="store_true", help="Port again the rows of --json that did not pass; keep the rest.")
    parser.add_argument("--skip", nargs="*", default=[], help="With --rerun-failed: models not to port again.")
    parser.add_argument("--render", action="store_true", help="Only print the table of the rows in --json.")
    parser.add_argument("--resume", action="store_true", help="Keep the rows --json already holds and port only the other models.")
    args = parser.parse_args()
    if args.rerun_failed:
        rerun(args)
        return
    if args.render:
        rows = json.loads(args.json.read_text())
        report(rows, _title(rows), args.markdown)
        return
    offered = port_options() if args.others else set()
    dynamic = args.dynamic_img_size
    targets: list[tuple[str | None, Target]] = [(None, timm_target(m, args.second_size, dynamic)) for m in args.models]
    if args.public:
        targets += [(None, timm_target(m, args.second_size, dynamic)) for m in PUBLIC]
    if args.sweep:
        chosen = smallest_per_module(Path("build/timm-smallest-per-module.json"))
        targets += [(module, timm_target(name, args.second_size, dynamic)) for module, name in chosen.items()]
    if args.others:
        targets += [(None, other_target(name, args.second_size, offered)) for name in OTHERS]
    rows = json.loads(args.json.read_text()) if args.resume and args.json and args.json.is_file() else []
    done = {r["model"] for r in rows}
    with tempfile.TemporaryDirectory(prefix="weightport-coverage-") as folder:
        for module, target in targets:
            if target.name in done:
                continue
            row = port_one(target, Path(folder))
            if module is not None:
                row["module"] = module
            if args.peer and target.library is None:
                row["x2paddle"] = x2paddle_one(target.name, Path(folder))
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1) + "\n")
    report(rows, _title(rows), args.markdown)


def report(rows: list[dict], title: str, path: Path | None) -> None:
    text = markdown(rows, title)
    print(text)
    if path:
        with path.open("a") as f:
            f.write("\n" + text)


def rerun(args) -> None:
    """Port the failed rows of an earlier run again (after a fix), keeping the rows that passed."""
    rows = json.loads(args.json.read_text())
    offered = port_options()
    with tempfile.TemporaryDirectory(prefix="weightport-coverage-") as folder:
        for i, row in enumerate(rows):
            if (row["status"] == "pass" and row.get("status2") in (None, "pass", "torch fails")) or row["model"] in args.skip:
                continue
            second = row.get("size2", args.second_size)
            if "library" in row:
                target = other_target(row["model"], second, offered)
            else:
                target = timm_target(row["model"], second, args.dynamic_img_size)
            fresh = port_one(target, Path(folder))
            for kept in ("module", "x2paddle"):
                if kept in row:
                    fresh[kept] = row[kept]
            rows[i] = fresh
            print(json.dumps(fresh), file=sys.stderr, flush=True)
            args.json.write_text(json.dumps(rows, indent=1) + "\n")
    report(rows, _title(rows), args.markdown)


def _title(rows: list[dict]) -> str:
    if any("library" in r for r in rows):
        return "Models from outside timm"
    return "timm's architecture modules, the smallest model of each" if any("module" in r for r in rows) else "The public list"


if __name__ == "__main__":
    main()
