"""The translation-table format both port directions share.

A table entry (`Translation`) names an op of the source framework and gives its spelling in the
target framework's code: a template with `{...}` holes. A hole that names an argument becomes that
argument's code; any other hole is a Python expression evaluated at generation time, on the call's
constant arguments, with a direction's helpers (its `Spelling`). An argument that is a traced value
(`Code`) refuses to be compared or tested, so an expression can never silently decide on one.
Tables are TOML files, one entry per op: `read_table` reads them.
"""
from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._compat import tomllib
from ..errors import PortError

_HOLE = re.compile(r"\{([^{}]*)\}")
_OMITTED = re.compile(r",\s*\w+=$|\w+=$")


class NeedsConstant(Exception):
    """A template expression asked a question of a traced value."""


class Code:
    """Target code for a value known only when the twin runs (`value`: its value at trace time)."""

    def __init__(self, text: str, value: Any = None):
        self.text = text
        self.value = value

    @property
    def atomic(self) -> bool:
        return is_atomic(self.text)

    def __eq__(self, other):
        raise NeedsConstant(self.text)

    __ne__ = __lt__ = __gt__ = __le__ = __ge__ = __eq__

    def __bool__(self):
        raise NeedsConstant(self.text)

    def __hash__(self):
        return id(self)

    def __add__(self, other):  # text assembled by a template expression
        return Code(self.text + (other if isinstance(other, str) else other.text)) if isinstance(other, (str, Code)) else NotImplemented

    def __radd__(self, other):
        return Code(other + self.text) if isinstance(other, str) else NotImplemented

    def __repr__(self):
        return self.text


class _Omit:
    def __repr__(self):
        return "OMIT"


OMIT = _Omit()


def is_atomic(text: str) -> bool:
    """Whether `text` can be embedded in a larger expression without parentheses."""
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        return False
    return isinstance(node, (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant, ast.List, ast.Tuple))


@dataclass(frozen=True)
class Spelling:
    """How one direction writes values into its templates: `literal` spells a constant (or a
    structure holding Code) in the target's code; `environment` holds the helpers template
    expressions may call."""

    literal: Callable[[Any], str]
    environment: Mapping[str, Any]


def render(template: str, names: dict[str, Any], where: str, spelling: Spelling) -> str:
    """Fill `template`'s holes from `names` (see the module docstring)."""
    out, last = [], 0
    for match in _HOLE.finditer(template):
        out.append(template[last : match.start()])
        last = match.end()
        expression = match[1].strip()
        if expression.isidentifier() and expression in names:
            value = names[expression]
        else:
            try:
                value = eval(expression, {"__builtins__": {}, **spelling.environment}, names)  # noqa: S307 - our own tables
            except NeedsConstant as exc:
                raise PortError(f"{where}: the translation needs a constant where the model computes {exc}") from None
            except PortError:
                raise
            except Exception as exc:
                raise PortError(f"{where}: cannot translate ({type(exc).__name__}: {exc})") from None
        if value is OMIT:
            out[-1] = _OMITTED.sub("", out[-1])
            continue
        out.append(spelling.literal(value))
    out.append(template[last:])
    return "".join(out).replace("(, ", "(")


def check_requirements(requirements: list[str], names: dict[str, Any], where: str, spelling: Spelling) -> None:
    """Refuse a call that a `require` line of its entry rules out, with that line's reason."""
    for requirement in requirements:
        condition, _, reason = requirement.partition(": ")
        try:
            met = eval(condition, {"__builtins__": {}, **spelling.environment}, names)  # noqa: S307 - our own tables
        except NeedsConstant as exc:
            raise PortError(f"{where}: needs a constant where the model computes {exc}") from None
        if not met:
            raise PortError(f"{where}: {reason}")


@dataclass(frozen=True)
class Translation:
    """One table entry: a source framework's function, method or layer and its spelling in the target's code."""

    key: str
    paddle: str
    signature: inspect.Signature | None = None
    helpers: tuple[str, ...] = ()
    require: tuple[str, ...] = ()
    attributes: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # the target layer's second names of its tensors -> the first
    examples: tuple[str, ...] = ()
    input: Any = None

    def bind(self, args: tuple, kwargs: dict, where: str) -> dict[str, Any]:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise PortError(f"{where}: the call does not match {self.key}{self.signature} ({exc})") from None
        bound.apply_defaults()
        return dict(bound.arguments)


def _signature(text: str) -> inspect.Signature:
    return inspect.signature(eval(f"lambda {text}: None"))  # noqa: S307 - our own tables


def read_table(path: Path, with_signature: bool) -> dict[str, Translation]:
    """A translation table: entry key (and each of its `also` aliases) -> its Translation."""
    entries = {}
    for key, raw in tomllib.loads(path.read_text()).items():
        entry = Translation(
            key=key,
            paddle=raw["paddle"],
            signature=_signature(raw["signature"]) if with_signature else None,
            helpers=tuple(raw.get("helpers", ())),
            require=tuple(raw.get("require", ())),
            attributes=dict(raw.get("attributes", {})),
            aliases=dict(raw.get("aliases", {})),
            examples=tuple(raw.get("examples", ())),
            input=raw.get("input"),
        )
        for alias in (key, *raw.get("also", ())):
            entries[alias] = entry
    return entries
