"""Write the traced model as Paddle source a person would keep.

One Paddle class per torch module class (instances whose code differs only in numbers share one
class, the numbers becoming constructor arguments named after the torch attribute that holds
them where one does), the torch attribute names kept so that state-dict keys are torch's, layers
with a translation built as Paddle layers, and one `create_model()` that builds the tree.
"""
from __future__ import annotations

import ast
import inspect
import io
import keyword
import operator
import tokenize
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import torch
import torch.fx

from ...errors import PortError
from ..templates import Code, Translation, is_atomic
from . import runtime
from .trace import QUESTIONS, Body, Trace, describe, is_guard, is_number
from .translations import check_requirements, functions, layers, literal, methods, qualified_name, render

INDENT = "    "
RESERVED = {"self", "paddle", "nn", "F", "np", "os", "math", "constants", "create_model", "super"}
LINE_LENGTH = 110
# Tensors that translated base layers create themselves (under Paddle's names) or drop.
BASE_TENSORS = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
DROPPED_BUFFERS = {"num_batches_tracked"}  # Paddle's BatchNorm keeps no batch counter
_INLINE_FUNCTIONS = {getattr, operator.getitem}


def class_name(module_or_class) -> str:
    cls = module_or_class if isinstance(module_or_class, type) else type(module_or_class)
    return f"{cls.__module__}.{cls.__qualname__}"


def layer_translation(module: torch.nn.Module) -> Translation | None:
    """The table entry of a module whose exact class is a translated layer."""
    return layers().get(class_name(module))


def base_translation(module: torch.nn.Module) -> Translation | None:
    """The entry of the nearest translated base class of a module that subclasses a layer."""
    for cls in type(module).__mro__[1:]:
        entry = layers().get(class_name(cls))
        if entry is not None:
            return entry
    return None


def is_layer(module: torch.nn.Module) -> bool:
    return layer_translation(module) is not None


@cache
def _paddle_layer_attributes() -> frozenset[str]:
    import paddle

    return frozenset(dir(paddle.nn.Layer))


# --- one body as forward() source ------------------------------------------------------------


@dataclass
class _Statement:
    target: str | None
    text: str
    keep: bool  # module calls and the return stay even when their result is unused


@dataclass
class _Forward:
    """A body's rendered code, and what it needs from its class."""

    lines: list[str]
    constants: dict[str, np.ndarray] = field(default_factory=dict)  # attribute -> value (non-persistent)
    helpers: set[str] = field(default_factory=set)


@dataclass
class _Branch:
    """`if` arms, each a condition and its statements (each arm runs to the body's return); `otherwise`
    is the last arm's statements, or None where no traced size went another way (the twin raises)."""

    arms: list[tuple[str, list]]
    otherwise: list | None
    unseen: str = ""  # the raise of an `else` no traced size reached


CHECK_FAILED = ("this twin follows the code torch ran when it was traced (at the input sizes it was ported at, on each "
                "call), which took another path here (the condition above): port the model again at this size")


class SizeSpecific(Exception):
    """A module's code differs between traced input sizes where no recorded answer explains it."""


