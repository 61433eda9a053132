"""Reading mapping tables: TOML files into `rules.Table`, includes resolved, every entry checked.

Built-in tables live with their families (`models/<family>/<table>.toml`); the rule sets any table
may include live here (`shared/batchnorm.toml`).
"""
from __future__ import annotations

from pathlib import Path

from .._compat import tomllib
from ..errors import TableError
from ..frameworks import FRAMEWORKS
from .rules import _PLACEHOLDER, Adjust, Drop, Pattern, Rename, Resize, Split, Table

_TABLE_KEYS = {"description", "include", "rename", "transpose", "drop", "resize", "adjust", "split"}

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
    renames, transposes, drops, resizes, adjusts, splits = [], [], [], [], [], []
    description = _read_into(path, renames, transposes, drops, resizes, adjusts, splits, seen=set())
    return Table(path.stem, description, tuple(renames), tuple(transposes), tuple(drops), tuple(resizes), tuple(adjusts),
                 tuple(splits))


def _read_into(path: Path, renames, transposes, drops, resizes, adjusts, splits, seen: set[Path]) -> str:
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
        _read_into(found, renames, transposes, drops, resizes, adjusts, splits, seen)
    for i, rule in enumerate(_list(data, "rename", where)):
        at = f"{where} rename #{i + 1}"
        _expect_keys(rule, {"torch", "paddle"}, set(), at)
        # A placeholder's expression may be written on either side; it holds for both.
        shared = {m.group(1): m.group(3) for side in FRAMEWORKS for m in _PLACEHOLDER.finditer(str(rule[side])) if m.group(3)}
        torch_p, paddle_p = Pattern.parse(rule["torch"], at, shared), Pattern.parse(rule["paddle"], at, shared)
        if torch_p.fields != paddle_p.fields:
            raise TableError(f"{at}: both sides must use the same placeholders ({rule['torch']!r} vs {rule['paddle']!r})")
        renames.append(Rename(torch_p, paddle_p))
    for i, text in enumerate(_list(data, "transpose", where)):
        transposes.append(Pattern.parse(text, f"{where} transpose #{i + 1}"))
    for i, rule in enumerate(_list(data, "drop", where)):
        at = f"{where} drop #{i + 1}"
        _expect_keys(rule, set(), {"torch", "paddle", "fill", "lossless", "why", "into", "scale", "same_as"}, at)
        sides = [s for s in FRAMEWORKS if s in rule]
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
        same_as = Pattern.parse(rule["same_as"], at) if "same_as" in rule else None
        if same_as is not None and (lossless or into is not None or fill is not None or not why
                                    or not same_as.fields <= pattern.fields):
            raise TableError(f"{at}: same_as names, with the dropped key's placeholders, the key holding the same tensor; "
                             "it takes no fill, lossless or into, and needs why")
        drops.append(Drop(sides[0], pattern, fill, lossless, why, into, float(scale), same_as))
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
    for i, rule in enumerate(_list(data, "split", where)):
        at = f"{where} split #{i + 1}"
        _expect_keys(rule, {"torch", "paddle"}, {"axis"}, at)
        parts, axis = rule["paddle"], rule.get("axis", 0)
        if not isinstance(parts, list) or len(parts) < 2 or isinstance(axis, bool) or not isinstance(axis, int):
            raise TableError(f"{at}: paddle must list two or more parts, axis be an integer")
        texts = [str(rule["torch"]), *map(str, parts)]
        shared = {m.group(1): m.group(3) for text in texts for m in _PLACEHOLDER.finditer(text) if m.group(3)}
        whole, parts = Pattern.parse(rule["torch"], at, shared), tuple(Pattern.parse(part, at, shared) for part in parts)
        if any(part.fields != whole.fields for part in parts):
            raise TableError(f"{at}: every part must use the torch pattern's placeholders")
        splits.append(Split(whole, parts, axis))
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
