"""The rules of a mapping table: declarative, reversible key correspondences between the two twins.

The format is documented in docs/mapping-tables.md; `loading.load_table` reads a table's TOML into
these immutable rules, and `Table.plan` turns a set of source keys into the per-tensor steps of a
conversion, in either direction.
"""
from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import InvalidArgument, TableError
from ..frameworks import FRAMEWORKS, other

# {name}, {name:REGEX}, or {name+N} / {name-N}: an integer written N more (less) than the value captured
# on the rule's other side.
_PLACEHOLDER = re.compile(r"\{(\w+)(?:([+-]\d+)|:((?:[^{}]|\{[^{}]*\})+))?\}")


@dataclass(frozen=True)
class Pattern:
    """A whole-key pattern with named placeholders, usable to match and to format.

    A placeholder may appear several times (`db_conv_{b+1}.conv{b+1}_{l}`): the key matches only
    where every occurrence holds the same value."""

    text: str
    regex: re.Pattern
    occurrences: tuple[tuple[str, int | None], ...]  # per capture group: (name, integer offset or None)
    # Expressions a value written with an offset must still satisfy ({i:2|3} on the other side).
    checks: tuple[tuple[str, re.Pattern], ...] = ()

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.occurrences)

    @classmethod
    def parse(cls, text: str, where: str, shared: dict[str, str] | None = None) -> Pattern:
        """Compile `text`; `shared` gives placeholder expressions declared on the rule's other side."""
        if not isinstance(text, str) or not text:
            raise TableError(f"{where}: a pattern must be a non-empty string, got {text!r}")
        pieces = _PLACEHOLDER.split(text)  # literal, name, offset, regex, literal, ..., literal
        literals, names, offsets, exprs = pieces[0::4], pieces[1::4], pieces[2::4], pieces[3::4]
        if any("{" in lit or "}" in lit for lit in literals):
            raise TableError(f"{where}: unbalanced brace in pattern {text!r}")
        declared = {**(shared or {}), **{name: expr for name, expr in zip(names, exprs) if expr}}
        parts, occurrences = [re.escape(literals[0])], []
        for i, (name, offset, literal) in enumerate(zip(names, offsets, literals[1:])):
            expr = r"\d+" if offset else declared.get(name, "[^.]+")
            parts += [f"(?P<g{i}>{expr})", re.escape(literal)]
            occurrences.append((name, int(offset) if offset else None))
        try:
            regex = re.compile("".join(parts))
            checks = tuple((name, re.compile(declared[name])) for name, offset in occurrences if offset and name in declared)
        except re.error as exc:
            raise TableError(f"{where}: bad regular expression in {text!r}: {exc}") from None
        return cls(text, regex, tuple(occurrences), checks)

    def match(self, key: str) -> dict[str, str] | None:
        m = self.regex.fullmatch(key)
        if not m:
            return None
        values: dict[str, str] = {}
        for captured, (name, offset) in zip(m.groups(), self.occurrences):
            value = str(int(captured) - offset) if offset is not None else captured
            if (offset is not None and int(value) < 0) or values.setdefault(name, value) != value:
                return None
        if any(check.fullmatch(values[name]) is None for name, check in self.checks):
            return None
        return values

    def format(self, values: dict[str, str]) -> str:
        def placeholder(m: re.Match) -> str:
            value = values[m.group(1)]
            return str(int(value) + int(m.group(2))) if m.group(2) else value

        return _PLACEHOLDER.sub(placeholder, self.text)


@dataclass(frozen=True)
class Rename:
    torch: Pattern
    paddle: Pattern

    def side(self, side: str) -> Pattern:
        return self.torch if side == "torch" else self.paddle


