"""Per-layer parity: the first module where the two twins part ways.

Hooks on both twins record every module call on the same batch. Torch modules are matched to
Paddle layers through the model's mapping table: a module with weights corresponds to the layer
holding its renamed weights; a module without (activation, pooling, Identity) to the layer its
path renames to, or else to the same path. Parameter-less modules still unpaired, such as timm's
`act1`/`act2`/`act3` against Paddle's one `relu` called three times, are paired by call order within
the nearest ancestor both twins share (`_pair_in_call_order`). Torch's activations are written to a temporary
file as they are produced and read back one at a time while Paddle runs, so memory holds one pair of
activations and the summaries, never a whole model's activations.

Errors grow with depth, so a module is flagged when its own relative error is far above what its
inputs already carried, not when it crosses a fixed threshold.
"""
from __future__ import annotations

import os
import tempfile
import weakref
from collections import Counter, defaultdict
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..frameworks import named_modules
from ..tables.rules import Table
from .inputs import Batch, paddle_inputs, torch_inputs
from .metrics import Metrics, flatten_outputs

# A module's relative error must exceed what its inputs carried by this factor (faithful modules
# of the registered models, random weights, stay below 8x: a classifier behind global pooling) ...
JUMP_FACTOR = 30.0
# ... and this relative error, far above fp32 rounding (at most 4.6e-6 on the same models, fcvit_b24).
JUMP_MIN_REL = 1e-5

# The class both frameworks name their no-op module by (timm's drop_block, aa, drop_path when off).
PLACEHOLDER = "Identity"

COMPARED = "compared"
NOT_COMPARABLE = "not comparable"
TORCH_ONLY = "torch only"
PADDLE_ONLY = "paddle only"

_PATH_PROBE = "__weightport_output__"  # stands for "any key of this module" when renaming a path


@dataclass
class LayerResult:
    """One call of one module: its output on both sides, summarised."""

    torch: str | None  # module path in the torch twin ("" is the whole model)
    paddle: str | None  # layer path in the Paddle twin
    call: int  # 1 for the first call; shared or reused modules run several times
    kind: str  # class name(s)
    status: str  # compared, not comparable, torch only, paddle only
    reason: str = ""
    shape: list[int] | None = None
    metrics: Metrics | None = None
    carried: float | None = None  # largest relative error among the module's inputs
    floor: float | None = None  # torch fp32 vs fp64 max abs error of this output
    floor_ratio: float | None = None  # cross-framework max abs error / floor
    jump: bool = False
    paddle_call: int | None = None  # the Paddle layer's call; differs from `call` when paired by call order

    @property
    def name(self) -> str:
        path = self.torch if self.torch is not None else self.paddle
        label = path or "(model)"
        return label if self.call == 1 else f"{label} (call {self.call})"

    @property
    def paddle_name(self) -> str | None:
        """The Paddle layer and, after its first, which of its calls this row compares."""
        if self.paddle is None:
            return None
        label = self.paddle or "(model)"
        return label if self.paddle_call in (None, 1) else f"{label} (call {self.paddle_call})"

    @property
    def counterpart(self) -> str | None:
        """`paddle_name` where a torch module is paired with another path or another call than its own."""
        if self.torch is None or self.paddle is None or (self.paddle == self.torch and self.paddle_call in (None, self.call)):
            return None
        return self.paddle_name

    @property
    def rel(self) -> float | None:
        """Max abs error relative to the output's largest magnitude; NaN counts as infinite."""
        if self.metrics is None:
            return None
        return float("inf") if np.isnan(self.metrics.max_rel) else self.metrics.max_rel


@dataclass
class LayerReport:
    inputs: str
    layers: list[LayerResult] = field(default_factory=list)
    first_divergence: str | None = None  # name of the first flagged module
    placeholders: int = 0  # calls of one-sided Identity modules, which compute nothing: counted, not listed
    jump_factor: float = JUMP_FACTOR
    jump_min_rel: float = JUMP_MIN_REL

    @property
    def flagged(self) -> list[LayerResult]:
        return [layer for layer in self.layers if layer.jump]


# --- matching torch modules to Paddle layers ----------------------------------------------------


def _under(key: str, path: str) -> bool:
    return path == "" or key.startswith(path + ".")


