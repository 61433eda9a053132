"""Parity of the two twins on identical inputs, gated for CI.

`verify_model` runs in named steps, each passing a small dataclass to the next:

    configure     VerifyOptions + pair   -> Setup    (twins' keyword arguments, input size, devices)
    weigh         Setup                  -> Twins    (both twins built, holding the weights to check)
    run           Twins, batches         -> Outputs  (every output of both, on the same arrays)
    judge         Outputs                -> [OutputResult] (metrics and the gate, per output)
    compare_layers / check_training (when asked): per-module parity, training parity

With checkpoints, each file is read once and converted at most once (the other twin's weights);
the twins' keyword arguments (a fine-tuned classifier's class count) are learned once. With
`floor=True` the torch twin also runs in float64, which measures each framework's own fp32
rounding error: a faithful conversion's cross-framework error sits near that floor, a wrong one far
above it. The gate is in `gate.py`.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..conversion import Summary, convert, convert_tensors, fitting_kwargs, resized_for
from ..errors import ConflictingArguments, InvalidArgument, UserError
from ..formats import read_checkpoint
from ..formats.checkpoint import LazyTensor, paddle_array_tensor
from ..formats.inspection import non_finite_tensors
from ..frameworks import quiet_paddle_import
from ..models import ported
from ..models.inputs import describe as inputs_in_words
from ..models.pair import TwinPair, resolve
from ..models.weights import fill_lossless_drops, load_paddle, load_torch, randomize_torch
from .gate import DEFAULT_TOL, Gate, decide, failure, rule_in_words
from .inputs import Batch, batches, spec_batches
from .metrics import Metrics
from .running import choose_devices, paddle_forward, torch_forward, use_paddle_device
from .training import DEFAULT_TRAIN_TOL

if TYPE_CHECKING:
    from .layerwise import LayerReport
    from .training import TrainingReport


@dataclass(frozen=True)
class VerifyOptions:
    """How to verify: the weights, the inputs, where to run, the gates and the extra checks.

    Without checkpoints each model gets deterministic non-trivial random weights that go through
    the real converter. `input_size` is the inputs' height and width (the model's own by default);
    twins whose weights depend on it are built for it. `layers` adds per-module parity on the first
    batch; `train` training parity on the first batch (at least 2 images per batch)."""

    torch_ckpt: str | os.PathLike | None = None
    paddle_ckpt: str | os.PathLike | None = None
    key: str | None = None  # which state dict of the torch checkpoint
    batch_size: int = 2
    batches: int = 1
    seed: int = 0
    input_size: int | None = None
    images: str | os.PathLike | None = None  # a folder of images, fed instead of random batches
    device: str = "auto"  # auto, cpu or gpu
    floor: bool = False
    tol: float = DEFAULT_TOL
    atol: float | None = None
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    keep: str | os.PathLike | None = None  # keep the random-weight run's checkpoints in this folder
    layers: bool = False
    train: bool = False
    train_tol: float = DEFAULT_TRAIN_TOL

    def __post_init__(self):
        for name in ("batch_size", "batches", "input_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InvalidArgument(name, value, "must be a whole number of at least 1")
        for name in ("tol", "atol", "train_tol"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InvalidArgument(name, value, "must be positive")
        if self.train and self.batch_size < 2:
            raise InvalidArgument("batch_size", self.batch_size,
                                  "training parity needs at least 2 images per batch, so that batch statistics mean something")

    @classmethod
    def of(cls, options: VerifyOptions | None = None, **changes: Any) -> VerifyOptions:
        """`options` (the defaults when None) with `changes`; an unknown name is refused by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InvalidArgument(unknown[0], changes[unknown[0]], f"not a verify option (the options: {', '.join(sorted(known))})")
        return dataclasses.replace(options or cls(), **changes)


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
    input_size: int  # the size the inputs were made at (see TwinPair.input_shape)
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
        return rule_in_words(self.tol, self.atol)

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "tol": self.tol, "atol": self.atol, "rule": self.rule,
                "models": [m.as_dict() for m in self.models]}


# --- the steps ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """What the twins are built with and run on."""

    pair: TwinPair
    options: VerifyOptions
    model_kwargs: dict[str, Any]
    input_size: int
    devices: dict[str, str]


