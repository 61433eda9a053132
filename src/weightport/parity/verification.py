"""Parity of the two twins on identical inputs, gated for CI.

Both twins run in eval mode on the same arrays (seeded random batches or preprocessed images);
every output element is compared. With `floor=True` the torch twin also runs in float64, which
measures each framework's own fp32 rounding error: a faithful conversion's cross-framework error
sits near that floor, a wrong one far above it.

The gate is relative to each output's scale: an output passes when its largest absolute error is
at most `tol` times the reference's largest magnitude. fp32 rounding is a fixed fraction of the
values computed, so the same tolerance means the same thing for logits of 1e-3 and of 1e3 (a
faithful ResNet-50 sits near 1.2e-6 at both, one conv weight off by 1 % near 1.1e-3). `atol`
adds a strictly absolute gate for whoever wants one.
"""
from __future__ import annotations

import copy
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..conversion import convert, convert_tensors
from ..errors import UserError
from ..formats import read_checkpoint
from ..formats.checkpoint import LazyTensor, paddle_array_tensor
from ..formats.inspection import non_finite_tensors
from ..models.pair import TwinPair, resolve
from ..models.weights import fill_lossless_drops, load_paddle, load_torch, randomize_torch
from .metrics import Metrics, flatten_outputs, share_of_limit

if TYPE_CHECKING:
    from .layerwise import LayerReport
    from .training import TrainingReport

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


@dataclass
class OutputResult:
    name: str
    shape: list[int]
    metrics: Metrics
    floor: dict[str, float] | None = None  # torch/paddle fp32 max error against torch fp64, and the ratio
    gate: Gate | None = None
    passed: bool = True
    reason: str = ""


@dataclass
class ModelResult:
    model: str
    weights: str  # where the weights came from
    inputs: str
    devices: dict[str, str]
    outputs: list[OutputResult]
    seconds: float
    non_finite_weights: dict[str, dict[str, int]] = field(default_factory=dict)
    conversion: dict[str, Any] | None = None
    layers: LayerReport | None = None  # per-module parity on the first batch, when asked for
    training: TrainingReport | None = None  # training parity on the first batch, when asked for

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs) and (self.training is None or self.training.passed)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["training"] = self.training.as_dict() if self.training is not None else None  # with its verdicts
        return {**data, "passed": self.passed}

    @property
    def worst(self) -> OutputResult:
        return max(self.outputs, key=lambda o: (not o.passed, np.nan_to_num(o.metrics.max_abs, nan=np.inf)))


@dataclass
class VerifyResult:
    tol: float
    atol: float | None
    models: list[ModelResult]

    @property
    def passed(self) -> bool:
        return all(m.passed for m in self.models)

    @property
    def rule(self) -> str:
        """The gate in words, as the reports state it."""
        rule = f"max abs error <= {self.tol:g} x the reference's largest magnitude"
        return rule + (f" and <= {self.atol:g}" if self.atol is not None else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "tol": self.tol,
            "atol": self.atol,
            "rule": self.rule,
            "models": [m.as_dict() for m in self.models],
        }


# --- running the twins ------------------------------------------------------------------------


def random_batch(batch_size: int, input_size: int, seed: int) -> np.ndarray:
    """One seeded NCHW float32 batch, the same array fed to both twins."""
    return np.random.default_rng(seed).standard_normal((batch_size, 3, input_size, input_size)).astype(np.float32)


def torch_forward(model, batch: np.ndarray, device: str = "cpu", dtype=None) -> list[tuple[str, np.ndarray]]:
    import torch

    x = torch.from_numpy(batch).to(device)
    if dtype is not None:
        x = x.to(dtype)
    with torch.no_grad():
        return [(n, t.detach().cpu().double().numpy()) for n, t in flatten_outputs(model(x))]


def paddle_forward(model, batch: np.ndarray) -> list[tuple[str, np.ndarray]]:
    from ..frameworks import quiet_paddle_import

    paddle = quiet_paddle_import()
    with paddle.no_grad():
        return [(n, t.numpy().astype(np.float64)) for n, t in flatten_outputs(model(paddle.to_tensor(batch)))]