def _key_sets(paths: list[str], keys: dict[str, tuple[str, ...]]) -> dict[str, frozenset[str]]:
    """For each module path, the Paddle names (values of `keys`) of the state keys under it."""
    return {path: frozenset(name for key, names in keys.items() if _under(key, path) for name in names) for path in paths}


def _depth(path: str) -> int:
    return path.count(".") + 1 if path else 0


def _renamed_path(table: Table, path: str) -> str | None:
    """The Paddle path the table's renames give torch module `path`, if they keep it a path."""
    probe = table.rename(f"{path}.{_PATH_PROBE}" if path else _PATH_PROBE, "paddle")
    if probe == _PATH_PROBE:
        return ""
    return probe[: -len(_PATH_PROBE) - 1] if probe.endswith("." + _PATH_PROBE) else None


def match_modules(table: Table, torch_model, paddle_model) -> dict[str, str]:
    """Torch module path -> Paddle layer path, for every module that has a counterpart."""
    torch_paths = [p for p, _ in torch_model.named_modules()]
    paddle_paths = [p for p, _ in paddle_model.named_sublayers(include_self=True)]
    torch_keys = {k: table.targets(k, "paddle") for k in torch_model.state_dict() if table.drop_rule(k, "torch") is None}
    paddle_keys = {k: (k,) for k in paddle_model.state_dict() if table.drop_rule(k, "paddle") is None}
    torch_sets = _key_sets(torch_paths, torch_keys)
    paddle_sets = _key_sets(paddle_paths, paddle_keys)
    paddle_by_set: dict[frozenset[str], list[str]] = defaultdict(list)
    for path, keys in paddle_sets.items():
        if keys:
            paddle_by_set[keys].append(path)
    torch_by_set: dict[frozenset[str], list[str]] = defaultdict(list)
    for path, keys in torch_sets.items():
        if keys:
            torch_by_set[keys].append(path)
    matches: dict[str, str] = {}
    # Modules with weights: the layer holding the same (renamed) weights. Wrappers around a single
    # module hold the same weights as it does; the table's renames, or else nesting depth, decide.
    for keys, torch_group in torch_by_set.items():
        paddle_group = paddle_by_set.get(keys, [])
        if len(torch_group) == len(paddle_group):
            matches.update(zip(sorted(torch_group, key=_depth), sorted(paddle_group, key=_depth)))
            continue
        for path in sorted(torch_group, key=_depth):
            renamed = _renamed_path(table, path)
            if renamed in paddle_group and renamed not in matches.values():
                matches[path] = renamed
    # Modules without weights: the parameter-free layer at the renamed path, or at the same path.
    used = set(matches.values())
    for path in torch_paths:
        if torch_sets[path] or path in matches:
            continue
        for candidate in (_renamed_path(table, path), path):
            if candidate in paddle_sets and not paddle_sets[candidate] and candidate not in used:
                matches[path] = candidate
                used.add(candidate)
                break
    return matches


# Kinds are class names compared case-folded: Paddle capitalises the dimension (MaxPool2d / MaxPool2D,
# AdaptiveAvgPool2d / AdaptiveAvgPool2D) and spells SiLU as Silu. Beyond case, one function under two
# names: Swish (timm's, Paddle's) and torch's SiLU are both x * sigmoid(x).
SAME_KIND = {"swish": "silu"}

_CallKey = tuple[str, int]  # (module path, call number)


def _kind_key(kind: str) -> str:
    folded = kind.casefold()
    return SAME_KIND.get(folded, folded)


def _parent(path: str) -> str | None:
    return None if path == "" else path.rpartition(".")[0]


def _matched_ancestor(path: str, matched: Container[str]) -> str | None:
    """The nearest ancestor of `path` that has a counterpart on the other side: the parent whose
    calls group `path`'s for pairing by call order (through wrappers one side has alone, such as
    timm's `global_pool` around its pooling)."""
    parent = _parent(path)
    while parent is not None and parent not in matched:
        parent = _parent(parent)
    return parent


def _stateless_paths(model, framework: str) -> set[str]:
    """Paths of the modules holding no parameters or buffers, their children's included."""
    return {path for path, module in named_modules(model, framework) if not list(module.parameters()) and not list(module.buffers())}