@dataclass(frozen=True)
class Drop:
    """Keys present on `side` only: dropped when converting away, filled when converting towards it.

    A `lossless` drop is a tensor the other twin has no place for but that the filled value leaves
    without effect (a bias of zeros): converting away refuses it unless it holds only `fill`, so
    trained numbers are never lost. A drop with `into` is a tensor whose effect another one carries
    exactly (a conv bias before a BatchNorm, in its running mean): converting away adds it, times
    `scale`, into that tensor (named on the same side); converting towards it creates it with
    `fill`. `why` says where the other twin lacks it."""

    side: str
    pattern: Pattern
    fill: float | int | None
    lossless: bool = False
    why: str = ""
    into: Pattern | None = None
    scale: float = 1.0
    # A key that names, on the same side, the very tensor this one is (Paddle's RNN layers list each
    # weight under their cell's name too): converting towards this side creates it as a copy of that key.
    same_as: Pattern | None = None

    def into_key(self, key: str) -> str:
        """The key on this side that absorbs `key` (a key this rule drops)."""
        return self.into.format(self.pattern.match(key))

    def same_as_key(self, key: str) -> str:
        """The key on this side that holds the same tensor as `key` (a key this rule drops)."""
        return self.same_as.format(self.pattern.match(key))


@dataclass(frozen=True)
class Split:
    """One torch tensor that Paddle keeps as several (nn.MultiheadAttention's packed q, k, v
    projection): torch -> Paddle cuts it into len(paddle) equal slices along `axis` of torch's
    tensor, in order; Paddle -> torch joins them back. A split key listed under `transpose` has each
    part transposed (the packed [3E, E] weight of three Linear layers becomes three [E, E] ones)."""

    torch: Pattern
    paddle: tuple[Pattern, ...]
    axis: int = 0

    def parts(self, torch_key: str) -> tuple[str, ...] | None:
        """The Paddle keys of `torch_key`'s parts, in order (None when the rule does not match it)."""
        values = self.torch.match(torch_key)
        return None if values is None else tuple(p.format(values) for p in self.paddle)

    def whole(self, paddle_key: str) -> tuple[str, tuple[str, ...]] | None:
        """The torch key that `paddle_key` is a part of, and all its parts (None when no part matches)."""
        for pattern in self.paddle:
            values = pattern.match(paddle_key)
            if values is not None:
                return self.torch.format(values), tuple(p.format(values) for p in self.paddle)
        return None


@dataclass(frozen=True)
class Resize:
    """Size-dependent tensors (torch key pattern) and the numpy function that resizes them."""

    torch: Pattern
    function: str

    def load(self):
        module, _, attr = self.function.partition(":")
        return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Adjust:
    """Values that differ between twins that compute the same function: Paddle's tensor is
    torch's times `scale` plus `offset`, and torch's is recovered by the inverse on the way back
    (to rounding: the arithmetic is done in float64).
    `why` says what in the twins makes it so (shown in conversion summaries)."""

    torch: Pattern
    scale: float
    offset: float
    why: str

    def apply(self, array, to: str):
        """`array` (float64) taken to side `to`."""
        return array * self.scale + self.offset if to == "paddle" else (array - self.offset) / self.scale


