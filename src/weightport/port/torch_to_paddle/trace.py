"""Capture a torch model as one graph per module call, with the real values beside the symbols.

Why this tracer and not a plain `torch.fx.symbolic_trace`:
- fx flattens the model into one graph; a twin a person would keep has one class per module
  class. So every module whose class has no layer translation is traced on its own: its caller
  records a `call_module` node, and its body becomes a graph of its own (`Body`), recursively.
- fx refuses control flow on traced values (`if H % window:`, `assert x.shape[1] == C`, `len(x)`,
  `math.ceil(h / s)`), which timm's models are full of. Here every node also carries the real
  value it has for an example batch (a shadow forward pass, run alongside), so such questions get
  their real answer: the graph of one trace is specialised to its example's input size.
- Python's questions get concrete answers, so each answer is recorded where it is given (a
  `guard` node: the traced value, how it was asked, the answer). The model is traced at several
  input sizes; emit.py merges the traces, turning a guard answered differently at two sizes into
  a branch, and one answered alike but computed from a size into a check, so the twin takes
  torch's path at any size or says why it cannot.
- Branches on `self.training` are fixed by tracing; so each model is traced twice, in eval and in
  train mode, and a module whose two bodies differ keeps both (emit.py picks one by
  `self.training` at run time). Layers with a translation stay layers (dropout, BatchNorm,
  drop-path), so their own train-mode behaviour is Paddle's.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import keyword
import math
import operator
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx
from torch.fx.node import map_aggregate

from ..._compat import fx_patches_reverted, fx_wraps_suspended
from ...errors import PortError


class ShadowProxy(torch.fx.Proxy):
    """A proxy that answers the questions Python asks of concrete values with its real value."""

    def _value(self):
        return self.tracer.value_of(self.node)

    def __getattr__(self, name):
        # where a tensor lives and what it holds are fixed for the trace: real values, not nodes
        if name in ("device", "dtype", "is_cuda", "is_floating_point", "is_nested", "is_sparse", "layout"):
            return getattr(self._value(), name)
        return ShadowAttribute(self, name)

    def __len__(self):
        return self.tracer.answer(self, "len")

    def __index__(self):
        return self.tracer.answer(self, "index")

    def __int__(self):
        return self.tracer.answer(self, "int")

    def __float__(self):
        return self.tracer.answer(self, "float")

    def __ceil__(self):
        return self.tracer.answer(self, "ceil")

    def __floor__(self):
        return self.tracer.answer(self, "floor")

    def __round__(self, ndigits=None):
        if ndigits is not None:
            return round(self._value(), ndigits)
        return self.tracer.answer(self, "round")

    def __contains__(self, item):
        return bool(self.tracer.create_proxy("call_function", operator.contains, (self, item), {}))

    def __setitem__(self, index, value):  # recorded as a call; emit.py treats it as an in-place op
        self.tracer.create_proxy("call_function", operator.setitem, (self, index, value), {})


# How Python asked a traced value for a concrete answer: the question's Python spelling.
QUESTIONS = {"bool": "bool({})", "len": "len({})", "index": "{}", "int": "int({})", "float": "float({})",
             "ceil": "math.ceil({})", "floor": "math.floor({})", "round": "round({})"}


def guard(value, question: str, answer):
    """Stands in a graph where tracing gave `answer` to `question` about a traced value (see QUESTIONS)."""
    return answer


def is_guard(node: torch.fx.Node) -> bool:
    return node.op == "call_function" and node.target is guard


class ShadowAttribute(ShadowProxy, torch.fx.proxy.Attribute):
    """An attribute of a traced value (`x.shape`), which answers as a ShadowProxy does (`*x.shape`
    asks for its length)."""


@dataclass
class Body:
    """One traced call of a module whose class has no layer translation."""

    path: str  # the module's qualified name in the model ("" for the model itself)
    module: torch.nn.Module
    graph: torch.fx.Graph
    values: Callable[[torch.fx.Node], Any]  # each node's real value in the traced call
    root: torch.nn.Module  # the traced copy of the model, which the graph's targets name paths in
    initial_values: Callable[[torch.fx.Node], Any]  # a get_attr node's tensor before any in-place op


@dataclass
class Trace:
    """A model traced in one mode: every translated module's body, by path."""

    training: bool
    model: torch.nn.Module
    bodies: dict[str, list[Body]] = field(default_factory=dict)  # a body per call that ran other code
    by_module: dict[int, list[Body]] = field(default_factory=dict)

    def bodies_of(self, path: str) -> list[Body]:
        """The bodies traced for the module at `path` (one per call that ran other code, as a call
        with another number does), also when it was called under another path."""
        return self.bodies.get(path) or self.by_module.get(id(self.model.get_submodule(path))) or []