@dataclass
class Twins:
    """Both twins, holding the weights to check, and where those came from."""

    torch: Any
    paddle: Any
    weights: str
    model_kwargs: dict[str, Any]
    conversion: Summary | None = None
    non_finite: dict[str, dict[str, int]] = field(default_factory=dict)
    torch64: Any = None  # the torch twin in float64, made by `run` when the floor is measured


@dataclass
class Outputs:
    """Every output of both twins over all batches, by output name: torch's, Paddle's, torch's in float64."""

    torch: dict[str, np.ndarray]
    paddle: dict[str, np.ndarray]
    torch64: dict[str, np.ndarray] | None
    first_batch: np.ndarray | Batch
    inputs: str


def configure(pair: TwinPair, options: VerifyOptions) -> Setup:
    """The twins' keyword arguments (built for the input size where their weights depend on it),
    the input size, and where each framework runs."""
    model_kwargs = pair.kwargs_for_input_size(options.input_size, options.model_kwargs)
    size = options.input_size or pair.input_size_for(model_kwargs)
    return Setup(pair, options, model_kwargs, size, choose_devices(options.device))


def weigh(setup: Setup) -> Twins:
    """Both twins built and loaded with the weights to check: random ones, or the checkpoints'."""
    options = setup.options
    if options.torch_ckpt is None and options.paddle_ckpt is None:
        return _random_twins(setup)
    return _checkpoint_twins(setup)


def _random_twins(setup: Setup) -> Twins:
    """Deterministic non-trivial random weights, saved by torch, converted through the real file
    path, and read back by Paddle's own loader."""
    import torch

    pair, options, kwargs = setup.pair, setup.options, setup.model_kwargs
    torch_model = pair.create_to_overwrite("torch", **kwargs)
    paddle_model = pair.create_to_overwrite("paddle", **kwargs)
    randomize_torch(torch_model, options.seed)
    fill_lossless_drops(torch_model, pair.table())
    folder = Path(options.keep or tempfile.mkdtemp(prefix="weightport-verify-"))
    folder.mkdir(parents=True, exist_ok=True)
    torch_file, paddle_file = folder / f"{pair.name}.pth", folder / f"{pair.name}.pdparams"
    torch.save(torch_model.state_dict(), torch_file)
    summary = convert(pair, torch_file, paddle_file, force=True, model_kwargs=kwargs)
    load_paddle(paddle_model, _paddle_load(paddle_file))
    if options.keep is None:
        for path in (torch_file, paddle_file):
            path.unlink()
        folder.rmdir()
    return Twins(torch_model, paddle_model, f"random (seed {options.seed}) via {torch_file} -> {paddle_file}", kwargs, summary)


def _checkpoint_twins(setup: Setup) -> Twins:
    """The checkpoints' weights: each file read once; a missing side converted once from the other;
    tensors sized by the input resized for twins of another input size."""
    pair, options, kwargs = setup.pair, setup.options, setup.model_kwargs
    resize = bool(kwargs)  # twins of another configuration than the files'
    torch_tensors = pair.own_keys(read_checkpoint(options.torch_ckpt, options.key).tensors) if options.torch_ckpt else None
    paddle_tensors = read_checkpoint(options.paddle_ckpt).tensors if options.paddle_ckpt else None
    summary = None
    if paddle_tensors is None:
        paddle_tensors, summary = convert_tensors(pair, torch_tensors, "paddle", resize=resize, model_kwargs=kwargs)
    elif torch_tensors is None:
        torch_tensors, summary = convert_tensors(pair, paddle_tensors, "torch", resize=resize, model_kwargs=kwargs)
    kwargs = summary.model_kwargs if summary is not None else fitting_kwargs(pair, torch_tensors, "torch", kwargs)
    if resize:  # the file given for a side is in its own configuration
        if options.torch_ckpt:
            torch_tensors = resized_for(pair, torch_tensors, "torch", kwargs)
        if options.paddle_ckpt:
            paddle_tensors = resized_for(pair, paddle_tensors, "paddle", kwargs)
    torch_model = pair.create_to_overwrite("torch", **kwargs)
    paddle_model = pair.create_to_overwrite("paddle", **kwargs)
    load_torch(torch_model, torch_tensors)
    load_paddle(paddle_model, paddle_tensors)
    weights = " + ".join(str(p) for p in (options.torch_ckpt, options.paddle_ckpt) if p)
    return Twins(torch_model, paddle_model, weights, kwargs, summary, non_finite_tensors(torch_tensors))