class _BodyWriter:
    """Writes one module's forward from its bodies traced at several input sizes (the port's size
    first): the nodes they share once, a guard they answer differently as a branch."""

    def __init__(self, bodies: list[Body], calls_differ: bool = False):
        self.bodies = bodies
        self.calls_differ = calls_differ  # the bodies include calls that ran other code: numbers they were called with are checked
        self.body = bodies[0]
        self.owner = {node: body for body in bodies for node in body.graph.nodes}
        self.code: dict[torch.fx.Node, Code] = {}
        self.matches: dict[torch.fx.Node, list[torch.fx.Node]] = {}  # a written node -> the same node in each trace of its group
        self.names: set[str] = set()
        self.out = _Forward([])

    @property
    def root(self) -> torch.nn.Module:
        return self.body.root

    def values(self, node: torch.fx.Node):
        return self.owner[node].values(node)

    def where(self, node: torch.fx.Node) -> str:
        return f"{describe(self.body.module, self.body.path)}, `{node.format_node()}`"

    def _relative(self, target: str, is_module: bool) -> str | None:
        """`target` (a module's or tensor's path from the model) as a path from the body's module;
        a module the body's module shares with another part of the model is found by identity."""
        path = self.body.path
        if not path:
            return target
        if target.startswith(path + "."):
            return target[len(path) + 1 :]
        owner_path, _, name = target.rpartition(".")
        wanted = self.root.get_submodule(target if is_module else owner_path)
        for candidate, module in self.body.module.named_modules(remove_duplicate=False):
            if module is wanted:
                return candidate if is_module else ".".join(filter(None, (candidate, name)))
        return None

    def _self_path(self, relative: str) -> str:
        text = "self"
        owner = self.body.module
        for atom in relative.split("."):
            if atom.isdigit() and type(owner) in (torch.nn.Sequential, torch.nn.ModuleList):
                text += f"[{atom}]"
            elif atom.isidentifier() and not keyword.iskeyword(atom):
                text += f".{atom}"
            else:
                text = f"getattr({text}, {atom!r})"
            owner = getattr(owner, atom, None)
        return text

    def _attribute(self, node: torch.fx.Node) -> Code:
        relative = self._relative(node.target, is_module=False) if "." in node.target or not self.body.path else None
        value = self.values(node)
        owner_path, _, name = (relative or "").rpartition(".")
        owner = self.body.module.get_submodule(owner_path) if relative is not None else None
        is_state = owner is not None and (name in owner._parameters or name in owner._buffers)
        if not is_state:
            # a plain tensor attribute or a constant fx made: the class keeps it as a buffer
            attribute = f"constant{len(self.out.constants)}" if relative is None or "." in relative else relative
            if attribute.startswith("_"):
                attribute = "constant" + attribute.lstrip("_").removeprefix("tensor_constant")
            self.out.constants[attribute] = self.owner[node].initial_values(node).detach().cpu().numpy()
            return Code(f"self.{attribute}", value)
        if name in DROPPED_BUFFERS and name in owner._buffers:
            return Code("None", value)
        entry = layer_translation(owner) or base_translation(owner)
        spelled = entry.attributes.get(name, name) if entry is not None else name
        if isinstance(spelled, list):
            raise PortError(f"{self.where(node)} reads {name}, which Paddle's layer keeps split into {', '.join(spelled)}")
        return Code(self._self_path(".".join(filter(None, (owner_path, spelled)))), value)

    def _variable(self, node: torch.fx.Node, prefix: str = "") -> str:
        name = f"{prefix}_{node.name}" if prefix else node.name
        if node.op == "call_module":  # fx names it after the whole path; the body knows it by its own
            name = _identifier(self._relative(node.target, is_module=True).replace(".", "_"))
        if name in RESERVED or keyword.iskeyword(name) or name in runtime_names():
            name += "_"
        while name in self.names:
            name += "_"
        self.names.add(name)
        return name

    def _args(self, value):
        return torch.fx.node.map_aggregate(value, lambda v: self._code_of(v) if isinstance(v, torch.fx.Node) else v)

    def _code_of(self, node: torch.fx.Node) -> Code:
        if node not in self.code:  # a node of another module's graph (a hook stored it), never returned from there
            raise PortError(f"{describe(self.body.module, self.body.path)} uses '{node.name}', a value one of its submodules "
                            "computed and handed over otherwise than by returning it (a hook that stores it): a twin cannot reach it")
        return self.code[node]

    def _translate(self, node: torch.fx.Node) -> tuple[str | None, Translation | None]:
        if node.op == "call_function":
            key = qualified_name(node.target)
            entry = functions().get(key)
            if entry is None:
                raise PortError(f"no Paddle translation for torch function {key} (called in {self.where(node)})")
            args = self._args(node.args)
        else:
            entry = methods().get(node.target)
            if entry is None and node.target.endswith("_") and not node.target.endswith("__"):
                entry = methods().get(node.target[:-1])
            if entry is None:
                raise PortError(f"no Paddle translation for the tensor method .{node.target}() (called in {self.where(node)})")
            args = self._args(node.args)
        bound = entry.bind(tuple(args), self._args(dict(node.kwargs)), self.where(node))
        check_requirements(list(entry.require), bound, self.where(node))
        self.out.helpers.update(entry.helpers)
        return render(entry.paddle, bound, self.where(node)), entry

    def write(self) -> tuple[list[str], _Forward]:
        parameters = [node.target for node in self.body.graph.nodes if node.op == "placeholder"]
        statements = self._block([list(body.graph.nodes) for body in self.bodies], 0)
        return parameters, _Forward(_render(_live(statements)), self.out.constants, self.out.helpers)

    def _block(self, traces: list[list[torch.fx.Node]], start: int) -> list:
        """Statements for the traces' nodes from `start` on (they share every node before it)."""
        self.body = self.owner[traces[0][0]]
        statements: list = []
        for position in range(start, len(traces[0])):
            nodes = [trace[position] for trace in traces]
            node = nodes[0]
            if is_guard(node) and all(is_guard(n) for n in nodes):
                answers = [n.args[2] for n in nodes]
                if len({(type(a), a) for a in answers}) > 1:
                    statements.append(self._branch(traces, position, nodes))
                    return statements
                self._share(nodes, Code("None", answers[0]))
                # one trace in all (a twin for one input size) has nothing to check against
                if (len(self.bodies) > 1 and self._from_sizes(node.args[0])) or (self.calls_differ and is_number(node.args[0])):
                    statements.append(_Statement(None, self._check(node), True))
                continue
            if len({_identity(n, self.owner[n]) for n in nodes}) > 1:
                raise SizeSpecific(f"{self.where(node)} runs other code at another input size or on another call, "
                                   "for no reason the trace recorded")
            statement = self._statement(node, used=any(n.users for n in nodes))
            self._share(nodes, self.code.get(node))
            if statement is not None:
                statements.append(statement)
            statements += self._written_back(node)
        return statements

    def _written_back(self, node: torch.fx.Node) -> list[_Statement]:
        """torch's in-place op on a slice (`bias[n:2 * n].zero_()`) changes the tensor sliced; the
        twin computes out of place, so the result is assigned back into a new copy of that tensor,
        which later code reads (and so on up a chain of slices)."""
        if not (_writes_into_view(node, self.values) and node in self.code):
            return []
        statements, value, view = [], self.code[node], node.args[0]
        while _is_view(view, self.values):
            base, index = view.args
            self.out.helpers.add("setitem")
            variable = self._variable(base)
            text = f"setitem({literal(self._args(base))}, {literal(self._args(index))}, {literal(value)})"
            statements.append(_Statement(variable, f"{variable} = {text}", False))
            value = Code(variable, self.values(base))
            for same in self.matches.get(base, [base]):
                self.code[same] = value
            view = base
        return statements

    def _share(self, nodes: list[torch.fx.Node], code: Code | None) -> None:
        for node in nodes:
            self.matches[node] = nodes
        if code is not None:
            for other in nodes[1:]:
                self.code[other] = code

    def _question(self, node: torch.fx.Node) -> str:
        _, question, _ = node.args
        text = literal(self._args(node.args[0]))
        return ast.unparse(ast.parse(text if question in ("bool", "index") else QUESTIONS[question].format(text), mode="eval"))

    def _branch(self, traces: list[list[torch.fx.Node]], position: int, nodes: list[torch.fx.Node]) -> _Branch:
        """Where traced sizes answered a guard differently: one arm per answer, in the order the sizes
        were traced; a question of truth has both arms, any other raises for an answer no size gave."""
        node = nodes[0]
        question, by_answer = self._question(node), {}
        for trace, guard_node in zip(traces, nodes, strict=True):
            by_answer.setdefault((type(guard_node.args[2]), guard_node.args[2]), []).append(trace)
        arms, names = [], set(self.names)
        for (_, answer), group in by_answer.items():
            self.names = set(names)  # each arm runs to the return: arms may reuse names
            if node.args[1] == "bool":
                condition = question if answer else f"not {_wrapped(question)}"
            else:
                condition = f"{_wrapped(question)} == {answer!r}"
            arms.append((condition, _live(self._block(group, position + 1))))
        self.body = self.owner[node]
        if node.args[1] == "bool":
            return _Branch(arms[:1], arms[1][1])
        general = _generalised([body for _, body in arms], [answer for _, answer in by_answer], self._variable(node.args[0], node.args[1]))
        if general is not None:
            variable, body = general
            return _Statement(None, f"{variable} = {question}\n{body}" if variable in _names_in(body) else body, True)
        unseen = (f"raise ValueError(f\"this twin follows the code torch ran when it was traced (at the input sizes it was "
                  f"ported at, on each call); here {_escaped(question)} is {{{question}!r}}, which no trace gave: port the model "
                  f"again at this size\")")
        return _Branch(arms, None, unseen)

    def _check(self, node: torch.fx.Node) -> str:
        """A guard every traced size answered alike although it depends on the input's size: the twin
        checks that it holds (torch would take a path no trace saw, so the twin must not go on)."""
        question, answer = self._question(node), node.args[2]
        failed = f"not {_wrapped(question)}" if node.args[1] == "bool" and answer else (
            question if node.args[1] == "bool" else f"{_wrapped(question)} != {answer!r}")
        # one message for every check, so that instances of a class differ in their conditions only
        return f"if {failed}:\n{INDENT}raise ValueError({CHECK_FAILED!r})"

    def _from_sizes(self, node: torch.fx.Node) -> bool:
        """Whether a guarded value is computed from an input size that differed between the traces:
        a shape or an item of one that took other values, or an int between it and the guard that did.
        A shape only one trace computed (in a branch only one size took) counts as differing."""
        seen, pending = set(), [node]
        while pending:
            current = pending.pop()
            if current in seen or current not in self.matches:
                continue
            seen.add(current)
            value = self.values(current)
            matches = self.matches[current]
            varies = len({repr(self.values(n)) for n in matches}) > 1
            if isinstance(value, torch.Size) or _is_size_item(current, self.values):
                if varies or len(matches) == 1:
                    return True
                continue
            if isinstance(value, torch.Tensor) or current.op in ("call_module", "placeholder"):
                continue
            if varies and isinstance(value, (int, float)):
                return True
            pending += current.all_input_nodes
        return False

    def _statement(self, node: torch.fx.Node, used: bool) -> _Statement | None:
        """Fill self.code[node]; the statement computing it, where it is not inlined. `used`: whether
        any trace uses its value (a branch one size takes may use what another's does not)."""
        if node.op == "placeholder":
            self.names.add(node.target)
            self.code[node] = Code(node.target, self.values(node))
            return None
        if node.op == "get_attr":
            self.code[node] = self._attribute(node)
            return None
        if node.op == "output":
            return _Statement(None, f"return {literal(self._args(node.args[0]))}", True)
        if node.op == "call_module":
            relative = self._relative(node.target, is_module=True)
            if relative is None:
                raise PortError(f"{self.where(node)} calls a module outside its own")
            args = [literal(a) for a in self._args(node.args)]
            args += [f"{k}={literal(v)}" for k, v in self._args(dict(node.kwargs)).items()]
            text = f"{self._self_path(relative)}({', '.join(args)})"
            keep = True
        else:
            text, entry = self._translate(node)
            if text == "":
                self.code[node] = Code("None", self.values(node))
                return None
            if text == literal(self._args(node.args[0])) and node.op == "call_method":  # an alias (contiguous)
                self.code[node] = Code(text, self.values(node))
                return None
            keep = False
            inline = len(node.users) == 1 and (
                (node.op == "call_function" and node.target in _INLINE_FUNCTIONS)
                or not isinstance(self.values(node), torch.Tensor)
            )
            if inline:
                self.code[node] = Code(text if is_atomic(text) else f"({text})", self.values(node))
                return None
            if not used and not _writes_into_view(node, self.values):
                return None
        variable = self._variable(node)
        self.code[node] = Code(variable, self.values(node))
        return _Statement(variable, f"{variable} = {text}", keep)