def choose_devices(device: str) -> dict[str, str]:
    """Where each framework runs: its GPU when it has one (auto/gpu), else the CPU."""
    if device not in ("auto", "cpu", "gpu"):
        raise UserError(f"--device must be auto, cpu or gpu, not {device!r}")
    if device == "cpu":
        return {"torch": "cpu", "paddle": "cpu"}
    os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")  # TF32 off in both frameworks
    import torch

    from ..frameworks import quiet_paddle_import

    paddle = quiet_paddle_import()
    devices = {
        "torch": "cuda" if torch.cuda.is_available() else "cpu",
        "paddle": "gpu" if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0 else "cpu",
    }
    if device == "gpu" and set(devices.values()) == {"cpu"}:
        raise UserError("--device gpu: neither torch nor paddle sees a GPU here")
    if devices["torch"] == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return devices


# --- weights ----------------------------------------------------------------------------------


def _prepare_twins(pair: TwinPair, torch_ckpt, paddle_ckpt, key, seed, model_kwargs, keep: str | None):
    """Build both twins with the weights to check; returns (torch_model, paddle_model, weights, summary, non_finite)."""
    summary = None
    if torch_ckpt is None and paddle_ckpt is None:
        torch_model = pair.create_to_overwrite("torch", **model_kwargs)
        paddle_model = pair.create_to_overwrite("paddle", **model_kwargs)
        # Built-in default: random non-trivial weights, saved by torch, converted through the
        # real file path, and read back by Paddle's own loader.
        randomize_torch(torch_model, seed)
        fill_lossless_drops(torch_model, pair.table())
        folder = keep or tempfile.mkdtemp(prefix="weightport-verify-")
        Path(folder).mkdir(parents=True, exist_ok=True)
        import torch

        torch_file = os.path.join(folder, f"{pair.name}.pth")
        paddle_file = os.path.join(folder, f"{pair.name}.pdparams")
        torch.save(torch_model.state_dict(), torch_file)
        summary = convert(pair, torch_file, paddle_file, force=True, model_kwargs=model_kwargs)
        load_paddle(paddle_model, _paddle_load(paddle_file))
        weights = f"random (seed {seed}) via {torch_file} -> {paddle_file}"
        non_finite = {}
        if keep is None:
            for f in (torch_file, paddle_file):
                os.unlink(f)
            os.rmdir(folder)
        return torch_model, paddle_model, weights, summary, non_finite
    torch_tensors = read_checkpoint(torch_ckpt, key).tensors if torch_ckpt else None
    paddle_tensors = read_checkpoint(paddle_ckpt).tensors if paddle_ckpt else None
    if model_kwargs:  # twins of another configuration: bring each file to it through the table
        torch_tensors = torch_tensors and _reconfigured(pair, torch_tensors, "torch", model_kwargs)
        paddle_tensors = paddle_tensors and _reconfigured(pair, paddle_tensors, "paddle", model_kwargs)
    if paddle_tensors is None:
        paddle_tensors, summary = convert_tensors(pair, torch_tensors, "paddle", model_kwargs=model_kwargs)
    if torch_tensors is None:
        torch_tensors, summary = convert_tensors(pair, paddle_tensors, "torch", model_kwargs=model_kwargs)
    # The conversion's plan says which twins fit the files (a fine-tuned head's class count, read from
    # its shapes); with both files given, planning one of them tells, without reading any weights.
    model_kwargs = (summary or convert_tensors(pair, torch_tensors, "paddle", model_kwargs=model_kwargs)[1]).model_kwargs
    torch_model = pair.create_to_overwrite("torch", **model_kwargs)
    paddle_model = pair.create_to_overwrite("paddle", **model_kwargs)
    load_torch(torch_model, torch_tensors)
    load_paddle(paddle_model, paddle_tensors)
    weights = " + ".join(str(p) for p in (torch_ckpt, paddle_ckpt) if p)
    return torch_model, paddle_model, weights, summary, non_finite_tensors(torch_tensors)


def _reconfigured(pair: TwinPair, tensors: dict[str, LazyTensor], side: str, model_kwargs) -> dict[str, LazyTensor]:
    """`side`'s tensors resized by the table's resize rules for twins built with `model_kwargs`
    (there and back through the converter; a no-op for tensors that already fit)."""
    other_side = "paddle" if side == "torch" else "torch"
    there, _ = convert_tensors(pair, tensors, other_side, resize=True, model_kwargs=model_kwargs)
    back, _ = convert_tensors(pair, there, side, model_kwargs=model_kwargs)
    return back


