"""Paddle ops -> torch code, as data: `ops.toml` holds one entry per op kind (PIR names and legacy
types alike), read here into `OpTranslation`s. The entry format is described at the top of ops.toml."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...._compat import tomllib

TABLE = Path(__file__).with_name("ops.toml")


@dataclass(frozen=True)
class OpTranslation:
    key: str
    torch: str
    operands: tuple[str, ...] = ()
    slots: dict[str, str] = field(default_factory=dict)
    from_attrs: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    module: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    functional: str | None = None
    outputs: tuple[str, ...] = ("Out",)
    results: int = 1
    require: tuple[str, ...] = ()
    transposed: tuple[str, ...] = ()


@functools.cache
def translations() -> dict[str, OpTranslation]:
    """Op kind (and each `also` alias) -> its translation."""
    entries = {}
    for key, raw in tomllib.loads(TABLE.read_text()).items():
        entry = OpTranslation(
            key=key,
            torch=raw["torch"],
            operands=tuple(raw.get("operands", ())),
            slots=dict(raw.get("slots", {})),
            from_attrs=dict(raw.get("from_attrs", {})),
            defaults=dict(raw.get("defaults", {})),
            module=raw.get("module"),
            parameters=dict(raw.get("parameters", {})),
            functional=raw.get("functional"),
            outputs=tuple(raw.get("outputs", ("Out",))),
            results=raw.get("results", 1),
            require=tuple(raw.get("require", ())),
            transposed=tuple(raw.get("transposed", ())),
        )
        for alias in (key, *raw.get("also", ())):
            entries[alias] = entry
    return entries