def _generalised(arms: list[list], answers: list, variable: str) -> tuple[str, str] | None:
    """One body for the arms of a number the traced sizes answered differently, where the arms'
    code is the same but for that number (a count Python took from a size and used as a
    constant): `variable` holds the number, computed, in its place. None where they differ more."""
    texts = ["\n".join(_render(body)) for body in arms]
    streams = [list(tokenize.generate_tokens(io.StringIO(text).readline)) for text in texts]
    if len({len(stream) for stream in streams}) != 1:
        return None
    replaced = []
    for tokens in zip(*streams, strict=True):
        spelled = [token.string for token in tokens]
        if len(set(spelled)) == 1:
            continue
        if not all(token.type == tokenize.NUMBER and spelling == repr(answer)
                   for token, spelling, answer in zip(tokens, spelled, answers, strict=True)):
            return None
        replaced.append(tokens[0])
    lines = texts[0].split("\n")
    for token in reversed(replaced):  # from the end, so that earlier columns stay put
        row, (start, end) = token.start[0] - 1, (token.start[1], token.end[1])
        lines[row] = lines[row][:start] + variable + lines[row][end:]
    return variable, "\n".join(lines)


def _writes_into_view(node: torch.fx.Node, values) -> bool:
    """An in-place op on a slice of a tensor, whose result the twin assigns back (see _written_back)."""
    return _mutates_first_argument(node) and isinstance(node.args[0], torch.fx.Node) and _is_view(node.args[0], values)


def _is_view(node: torch.fx.Node, values) -> bool:
    """A slice of a tensor by basic indexing (ints, slices, None, ...): torch returns a view of it."""
    if not (node.op == "call_function" and node.target is operator.getitem and isinstance(node.args[0], torch.fx.Node)):
        return False
    index = node.args[1] if isinstance(node.args[1], tuple) else (node.args[1],)
    basic = all(isinstance(i, (int, slice, type(None), type(Ellipsis))) and not isinstance(i, bool) for i in index)
    return basic and isinstance(values(node.args[0]), torch.Tensor)