def _paddle_load(path: str) -> dict[str, LazyTensor]:
    """A .pdparams read by Paddle's own loader, to prove Paddle accepts the file."""
    from ..frameworks import quiet_paddle_import

    arrays = quiet_paddle_import().load(path, return_numpy=True)
    return {k: paddle_array_tensor(v) for k, v in arrays.items()}


# --- the check --------------------------------------------------------------------------------


def _batches(pair: TwinPair, batch_size, batches, seed, input_size, images) -> Iterator[np.ndarray]:
    if images:
        from .images import load_image_batch

        everything = load_image_batch(images, pair.preprocessing, input_size, batch_size * batches)
        yield from (everything[i : i + batch_size] for i in range(0, len(everything), batch_size))
        return
    for i in range(batches):
        yield random_batch(batch_size, input_size, seed + i)


def verify_model(
    model: TwinPair | str | Path,
    *,
    torch_ckpt: str | None = None,
    paddle_ckpt: str | None = None,
    key: str | None = None,
    batch_size: int = 2,
    batches: int = 1,
    seed: int = 0,
    input_size: int | None = None,
    images: str | None = None,
    device: str = "auto",
    floor: bool = False,
    tol: float = DEFAULT_TOL,
    atol: float | None = None,
    model_kwargs: dict[str, Any] | None = None,
    keep: str | None = None,
    layers: bool = False,
    train: bool = False,
    train_tol: float | None = None,
) -> ModelResult:
    """Check one model (anything `pair.resolve` takes); see `verify`."""
    started = time.perf_counter()
    pair = resolve(model)
    model_kwargs = model_kwargs or {}
    if batch_size < 1 or batches < 1 or (input_size is not None and input_size < 1):
        raise UserError("--batch-size, --batches and --input-size must be at least 1")
    if train and batch_size < 2:
        raise UserError("--train needs at least 2 images per batch (--batch-size 2), so that batch statistics mean something")
    devices = choose_devices(device)
    torch_model, paddle_model, weights, summary, non_finite = _prepare_twins(
        pair, torch_ckpt, paddle_ckpt, key, seed, model_kwargs, keep
    )
    size = input_size or pair.input_size_for(model_kwargs)
    torch_model.to(devices["torch"])
    _paddle_device(devices["paddle"])
    model64 = copy.deepcopy(torch_model).double() if floor else None
    collected: dict[str, list[list[np.ndarray]]] = {}
    first_batch = None
    for batch in _batches(pair, batch_size, batches, seed, size, images):
        first_batch = batch if first_batch is None else first_batch
        runs = _run_once(pair.name, size, torch_model, paddle_model, model64, batch, devices)
        for out_name, arrays in runs.items():
            collected.setdefault(out_name, []).append(arrays)
    outputs = []
    for out_name, per_batch in collected.items():
        ref, out = (np.concatenate([b[i] for b in per_batch]) for i in (0, 1))
        metrics = Metrics.compare(ref, out)
        result = OutputResult(out_name, list(ref.shape), metrics)
        if floor:
            ref64 = np.concatenate([b[2] for b in per_batch])
            torch_floor = float(np.abs(ref - ref64).max())
            paddle_floor = float(np.abs(out - ref64).max())
            result.floor = {
                "torch_fp32_vs_fp64": torch_floor,
                "paddle_fp32_vs_fp64": paddle_floor,
                "ratio": metrics.max_abs / torch_floor if torch_floor > 0 else float("inf") if metrics.max_abs else 1.0,
            }
        result.gate = decide(metrics, tol, atol)
        result.passed = result.gate.passed
        result.reason = "" if result.passed else _failure(metrics, result.gate)
        outputs.append(result)
    if images:
        inputs = f"images from {images}"
    else:
        inputs = f"{batches} x random batch of {batch_size}x3x{size}x{size} (seed {seed})"
    layer_report = None
    if layers:
        from .layerwise import compare_layers

        layer_report = compare_layers(
            pair.table(), torch_model, paddle_model, first_batch, torch_device=devices["torch"],
            model64=model64, inputs=f"the first batch, {list(first_batch.shape)}",
        )
    training = None
    if train:
        from .training import DEFAULT_TRAIN_TOL, check_training

        training = check_training(pair.table(), torch_model, paddle_model, first_batch, seed=seed,
                                  torch_device=devices["torch"], tol=train_tol or DEFAULT_TRAIN_TOL, layers=layers)
        training.differs_by_design = pair.training_differs
    return ModelResult(
        model=pair.name,
        weights=weights,
        inputs=inputs,
        devices=devices,
        outputs=outputs,
        seconds=time.perf_counter() - started,
        non_finite_weights=non_finite,
        conversion=summary.as_dict() if summary else None,
        layers=layer_report,
        training=training,
    )