def _pair_in_call_order(torch_calls: list[tuple[_CallKey, str, list[int] | None]],
                        paddle_calls: list[tuple[_CallKey, str, list[int] | None]]) -> list[tuple[_CallKey, _CallKey]]:
    """Pair the parameter-less calls left unpaired within one call of the nearest ancestor both twins share.

    Each side's calls are (key, kind, output shape) in execution order. For each kind (class names
    compared through `_kind_key`), the n-th call on one side is paired with the n-th on the other
    when both sides make the same number of calls of that kind and every pair's output shapes agree;
    otherwise none of that kind is. Why this is sound: within one call of a matched ancestor the twins
    compute the same function, and a module without parameters is a pure function of its inputs, so
    two sides applying the same activation or pooling as often, in the same order, apply it at the
    same places, whatever the modules are called and however often one is reused. A kind one side
    lacks (timm's Identity placeholders), a count that differs (one side applies it functionally
    somewhere) or a shape that differs means the sequences do not line up; those calls stay one-sided
    rather than compare unrelated tensors. What order cannot see (each side wrapping other places of
    the same count) would show inputs as far apart as the outputs, which the jump rule does not flag."""
    sides: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for side, calls in enumerate((torch_calls, paddle_calls)):
        for key, kind, shape in calls:
            sides[_kind_key(kind)][side].append((key, shape))
    pairs = []
    for torch_side, paddle_side in sides.values():
        if len(torch_side) == len(paddle_side) and all(t[1] is not None and t[1] == p[1] for t, p in zip(torch_side, paddle_side)):
            pairs.extend((t[0], p[0]) for t, p in zip(torch_side, paddle_side))
    return pairs


# --- recording -----------------------------------------------------------------------------------


class _Spill:
    """Arrays appended to an anonymous temporary file as produced, read back one key at a time."""

    def __init__(self):
        self._file = tempfile.TemporaryFile(prefix="weightport-layers-")
        self._offsets: dict[Any, list[int]] = {}

    def put(self, key, arrays: list[np.ndarray | int]) -> list[int]:
        """Store `arrays` under `key`; an int stands for an array already stored at that offset."""
        self._file.seek(0, os.SEEK_END)
        offsets = []
        for array in arrays:
            if isinstance(array, int):
                offsets.append(array)
                continue
            offsets.append(self._file.tell())
            np.save(self._file, array, allow_pickle=False)
        self._offsets[key] = offsets
        return offsets

    def get(self, key) -> list[np.ndarray] | None:
        if key not in self._offsets:
            return None
        arrays = []
        for offset in self._offsets[key]:
            self._file.seek(offset)
            arrays.append(np.load(self._file, allow_pickle=False))
        return arrays

    def __enter__(self) -> _Spill:
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()


class _Calls:
    """Numbers the calls of each module and pairs each pre-hook with its post-hook."""

    def __init__(self):
        self._count: Counter[str] = Counter()
        self._open: dict[str, list[int]] = defaultdict(list)

    def enter(self, path: str) -> int:
        self._count[path] += 1
        self._open[path].append(self._count[path])
        return self._count[path]

    def leave(self, path: str) -> int:
        return self._open[path].pop()

    def current(self, path: str | None) -> int | None:
        """The innermost call of `path` still running, if any."""
        running = self._open.get(path)
        return running[-1] if running else None