def _wrapped(text: str) -> str:
    return text if is_atomic(text) else f"({text})"


def _escaped(code: str) -> str:
    """Code quoted in an f-string's text: its braces doubled, its quotes plain."""
    return "`" + code.replace("{", "{{").replace("}", "}}").replace('"', "'") + "`"


def _is_size_item(node: torch.fx.Node, values) -> bool:
    """An item of a shape (`x.shape[2]`, `x.size(2)`)."""
    if node.op == "call_method" and node.target == "size" and len(node.args) > 1:
        return True
    return (node.op == "call_function" and node.target is operator.getitem and isinstance(node.args[0], torch.fx.Node)
            and isinstance(values(node.args[0]), torch.Size) and isinstance(values(node), int))


def _identity(node: torch.fx.Node, body: Body) -> str:
    """What must agree for two traces' nodes to be written once: the operation, its arguments (nodes
    by name, constants by value) and a made constant's content (not a parameter's or buffer's, which
    training updates)."""
    arguments = torch.fx.node.map_aggregate((node.args, node.kwargs), lambda a: f"%{a.name}" if isinstance(a, torch.fx.Node) else a)
    text = f"{node.op} {node.name} {node.target!r} {arguments!r}"
    if node.op == "get_attr" and not _is_state(body.root, node.target):
        value = body.initial_values(node)
        if isinstance(value, torch.Tensor) and value.device.type != "meta":
            text += f" {tuple(value.shape)} {value.dtype} {hash(value.detach().cpu().numpy().tobytes())}"
    return text


def _names_in(text: str) -> set[str]:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _live(statements: list, needed: set[str] | None = None) -> list:
    """The statements whose results are used (module calls, checks and the return always are); a
    branch, always last, keeps what each arm needs."""
    needed = set() if needed is None else needed
    kept = []
    for statement in reversed(statements):
        if isinstance(statement, _Branch):
            arms = [(condition, _live(body, set(needed))) for condition, body in statement.arms]
            otherwise = _live(statement.otherwise, set(needed)) if statement.otherwise is not None else None
            for condition, body in arms:
                needed |= _names_in(condition) | _needs(body)
            needed |= _needs(otherwise or [])
            kept.append(_Branch(arms, otherwise, statement.unseen))
        elif statement.keep or statement.target in needed:
            needed |= _names_in(statement.text.partition(" = ")[2] if statement.target else statement.text)
            kept.append(statement)
    return kept[::-1]


def _needs(statements: list) -> set[str]:
    names: set[str] = set()
    for statement in statements:
        if isinstance(statement, _Branch):
            names |= _needs([s for _, body in statement.arms for s in body]) | _needs(statement.otherwise or [])
            names |= {n for condition, _ in statement.arms for n in _names_in(condition)}
        else:
            names |= _names_in(statement.text.partition(" = ")[2] if statement.target else statement.text)
    return names


def _render(statements: list) -> list[str]:
    """Source lines of statements and branches (a statement's text may span lines). The code the
    arms of a branch end with alike is written once, after the branch (see _joined)."""
    lines = []
    for statement in statements:
        if not isinstance(statement, _Branch):
            lines += statement.text.split("\n")
            continue
        bodies = [_render(body) for _, body in statement.arms]
        if statement.otherwise is not None:
            bodies.append(_render(statement.otherwise))
        bodies, tail = _joined(bodies)
        conditions = [condition for condition, _ in statement.arms]
        for n, (condition, body) in enumerate(zip(conditions, bodies)):
            lines.append(f"{'if' if n == 0 else 'elif'} {condition}:")
            lines += [INDENT + line for line in body or ["pass"]]
        lines.append("else:")
        lines += [INDENT + line for line in ((bodies[-1] or ["pass"]) if statement.otherwise is not None else [statement.unseen])]
        lines += tail
    return lines


def _joined(bodies: list[list[str]]) -> tuple[list[list[str]], list[str]]:
    """The arms' bodies without the lines they all end with, and those lines (the first arm's): lines
    are alike when their tokens are, but for the names of variables each arm assigns its own way,
    which the other arms' bodies are renamed to. Only whole top-level lines are taken."""
    if len(bodies) < 2:
        return bodies, []
    streams = [[_tokens(line) for line in body] for body in bodies]
    assigned = [{line.partition(" = ")[0] for line in body if " = " in line and line.partition(" = ")[0].isidentifier()}
                for body in bodies]
    renames: list[dict[str, str]] = [{} for _ in bodies]  # per arm: its name -> the first arm's
    taken = 0
    while all(taken < len(body) for body in bodies):
        lines = [stream[-1 - taken] for stream in streams]
        if any(body[-1 - taken].startswith((" ", "\t")) for body in bodies) or any(line is None for line in lines):
            break
        trial = [dict(r) for r in renames]
        if not all(_alike(lines[0], line, names, assigned[0], own)
                   for line, names, own in zip(lines[1:], trial[1:], assigned[1:])):
            break
        renames, taken = trial, taken + 1
    while taken and any(body[len(body) - taken].startswith(("else", "elif")) for body in bodies):
        taken -= 1
    if taken == 0:
        return bodies, []
    heads = [body[: len(body) - taken] for body in bodies]
    for n in range(1, len(heads)):
        changed = {theirs: ours for theirs, ours in renames[n].items() if theirs != ours}
        used = {t.string for line in heads[n] for t in (_tokens(line) or []) if t.type == tokenize.NAME}
        if any(ours in used and ours not in changed for ours in changed.values()):
            return bodies, []  # the first arm's name means something else in this arm
        heads[n] = [_renamed(line, changed) for line in heads[n]]
    return heads, bodies[0][len(bodies[0]) - taken :]


def _tokens(line: str):
    try:
        return [t for t in tokenize.generate_tokens(io.StringIO(line).readline)
                if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT)]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None