@dataclass(frozen=True)
class Step:
    """How one source tensor becomes one target tensor."""

    source: str
    target: str
    transpose: bool
    resize: Resize | None
    adjust: Adjust | None = None
    split: Split | None = None
    part: int = 0  # torch -> Paddle, a split tensor: which of its parts the target is
    parts: tuple[str, ...] = ()  # Paddle -> torch, a split tensor: every part in order (`source` is the first)

    def part_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of this step's part of a source tensor of `shape` (the shape itself unless split)."""
        if self.split is None or self.parts:
            return tuple(shape)
        axis, count = self.split.axis % len(shape), len(self.split.paddle)
        return tuple(shape[:axis]) + (shape[axis] // count,) + tuple(shape[axis + 1 :])

    def part_of(self, array):
        """This step's part of a torch source array (the array itself unless split), before transposing."""
        if self.split is None or self.parts:
            return array
        axis = self.split.axis % array.ndim
        size = array.shape[axis] // len(self.split.paddle)
        index = [slice(None)] * array.ndim
        index[axis] = slice(self.part * size, (self.part + 1) * size)
        return array[tuple(index)]


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    dropped: tuple[str, ...]  # source keys with no counterpart on the target side
    to: str

    def fills(self, target_keys: Iterable[str], table: Table) -> dict[str, Drop]:
        """Target keys that no step produces but a drop rule allows to create."""
        produced = {s.target for s in self.steps}
        return {k: rule for k in target_keys if k not in produced and (rule := table.drop_rule(k, self.to))}


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    renames: tuple[Rename, ...]
    transposes: tuple[Pattern, ...]
    drops: tuple[Drop, ...]
    resizes: tuple[Resize, ...]
    adjusts: tuple[Adjust, ...] = ()
    splits: tuple[Split, ...] = ()

    def rename(self, key: str, to: str) -> str:
        source = other(to)
        rules = self.renames if to == "paddle" else tuple(reversed(self.renames))
        for rule in rules:
            values = rule.side(source).match(key)
            if values is not None:
                key = rule.side(to).format(values)
        return key

    def targets(self, key: str, to: str) -> tuple[str, ...]:
        """The keys on side `to` that hold `key`'s values: its parts or its whole where a split rule
        says so, else its renamed key."""
        for rule in self.splits:
            found = rule.parts(key) if to == "paddle" else rule.whole(key)
            if found is not None:
                return found if to == "paddle" else (found[0],)
        return (self.rename(key, to),)

    def drop_rule(self, key: str, side: str) -> Drop | None:
        return next((d for d in self.drops if d.side == side and d.pattern.match(key) is not None), None)

    def folds(self, keys: Iterable[str], side: str) -> dict[str, list[tuple[str, Drop]]]:
        """The keys among `keys` (named on `side`) that a drop rule folds into another tensor, by
        the key of the tensor that absorbs them."""
        folds: dict[str, list[tuple[str, Drop]]] = {}
        for key in keys:
            rule = self.drop_rule(key, side)
            if rule is not None and rule.into is not None:
                folds.setdefault(rule.into_key(key), []).append((key, rule))
        return folds

    def is_transposed(self, torch_key: str) -> bool:
        return any(p.match(torch_key) is not None for p in self.transposes)

    def resize_rule(self, torch_key: str) -> Resize | None:
        return next((r for r in self.resizes if r.torch.match(torch_key) is not None), None)

    def adjust_rule(self, torch_key: str) -> Adjust | None:
        return next((a for a in self.adjusts if a.torch.match(torch_key) is not None), None)

    def plan(self, source_keys: Iterable[str], to: str) -> Plan:
        if to not in FRAMEWORKS:
            raise InvalidArgument("to", to, "expected torch or paddle")
        source = other(to)
        steps, dropped, joined = [], [], set()
        for key in source_keys:
            if self.drop_rule(key, source):
                dropped.append(key)
                continue
            split = self._split_step(key, to, joined)
            if split is not None:
                steps += split
                continue
            target = self.rename(key, to)
            torch_key = key if source == "torch" else target
            steps.append(Step(key, target, self.is_transposed(torch_key), self.resize_rule(torch_key), self.adjust_rule(torch_key)))
        return Plan(tuple(steps), tuple(dropped), to)

    def _split_step(self, key: str, to: str, joined: set[str]) -> list[Step] | None:
        """The steps of `key` where a split rule covers it (an empty list for a part already joined
        by an earlier one), else None."""
        for rule in self.splits:
            if to == "paddle" and (parts := rule.parts(key)) is not None:
                transpose = self.is_transposed(key)
                return [Step(key, part, transpose, None, split=rule, part=i) for i, part in enumerate(parts)]
            if to == "torch" and (found := rule.whole(key)) is not None:
                whole, parts = found
                if whole in joined:
                    return []
                joined.add(whole)
                return [Step(parts[0], whole, self.is_transposed(whole), None, split=rule, parts=parts)]
        return None