def _contains_proxy(value) -> bool:
    found = []
    map_aggregate(value, lambda v: found.append(v) if isinstance(v, torch.fx.Proxy) else None)
    return bool(found)


class ShadowTracer(torch.fx.Tracer):
    """torch.fx's tracer with per-module graphs and real values (see the module docstring)."""

    def __init__(self, is_layer: Callable[[torch.nn.Module], bool], example: tuple):
        super().__init__(autowrap_modules=(), autowrap_functions=_einops_functions(), param_shapes_constant=False)
        self.is_layer = is_layer
        self.proxy_buffer_attributes = True
        self._example = list(example)
        self._values: dict[torch.fx.Node, Any] = {}
        self._initial: dict[torch.fx.Node, Any] = {}
        self._caches: dict[int, dict] = {}
        self._pending_value: list[Any] = []
        self.bodies: dict[str, list[Body]] = {}
        self.by_module: dict[int, list[Body]] = {}  # a module registered under two paths is traced under the first
        self.evaluating = 0  # > 0 while the tracer computes a node's real value

    # --- values -------------------------------------------------------------------------
    def value_of(self, node: torch.fx.Node):
        if node not in self._values and node.op == "get_attr":
            self._values[node] = value = _fetch(self.root, node.target)
            if isinstance(value, torch.Tensor):  # what a constant held before the model's in-place ops
                self._initial[node] = value.detach().clone()
        return self._values[node]

    def keep_only_metadata(self) -> None:
        """Once traced, replace every computed tensor by a meta tensor of its shape and dtype (all the
        emitter asks of them), so that a large model's activations are not held while code is written."""
        for node, value in self._values.items():
            if node.op != "get_attr" and not isinstance(value, torch.Size):
                self._values[node] = map_aggregate(value, _as_meta)

    def initial_value_of(self, node: torch.fx.Node):
        """A get_attr node's tensor as it was when the graph first read it."""
        self.value_of(node)
        return self._initial.get(node, self._values[node])

    def _real(self, value):
        return map_aggregate(value, lambda v: self.value_of(v) if isinstance(v, torch.fx.Node) else v)

    def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None, proxy_factory_fn=None):
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        node = proxy.node
        if self._pending_value:
            self._values[node] = self._pending_value.pop()
        elif _assigns(node):  # x[i] = v: the node stands for x after the assignment
            self._evaluate(node)
            self._values[node] = self.value_of(node.args[0])
        elif kind == "placeholder":  # the example's tensors, then the defaults fx passes for concrete arguments
            self._values[node] = self._example.pop(0) if self._example else (args[0] if args else None)
        elif kind != "output":
            self._values[node] = self._evaluate(node)
        return proxy

    def _evaluate(self, node: torch.fx.Node):
        args, kwargs = self._real(node.args), self._real(node.kwargs)
        with fx_patches_reverted(), torch.no_grad(), self._shadow_run():
            if node.op == "get_attr":
                return _fetch(self.root, node.target)
            if node.op == "call_function":
                return node.target(*args, **kwargs)
            if node.op == "call_method":
                return getattr(args[0], node.target)(*args[1:], **kwargs)
            if node.op == "call_module":
                return self.root.get_submodule(node.target)(*args, **kwargs)
        raise AssertionError(node.op)

    @contextlib.contextmanager
    def _shadow_run(self):
        """While a node's real value is computed (which may draw random numbers: _random_draws_refused)."""
        self.evaluating += 1
        try:
            yield
        finally:
            self.evaluating -= 1

    def proxy(self, node):
        return ShadowProxy(node, self)

    def answer(self, proxy: torch.fx.Proxy, question: str):
        """The concrete answer to `question` about `proxy`, recorded as a guard node. The length of
        a shape, a tuple or a list is the model's structure, not a size, and is not recorded."""
        value = self.value_of(proxy.node)  # fx's own proxies too (an attribute read: `x.is_nested`)
        if question == "len" and not isinstance(value, torch.Tensor):
            return len(value)
        result = {"bool": bool, "len": len, "index": operator.index, "int": int, "float": float,
                  "ceil": math.ceil, "floor": math.floor, "round": round}[question](value)
        self.create_proxy("call_function", guard, (proxy, question, result), {})
        return result

    def to_bool(self, obj):
        source = _random_source(obj.node)
        if source is not None:
            drawn = f"{'Tensor' if source.op == 'call_method' else 'torch'}.{_target_name(source)}()"
            raise RuntimeError(f"it branches on a random draw ({drawn}): the twin would take one draw's branch")
        return self.answer(obj, "bool")

    def iter(self, obj):
        return iter([obj[i] for i in range(self.answer(obj, "len"))])

    def keys(self, obj):
        return obj._value().keys()

    def getattr(self, attr, attr_val, parameter_proxy_cache):
        # fx keeps one cache for the whole trace; a body's graph needs its own proxies.
        return super().getattr(attr, attr_val, self._caches.setdefault(id(self.graph), {}))

    # --- modules ------------------------------------------------------------------------
    def is_leaf_module(self, m, module_qualified_name):
        return self.is_layer(m) and type(m) is not torch.nn.Sequential

    def call_module(self, m, forward, args, kwargs):
        if m._forward_pre_hooks or m._forward_hooks:  # in the caller's graph, on the values the caller sees
            args, kwargs = _run_pre_hooks(m, args, kwargs)
            return _run_hooks(m, args, kwargs, self._call_module(m, m.forward, args, kwargs))
        return self._call_module(m, forward, args, kwargs)

    def _call_module(self, m, forward, args, kwargs):
        if self.is_leaf_module(m, ""):
            return super().call_module(m, forward, args, kwargs)
        path = self.path_of_module(m)
        parent = self.graph
        graph = self.graph = torch.fx.Graph(tracer_cls=type(self))
        try:
            bound = inspect.signature(m.forward).bind(*args, **kwargs)
            bound.apply_defaults()  # a number left to its default is one the call gives too
            for name, value in bound.arguments.items():
                if _contains_proxy(value):
                    bound.arguments[name] = self._placeholder(name, value)
                elif type(value) in (int, float, bool):
                    self._number(name, value)
            out = forward(*bound.args, **bound.kwargs)
            self.create_node("output", "output", (self.create_arg(out),), {})
        except PortError:
            raise
        except Exception as exc:
            raise PortError(f"cannot trace {describe(m, path)}: {type(exc).__name__}: {exc}") from None
        finally:
            self.graph = parent
        self._record(Body(path, m, graph, self.value_of, self.root, self.initial_value_of))
        self._pending_value.append(_real_of(self, out))
        node = self.create_proxy("call_module", path, args, kwargs)
        return _rebuild(out, node)

    def _placeholder(self, name: str, value):
        """A placeholder standing for `value` (a proxy, or a structure holding proxies)."""
        self._pending_value.append(_real_of(self, value))
        proxy = self.create_proxy("placeholder", name, (), {})
        return _rebuild(value, proxy)

    def _number(self, name: str, value) -> None:
        """A number the module is called with, as a placeholder the body goes on without and a guard
        holding its value: calls with other numbers, which may run other code (PolyNet's
        `forward(x, block_index)`), are merged by it as traces of other sizes are (emit.py)."""
        self._pending_value.append(value)
        proxy = self.create_proxy("placeholder", name, (), {})
        proxy.node.meta["number"] = True
        question = "bool" if type(value) is bool else "index" if type(value) is int else "float"
        self.create_proxy("call_function", guard, (proxy, question, value), {})

    def _record(self, body: Body) -> None:
        """Keep a call's body unless an earlier call ran the same code (whatever numbers it was called with)."""
        variants = self.bodies.setdefault(body.path, [])
        self.by_module.setdefault(id(body.module), variants)
        if all(_code_of(body) != _code_of(variant) for variant in variants):
            variants.append(body)