def _alike(ours, theirs, renames: dict[str, str], our_variables: set[str], their_variables: set[str]) -> bool:
    """Whether two lines' tokens agree, but for variables each arm assigns, mapped one to one
    (theirs -> ours); an attribute, a function or anything from before the branch must be the same."""
    if len(ours) != len(theirs):
        return False
    for k, (a, b) in enumerate(zip(ours, theirs)):
        variable = a.type == b.type == tokenize.NAME and (k == 0 or ours[k - 1].string != ".")
        if variable and a.string in our_variables and b.string in their_variables:
            if renames.setdefault(b.string, a.string) != a.string or sum(v == a.string for v in renames.values()) > 1:
                return False
        elif a.string != b.string or (variable and b.string in renames and renames[b.string] != a.string):
            return False
    return True


def _renamed(line: str, renames: dict[str, str]) -> str:
    tokens = _tokens(line)
    if not renames or tokens is None:
        return line
    names = [t for k, t in enumerate(tokens) if t.type == tokenize.NAME and t.string in renames and (k == 0 or tokens[k - 1].string != ".")]
    for token in reversed(names):
        line = line[: token.start[1]] + renames[token.string] + line[token.end[1] :]
    return line


@cache
def runtime_names() -> frozenset[str]:
    """The helpers runtime.py defines (not what it imports)."""
    return frozenset(name for name, value in vars(runtime).items()
                     if (inspect.isfunction(value) or inspect.isclass(value)) and value.__module__ == runtime.__name__)


def _is_state(root: torch.nn.Module, target: str) -> bool:
    """Whether `target` names a parameter or buffer (not a constant fx made or a plain attribute)."""
    owner, _, name = target.rpartition(".")
    module = root.get_submodule(owner)
    return name in module._parameters or name in module._buffers


def _mutates_first_argument(node: torch.fx.Node) -> bool:
    """In-place methods (`add_`), item assignment and `inplace=True` calls."""
    if node.op == "call_method":
        return node.target == "__setitem__" or (node.target.endswith("_") and not node.target.endswith("__"))
    return node.op == "call_function" and (node.kwargs.get("inplace") is True or node.target is operator.setitem)


def _rewrite_in_place(graph: torch.fx.Graph, describe, body_root: torch.nn.Module) -> None:
    """Point every use of a tensor after an in-place op at the op's result, which the Paddle twin
    computes out of place."""
    for node in list(graph.nodes):
        in_place = _mutates_first_argument(node)
        if not in_place or not node.args or not isinstance(node.args[0], torch.fx.Node):
            continue
        mutated = node.args[0]
        if mutated.op == "get_attr" and _is_state(body_root, mutated.target):
            if mutated.target.rpartition(".")[2] in DROPPED_BUFFERS:
                node.replace_all_uses_with(mutated)
                graph.erase_node(node)
                continue
            raise PortError(f"{describe}: updates the tensor {mutated.target!r} in place, which the Paddle twin cannot mirror")
        later = False
        for other in graph.nodes:
            if other is node:
                later = True
                continue
            if later and mutated in other.all_input_nodes:
                other.replace_input_with(mutated, node)


def _signature(module: torch.nn.Module, parameters: list[str]) -> str:
    """forward()'s parameters: torch's, in torch's order (callers pass them as torch's do)."""
    out, defaulted = [], False
    for p in inspect.signature(module.forward).parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            out.append(f"*{p.name}")
            continue
        if p.kind is p.VAR_KEYWORD:
            out.append(f"**{p.name}")
            continue
        default = p.default if p.default is not p.empty else None
        try:
            default_text = literal(default)
        except PortError:
            default_text = "None"
        if p.name in parameters and p.default is p.empty and not defaulted:
            out.append(p.name)
        else:
            defaulted = True
            out.append(f"{p.name}={default_text}")
    return ", ".join(out)


# --- classes ------------------------------------------------------------------------------------


@dataclass
class _Instance:
    path: str
    module: torch.nn.Module
    text: str = ""  # the class body for this instance, before numbers are lifted
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    lifted: dict[str, object] = field(default_factory=dict)  # constructor argument -> value
    class_name: str = ""


def _own_tensors(module: torch.nn.Module) -> tuple[list[str], dict[str, np.ndarray]]:
    """__init__ lines creating the module's own parameters and persistent buffers, and its
    non-persistent buffers (passed in as constructor arguments)."""
    lines, constants = [], {}
    skip = BASE_TENSORS if base_translation(module) is not None else set()
    for name, parameter in module._parameters.items():
        if parameter is None or name in skip:
            continue
        dtype = str(parameter.dtype).removeprefix("torch.")
        lines.append(f"self.{name} = self.create_parameter({list(parameter.shape)}, dtype={dtype!r}, default_initializer=INITIALIZER)")
        if not parameter.requires_grad:
            lines.append(f"self.{name}.stop_gradient = True")
    for name, buffer in module._buffers.items():
        if buffer is None or name in skip:
            continue
        if name in module._non_persistent_buffers_set:
            constants[name] = buffer.detach().cpu().numpy()
        else:
            dtype = str(buffer.dtype).removeprefix("torch.")
            lines.append(f"self.register_buffer({name!r}, paddle.zeros({list(buffer.shape)}, dtype={dtype!r}))")
    return lines, constants


def _forward_text(instance: _Instance, bodies: list[list[Body]], calls_differ: bool) -> tuple[list[str], set[str]]:
    """forward() from the module's eval and train bodies, each traced at one or more input sizes (and
    one per call that ran other code, where `calls_differ`)."""
    rendered, helpers, signature = [], set(), None
    for sized in bodies:
        if not sized:
            rendered.append(None)
            continue
        for body in sized:
            _rewrite_in_place(body.graph, describe(body.module, body.path), body.root)
        parameters, forward = _BodyWriter(sized, calls_differ).write()
        signature = _signature(instance.module, parameters)
        for name, value in forward.constants.items():
            instance.constants.setdefault(name, value)
        helpers |= forward.helpers
        rendered.append(forward.lines)
    eval_lines, train_lines = rendered
    if signature is None:
        return [], helpers
    head = f"def forward(self, {signature}):" if signature else "def forward(self):"
    if eval_lines is None or train_lines is None or eval_lines == train_lines:
        lines = eval_lines if eval_lines is not None else train_lines
        return [head, *(INDENT + line for line in lines)], helpers
    return [
        head,
        INDENT + "if self.training:",
        *(2 * INDENT + line for line in train_lines),
        INDENT + "else:",
        *(2 * INDENT + line for line in eval_lines),
    ], helpers