def _paddle_load(path: Path) -> dict[str, LazyTensor]:
    """A .pdparams read by Paddle's own loader, to prove Paddle accepts the file."""
    arrays = quiet_paddle_import().load(str(path), return_numpy=True)
    return {k: paddle_array_tensor(v) for k, v in arrays.items()}


def run(setup: Setup, twins: Twins) -> Outputs:
    """Both twins (and torch's in float64, for the floor) on the same batches, in eval mode."""
    options, devices, size = setup.options, setup.devices, setup.input_size
    twins.torch.to(devices["torch"])
    use_paddle_device(devices["paddle"])
    twins.torch64 = model64 = copy.deepcopy(twins.torch).double() if options.floor else None
    collected: dict[str, list[list[np.ndarray]]] = {}
    first_batch = None
    height, width = setup.pair.input_shape(size)
    shape = (height, width) if (height, width) != (size, size) else size
    specs = _called_otherwise(setup.pair)
    if specs is not None and options.images:
        raise UserError(f"{setup.pair.name} is called with {inputs_in_words(specs)}, not one image batch: "
                        "verify it on random inputs (without --images)")
    if specs is not None:
        feed = spec_batches(specs, options.batch_size, options.batches, options.seed, shape)
    else:
        feed = batches(options.batch_size, options.batches, options.seed, shape, options.images, setup.pair.preprocessing)
    for batch in feed:
        first_batch = batch if first_batch is None else first_batch
        for name, arrays in _run_once(setup, twins, model64, batch).items():
            collected.setdefault(name, []).append(arrays)
    joined = [{name: np.concatenate([np.atleast_1d(b[i]) for b in per_batch]) for name, per_batch in collected.items()}
              for i in range(3 if options.floor else 2)]
    if options.images:
        inputs = f"images from {options.images}"
    elif specs is not None:
        inputs = f"{options.batches} x random {inputs_in_words(specs, shape, options.batch_size)} (seed {options.seed})"
    else:
        inputs = f"{options.batches} x random batch of {options.batch_size}x3x{height}x{width} (seed {options.seed})"
    return Outputs(joined[0], joined[1], joined[2] if options.floor else None, first_batch, inputs)


def _run_once(setup: Setup, twins: Twins, model64, batch: np.ndarray | Batch) -> dict[str, list[np.ndarray]]:
    """Outputs of both twins on one batch (and of the fp64 torch twin when given), by output name."""
    name, device = setup.pair.name, setup.devices["torch"]
    try:
        ref = torch_forward(twins.torch, batch, device)
        out = paddle_forward(twins.paddle, batch)
        if model64 is not None:
            import torch

            ref64 = torch_forward(model64, batch, device, torch.float64)
    except UserError:
        raise
    except Exception as exc:  # a twin's own failure (a generated one's NameError too), in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        where = str(batch) if isinstance(batch, Batch) else f"a {batch.shape[2]}x{batch.shape[3]} input"
        raise UserError(f"{name} cannot run on {where}: "
                        f"{type(exc).__name__}: {first[:200]}") from None
    if [n for n, _ in ref] != [n for n, _ in out]:
        raise UserError(f"{name}: the twins return different outputs ({len(ref)} vs {len(out)} tensors)")
    return {n: [r, o] + ([r64] if model64 is not None else [])
            for (n, r), (_, o), (_, r64) in zip(ref, out, ref64 if model64 is not None else ref)}


def judge(outputs: Outputs, options: VerifyOptions) -> list[OutputResult]:
    """Every output compared element by element, against the floor when measured, and gated."""
    results = []
    for name, ref in outputs.torch.items():
        out = outputs.paddle[name]
        metrics = Metrics.compare(ref, out)
        result = OutputResult(name, list(ref.shape), metrics)
        if outputs.torch64 is not None:
            ref64 = outputs.torch64[name]
            torch_floor, paddle_floor = float(np.abs(ref - ref64).max()), float(np.abs(out - ref64).max())
            result.floor = {
                "torch_fp32_vs_fp64": torch_floor,
                "paddle_fp32_vs_fp64": paddle_floor,
                "ratio": metrics.max_abs / torch_floor if torch_floor > 0 else float("inf") if metrics.max_abs else 1.0,
            }
        result.gate = decide(metrics, options.tol, options.atol)
        result.passed = result.gate.passed
        result.reason = "" if result.passed else failure(metrics, result.gate)
        results.append(result)
    return results