def _run_pre_hooks(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """A module's forward pre-hooks, as torch's Module.__call__ runs them."""
    for key, hook in module._forward_pre_hooks.items():
        if key in module._forward_pre_hooks_with_kwargs:
            result = hook(module, args, kwargs)
            if result is not None:
                args, kwargs = result
        else:
            result = hook(module, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
    return args, kwargs


def _run_hooks(module: torch.nn.Module, args: tuple, kwargs: dict, output):
    """A module's forward hooks (Hugging Face records hidden states with them), as torch runs them.
    Run where the module is called, so that what they keep are the caller's values, not nodes of
    the module's own graph."""
    for key, hook in module._forward_hooks.items():
        result = hook(module, args, kwargs, output) if key in module._forward_hooks_with_kwargs else hook(module, args, output)
        if result is not None:
            output = result
    return output


def _code_of(body: Body) -> str:
    """A body's code but for the numbers it was called with (the guards on number placeholders)."""
    return "\n".join(node.format_node() for node in body.graph.nodes if not (is_guard(node) and is_number(node.args[0])))


def is_number(node) -> bool:
    """A placeholder for a number a module was called with (see ShadowTracer._number)."""
    return isinstance(node, torch.fx.Node) and node.op == "placeholder" and node.meta.get("number", False)


def _as_meta(value):
    return torch.empty(value.shape, dtype=value.dtype, device="meta") if isinstance(value, torch.Tensor) else value


def _assigns(node: torch.fx.Node) -> bool:
    return (node.op == "call_function" and node.target is operator.setitem) or (node.op == "call_method" and node.target == "__setitem__")


def _real_of(tracer: ShadowTracer, value):
    return map_aggregate(value, lambda v: tracer.value_of(v.node) if isinstance(v, torch.fx.Proxy) else v)


def _rebuild(value, proxy):
    """`value`'s structure with its proxies replaced by items of `proxy` (concrete parts kept)."""
    if isinstance(value, torch.fx.Proxy):
        return proxy
    if isinstance(value, (tuple, list)) and _contains_proxy(value):
        items = [_rebuild(v, proxy[i]) for i, v in enumerate(value)]
        return type(value)(items) if not hasattr(value, "_fields") else type(value)(*items)
    if isinstance(value, dict) and _contains_proxy(value):
        items = {k: _rebuild(v, proxy[k]) for k, v in value.items()}
        if dataclasses.is_dataclass(value):  # a ModelOutput: callers read its fields as attributes
            return dataclasses.replace(value, **items)
        return items if type(value) is dict else type(value)(items)
    return value


def _fetch(root: torch.nn.Module, target: str):
    value = root
    for atom in target.split("."):
        value = getattr(value, atom)
    return value


def describe(module: torch.nn.Module, path: str) -> str:
    """How errors name a module: its path and its class."""
    where = f"module {path!r}" if path else "the model"
    cls = type(module)
    return f"{where} ({cls.__module__}.{cls.__qualname__})"


# torch's factories reject a traced size (`torch.ones(x.shape[0], 1)`) before fx sees the call.
FACTORIES = ("ones", "zeros", "full", "empty", "arange", "linspace", "eye")
# Random draws are recorded whatever their arguments: the twin must draw when it runs, not keep the
# numbers drawn while tracing.
RANDOM_FACTORIES = ("rand", "randn", "randint", "randperm")
# Random draws on tensors the trace does not follow (made from constants) would be fixed in the
# twin, and so would the Python decisions taken on them: refused.
RANDOM_METHODS = ("bernoulli_", "uniform_", "normal_", "random_", "exponential_", "geometric_", "cauchy_", "log_normal_")
RANDOM_FUNCTIONS = ("bernoulli", "rand_like", "randn_like", "randint_like", "normal", "poisson", "multinomial")


def _target_name(node: torch.fx.Node) -> str:
    return node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")


def _random_source(node: torch.fx.Node) -> torch.fx.Node | None:
    """The random draw `node`'s value depends on, if any (sizes of a drawn tensor are not random)."""
    seen, pending = set(), [node]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        name = _target_name(current)
        if current.op in ("call_function", "call_method") and name in (*RANDOM_FACTORIES, *RANDOM_FUNCTIONS, *RANDOM_METHODS):
            return current
        sizes = name in ("size", "dim") or (name == "getattr" and current.args[1:2] in (("shape",), ("ndim",)))
        if not sizes:
            pending += current.all_input_nodes
    return None


@contextlib.contextmanager
def _random_draws_refused(tracer: ShadowTracer):
    """While tracing: a random draw on constant tensors in the model's code raises (RuntimeError, which
    the tracer reports with the module's place); the tracer's own shadow run may draw."""
    def refusing(owner, name):
        original = getattr(owner, name)

        def draw(*args, **kwargs):
            if not tracer.evaluating and not _contains_proxy((args, kwargs)):
                where = "Tensor." if owner is torch.Tensor else "torch."
                raise RuntimeError(f"it draws random numbers with {where}{name}() on a tensor the trace does not follow "
                                f"(made from constants): the twin would keep one draw, and any decision taken on it")
            return original(*args, **kwargs)

        return owner, name, original, draw

    patches = [refusing(torch.Tensor, n) for n in RANDOM_METHODS] + [refusing(torch, n) for n in RANDOM_FUNCTIONS]
    try:
        for owner, name, _, draw in patches:
            setattr(owner, name, draw)
        yield
    finally:
        for owner, name, original, _ in patches:
            setattr(owner, name, original)


@contextlib.contextmanager
def _tracing_environment(tracer: ShadowTracer):
    """While tracing: factories that record calls with traced sizes (random ones always); einops'
    calls recorded whole; random draws the trace would fix refused; and no fx-wrapped functions
    (timm registers helpers as fx leaves, which would need translations of their own: with real
    values at hand, the tracer goes through them instead)."""
    originals = {name: getattr(torch, name) for name in FACTORIES + RANDOM_FACTORIES}

    def recording(original):
        def factory(*args, **kwargs):
            if original.__name__ in RANDOM_FACTORIES or _contains_proxy((args, kwargs)):
                return tracer.create_proxy("call_function", original, args, kwargs)
            return original(*args, **kwargs)

        return factory

    with fx_wraps_suspended(), _einops_recorded(tracer, recording), _random_draws_refused(tracer):
        try:
            for name, original in originals.items():
                setattr(torch, name, recording(original))
            yield
        finally:
            for name, original in originals.items():
                setattr(torch, name, original)


# einops' functions, each recorded as one call (translations/patterns.py writes it out in Paddle):
# einops asks its backends for a tensor's shape and type, which a traced value cannot answer as torch.
EINOPS_FUNCTIONS = ("rearrange", "repeat", "reduce", "einsum", "pack", "unpack")


def _einops_functions() -> tuple:
    """The einops functions, for fx to record where a model's module imported them by name."""
    einops = sys.modules.get("einops")  # a model that calls einops has imported it
    return tuple(getattr(einops, name) for name in EINOPS_FUNCTIONS) if einops is not None else ()


@contextlib.contextmanager
def _einops_recorded(tracer: ShadowTracer, recording: Callable):
    """While tracing: `einops.rearrange(...)` (called through the module) recorded as one call, and
    einops' torch layers recorded as the function call they stand for."""
    einops, layers = sys.modules.get("einops"), sys.modules.get("einops.layers.torch")
    functions = {name: getattr(einops, name) for name in EINOPS_FUNCTIONS} if einops is not None else {}
    forwards = {cls: cls.forward for cls in (layers.Rearrange, layers.Reduce)} if layers is not None else {}

    def as_call(cls, original_forward):
        def forward(self, input):
            if not isinstance(input, torch.fx.Proxy):
                return original_forward(self, input)
            args = (input, self.pattern) if cls is layers.Rearrange else (input, self.pattern, self.reduction)
            return tracer.create_proxy("call_function", functions[cls.__name__.lower()], args, dict(self.axes_lengths))

        return forward

    try:
        for name, original in functions.items():
            setattr(einops, name, recording(original))
        for cls, original in forwards.items():
            cls.forward = as_call(cls, original)
        yield
    finally:
        for name, original in functions.items():
            setattr(einops, name, original)
        for cls, original in forwards.items():
            cls.forward = original


def trace(model: torch.nn.Module, example: tuple, is_layer: Callable[[torch.nn.Module], bool], training: bool,
          kwargs: dict[str, Any] | None = None) -> Trace:
    """Trace a copy of `model` in train or eval mode on `example` (positional tensors) and `kwargs`
    (keyword tensors); forward's other parameters keep their defaults."""
    # a copy, for train mode updates buffers; its parameters are the model's own, which tracing never
    # changes (the port refuses in-place updates of state), so that six traces cost no six copies
    model = copy.deepcopy(model, {id(p): p for p in model.parameters()})
    model.train(True)  # clears caches that some models fill in eval mode (e.g. attention biases)
    model.train(training)
    kwargs = dict(kwargs or {})
    tracer = ShadowTracer(is_layer, (*example, *kwargs.values()))
    cls = type(model)
    torch.manual_seed(0)
    try:
        model.__class__ = _entry_class(cls, len(example), list(kwargs))
        with _tracing_environment(tracer):
            graph = tracer.trace(model)
    except PortError:
        raise
    except Exception as exc:
        raise PortError(f"cannot trace {describe(model, '')}: {type(exc).__name__}: {exc}") from None
    finally:
        model.__class__ = cls
    tracer.keep_only_metadata()
    bodies = {"": [Body("", model, graph, tracer.value_of, model, tracer.initial_value_of)], **tracer.bodies}
    return Trace(training, model, bodies, tracer.by_module)


def _entry_class(cls: type, positional: int, keywords: list[str]) -> type:
    """A subclass of the model's class whose forward takes exactly the traced inputs and calls the
    model's own forward with them (positionally, then by keyword): fx makes one placeholder per
    parameter of the forward it traces, and a model's own forward may take `**kwargs` (fx would
    make that one placeholder) or go through decorators (Hugging Face's) that fx cannot look past."""
    names = _input_names(cls.forward, positional, keywords)
    head = ", ".join(["self", *names])
    call = ", ".join([*names[:positional], *(f"{k}={n}" for k, n in zip(keywords, names[positional:], strict=True))])
    namespace: dict[str, Any] = {}
    exec(f"def entry(original):\n    def forward({head}):\n        return original(self, {call})\n    return forward\n", namespace)  # noqa: S102
    made = namespace["entry"](cls.forward)
    # with the model's own module globals, where fx looks for the functions it records (einops')
    forward = types.FunctionType(made.__code__, cls.forward.__globals__, "forward", None, made.__closure__)
    return type(cls.__name__, (cls,), {"forward": forward, "__module__": cls.__module__, "__qualname__": cls.__qualname__})


def _input_names(forward: Callable, positional: int, keywords: list[str]) -> list[str]:
    """The placeholders' names: forward's own parameter names for positional inputs (`input0`...
    where it takes `*args`), the keyword for keyword inputs."""
    parameters = [p for p in list(inspect.signature(forward).parameters.values())[1:]
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names = [parameters[i].name if i < len(parameters) else f"input{i}" for i in range(positional)]
    for name in [*names, *keywords]:
        if not name.isidentifier() or keyword.iskeyword(name) or name == "self":
            raise PortError(f"cannot trace an input named {name!r}: not a Python parameter name")
    if len(set(names + keywords)) != len(names) + len(keywords):
        raise PortError(f"the inputs {names + keywords} name one parameter twice")
    return [*names, *keywords]