def _lift_numbers(instances: list[_Instance]) -> tuple[str, list[str]]:
    """One class text for instances whose texts differ only in constants; those constants become
    constructor arguments (`instance.lifted`). Returns the text and the argument names."""
    token_lists = [list(tokenize.generate_tokens(io.StringIO(i.text).readline)) for i in instances]
    first = token_lists[0]
    differing = [
        k for k, token in enumerate(first)
        if token.type in (tokenize.NUMBER, tokenize.STRING, tokenize.NAME) and any(t[k].string != token.string for t in token_lists[1:])
    ]
    if not differing:
        return instances[0].text, []
    columns: dict[tuple, str] = {}
    names_at: dict[int, str] = {}
    taken = {n for i in instances for n, _ in _children(i.module)} | _paddle_layer_attributes() | RESERVED
    taken |= {n for i in instances for n in (*i.module._parameters, *i.module._buffers)}
    for k in differing:
        values = tuple(ast.literal_eval(t[k].string) for t in token_lists)
        column = tuple((type(v), v) for v in values)  # 16 and 16.0 are two arguments (a shape takes no float)
        if column not in columns:
            columns[column] = _argument_name(instances, values, first, k, taken)
            taken.add(columns[column])
        names_at[k] = columns[column]
    for instance, tokens in zip(instances, token_lists, strict=True):
        instance.lifted = {names_at[k]: ast.literal_eval(tokens[k].string) for k in differing}
    in_init = _init_range(first)
    pieces = []
    for k, token in enumerate(first):
        if k in names_at:
            pieces.append((token, names_at[k] if in_init(token) else f"self.{names_at[k]}"))
        else:
            pieces.append((token, token.string))
    arguments = list(dict.fromkeys(names_at.values()))
    return _with_arguments(_untokenize(pieces), arguments), arguments


def _with_arguments(text: str, arguments: list[str]) -> str:
    """Add lifted constructor arguments to __init__'s signature, kept as attributes when forward reads them."""
    lines = text.split("\n")
    head = next(i for i, line in enumerate(lines) if line.lstrip().startswith("def __init__(self"))
    lines[head] = lines[head][: -len("):")] + "".join(f", {a}" for a in arguments) + "):"
    forward = "\n".join(lines[head:])
    stored = [f"{2 * INDENT}self.{a} = {a}" for a in arguments if f"self.{a}" in forward]
    start = next(i for i in range(head, len(lines)) if lines[i].strip().startswith("super().__init__("))
    end = start
    while lines[end].count("(") - lines[end].count(")") > 0 and end + 1 < len(lines) and not lines[end].rstrip().endswith(")"):
        end += 1
    lines[end + 1 : end + 1] = stored
    return "\n".join(lines)


def _init_range(tokens):
    """Whether a token lies in __init__ (where constructor arguments are bare names)."""
    init_line = next((t.start[0] for t in tokens if t.string == "__init__"), None)
    forward_line = next((t.start[0] for t in tokens if t.string == "forward"), None)
    return lambda token: init_line is not None and token.start[0] >= init_line and (forward_line is None or token.start[0] < forward_line)


def _untokenize(pieces) -> str:
    lines: dict[int, list] = defaultdict(list)
    source_lines = {}
    for token, text in pieces:
        source_lines[token.start[0]] = token.line
        lines[token.start[0]].append((token, text))
    out = []
    for number in sorted(source_lines):
        line = source_lines[number]
        edited, cursor = "", 0
        for token, text in lines[number]:
            if token.start[0] != token.end[0]:
                continue
            edited += line[cursor : token.start[1]] + text
            cursor = token.end[1]
        out.append((edited + line[cursor:]).rstrip("\n"))
    return "\n".join(out) + "\n"


def _base_parameter(header: str, position: int) -> str:
    """The name of a Paddle base layer's constructor parameter at `position` (header: `class X(nn.Base):`)."""
    import paddle

    base = header.partition("(nn.")[2].partition(")")[0]
    parameters = list(inspect.signature(getattr(paddle.nn, base).__init__).parameters)[1:]
    return parameters[position] if position < len(parameters) else "value"


def _context_name(tokens, k: int) -> str:
    """What a constant is passed as: the keyword, the parameter of the enclosing call (Paddle's
    base constructor, create_parameter's shape), else "value"."""
    if k >= 2 and tokens[k - 1].string == "=" and tokens[k - 2].type == tokenize.NAME:
        return tokens[k - 2].string
    depth, position = 0, 0
    for j in range(k - 1, -1, -1):
        text = tokens[j].string
        if text in (")", "]", "}"):
            depth += 1
        elif text in ("[", "{") and depth == 0:
            continue
        elif text in ("(", "[", "{"):
            if depth == 0:
                line = tokens[j].line
                if ".create_parameter(" in line:
                    return line.split("self.", 1)[1].split(" ", 1)[0] + "_shape"
                if "super().__init__(" in line:
                    return _base_parameter(tokens[0].line, position)
                return "value"
            depth -= 1
        elif text == "," and depth == 0:
            position += 1
        elif tokens[j].type == tokenize.NEWLINE:
            break
    return "value"


def _argument_name(instances: list[_Instance], values: tuple, tokens, k: int, taken: set[str]) -> str:
    """A torch attribute holding `values` on every instance, else the keyword it is passed as."""
    for name, value in vars(instances[0].module).items():
        if name.startswith("_") or name in taken or name in ("training",):
            continue
        if all(type(vars(i.module).get(name)) is type(v) and vars(i.module).get(name) == v for i, v in zip(instances, values, strict=True)):
            return name
    base = _context_name(tokens, k)
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}{n}"
    return name


# --- the whole file -----------------------------------------------------------------------------


@dataclass
class Generated:
    source: str
    constants: dict[str, np.ndarray]
    classes: int
    fixed_reason: str | None = None  # why the twin runs at its port's size only (None: it runs at any size)