def _paddle_device(device: str) -> None:
    from ..frameworks import quiet_paddle_import

    quiet_paddle_import().set_device(device)


def _run_once(name, size, torch_model, paddle_model, model64, batch, devices) -> dict[str, list[np.ndarray]]:
    """Outputs of both twins on one batch (and of the fp64 torch twin when given), by output name."""
    floor = model64 is not None
    try:
        ref = torch_forward(torch_model, batch, devices["torch"])
        out = paddle_forward(paddle_model, batch)
        if floor:
            import torch

            ref64 = torch_forward(model64, batch, devices["torch"], torch.float64)
    except (RuntimeError, ValueError, AssertionError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{name} cannot run on a {size}x{size} input: {first[:200]}") from None
    if [n for n, _ in ref] != [n for n, _ in out]:
        raise UserError(f"{name}: the twins return different outputs ({len(ref)} vs {len(out)} tensors)")
    return {
        n: [r, o] + ([r64] if floor else [])
        for (n, r), (_, o), (_, r64) in zip(ref, out, ref64 if floor else ref)
    }


def decide(metrics: Metrics, tol: float, atol: float | None = None) -> Gate:
    """Apply the gate to one output: the rule that failed, else the one closest to its limit."""
    gates = [Gate.of(RELATIVE, metrics.max_abs, tol * metrics.ref_max)]
    if atol is not None:
        gates.append(Gate.of(ABSOLUTE, metrics.max_abs, atol))
    return max(gates, key=lambda g: np.inf if np.isnan(g.ratio) else g.ratio)


def _failure(metrics: Metrics, gate: Gate) -> str:
    if np.isnan(metrics.max_abs):
        return "NaN in the outputs: they cannot be shown to agree"
    if gate.rule == RELATIVE:
        return f"max abs error {metrics.max_abs:.3g} > tol x largest |reference| = {gate.limit:.3g} ({gate.ratio:.3g}x)"
    return f"max abs error {metrics.max_abs:.3g} > atol {gate.limit:g} ({gate.ratio:.3g}x)"


def verify(
    models: TwinPair | str | Path | Iterable[TwinPair | str | Path],
    *,
    tol: float = DEFAULT_TOL,
    atol: float | None = None,
    **options: Any,
) -> VerifyResult:
    """Run both twins of each model (anything `pair.resolve` takes, or a list of them) on identical
    batches and gate each output's error: at most `tol` times the reference's largest magnitude
    (and, when given, at most `atol`).

    Options: torch_ckpt, paddle_ckpt, key (checkpoint files; only with one model), batch_size,
    batches, seed, input_size, images, device ("auto", "cpu", "gpu"), floor, model_kwargs, keep, layers
    (per-module parity on the first batch, naming the first module whose error jumps), train and
    train_tol (training parity on the first batch: loss, gradients, running statistics, optimizer
    steps; see `weightport.parity.training`).
    """
    models = [models] if isinstance(models, (TwinPair, str, os.PathLike)) else list(models)
    if not models:
        raise UserError("name at least one model (or --all)")
    if len(models) > 1 and (options.get("torch_ckpt") or options.get("paddle_ckpt")):
        raise UserError("--torch/--paddle checkpoints go with exactly one model")
    pairs = [resolve(model) for model in models]
    train_tol = options.get("train_tol")
    if not tol > 0 or (atol is not None and not atol > 0) or (train_tol is not None and not train_tol > 0):
        raise UserError("--tol, --atol and --train-tol must be positive")
    return VerifyResult(tol, atol, [verify_model(pair, tol=tol, atol=atol, **options) for pair in pairs])
