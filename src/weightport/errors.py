"""weightport's own error types, in the library's words.

`UserError` covers everything a user can cause (a missing file, an unknown model, a corrupt or
hostile checkpoint, a table that does not fit, an argument out of range); its subclasses carry
what went wrong as fields: the parameter and value, the path, the model. Messages name the Python
API's parameters; the command line (`weightport.cli.errors`) turns the same fields into messages
that name its flags, prints them on one line and exits with code 2.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Remedy:
    """What the caller could pass to get past an error: `parameter` set to `value` does `effect`.

    The library shows it as `parameter=value`, the command line as the flag."""

    parameter: str
    value: Any
    effect: str

    def __str__(self) -> str:
        return f"pass {self.parameter}={self.value!r} {self.effect}"


class UserError(Exception):
    """A problem with the user's input, reported without a traceback; `remedies` say what to pass instead."""

    def __init__(self, message: str, *, remedies: tuple[Remedy, ...] = ()):
        self.message = message
        self.remedies = tuple(remedies)
        super().__init__(message)

    def __str__(self) -> str:
        return with_remedies(self.message, [str(r) for r in self.remedies])


def with_remedies(message: str, remedies: list[str]) -> str:
    """`message` with each remedy in parentheses after it (each on a line of its own after a listing)."""
    if "\n" in message:
        return message + "".join(f"\n  ({r})" for r in remedies)
    return message + (f" ({'; '.join(remedies)})" if remedies else "")


class InvalidArgument(UserError):
    """An argument outside what it may be: `parameter` (the API's name), its `value`, and what it must be."""

    def __init__(self, parameter: str, value: Any, expected: str):
        self.parameter, self.value, self.expected = parameter, value, expected
        super().__init__(f"{parameter}={value!r}: {expected}")


class ConflictingArguments(UserError):
    """Arguments that do not go together (`parameters`, the API's names), and why."""

    def __init__(self, parameters: tuple[str, ...], reason: str):
        self.parameters, self.reason = tuple(parameters), reason
        super().__init__(f"{', '.join(parameters)}: {reason}")


class CheckpointError(UserError):
    """A checkpoint file that cannot be read safely: corrupt, truncated, hostile or of an unknown format."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class RefusedPickle(CheckpointError):
    """A pickle that names a global outside the allow-lists: reading it would run code from the file."""

    def __init__(self, path, global_name: str):
        self.global_name = global_name
        self.refusal = f"refused to load: the pickle asks for {global_name}, which a weights file never needs"
        super().__init__(path, f"{self.refusal} (for a file from a source you trust, see weightport.formats.trusting_pickles)")


class DestinationExists(UserError):
    """A file or folder that would be overwritten without `force`."""

    def __init__(self, path, what: str = "already exists", effect: str = "to overwrite"):
        self.path = str(path)
        super().__init__(f"{self.path}: {what}", remedies=(Remedy("force", True, effect),))


class LayoutError(UserError):
    """Converted tensors that do not fit the target twin: missing, unexpected or misshaped keys."""


class TableError(UserError):
    """A mapping table that cannot be read or is inconsistent."""


class UnknownModel(UserError):
    """A name that no registered model has: `close` lists the nearest registered names; `timm_defines`
    says whether timm has a model of that name (then `weightport.port` can generate its twin)."""

    def __init__(self, name: str, close: list[str], timm_defines: bool = False, refused: str = ""):
        self.name, self.close, self.timm_defines, self.refused = name, list(close), timm_defines, refused
        if refused:
            super().__init__(f"{name} is not supported: {refused}")
            return
        self.unknown = f"unknown model {name!r}" + (f"; the closest registered: {', '.join(close)}" if close else "")
        hint = (f"; timm defines it: weightport.port.port('timm:{name}', '{name}') generates its Paddle twin, "
                "then use the folder in place of the name") if timm_defines else ""
        super().__init__(self.unknown + hint)


class PortedFolderError(UserError):
    """A ported folder that is missing, incomplete or malformed."""

    def __init__(self, folder: str | Path, problem: str):
        self.folder, self.problem = Path(folder), problem
        super().__init__(f"{folder}: {problem}")


class PortError(UserError):
    """An op, module or value the port cannot translate; the message names it and where it comes from."""