def verify_model(model: TwinPair | str | Path, options: VerifyOptions | None = None, **changes: Any) -> ModelResult:
    """Check one model (anything `models.pair.resolve` takes) as `options` (with `changes`) say."""
    started = time.perf_counter()
    options = VerifyOptions.of(options, **changes)
    setup = configure(resolve(model), options)
    if options.train and _ported_program(setup.pair):
        raise UserError(f"{setup.pair.name}: an inference program runs in eval mode only (its BatchNorm and dropout "
                        "are fixed for inference), so it has no training mode to compare; port the Layer it was "
                        "exported from (paddle:module:function) to check training")
    twins = weigh(setup)
    outputs = run(setup, twins)
    results = judge(outputs, options)
    layer_report = training = None
    if options.layers and _ported_program(setup.pair):
        from .variables import compare_variables

        layer_report = compare_variables(
            setup.pair.folder, ported.VARIABLES, twins.torch, twins.paddle, outputs.first_batch, model64=twins.torch64,
            inputs=f"the first batch, {list(outputs.first_batch.shape)}, every variable of the program",
        )
    elif options.layers:
        from .layerwise import compare_layers

        layer_report = compare_layers(
            setup.pair.table(), twins.torch, twins.paddle, outputs.first_batch, torch_device=setup.devices["torch"],
            model64=twins.torch64,
            inputs=f"the first batch, {_shown(outputs.first_batch)}",
        )
    if options.train:
        from .training import check_training

        training = check_training(setup.pair.table(), twins.torch, twins.paddle, outputs.first_batch, seed=options.seed,
                                  torch_device=setup.devices["torch"], tol=options.train_tol, layers=options.layers)
        training.differs_by_design = setup.pair.training_differs
    return ModelResult(
        model=setup.pair.name, weights=twins.weights, inputs=outputs.inputs, input_size=setup.input_size,
        devices=setup.devices, outputs=results,
        seconds=time.perf_counter() - started, non_finite_weights=twins.non_finite,
        conversion=twins.conversion.as_dict() if twins.conversion else None, layers=layer_report, training=training,
    )


def _shown(batch: np.ndarray | Batch) -> str:
    return str(batch) if isinstance(batch, Batch) else str(list(batch.shape))


def _called_otherwise(pair: TwinPair):
    """The inputs of a pair called otherwise than with one image batch by position, else None."""
    specs = pair.inputs
    if specs is None or (len(specs) == 1 and not specs[0].keyword and specs[0].floating and len(specs[0].shape) == 4):
        return None
    return specs


def _ported_program(pair: TwinPair) -> bool:
    """Whether the pair is a ported inference program: its Paddle twin is Paddle running the program."""
    return pair.folder is not None and pair.sources.get("paddle", "").startswith(ported.INFERENCE)


def verify(
    models: TwinPair | str | os.PathLike | Iterable[TwinPair | str | os.PathLike],
    options: VerifyOptions | None = None,
    **changes: Any,
) -> VerifyResult:
    """Run both twins of each model (anything `models.pair.resolve` takes, or a list of them) on
    identical batches and gate each output's error: at most `tol` times the reference's largest
    magnitude (and, when given, at most `atol`). `options` (a VerifyOptions) with `changes` (its
    fields by name, e.g. `tol=1e-5, train=True`) say how; see VerifyOptions."""
    options = VerifyOptions.of(options, **changes)
    models = [models] if isinstance(models, (TwinPair, str, os.PathLike)) else list(models)
    if not models:
        raise InvalidArgument("models", models, "name at least one model")
    if len(models) > 1 and (options.torch_ckpt or options.paddle_ckpt):
        raise ConflictingArguments(("models", "torch_ckpt", "paddle_ckpt"), "checkpoints go with exactly one model")
    pairs = [resolve(model) for model in models]
    return VerifyResult(options.tol, options.atol, [verify_model(pair, options) for pair in pairs])
