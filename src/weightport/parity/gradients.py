"""Per-layer gradient parity (`verify --train --layers`): the first module, in backward order,
whose output gradient parts ways between the twins.

During the training forward each module's output gets a tensor hook on both sides; the gradients
arrive during backward and are spilled to temporary files, then paired as the forward per-layer
report pairs modules (`layerwise.match_modules`, then call order within a shared ancestor) and
compared. A paired module whose output receives a gradient on one side only (a branch cut with
`detach` or `stop_gradient`) is flagged as well: nothing downstream can show that fault as clearly.
"""
from __future__ import annotations

from collections import defaultdict

from ..frameworks import quiet_paddle_import
from ..tables.rules import Table
from .layerwise import (
    COMPARED,
    NOT_COMPARABLE,
    LayerReport,
    LayerResult,
    _Calls,
    _flag_jumps,
    _matched_ancestor,
    _pair_in_call_order,
    _Spill,
    _stateless_paths,
    hook_modules,
    match_modules,
)
from .metrics import Metrics

_CallKey = tuple[str, int]


class _Side:
    """One twin's module calls during the forward, and the gradients their outputs receive."""

    def __init__(self, framework: str, model, matched, spill: _Spill):
        self.framework, self.spill = framework, spill
        self.calls: dict[_CallKey, tuple[str, list[int] | None, int | None]] = {}  # kind, shape, ancestor's call
        self.arrived: list[_CallKey] = []  # in backward order
        self.stateless = _stateless_paths(model, framework)
        numbering = _Calls()

        def pre(path, _args):
            numbering.enter(path)

        def post(path, module, output):
            key = (path, numbering.leave(path))
            tensor = self._tensor(output)
            shape = list(output.shape) if tensor else None
            self.calls[key] = (type(module).__name__, shape, numbering.current(_matched_ancestor(path, matched)))
            if tensor and self._differentiable(output):
                output.register_hook(self._receiver(key))

        self.handles = hook_modules(model, framework, pre, post)

    def _tensor(self, value) -> bool:
        if self.framework == "torch":
            import torch

            return isinstance(value, torch.Tensor)
        return isinstance(value, quiet_paddle_import().Tensor)

    def _differentiable(self, tensor) -> bool:
        return tensor.requires_grad if self.framework == "torch" else not tensor.stop_gradient

    def _receiver(self, key: _CallKey):
        def receive(grad):
            array = grad.detach().cpu().float().numpy() if self.framework == "torch" else grad.numpy()
            self.spill.put(key, [array])
            self.arrived.append(key)

        return receive

    def forward_done(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def orderable(self, matched) -> dict[tuple[str, int], list]:
        """Unmatched parameter-less calls by (matched ancestor, its call), as call-order pairing takes them."""
        groups = defaultdict(list)
        for key, (kind, shape, parent_call) in self.calls.items():
            path = key[0]
            ancestor = _matched_ancestor(path, matched)
            if path in self.stateless and path not in matched and ancestor is not None and parent_call is not None:
                groups[(ancestor, parent_call)].append((key, kind, shape))
        return groups


class GradientRecorder:
    """Installed before the training forward; `report()` once both backward passes have run."""

    def __init__(self, table: Table, torch_model, paddle_model):
        self.matches = match_modules(table, torch_model, paddle_model)
        self._spills = (_Spill(), _Spill())
        self.torch = _Side("torch", torch_model, self.matches, self._spills[0])
        self.paddle = _Side("paddle", paddle_model, {p: t for t, p in self.matches.items()}, self._spills[1])

    def torch_forward_done(self) -> None:
        self.torch.forward_done()

    def paddle_forward_done(self) -> None:
        self.paddle.forward_done()

    def _pairs(self) -> dict[_CallKey, _CallKey]:
        pairs = {key: (self.matches[key[0]], key[1]) for key in self.torch.calls
                 if key[0] in self.matches and (self.matches[key[0]], key[1]) in self.paddle.calls}
        paddle_groups = self.paddle.orderable({p: t for t, p in self.matches.items()})
        for (ancestor, call), torch_seq in self.torch.orderable(self.matches).items():
            paddle_seq = paddle_groups.get((self.matches[ancestor], call), [])
            pairs.update(_pair_in_call_order(torch_seq, paddle_seq))
        return pairs

    def report(self, inputs: str) -> LayerReport:
        try:
            return self._report(inputs)
        finally:
            for spill in self._spills:
                spill.__exit__()

    def _report(self, inputs: str) -> LayerReport:
        pairs = self._pairs()
        torch_got, paddle_got = set(self.torch.arrived), set(self.paddle.arrived)
        report = LayerReport(inputs=inputs)
        partner = {paddle_key: torch_key for torch_key, paddle_key in pairs.items()}
        paddle_first = [partner[p] for p in self.paddle.arrived if p in partner and partner[p] not in torch_got]
        for key in [*self.torch.arrived, *paddle_first]:
            if key not in pairs:
                continue
            paddle_key = pairs[key]
            kind = f"{self.torch.calls[key][0]} / {self.paddle.calls[paddle_key][0]}"
            layer = LayerResult(key[0], paddle_key[0], key[1], kind, NOT_COMPARABLE, shape=self.torch.calls[key][1],
                                paddle_call=paddle_key[1])
            if key not in torch_got or paddle_key not in paddle_got:
                side = "torch" if key in torch_got else "paddle"
                layer.reason = f"its output gets a gradient in {side} only"
                layer.jump = True
            else:
                reference, output = self._spills[0].get(key)[0], self._spills[1].get(paddle_key)[0]
                if reference.shape != output.shape:
                    layer.reason = f"gradient shapes {list(reference.shape)} (torch) vs {list(output.shape)} (paddle)"
                else:
                    layer.status, layer.metrics = COMPARED, Metrics.compare(reference, output)
            report.layers.append(layer)
        _flag_jumps(report)
        return report