def _describe(value) -> str:
    if value is None:
        return "None"
    if isinstance(value, (tuple, list, dict)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"a {type(value).__name__}"


def _torch_array(tensor) -> np.ndarray:
    import torch

    tensor = tensor.detach().cpu()
    if tensor.dtype in (torch.float16, torch.bfloat16):
        tensor = tensor.float()
    return tensor.numpy().copy()  # copied: an in-place module may overwrite the tensor later


def _paddle_tensors(values) -> list[np.ndarray]:
    from ..frameworks import quiet_paddle_import

    paddle = quiet_paddle_import()
    return [v.numpy() for _, v in flatten_outputs(values) if isinstance(v, paddle.Tensor)]


def hook_modules(model, framework: str, pre: Callable, post: Callable | None = None) -> list:
    """Forward hooks on every module of a torch model or Paddle layer: `pre(path, inputs)` on entry,
    `post(path, module, output)` on exit; both only observe. Returns the handles to remove."""
    register_post = "register_forward_hook" if framework == "torch" else "register_forward_post_hook"

    def observe_entry(path):
        def hook(_module, args):
            pre(path, args)  # returning None leaves the inputs as they are

        return hook

    def observe_exit(path):
        def hook(module, _args, output):
            post(path, module, output)

        return hook

    handles = []
    for path, module in named_modules(model, framework):
        handles.append(module.register_forward_pre_hook(observe_entry(path)))
        if post is not None:
            handles.append(getattr(module, register_post)(observe_exit(path)))
    return handles


@dataclass
class _TorchCall:
    kind: str
    shape: list[int] | None  # None when the output is not a single tensor
    description: str
    floor: float | None = None
    parent_call: int | None = None  # the call of the module's nearest matched ancestor it ran in


def _record_torch(model, batch: np.ndarray | Batch, device: str, spill: _Spill, floor_spill: _Spill | None = None,
                  dtype=None, inputs: bool = True,
                  matched: Container[str] = ()) -> tuple[list[tuple[str, int]], dict[tuple[str, int], _TorchCall]]:
    """Run the torch twin once, spilling each call's output (and inputs); returns the calls in order.

    An input that is an earlier call's output, unchanged since (same in-place version), is not
    written again. With `floor_spill` (the fp64 run's outputs), each call's fp32-vs-fp64 error is
    measured too."""
    import torch

    calls, order, info = _Calls(), [], {}
    produced: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()  # id -> output tensor
    stored: dict[int, tuple[int, int]] = {}  # id -> (in-place version when stored, offset)

    def offset_or_array(tensor):
        if produced.get(id(tensor)) is tensor and stored[id(tensor)][0] == tensor._version:
            return stored[id(tensor)][1]
        return _torch_array(tensor)

    def pre(path, args):
        call = calls.enter(path)
        if inputs:
            tensors = [v for _, v in flatten_outputs(args) if isinstance(v, torch.Tensor)]
            spill.put((path, call, "in"), [offset_or_array(t) for t in tensors])

    def post(path, module, output):
        key = (path, calls.leave(path))
        order.append(key)
        single = isinstance(output, torch.Tensor)
        record = _TorchCall(type(module).__name__, list(output.shape) if single else None, _describe(output),
                            parent_call=calls.current(_matched_ancestor(path, matched)))
        if single:
            array = _torch_array(output)
            produced[id(output)] = output
            stored[id(output)] = (output._version, spill.put(key, [array])[0])
            reference = floor_spill.get(key) if floor_spill is not None else None
            if reference is not None and reference[0].shape == array.shape:
                record.floor = float(np.abs(array.astype(np.float64) - reference[0]).max()) if array.size else 0.0
        info[key] = record

    handles = hook_modules(model, "torch", pre, post)
    try:
        args, kwargs = torch_inputs(batch, device, dtype)
        with torch.no_grad():
            model(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return order, info


def _inputs_error(reference: list[np.ndarray] | None, output: list[np.ndarray]) -> float | None:
    """Largest relative error among a call's tensor inputs, when both sides pass the same ones."""
    if not reference or len(reference) != len(output) or any(r.shape != o.shape for r, o in zip(reference, output)):
        return None
    worst = 0.0
    for r, o in zip(reference, output):
        if r.size == 0:
            continue
        # Metrics.compare's max_rel without its cosine and top-k, which inputs do not need.
        error = float(np.abs(r.astype(np.float64) - o).max())
        magnitude = float(np.abs(r).max())
        rel = error / magnitude if magnitude > 0 else error
        worst = max(worst, float("inf") if np.isnan(rel) else rel)
    return worst


def _layout_reason(torch_shape: list[int], paddle_shape: list[int]) -> str:
    shapes = f"shapes {torch_shape} (torch) vs {paddle_shape} (paddle)"
    if sorted(torch_shape) == sorted(paddle_shape):
        return f"{shapes}: the same axes in another order (a layout such as NCHW vs NHWC)"
    if int(np.prod(torch_shape)) == int(np.prod(paddle_shape)):
        return f"{shapes}: the same elements arranged differently (flattened or reshaped)"
    return shapes


def compare_layers(table: Table, torch_model, paddle_model, batch: np.ndarray | Batch, *, torch_device: str = "cpu",
                   model64=None, inputs: str = "") -> LayerReport:
    """Per-module parity of the two twins on `batch`, in torch's execution order, with jumps flagged.

    `model64`, the torch twin in float64, adds each output's fp32 noise floor."""
    matches = match_modules(table, torch_model, paddle_model)
    with _Spill() as spill, _Spill() as paddle_spill:
        if model64 is None:
            order, torch_calls = _record_torch(torch_model, batch, torch_device, spill, matched=matches)
        else:
            import torch

            with _Spill() as floor_spill:
                _record_torch(model64, batch, torch_device, floor_spill, dtype=torch.float64, inputs=False)
                order, torch_calls = _record_torch(torch_model, batch, torch_device, spill, floor_spill, matched=matches)
        results, paddle_extra, paddle_orderable = _compare_paddle(paddle_model, batch, spill, paddle_spill, matches, torch_calls)
        torch_orderable = _orderable_torch_calls(order, torch_calls, matches, _stateless_paths(torch_model, "torch"))
        by_order = _compare_in_call_order(torch_orderable, paddle_orderable, matches, torch_calls, spill, paddle_spill)
    results.update(by_order)
    paired = {(result.paddle, result.paddle_call) for result in by_order.values()}

    def paddle_only(after):
        return [result for result in paddle_extra.pop(after, []) if (result.paddle, result.paddle_call) not in paired]

    report = LayerReport(inputs=inputs)
    listed = [*paddle_only(None)]
    for key in order:
        listed.append(results.get(key) or _unpaired(key, torch_calls[key], matches))
        listed.extend(paddle_only(key))
    for layer in listed:
        if layer.status in (TORCH_ONLY, PADDLE_ONLY) and layer.kind == PLACEHOLDER:
            report.placeholders += 1
        else:
            report.layers.append(layer)
    _flag_jumps(report)
    return report


_Orderable = dict[tuple[str, int], list[tuple[_CallKey, str, list[int] | None]]]  # (ancestor, its call) -> calls


def _compare_paddle(paddle_model, batch: np.ndarray | Batch, spill: _Spill, paddle_spill: _Spill, matches: dict[str, str],
                    torch_calls: dict[_CallKey, _TorchCall]):
    """Run the Paddle twin, comparing each call with its torch counterpart as it happens.

    Returns the results by torch call; the Paddle calls without a counterpart, keyed by the torch
    call they followed (None: before any); and those of them that may still be paired by call order
    (parameter-less, an ancestor paired), their outputs and inputs kept in `paddle_spill`."""
    from ..frameworks import quiet_paddle_import

    paddle = quiet_paddle_import()
    partner = {p: t for t, p in matches.items()}
    orderable = {path for path in _stateless_paths(paddle_model, "paddle")
                 if path not in partner and _matched_ancestor(path, partner) is not None}
    results: dict[_CallKey, LayerResult] = {}
    extra: dict[_CallKey | None, list[LayerResult]] = defaultdict(list)
    unpaired: _Orderable = defaultdict(list)
    carried: dict[_CallKey, float | None] = {}
    calls, last_seen = _Calls(), [None]

    def pre(path, args):
        call = calls.enter(path)
        if path in partner:
            key = (partner[path], call)
            carried[key] = _inputs_error(spill.get((*key, "in")), _paddle_tensors(args))
        elif path in orderable:
            paddle_spill.put((path, call, "in"), _paddle_tensors(args))

    def post(path, layer, output):
        call = calls.leave(path)
        kind = type(layer).__name__
        key = (partner.get(path), call)
        record = torch_calls.get(key)
        single = isinstance(output, paddle.Tensor)
        if record is None:
            status, reason = ((NOT_COMPARABLE, f"torch's {key[0] or '(model)'} ran fewer times") if path in partner
                              else (PADDLE_ONLY, "no torch module corresponds to it"))
            extra[last_seen[0]].append(LayerResult(None, path, call, kind, status, reason, paddle_call=call))
            ancestor = _matched_ancestor(path, partner)
            if path in orderable and (parent_call := calls.current(ancestor)) is not None:
                unpaired[(ancestor, parent_call)].append(((path, call), kind, list(output.shape) if single else None))
                if single:
                    paddle_spill.put((path, call), [output.numpy()])
            return
        last_seen[0] = key
        results[key] = _pair_result(key, record, spill, paddle_path=path, paddle_call=call, paddle_kind=kind,
                                    output=output.numpy() if single else _describe(output), carried=carried.pop(key, None))

    handles = hook_modules(paddle_model, "paddle", pre, post)
    try:
        with paddle.no_grad():
            args, kwargs = paddle_inputs(batch)
            paddle_model(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return results, extra, unpaired


def _pair_result(key: _CallKey, record: _TorchCall, spill: _Spill, *, paddle_path: str, paddle_call: int, paddle_kind: str,
                 output: np.ndarray | str, carried: float | None) -> LayerResult:
    """A torch call against its Paddle counterpart's output (an array, or what it is when not one tensor)."""
    result = LayerResult(key[0], paddle_path, key[1], f"{record.kind} / {paddle_kind}", NOT_COMPARABLE, shape=record.shape,
                         carried=carried, floor=record.floor, paddle_call=paddle_call)
    if record.shape is None or isinstance(output, str):
        described = output if isinstance(output, str) else "a Tensor"
        result.reason = f"torch returns {record.description}, paddle {described}; only single tensors are compared"
    elif list(output.shape) != record.shape:
        result.reason = _layout_reason(record.shape, list(output.shape))
    else:
        result.status = COMPARED
        result.metrics = Metrics.compare(spill.get(key)[0], output)
        if record.floor is not None:
            error = result.metrics.max_abs
            result.floor_ratio = error / record.floor if record.floor > 0 else (float("inf") if error else 1.0)
    return result


def _orderable_torch_calls(order: list[_CallKey], torch_calls: dict[_CallKey, _TorchCall], matches: dict[str, str],
                           stateless: set[str]) -> _Orderable:
    """Torch's calls that may still be paired by call order: parameter-less, unmatched, an ancestor matched."""
    orderable: _Orderable = defaultdict(list)
    for key in order:
        path, record = key[0], torch_calls[key]
        ancestor = _matched_ancestor(path, matches)
        if path in stateless and path not in matches and ancestor is not None and record.parent_call is not None:
            orderable[(ancestor, record.parent_call)].append((key, record.kind, record.shape))
    return orderable


def _compare_in_call_order(torch_orderable: _Orderable, paddle_orderable: _Orderable, matches: dict[str, str],
                           torch_calls: dict[_CallKey, _TorchCall], spill: _Spill, paddle_spill: _Spill) -> dict[_CallKey, LayerResult]:
    """Compare the calls `_pair_in_call_order` pairs within each call of each matched ancestor."""
    results = {}
    for (parent, parent_call), torch_seq in torch_orderable.items():
        paddle_seq = paddle_orderable.get((matches[parent], parent_call), [])
        kinds = {key: kind for key, kind, _ in paddle_seq}
        for torch_key, paddle_key in _pair_in_call_order(torch_seq, paddle_seq):
            carried = _inputs_error(spill.get((*torch_key, "in")), paddle_spill.get((*paddle_key, "in")))
            results[torch_key] = _pair_result(torch_key, torch_calls[torch_key], spill, paddle_path=paddle_key[0],
                                              paddle_call=paddle_key[1], paddle_kind=kinds[paddle_key],
                                              output=paddle_spill.get(paddle_key)[0], carried=carried)
    return results


def _unpaired(key: tuple[str, int], record: _TorchCall, matches: dict[str, str]) -> LayerResult:
    path, call = key
    if path in matches:
        reason = f"the Paddle layer {matches[path] or '(model)'} did not run (or ran fewer times)"
        return LayerResult(path, matches[path], call, record.kind, NOT_COMPARABLE, reason, record.shape)
    reason = "no Paddle layer corresponds to it"
    return LayerResult(path, None, call, record.kind, TORCH_ONLY, reason, record.shape)


def _flag_jumps(report: LayerReport) -> None:
    """Flag modules whose relative error is far above what their inputs carried.

    A module's inputs are compared directly where both sides pass the same tensors; otherwise the
    largest relative error of the modules that ran before it stands for what it inherited. A module
    enclosing a flagged one is not flagged again: the error it shows is its part's."""
    worst_before, flagged = 0.0, []
    for layer in report.layers:
        rel = layer.rel
        if rel is None:
            continue
        inherited = layer.carried if layer.carried is not None else worst_before
        if rel > report.jump_min_rel and rel > report.jump_factor * inherited:
            layer.jump = not any(_under(inner, layer.torch) for inner in flagged)
            flagged.append(layer.torch)
        worst_before = max(worst_before, rel)
    first = next((layer for layer in report.layers if layer.jump), None)
    report.first_divergence = first.name if first else None


# --- charts --------------------------------------------------------------------------------------
