"""Training parity: the two twins in train mode on one batch, compared through the mapping table.

Eval-mode logits can agree while fine-tuning goes wrong: a BatchNorm built with torch's momentum
value (Paddle's is 1 - torch's), a branch whose gradient is cut, a parameter the twin creates but
never uses, an optimizer convention that differs. So both twins run one training-mode forward on
the same batch with the same loss, and this module compares

- the loss;
- every parameter's gradient, through the table (renames and transposes), per tensor; a parameter
  with a gradient on one side only, or trainable on one side only, fails by name;
- the running statistics the forward updated (torch's running variance re-expressed with the biased
  batch variance Paddle uses, the one convention the frameworks do not share);
- the parameters after two steps of SGD with momentum and of AdamW, same hyper-parameters, each
  framework's weight decay convention matched, both taken from the same gradients (torch's,
  carried through the table): the gradients' own differences are compared above, and Adam's first
  step is about lr x sign(g), which would turn fp32 noise in near-zero gradients into 2 x lr.

Dropout, drop-path and their kin are switched off on both sides (listed in the report); random ops in
the modules' own code (drop-connect's `torch.rand`, stochastic depth's `bernoulli_`, functional
dropout) draw the same numbers on both sides from one seeded stream (random_draws.py; the report
counts them), so their code paths are compared, not skipped. Both twins
run in float64: in float32, a ReLU or max-pool whose input sits within rounding of its kink passes
the gradient on one side and blocks it on the other, a discrete difference of a whole element's
gradient (measured: 40x torch's own fp32-vs-fp64 error in a BatchNorm bias of botnet50_s1), which no
tolerance can tell from a fault; in float64 faithful twins agree to 4e-8 of each tensor's largest
gradient or better (docs/training.md). A gradient below GRADIENT_ZERO x the model's largest counts as
zero: such tensors (a bias in front of a training-mode BatchNorm, a key bias under softmax) are
rounding noise around an exact zero, and their error is gated against that scale instead.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..conversion import transposed
from ..errors import UserError
from ..frameworks import named_modules, quiet_paddle_import
from ..tables.rules import Step, Table
from .inputs import Batch, paddle_inputs, torch_inputs
from .metrics import flatten_outputs, share_of_limit
from .random_draws import shared_draws

# Largest error allowed, as a fraction of each tensor's largest value (float64 twins; faithful ones
# of every registered model stay below 1e-6, docs/training.md and docs/torchvision.md).
DEFAULT_TRAIN_TOL = 1e-5
# Gradients below this fraction of the model's largest are zero up to rounding (see above).
GRADIENT_ZERO = 1e-6
# Parameter updates are compared with the tolerance on the update, plus this many units in the last
# place of the parameter: the rounding of the step itself.
STEP_ULPS = 4

OPTIMIZERS = {
    # Two steps from the same gradients: the second exercises momentum and Adam's moment estimates.
    "sgd": {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "steps": 2},
    "adamw": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.05, "steps": 2},
}

# Modules whose train-mode output is random: switched off on both sides. Matched on the class
# names of the module's type and its bases (torch's Dropout*, timm's DropPath and DropBlock2d,
# torchvision's StochasticDepth, Paddle's Dropout*, the twins' own DropPath and their classes, numbered when
# instances differ: StochasticDepth2).
STOCHASTIC = re.compile(r"(\w*Dropout\w*|\w*DropPath\w*|DropBlock\w*|StochasticDepth\w*)")
_RATES = ("p", "drop_prob", "drop_rate")


@dataclass
class TensorCheck:
    """One tensor compared between the twins: gradients, running statistics or updated parameters."""

    torch: str  # torch's key
    paddle: str  # Paddle's key
    shape: list[int]
    max_abs: float
    ref_max: float  # torch's largest magnitude
    max_rel: float
    limit: float  # the largest error the gate allows for this tensor
    ratio: float  # max_abs / limit: under 1 passes
    convention: float | None = None  # running variance: how far torch's own value is from Paddle's convention (max rel)

    @property
    def passed(self) -> bool:
        return self.ratio <= 1.0  # False for NaN


@dataclass
class StepCheck:
    optimizer: str
    hyper_parameters: dict[str, Any]
    paddle_optimizer: str
    tensors: list[TensorCheck]

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.tensors)


@dataclass
class TrainingReport:
    loss: str  # what loss both sides computed
    torch_loss: float
    paddle_loss: float
    loss_rel: float
    switched_off: dict[str, list[str]]  # framework -> "path (Class, rate)" of the stochastic modules made deterministic
    tol: float
    # framework -> random function -> calls that drew from the stream both sides share (random_draws.py)
    random_draws: dict[str, dict[str, int]] = field(default_factory=dict)
    gradients: list[TensorCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # parameters with a gradient on one side only, and the like
    unused: list[str] = field(default_factory=list)  # trainable on both sides, a gradient on neither
    running_stats: list[TensorCheck] = field(default_factory=list)
    steps: list[StepCheck] = field(default_factory=list)
    layers: Any = None  # LayerReport of the modules' output gradients, when asked for
    differs_by_design: str = ""  # the registry's word on why these twins cannot train alike, if they cannot

    @property
    def loss_passed(self) -> bool:
        return self.loss_rel <= self.tol

    @property
    def passed(self) -> bool:
        return (self.loss_passed and not self.problems and all(t.passed for t in self.gradients)
                and all(t.passed for t in self.running_stats) and all(s.passed for s in self.steps))

    def failures(self) -> list[str]:
        """Each fault in one line, the worst first within each kind."""
        lines = [] if self.loss_passed else [f"loss: relative error {self.loss_rel:.3g} > {self.tol:g}"]
        lines += self.problems
        for what, checks in (("gradient", self.gradients), ("running statistic", self.running_stats),
                             *((f"after {s.optimizer}", s.tensors) for s in self.steps)):
            for check in self.worst([c for c in checks if not c.passed], count=None):
                lines.append(f"{what} {check.torch}: max abs error {check.max_abs:.3g} "
                             f"({check.max_rel:.3g} of its largest value; {check.ratio:.3g}x the limit)")
        return lines

    def worst(self, checks: list[TensorCheck], count: int | None = 5) -> list[TensorCheck]:
        """The checks that used most of their limit first (NaN first of all)."""
        return sorted(checks, key=lambda c: -np.nan_to_num(c.ratio, nan=np.inf))[:count]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(passed=self.passed, loss_passed=self.loss_passed, failures=self.failures())
        for name in ("gradients", "running_stats"):
            for item, check in zip(data[name], getattr(self, name)):
                item["passed"] = check.passed
        for item, step in zip(data["steps"], self.steps):
            item["passed"] = step.passed
            for entry, check in zip(item["tensors"], step.tensors):
                entry["passed"] = check.passed
        return data


# --- making both twins deterministic -----------------------------------------------------------


def switch_off_stochastic(model, framework: str) -> list[str]:
    """Put every dropout-like module in eval mode with its rate at 0 (code that reads the rate of
    a module in train mode, such as timm's attention passing `attn_drop.p` to sdpa, then sees 0).
    Returns those that would have been active."""
    active = []
    for path, module in named_modules(model, framework):
        if not any(STOCHASTIC.fullmatch(cls.__name__) for cls in type(module).__mro__):
            continue
        rates = {name: getattr(module, name) for name in _RATES if isinstance(getattr(module, name, None), (int, float))}
        if getattr(module, "mode", None) != "downscale_in_infer":  # that one scales by 1 - p in eval mode: keep p
            for name in rates:
                setattr(module, name, 0.0)
        module.eval()
        rate = max(rates.values(), default=None)
        if rate is None or rate > 0:
            active.append(f"{path or '(model)'} ({type(module).__name__}{'' if rate is None else f', {rate:g}'})")
    return active


# --- the loss ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loss:
    """The same scalar on both sides: cross-entropy against fixed labels for a classifier's logits,
    else the sum of each output times a fixed random cotangent."""

    labels: np.ndarray | None
    cotangents: list[np.ndarray] | None

    @classmethod
    def for_outputs(cls, outputs: list[tuple[str, np.ndarray]], seed: int) -> Loss:
        rng = np.random.default_rng(seed + 7919)
        if len(outputs) == 1 and outputs[0][1].ndim == 2 and outputs[0][1].shape[1] > 1:
            rows, classes = outputs[0][1].shape
            return cls(rng.integers(0, classes, rows).astype(np.int64), None)
        return cls(None, [rng.standard_normal(array.shape).astype(np.float32) for _, array in outputs])

    @property
    def description(self) -> str:
        if self.labels is not None:
            return f"cross-entropy against fixed labels {self.labels.tolist()}"
        return "sum of each output times a fixed random cotangent"

    def torch(self, output):
        import torch

        values = [v for _, v in flatten_outputs(output)]
        if self.labels is not None:
            return torch.nn.functional.cross_entropy(values[0], torch.from_numpy(self.labels).to(values[0].device))
        return sum((v * torch.from_numpy(c).to(v.device, v.dtype)).sum() for v, c in zip(values, self.cotangents))

    def paddle(self, output):
        paddle = quiet_paddle_import()
        values = [v for _, v in flatten_outputs(output)]
        if self.labels is not None:
            return paddle.nn.functional.cross_entropy(values[0], paddle.to_tensor(self.labels))
        return sum((v * paddle.to_tensor(c).astype(v.dtype)).sum() for v, c in zip(values, self.cotangents))


# --- one training forward and backward per side ----------------------------------------------------


@dataclass
class _TorchRun:
    loss: float
    objective: Loss
    gradients: dict[str, np.ndarray | None]  # trainable parameter -> gradient (None: it got none)
    state_before: dict[str, np.ndarray]
    state_after: dict[str, np.ndarray]
    batch_counts: dict[str, int]  # BatchNorm path -> elements per channel of its last training input


def _torch_bn_counts(model) -> tuple[dict[str, int], list]:
    """Hooks recording how many elements per channel each training BatchNorm normalised."""
    import torch

    counts, handles = {}, []
    for path, module in model.named_modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            def record(_module, args, path=path):
                counts[path] = args[0].numel() // args[0].shape[1]
            handles.append(module.register_forward_pre_hook(record))
    return counts, handles


def _torch_arrays(values: dict) -> dict[str, np.ndarray]:
    """Copies (a float64 tensor's numpy view would follow the in-place updates to come)."""
    return {k: np.array(v.detach().cpu().numpy(), dtype=np.float64 if v.is_floating_point() else None) for k, v in values.items()}


def _torch_statistics(model) -> dict[str, np.ndarray]:
    """The state entries that are not trainable parameters (what a forward may update)."""
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    return _torch_arrays({k: v for k, v in model.state_dict().items() if k not in trainable})


def run_torch(model, batch: np.ndarray | Batch, loss: Loss | int, device: str, on_forward: Callable | None = None) -> _TorchRun:
    """One training forward and backward; `loss` is the Loss, or the seed of one fitted to the outputs."""

    state_before = _torch_statistics(model)
    counts, handles = _torch_bn_counts(model)
    model.zero_grad(set_to_none=True)
    try:
        args, kwargs = torch_inputs(batch, device)
        output = model(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    if on_forward is not None:
        on_forward()
    if not isinstance(loss, Loss):
        loss = Loss.for_outputs([(n, t.detach().cpu().numpy()) for n, t in flatten_outputs(output)], loss)
    value = loss.torch(output)
    value.backward()
    # Views of the float64 twin's gradients, not copies: a model's worth of memory saved.
    gradients = {k: None if p.grad is None else np.asarray(p.grad.detach().cpu().numpy(), dtype=np.float64)
                 for k, p in model.named_parameters() if p.requires_grad}
    return _TorchRun(float(value.detach()), loss, gradients, state_before, _torch_statistics(model), counts)


@dataclass
class _PaddleRun:
    loss: float
    gradients: dict[str, Any]  # trainable parameter -> its gradient tensor (None: it got none)
    state_before: dict[str, np.ndarray]
    state_after: dict[str, np.ndarray]


def _paddle_statistics(model) -> dict[str, np.ndarray]:
    """The state entries that are not trainable parameters (BatchNorm's _mean and _variance are
    parameters with stop_gradient: they are here)."""
    paddle = quiet_paddle_import()
    trainable = {k for k, p in model.named_parameters() if not p.stop_gradient}
    return {k: v.numpy().astype(np.float64) if paddle.is_floating_point(v) else v.numpy()
            for k, v in model.state_dict().items() if k not in trainable}


def run_paddle(model, batch: np.ndarray | Batch, loss: Loss, on_forward: Callable | None = None) -> _PaddleRun:
    quiet_paddle_import()
    state_before = _paddle_statistics(model)
    model.clear_gradients(set_to_zero=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "When training, we now always track global mean and variance."
        args, kwargs = paddle_inputs(batch)
        output = model(*args, **kwargs)
    if on_forward is not None:
        on_forward()
    value = loss.paddle(output)
    value.backward()
    gradients = {k: p.grad for k, p in model.named_parameters() if not p.stop_gradient}  # read one at a time
    return _PaddleRun(float(value.detach()), gradients, state_before, _paddle_statistics(model))


# --- comparing ------------------------------------------------------------------------------------


def _check(torch_key: str, paddle_key: str, reference: np.ndarray, output: np.ndarray, tol: float, *,
           scale: float = 0.0, slack: float = 0.0) -> TensorCheck:
    """`output` against `reference`: passes when the error is within tol x the reference's largest
    magnitude (or x `scale` when larger), plus `slack`."""
    if reference.shape != output.shape:
        raise UserError(f"{torch_key} -> {paddle_key}: shapes {list(reference.shape)} and {list(output.shape)} differ")
    max_abs, ref_max = _errors(reference, output)
    return _verdict(torch_key, paddle_key, list(reference.shape), max_abs, ref_max, tol, scale, slack)


def _errors(reference: np.ndarray, output: np.ndarray) -> tuple[float, float]:
    """Largest absolute difference (NaN if any) and the reference's largest magnitude, with one temporary."""
    diff = np.subtract(reference, output)
    np.abs(diff, out=diff)
    max_abs = float("nan") if np.isnan(diff).any() else float(diff.max(initial=0.0))
    return max_abs, _largest_magnitude(reference)


def _largest_magnitude(array: np.ndarray) -> float:
    """max |array| without an array of absolute values."""
    return max(float(array.max(initial=0.0)), -float(array.min(initial=0.0)))


def _verdict(torch_key: str, paddle_key: str, shape: list[int], max_abs: float, ref_max: float, tol: float,
             scale: float = 0.0, slack: float = 0.0) -> TensorCheck:
    limit = tol * max(ref_max, scale) + slack
    return TensorCheck(torch_key, paddle_key, shape, max_abs, ref_max, max_abs / ref_max if ref_max > 0 else max_abs, limit,
                       share_of_limit(max_abs, limit))


def _to_paddle_layout(array: np.ndarray, transpose: bool) -> np.ndarray:
    return transposed(array) if transpose else array


def _as_paddle_value(array: np.ndarray, step: Step) -> np.ndarray:
    """A torch value as the table gives it to Paddle: its part where split, transposed, and adjusted where it says so."""
    array = _to_paddle_layout(step.part_of(array), step.transpose)
    return step.adjust.apply(array, "paddle") if step.adjust is not None else array


def _as_paddle_gradient(array: np.ndarray, step: Step) -> np.ndarray:
    """A torch gradient in Paddle's terms: its part where split, transposed, and divided by the
    table's scale where Paddle's value is torch's x scale (+ offset)."""
    array = _to_paddle_layout(step.part_of(array), step.transpose)
    return array / step.adjust.scale if step.adjust is not None else array


def _compare_gradients(table: Table, torch_run: _TorchRun, paddle_run: _PaddleRun, tol: float,
                       report: TrainingReport) -> dict[str, list[Step]]:
    """Fill the report's gradient checks and problems; returns torch key -> the table's steps for it
    (several for a tensor the table splits)."""
    plan = table.plan(torch_run.gradients, "paddle")
    counterpart: dict[str, list[Step]] = {}
    for step in plan.steps:
        counterpart.setdefault(step.source, []).append(step)
    reached = set()
    zero = GRADIENT_ZERO * max((_largest_magnitude(g) for g in torch_run.gradients.values() if g is not None), default=0.0)
    for key in plan.dropped:
        report.problems.append(f"{key}: trainable in torch, dropped by the table (Paddle would not train it)")
    for key, gradient, step in ((k, g, step) for k, g in torch_run.gradients.items() for step in counterpart.get(k, ())):
        paddle_key = step.target
        reached.add(paddle_key)
        if paddle_key not in paddle_run.gradients:
            report.problems.append(f"{key}: trainable in torch, but Paddle's {paddle_key} is not a trainable parameter")
            continue
        paddle_gradient = paddle_run.gradients[paddle_key]
        if gradient is None and paddle_gradient is None:
            report.unused.append(key)
        elif gradient is None or paddle_gradient is None:
            side, other = ("paddle", "torch") if gradient is None else ("torch", "paddle")
            report.problems.append(f"{key}: gets a gradient in {side} only (none reaches {other}'s "
                                   f"{key if other == 'torch' else paddle_key})")
        else:
            report.gradients.append(_check(key, paddle_key, _as_paddle_gradient(gradient, step),
                                           np.asarray(paddle_gradient.numpy(), dtype=np.float64), tol, scale=zero))
    for paddle_key, gradient in paddle_run.gradients.items():
        if paddle_key not in reached:
            got = "and gets a gradient" if gradient is not None else "but gets no gradient: created, never used"
            report.problems.append(f"{paddle_key}: trainable in Paddle only, {got}")
    return counterpart


def _biased_running_var(before: np.ndarray, after: np.ndarray, momentum: float, count: int) -> np.ndarray:
    """torch's updated running variance as it would be had the batch variance been biased (Paddle's)."""
    kept = (1 - momentum) * before
    return kept + (after - kept) * (count - 1) / count


def _torch_stats_in_paddle_convention(model, run: _TorchRun) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """torch's state after the forward, each training BatchNorm's running variance re-expressed; and
    for those, how far the two conventions are apart (max relative difference)."""
    import torch

    state, gaps = dict(run.state_after), {}
    for path, module in model.named_modules():
        if not isinstance(module, torch.nn.modules.batchnorm._BatchNorm) or path not in run.batch_counts:
            continue
        key = f"{path}.running_var" if path else "running_var"
        if key not in state or run.batch_counts[path] < 2:
            continue
        momentum = module.momentum
        if momentum is None:  # cumulative moving average: this update's weight
            momentum = 1.0 / float(run.state_after[f"{path}.num_batches_tracked" if path else "num_batches_tracked"])
        state[key] = _biased_running_var(run.state_before[key], run.state_after[key], momentum, run.batch_counts[path])
        scale = float(np.abs(run.state_after[key]).max(initial=0.0))
        gaps[key] = float(np.abs(state[key] - run.state_after[key]).max(initial=0.0)) / scale if scale else 0.0
    return state, gaps


def _compare_running_stats(table: Table, torch_model, torch_run: _TorchRun, paddle_run: _PaddleRun, tol: float,
                           report: TrainingReport) -> None:
    """Every non-trainable tensor that either side's forward changed, through the table."""
    state, gaps = _torch_stats_in_paddle_convention(torch_model, torch_run)
    torch_state = torch_model.state_dict()
    for into, folded in table.folds(torch_state, "torch").items():  # in Paddle, `into` carries what is folded into it
        if into in state:
            state[into] = state[into] + sum(rule.scale * torch_state[key].detach().cpu().double().numpy() for key, rule in folded)
    plan = table.plan(state, "paddle")
    changed_in_paddle = {k for k, v in paddle_run.state_after.items()
                         if k not in paddle_run.gradients and not np.array_equal(v, paddle_run.state_before[k])}
    seen = set()
    for step in plan.steps:
        key = step.source
        if key in torch_run.gradients or step.target not in paddle_run.state_after:
            continue
        changed = not np.array_equal(torch_run.state_after[key], torch_run.state_before[key])
        if not changed and step.target not in changed_in_paddle:
            continue
        seen.add(step.target)
        if not np.issubdtype(state[key].dtype, np.floating):
            continue
        check = _check(key, step.target, _as_paddle_value(state[key], step), paddle_run.state_after[step.target], tol)
        check.convention = gaps.get(key)
        report.running_stats.append(check)
    for key in sorted(changed_in_paddle - seen):
        report.problems.append(f"{key}: Paddle's forward updated it, torch has no statistic that maps to it")


# --- optimizer steps --------------------------------------------------------------------------------


def _torch_optimizer(name: str, parameters):
    import torch

    settings = {k: v for k, v in OPTIMIZERS[name].items() if k != "steps"}
    return torch.optim.SGD(parameters, **settings) if name == "sgd" else torch.optim.AdamW(parameters, **settings)


def _paddle_optimizer(name: str, parameters):
    """Paddle's optimizer with torch's hyper-parameters: Momentum with L2Decay adds wd x p to the
    gradient as torch's SGD does; AdamW decays the parameter by lr x wd, decoupled, as torch's does."""
    paddle = quiet_paddle_import()
    settings = OPTIMIZERS[name]
    if name == "sgd":
        return paddle.optimizer.Momentum(learning_rate=settings["lr"], momentum=settings["momentum"], parameters=parameters,
                                         weight_decay=paddle.regularizer.L2Decay(settings["weight_decay"]))
    beta1, beta2 = settings["betas"]
    return paddle.optimizer.AdamW(learning_rate=settings["lr"], beta1=beta1, beta2=beta2, epsilon=settings["eps"],
                                  parameters=parameters, weight_decay=settings["weight_decay"])


PADDLE_OPTIMIZERS = {"sgd": "paddle.optimizer.Momentum with L2Decay(weight_decay)", "adamw": "paddle.optimizer.AdamW"}


# Elements stepped at a time: optimizers of their own on copies, so memory holds a chunk's states.
STEP_CHUNK = 1 << 20


def _paddle_parameter_with_gradient(values: np.ndarray, gradient: np.ndarray):
    """A standalone Paddle parameter holding `values` whose gradient is exactly `gradient` (set by
    backpropagating through a product with it, Paddle's one public way to give a tensor a gradient)."""
    paddle = quiet_paddle_import()
    parameter = paddle.create_parameter(list(values.shape), dtype=str(values.dtype))
    parameter.set_value(values)
    (parameter * paddle.to_tensor(gradient)).sum().backward()
    return parameter


def _stepped(name: str, framework: str, values: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """`values` after optimizer `name`'s steps from `gradient` (both left as they are), in `framework`."""
    if framework == "torch":
        import torch

        parameter = torch.nn.Parameter(torch.from_numpy(np.array(values)))
        parameter.grad = torch.from_numpy(np.array(gradient))
        optimizer = _torch_optimizer(name, [parameter])
    else:
        parameter = _paddle_parameter_with_gradient(values, gradient)
        optimizer = _paddle_optimizer(name, [parameter])
    for _ in range(OPTIMIZERS[name]["steps"]):
        optimizer.step()
    return parameter.detach().numpy() if framework == "torch" else parameter.numpy()


def _aligned_chunks(torch_array: np.ndarray, paddle_array: np.ndarray, transpose: bool):
    """Matching pieces of a torch tensor (copied into Paddle's layout) and its Paddle counterpart,
    about STEP_CHUNK elements each, without a whole transposed copy."""
    if transpose:
        rows = max(1, STEP_CHUNK // max(1, paddle_array.shape[1]))
        for begin in range(0, paddle_array.shape[0], rows):
            yield np.ascontiguousarray(torch_array[:, begin : begin + rows].T), paddle_array[begin : begin + rows]
        return
    flat_torch, flat_paddle = torch_array.reshape(-1), paddle_array.reshape(-1)
    for begin in range(0, flat_paddle.size, STEP_CHUNK):
        yield flat_torch[begin : begin + STEP_CHUNK], flat_paddle[begin : begin + STEP_CHUNK]


def _compare_steps(torch_model, paddle_model, torch_run: _TorchRun, counterpart: dict[str, list[Step]], tol: float,
                   report: TrainingReport) -> None:
    """Each optimizer's steps in both frameworks: torch's from its own values and gradient, Paddle's
    from its values and torch's gradient as the table carries it; torch's update, in Paddle's terms,
    against Paddle's.

    SGD and AdamW update each element from its own value, gradient and state alone, so the steps are
    taken on copies, about STEP_CHUNK elements at a time, by optimizers of their own: memory holds a
    chunk's optimizer states, not a model's, and the twins are left as they were."""
    torch_params = dict(torch_model.named_parameters())
    paddle_params = dict(paddle_model.named_parameters())
    shared = [(k, step) for k, g in torch_run.gradients.items() if g is not None for step in counterpart.get(k, ())
              if step.target in paddle_params and paddle_params[step.target].grad is not None]
    checks: dict[str, list[TensorCheck]] = {name: [] for name in OPTIMIZERS}
    for key, step in shared:
        torch_values = step.part_of(torch_params[key].detach().cpu().numpy())
        paddle_values = np.asarray(paddle_params[step.target].numpy(), dtype=np.float64)
        scale = step.adjust.scale if step.adjust is not None else 1.0  # Paddle's value = torch's x scale (+ offset)
        errors: dict[str, list[tuple[float, float]]] = {name: [] for name in OPTIMIZERS}  # per chunk
        pieces = zip(_aligned_chunks(torch_values, paddle_values, step.transpose),
                     _aligned_chunks(step.part_of(torch_run.gradients[key]), paddle_values, step.transpose))
        for (torch_chunk, paddle_chunk), (gradient, _) in pieces:
            for name in OPTIMIZERS:
                reference = (_stepped(name, "torch", torch_chunk, gradient) - torch_chunk) * scale
                update = _stepped(name, "paddle", paddle_chunk, gradient / scale) - paddle_chunk
                errors[name].append(_errors(reference, update))
        # The tolerance applies to the update; a few ulps of the parameter are the step's own rounding.
        slack = STEP_ULPS * float(np.finfo(paddle_values.dtype).eps) * _largest_magnitude(paddle_values)
        for name, pieces_errors in errors.items():
            max_abs = max((e for e, _ in pieces_errors), key=lambda e: np.inf if np.isnan(e) else e)
            ref_max = max(r for _, r in pieces_errors)
            checks[name].append(_verdict(key, step.target, list(paddle_values.shape), max_abs, ref_max, tol, slack=slack))
    for name, settings in OPTIMIZERS.items():
        report.steps.append(StepCheck(name, {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
                                      PADDLE_OPTIMIZERS[name], checks[name]))


# --- the check ------------------------------------------------------------------------------------


def _paddle_to_float64(model) -> None:
    """Layer.to(dtype=) casts integer buffers too (a relative position index becomes float64 and can
    no longer index): those are put back as they were."""
    paddle = quiet_paddle_import()
    integers = [(layer, name, buffer.numpy()) for layer in model.sublayers(include_self=True)
                for name, buffer in layer._buffers.items() if buffer is not None and not paddle.is_floating_point(buffer)]
    model.to(dtype="float64")  # casts in place, the dtype of a tensor's storage with it
    for layer, name, values in integers:
        layer._buffers[name] = paddle.to_tensor(values)


def check_training(table: Table, torch_model, paddle_model, batch: np.ndarray | Batch, *, seed: int = 0,
                   torch_device: str = "cpu", tol: float = DEFAULT_TRAIN_TOL, layers: bool = False) -> TrainingReport:
    """Both twins in train mode and float64 on `batch` (of at least 2 images, as `verify_model`
    checks): loss, gradients, running statistics, optimizer steps.

    The twins are left in float64 and train mode with their stochastic layers off and their running
    statistics updated once; their parameters are as they came."""
    torch_model.double().train()
    try:
        _paddle_to_float64(paddle_model)
    except RuntimeError as exc:  # Paddle's RNN layers, whose weights live in one packed buffer, refuse it (Paddle 3.3.1)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"the Paddle twin cannot be cast to float64, which the training check needs: {first[:200]}") from None
    paddle_model.train()
    switched_off = {"torch": switch_off_stochastic(torch_model, "torch"), "paddle": switch_off_stochastic(paddle_model, "paddle")}
    batch = batch.astype(np.float64)
    recorder = None
    if layers:
        from .gradients import GradientRecorder

        recorder = GradientRecorder(table, torch_model, paddle_model)
    with shared_draws("torch", seed) as torch_draws:
        torch_run = run_torch(torch_model, batch, seed, torch_device, on_forward=recorder and recorder.torch_forward_done)
    try:
        with shared_draws("paddle", seed) as paddle_draws:
            paddle_run = run_paddle(paddle_model, batch, torch_run.objective, on_forward=recorder and recorder.paddle_forward_done)
    except (RuntimeError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"the Paddle twin cannot train in float64, which the training check needs: {first[:200]}") from None
    loss_rel = abs(torch_run.loss - paddle_run.loss) / max(abs(torch_run.loss), np.finfo(np.float64).tiny)
    report = TrainingReport(loss=torch_run.objective.description, torch_loss=torch_run.loss, paddle_loss=paddle_run.loss,
                            loss_rel=loss_rel, switched_off=switched_off, tol=tol,
                            random_draws={"torch": dict(torch_draws), "paddle": dict(paddle_draws)})
    if sum(torch_draws.values()) != sum(paddle_draws.values()):
        report.problems.append(f"the twins drew random numbers differently: torch {dict(torch_draws)}, paddle {dict(paddle_draws)}")
    counterpart = _compare_gradients(table, torch_run, paddle_run, tol, report)
    _compare_running_stats(table, torch_model, torch_run, paddle_run, tol, report)
    _compare_steps(torch_model, paddle_model, torch_run, counterpart, tol, report)
    if recorder is not None:
        shown = batch if isinstance(batch, Batch) else list(batch.shape)
        report.layers = recorder.report(f"output gradients on the first batch, {shown}, in backward order")
    return report