class Emitter:
    """The twin's source from the model's traces: in eval and in train mode, each at one or more
    input sizes (the port's size first)."""

    def __init__(self, model: torch.nn.Module, traces: tuple[list[Trace], list[Trace]], fixed: tuple[int, ...] | None = None):
        self.model = model
        self.traces = traces
        self.fixed = fixed  # the input's trailing sizes the twin is restricted to, if any
        self.instances: dict[str, _Instance] = {}
        self.helpers: set[str] = set()
        self.constants: dict[str, np.ndarray] = {}

    def _is_custom(self, module) -> bool:
        if layer_translation(module) is not None:
            return False
        return type(module) not in (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)

    def run(self, header: str, fixed_reason: str | None = None) -> Generated:
        layer_paths = []  # a translated layer builds its own sublayers (MultiheadAttention's out_proj)
        for path, module in self.model.named_modules(remove_duplicate=False):  # a shared module: one Paddle layer per path
            if any(path.startswith(f"{layer}.") or (layer == "" and path) for layer in layer_paths):
                continue
            if layer_translation(module) is not None:
                layer_paths.append(path)
            if self._is_custom(module):
                self.instances[path] = self._instance(path, module)
        classes = self._classes()
        builder = self._build("", self.model, 1)
        return Generated(self._source(header, classes, builder), self.constants, len(classes), fixed_reason)

    def _classes(self) -> list[str]:
        """Each torch class's instances grouped by the shape of their code: one Paddle class per group."""
        by_class: dict[type, list[_Instance]] = defaultdict(list)
        for instance in self.instances.values():
            by_class[type(instance.module)].append(instance)
        used_names = set(RESERVED) | runtime_names()
        classes = []
        for cls, group in by_class.items():
            variants: dict[tuple, list[_Instance]] = defaultdict(list)
            for instance in group:
                variants[_shape_of(instance.text)].append(instance)
            for n, members in enumerate(variants.values(), start=1):
                name = cls.__name__ if n == 1 else f"{cls.__name__}{n}"
                while name in used_names:
                    name += "_"
                used_names.add(name)
                text, _ = _lift_numbers(members)
                for member in members:
                    member.class_name = name
                classes.append(text.replace("class __CLASS__", f"class {name}"))
        return classes

    def _source(self, header: str, classes: list[str], builder: str) -> str:
        helpers = self._all_helpers()
        imports = ["import paddle", "import paddle.nn as nn", "import paddle.nn.functional as F"]
        if self.constants:
            imports = ["import os", "", "import numpy as np", *imports]
        if any("math." in inspect.getsource(getattr(runtime, h)) for h in helpers) or any("math." in text for text in classes):
            imports.insert(0, "import math")
        source = [f'"""{header}"""', "", *imports, "", "# Own parameters start from this; load converted weights before use.",
                  "INITIALIZER = nn.initializer.TruncatedNormal(std=0.02)", ""]
        for helper in helpers:
            source += ["", inspect.getsource(getattr(runtime, helper)).rstrip(), ""]
        for text in classes:
            source += ["", text.rstrip(), ""]
        source += ["", "def create_model():", f'{INDENT}"""The twin, in eval mode like torch\'s after `.eval()`."""']
        if self.constants:
            source += [f"{INDENT}constants = np.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), \"constants.npz\"))"]
        source += [f"{INDENT}model = {builder}", f"{INDENT}model.eval()", f"{INDENT}return model", ""]
        return "\n".join(source)

    def _all_helpers(self) -> list[str]:
        """The runtime helpers the twin uses and those they call, in runtime.py's order."""
        needed, pending = set(), list(self.helpers)
        while pending:
            name = pending.pop()
            if name not in needed:
                needed.add(name)
                pending += _names_in(inspect.getsource(getattr(runtime, name))) & runtime_names()
        return sorted(needed, key=lambda n: inspect.getsourcelines(getattr(runtime, n))[1])

    def _instance(self, path: str, module: torch.nn.Module) -> _Instance:
        instance = _Instance(path, module)
        bodies = [[body for trace in traces for body in trace.bodies_of(path)] for traces in self.traces]
        calls_differ = any(len(trace.bodies_of(path)) > 1 for traces in self.traces for trace in traces)
        forward, helpers = _forward_text(instance, bodies, calls_differ)
        self.helpers |= helpers
        own_lines, own_constants = _own_tensors(module)
        instance.constants.update(own_constants)
        children = [name for name, _ in _children(module)]
        base = base_translation(module)
        paddle_base = "nn.Layer"
        init_lines = []
        if base is not None:
            check_requirements(list(base.require), _layer_names(module), describe(module, path))
            call = render(base.paddle, _layer_names(module), describe(module, path))
            paddle_base, _, arguments = call.partition("(")
            init_lines.append(f"super().__init__({arguments}")
            self.helpers.update(base.helpers)
        else:
            init_lines.append("super().__init__()")
        for child in children:
            argument = _identifier(child)
            init_lines.append(f"self.{child} = {argument}" if child == argument else f"self.add_sublayer({child!r}, {argument})")
        init_lines += own_lines
        for name in instance.constants:
            init_lines.append(f"self.register_buffer({name!r}, {name}, persistable=False)")
        parameters = [_identifier(c) for c in children] + list(instance.constants)
        if path == "" and self.fixed is not None and forward:
            forward[1:1] = _size_check(forward[0], self.fixed)
        if not forward:
            forward = ["def forward(self, *args, **kwargs):",
                       f"{INDENT}raise NotImplementedError({('the torch module was not called when the twin was generated')!r})"]
        init_head = "def __init__(self" + "".join(f", {p}" for p in parameters) + "):"
        text = [f"class __CLASS__({paddle_base}):", f'{INDENT}"""{_docstring(module)}"""', "", INDENT + init_head,
                *(2 * INDENT + line for line in init_lines), "", *(INDENT + line for line in forward)]
        instance.text = "\n".join(text) + "\n"
        return instance

    def _build(self, path: str, module: torch.nn.Module, depth: int) -> str:
        """The expression building `module` (and its children) in create_model()."""
        entry = layer_translation(module)
        if entry is not None:
            names = _layer_names(module)
            check_requirements(list(entry.require), names, describe(module, path))
            call = render(entry.paddle, names, describe(module, path))
            self.helpers.update(h for h in entry.helpers if h in _names_in(call))  # those the call uses
            return without_defaults(call)
        children = _children(module)
        child = lambda name, m: self._build(f"{path}.{name}" if path else name, m, depth + 1)  # noqa: E731
        if type(module) is torch.nn.Sequential:
            if all(name == str(i) for i, (name, _) in enumerate(children)):
                return _call("nn.Sequential", [child(n, m) for n, m in children], depth)
            return _call("nn.Sequential", [f"({n!r}, {child(n, m)})" for n, m in children], depth)
        if type(module) is torch.nn.ModuleList:
            return _call("nn.LayerList", [_call("", [child(n, m) for n, m in children], depth + 1, brackets="[]")], depth)
        if type(module) is torch.nn.ModuleDict:
            return _call("nn.LayerDict", [_call("", [f"{n!r}: {child(n, m)}" for n, m in children], depth + 1, brackets="{}")], depth)
        instance = self.instances[path]
        arguments = [f"{_identifier(n)}={child(n, m)}" for n, m in children]
        arguments += [f"{k}={literal(v)}" for k, v in instance.lifted.items()]
        for name, value in instance.constants.items():
            key = f"{path}:{name}"
            self.constants[key] = value
            arguments.append(f"{name}=paddle.to_tensor(constants[{key!r}])")
        return _call(instance.class_name, arguments, depth)


