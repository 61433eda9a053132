"""Mapping tables: declarative, reversible key correspondences between the two twins.

The format is documented in docs/mapping-tables.md. A table is read once from
TOML into immutable rules; `Table.plan` turns a set of source keys into the
per-tensor steps of a conversion, in either direction.
"""
from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import tomllib

from ..errors import UserError

SIDES = ("torch", "paddle")
# {name}, {name:REGEX}, or {name+N} / {name-N}: an integer written N more (less) than the value captured
# on the rule's other side.
_PLACEHOLDER = re.compile(r"\{(\w+)(?:([+-]\d+)|:((?:[^{}]|\{[^{}]*\})+))?\}")
_TABLE_KEYS = {"description", "include", "rename", "transpose", "drop", "resize", "adjust"}


class TableError(UserError):
    """A mapping table that cannot be read or is inconsistent."""


def other_side(side: str) -> str:
    return SIDES[1 - SIDES.index(side)]


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

    def into_key(self, key: str) -> str:
        """The key on this side that absorbs `key` (a key this rule drops)."""
        return self.into.format(self.pattern.match(key))


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

    def rename(self, key: str, to: str) -> str:
        source = other_side(to)
        rules = self.renames if to == "paddle" else tuple(reversed(self.renames))
        for rule in rules:
            values = rule.side(source).match(key)
            if values is not None:
                key = rule.side(to).format(values)
        return key

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
        if to not in SIDES:
            raise UserError(f"unknown target framework {to!r}; expected torch or paddle")
        source = other_side(to)
        steps, dropped = [], []
        for key in source_keys:
            if self.drop_rule(key, source):
                dropped.append(key)
                continue
            target = self.rename(key, to)
            torch_key = key if source == "torch" else target
            steps.append(Step(key, target, self.is_transposed(torch_key), self.resize_rule(torch_key), self.adjust_rule(torch_key)))
        return Plan(tuple(steps), tuple(dropped), to)


# Rule sets any table may include (`shared/batchnorm`); each family's tables live in its folder.
SHARED_RULES_DIR = Path(__file__).resolve().parent
FAMILIES_DIR = SHARED_RULES_DIR.parent / "models"


def builtin_table(name: str) -> Path | None:
    """The file of built-in table `name`: a shared rule set or a family's table
    (`models/<family>/<name>.toml`); None when there is none."""
    found = [SHARED_RULES_DIR / f"{name}.toml", *FAMILIES_DIR.glob(f"*/{name}.toml")]
    return next((path for path in found if path.is_file()), None)


def load_table(name_or_path: str | Path) -> Table:
    """Load a built-in table by name ("resnet") or a table file by path."""
    path = Path(name_or_path) if Path(name_or_path).suffix == ".toml" else builtin_table(str(name_or_path))
    if path is None or not path.is_file():
        raise TableError(f"mapping table {str(name_or_path)!r} not found" + (f" ({path})" if path else ""))
    renames, transposes, drops, resizes, adjusts = [], [], [], [], []
    description = _read_into(path, renames, transposes, drops, resizes, adjusts, seen=set())
    return Table(path.stem, description, tuple(renames), tuple(transposes), tuple(drops), tuple(resizes), tuple(adjusts))


