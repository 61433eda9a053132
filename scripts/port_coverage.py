"""How much of timm `weightport port` handles: port, convert and verify each model, one process each.

    python scripts/port_coverage.py --public             # the public list (docs/port-coverage.md)
    python scripts/port_coverage.py --sweep              # the smallest model of every timm module
    python scripts/port_coverage.py resnet50 vit_tiny_patch16_224

Each model goes through `weightport port timm:NAME --out DIR --json` in a fresh process (with a
time limit), so one model's crash or memory cannot touch the next. The markdown table (pass rate,
errors, floor ratios, generated lines, time per model, failures grouped by cause) is printed and,
with --markdown, appended to a file; --json keeps the raw rows. With --peer, X2Paddle's
`pytorch2paddle` (the `peer` extra) runs on the same model in the same run.
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
from collections import Counter, defaultdict
from pathlib import Path

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


def port_one(name: str, folder: Path) -> dict:
    started = time.perf_counter()
    command = [sys.executable, "-m", "weightport", "port", f"timm:{name}", "--out", str(folder / name), "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIME_LIMIT, env=env)
    except subprocess.TimeoutExpired:
        return {"model": name, "status": "timeout", "cause": f"over {TIME_LIMIT} s", "seconds": TIME_LIMIT}
    seconds = round(time.perf_counter() - started, 1)
    row = {"model": name, "seconds": seconds, "exit": done.returncode}
    if done.returncode in (0, 1) and done.stdout.strip():
        report = json.loads(done.stdout)
        output = report["verify"]["models"][0]
        worst = max(output["outputs"], key=lambda o: o["gate"]["ratio"])
        metrics = worst["metrics"]
        row.update(
            status="pass" if done.returncode == 0 else "gate", lines=report["lines"], classes=report["classes"],
            parameters=report["parameters"], max_abs=metrics["max_abs"], rel=metrics["max_abs"] / max(metrics["ref_max"], 1e-30),
            floor=(worst.get("floor") or {}).get("ratio"), first_divergence=(output.get("layers") or {}).get("first_divergence"),
        )
        return row
    lines = [line for line in done.stderr.strip().splitlines() if line.startswith("Error:")] or done.stderr.strip().splitlines()[-1:]
    if done.returncode < 0:  # the kernel's out-of-memory killer sends SIGKILL
        lines = [f"killed by signal {-done.returncode}" + (" (out of memory on this machine)" if done.returncode == -9 else "")]
    row.update(status="cannot port" if done.returncode == 2 else "crash", cause=lines[0].removeprefix("Error: ") if lines else "")
    return row


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


def cause_of(row: dict) -> str:
    """A failure's cause with the model-specific parts blanked, to group failures."""
    cause = row.get("cause", "") or (f"gate: first diverging module {row.get('first_divergence')}" if row["status"] == "gate" else "")
    cause = re.sub(r"module '[^']*' \(([^)]*)\)", r"\1", cause)
    cause = re.sub(r"`[^`]*`", "", cause)
    return re.sub(r"\(called in [^)]*\)\)?", "", cause).strip(" ,:")


def _figure(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def markdown(rows: list[dict], title: str) -> str:
    passed = [r for r in rows if r["status"] == "pass"]
    out = [f"### {title}", "", f"{len(passed)} of {len(rows)} port and pass `verify` ({100 * len(passed) / max(len(rows), 1):.0f} %).", ""]
    header = "| model | result | max abs | rel | floor x | classes | lines | seconds |"
    if any("module" in r for r in rows):
        header = "| module " + header
    if any("x2paddle" in r for r in rows):
        header += " X2Paddle |"
    out += [header, "|" + "---|" * (header.count("|") - 1)]
    for r in rows:
        figures = [_figure(r.get("max_abs"), ".2e"), _figure(r.get("rel"), ".2e"), _figure(r.get("floor"), ".2f"),
                   str(r.get("classes", "")), str(r.get("lines", "")), str(r["seconds"])]
        result = r["status"] if r["status"] == "pass" else f"{r['status']}: {cause_of(r)}"
        cells = ([r["module"]] if "module" in r else []) + [r["model"], result]
        peer = [r["x2paddle"].replace("|", "/")] if "x2paddle" in r else []
        out.append("| " + " | ".join(cells + figures + peer) + " |")
    failures = Counter(cause_of(r) for r in rows if r["status"] != "pass")
    if failures:
        out += ["", "Failures by cause:", ""]
        by_cause = defaultdict(list)
        for r in rows:
            if r["status"] != "pass":
                by_cause[cause_of(r)].append(r["model"])
        out += [f"- {count} x {cause}: {', '.join(by_cause[cause])}" for cause, count in failures.most_common()]
    peers = [r for r in rows if r.get("x2paddle") is not None]
    if peers:
        correct = sum(r["x2paddle"].startswith("rel ") for r in peers)
        out += ["", f"X2Paddle 1.6 `pytorch2paddle` (trace) on the same models in the same run: {correct} of {len(peers)} give",
                "logits within 1e-4 of torch's (relative to the largest); the others:", ""]
        out += [f"- {r['model']}: {r['x2paddle']}" for r in peers if not r["x2paddle"].startswith("rel ")]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*")
    parser.add_argument("--public", action="store_true")
    parser.add_argument("--sweep", action="store_true")
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
    targets: list[tuple[str | None, str]] = [(None, m) for m in args.models]
    if args.public:
        targets += [(None, m) for m in PUBLIC]
    if args.sweep:
        targets += list(smallest_per_module(Path("build/timm-smallest-per-module.json")).items())
    rows = json.loads(args.json.read_text()) if args.resume and args.json and args.json.is_file() else []
    done = {r["model"] for r in rows}
    with tempfile.TemporaryDirectory(prefix="weightport-coverage-") as folder:
        for module, name in targets:
            if name in done:
                continue
            row = port_one(name, Path(folder))
            if module is not None:
                row["module"] = module
            if args.peer:
                row["x2paddle"] = x2paddle_one(name, Path(folder))
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1) + "\n")
    report(rows, "timm's architecture modules, the smallest model of each" if args.sweep else "The public list", args.markdown)


def report(rows: list[dict], title: str, path: Path | None) -> None:
    text = markdown(rows, title)
    print(text)
    if path:
        with path.open("a") as f:
            f.write("\n" + text)


def rerun(args) -> None:
    """Port the failed rows of an earlier run again (after a fix), keeping the rows that passed."""
    rows = json.loads(args.json.read_text())
    with tempfile.TemporaryDirectory(prefix="weightport-coverage-") as folder:
        for i, row in enumerate(rows):
            if row["status"] == "pass" or row["model"] in args.skip:
                continue
            fresh = port_one(row["model"], Path(folder))
            for kept in ("module", "x2paddle"):
                if kept in row:
                    fresh[kept] = row[kept]
            rows[i] = fresh
            print(json.dumps(fresh), file=sys.stderr, flush=True)
            args.json.write_text(json.dumps(rows, indent=1) + "\n")
    report(rows, _title(rows), args.markdown)


def _title(rows: list[dict]) -> str:
    return "timm's architecture modules, the smallest model of each" if any("module" in r for r in rows) else "The public list"


if __name__ == "__main__":
    main()