def _size_check(head: str, fixed: tuple[int, ...]) -> list[str]:
    """The first lines of the root's forward where the twin runs at its port's size only."""
    first = head.removeprefix("def forward(self, ").split(",")[0].split("=")[0].strip(" ):")
    sizes = "x".join(str(n) for n in fixed)
    return [f"{INDENT}if {first}.shape[{-len(fixed)}:] != {list(fixed)}:",
            f"{2 * INDENT}raise ValueError(f\"this twin was ported for {sizes} inputs and runs at that size only; got {{{first}.shape}}\")"]


def without_defaults(call: str) -> str:
    """A Paddle (or runtime helper) layer's constructor call without the keyword arguments that repeat its defaults."""
    import paddle

    tree = ast.parse(call, mode="eval").body
    if isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id in runtime_names():
        cls = getattr(runtime, tree.func.id)  # a runtime helper layer
    elif isinstance(tree, ast.Call) and isinstance(tree.func, ast.Attribute) and isinstance(tree.func.value, ast.Name):
        cls = getattr(paddle.nn, tree.func.attr, None) if tree.func.value.id == "nn" else None
    else:
        return call
    if cls is None:
        return call
    defaults = {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values() if p.default is not p.empty}
    kept = []
    for keyword_ in tree.keywords:
        try:
            value = ast.literal_eval(keyword_.value)
        except ValueError:
            kept.append(keyword_)
            continue
        if keyword_.arg not in defaults or type(value) is not type(defaults[keyword_.arg]) or value != defaults[keyword_.arg]:
            kept.append(keyword_)
    tree.keywords = kept
    return ast.unparse(tree)


def _children(module: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """A module's children under every name it holds them by: torch's state dict lists a child
    registered twice (coat's `mlp2 = mlp3 = mlp4`) under each name, so the Paddle twin has each."""
    return [(name, child) for name, child in module._modules.items() if child is not None]


def _shape_of(text: str) -> tuple:
    """A class text with its constants blanked: instances of one shape share a class."""
    out = []
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        out.append("#" if token.type in (tokenize.NUMBER, tokenize.STRING) or token.string in ("True", "False", "None") else token.string)
    return tuple(out)


def _identifier(name: str) -> str:
    """A Python name for a child's name (torchvision's RegNet names blocks `block1-0`)."""
    if name.isidentifier() and not keyword.iskeyword(name) and name != "self":
        return name
    return "layer_" + "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def _docstring(module: torch.nn.Module) -> str:
    cls = type(module)
    return f"Twin of {cls.__module__}.{cls.__qualname__}."


def _layer_names(module: torch.nn.Module) -> dict:
    names = {k: v for k, v in vars(module).items() if not k.startswith("_")}
    names.update({k: v for k, v in module._parameters.items()})
    names.update({k: v for k, v in module._buffers.items()})
    return names


def _call(function: str, arguments: list[str], depth: int, brackets: str = "()") -> str:
    opening, closing = brackets
    one_line = f"{function}{opening}{', '.join(arguments)}{closing}"
    if len(one_line) + depth * len(INDENT) <= LINE_LENGTH and "\n" not in one_line:
        return one_line
    inner = (depth + 1) * INDENT
    return f"{function}{opening}\n" + "".join(f"{inner}{a},\n" for a in arguments) + f"{depth * INDENT}{closing}"


def generate(model: torch.nn.Module, examples: list[tuple[tuple, dict]], header: str) -> Generated:
    """Trace `model` on each example, (args, kwargs) at one input size (the port's first), in eval and
    train mode and write its Paddle twin. Where the traces differ for no reason they recorded, or where
    there is one example, the twin is written for the first example's size and checks its image input."""
    from .trace import trace

    traces = tuple([trace(model, args, is_layer, training, kwargs) for args, kwargs in examples] for training in (False, True))
    reason = "torch's model ran at no other size tried"
    if len(examples) > 1:
        try:
            return Emitter(model, traces).run(header)
        except SizeSpecific as exc:
            reason = str(exc)
    fixed = _image_size(examples[0])
    try:
        return Emitter(model, tuple(mode[:1] for mode in traces), fixed=fixed).run(header, fixed_reason=reason if fixed else None)
    except SizeSpecific as exc:  # calls of one module that differ for no recorded reason
        raise PortError(f"{exc}: it cannot become one layer") from None


def _image_size(example: tuple[tuple, dict]) -> tuple[int, ...] | None:
    """The height and width of the example's first floating input of 4 or more dimensions."""
    args, kwargs = example
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.ndim >= 4:
            return tuple(value.shape[-2:])
    return None