def _read_into(path: Path, renames, transposes, drops, resizes, adjusts, seen: set[Path]) -> str:
    path = path.resolve()
    if path in seen:
        return ""
    seen.add(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TableError(f"cannot read mapping table {path}: {exc}") from None
    where = path.name
    unknown = set(data) - _TABLE_KEYS
    if unknown:
        raise TableError(f"{where}: unknown entries {', '.join(sorted(unknown))}")
    for include in _list(data, "include", where):
        candidates = [path.parent / f"{include}.toml", SHARED_RULES_DIR / f"{include}.toml"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise TableError(f"{where}: included table {include!r} not found")
        _read_into(found, renames, transposes, drops, resizes, adjusts, seen)
    for i, rule in enumerate(_list(data, "rename", where)):
        at = f"{where} rename #{i + 1}"
        _expect_keys(rule, {"torch", "paddle"}, set(), at)
        # A placeholder's expression may be written on either side; it holds for both.
        shared = {m.group(1): m.group(3) for side in SIDES for m in _PLACEHOLDER.finditer(str(rule[side])) if m.group(3)}
        torch_p, paddle_p = Pattern.parse(rule["torch"], at, shared), Pattern.parse(rule["paddle"], at, shared)
        if torch_p.fields != paddle_p.fields:
            raise TableError(f"{at}: both sides must use the same placeholders ({rule['torch']!r} vs {rule['paddle']!r})")
        renames.append(Rename(torch_p, paddle_p))
    for i, text in enumerate(_list(data, "transpose", where)):
        transposes.append(Pattern.parse(text, f"{where} transpose #{i + 1}"))
    for i, rule in enumerate(_list(data, "drop", where)):
        at = f"{where} drop #{i + 1}"
        _expect_keys(rule, set(), {"torch", "paddle", "fill", "lossless", "why", "into", "scale"}, at)
        sides = [s for s in SIDES if s in rule]
        if len(sides) != 1:
            raise TableError(f"{at}: name exactly one of torch or paddle")
        fill, scale = rule.get("fill"), rule.get("scale", 1.0)
        if any(v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))) for v in (fill, scale)):
            raise TableError(f"{at}: fill and scale must be numbers")
        lossless, why = rule.get("lossless", False), rule.get("why", "")
        if not isinstance(lossless, bool) or not isinstance(why, str):
            raise TableError(f"{at}: lossless must be true or false, why a string")
        if (lossless or "into" in rule) and (fill is None or not why):
            raise TableError(f"{at}: a lossless or folding drop needs the fill that leaves it without effect, "
                             "and why the other twin lacks it")
        pattern = Pattern.parse(rule[sides[0]], at)
        into = Pattern.parse(rule["into"], at) if "into" in rule else None
        if into is not None and (lossless or not into.fields <= pattern.fields):
            raise TableError(f"{at}: into may use only the dropped key's placeholders, and a folded tensor is not lossless")
        drops.append(Drop(sides[0], pattern, fill, lossless, why, into, float(scale)))
    for i, rule in enumerate(_list(data, "resize", where)):
        at = f"{where} resize #{i + 1}"
        _expect_keys(rule, {"torch", "function"}, set(), at)
        if ":" not in str(rule["function"]):
            raise TableError(f"{at}: function must be written as module:function")
        resizes.append(Resize(Pattern.parse(rule["torch"], at), str(rule["function"])))
    for i, rule in enumerate(_list(data, "adjust", where)):
        at = f"{where} adjust #{i + 1}"
        _expect_keys(rule, {"torch", "why"}, {"scale", "offset"}, at)
        scale, offset = rule.get("scale", 1.0), rule.get("offset", 0.0)
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in (scale, offset)):
            raise TableError(f"{at}: scale and offset must be numbers")
        if not scale > 0 or (scale == 1 and offset == 0):
            raise TableError(f"{at}: scale must be positive, and scale or offset must change the values")
        if not isinstance(rule["why"], str) or not rule["why"]:
            raise TableError(f"{at}: why must say what in the twins makes the values differ")
        adjusts.append(Adjust(Pattern.parse(rule["torch"], at), float(scale), float(offset), rule["why"]))
    description = data.get("description", "")
    if not isinstance(description, str):
        raise TableError(f"{where}: description must be a string")
    return description


def _list(data: dict, key: str, where: str) -> list:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise TableError(f"{where}: {key} must be a list")
    return value


def _expect_keys(rule, required: set[str], optional: set[str], where: str) -> None:
    if not isinstance(rule, dict):
        raise TableError(f"{where}: expected a table of keys")
    missing, unknown = required - set(rule), set(rule) - required - optional
    if missing or unknown:
        detail = "; ".join(
            part
            for part in (
                f"missing {', '.join(sorted(missing))}" if missing else "",
                f"unknown {', '.join(sorted(unknown))}" if unknown else "",
            )
            if part
        )
        if unknown & _TABLE_KEYS:
            detail += " (in TOML, top-level entries must come before the first [[...]] rule)"
        raise TableError(f"{where}: {detail}")
