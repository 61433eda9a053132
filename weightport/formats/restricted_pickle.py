"""A pickle reader that resolves only the globals a checkpoint legitimately needs.

Checkpoints are pickles, and an ordinary unpickler calls whatever a file names
(`os.system`, `builtins.eval`, ...). Here every global goes through an
allow-list that maps it to a function of ours; anything else is refused before
it can be called. Nothing from the file is ever imported or executed.
"""
from __future__ import annotations

import io
import pickle
from typing import Any, Callable

from ..errors import CheckpointError


class Record:
    """Inert stand-in for harmless metadata objects (e.g. argparse.Namespace of training args):
    it keeps the fields it is given and does nothing else."""

    type_name = "object"

    def __init__(self, *args: Any, **kwargs: Any):
        self.__setstate__(kwargs)

    def __setstate__(self, state: Any) -> None:
        self.__dict__.setdefault("fields", {})
        if isinstance(state, dict):
            self.fields.update(state)

    def __repr__(self) -> str:
        return f"{self.type_name}({', '.join(f'{k}={v!r}' for k, v in self.fields.items())})"


def record(type_name: str) -> type[Record]:
    """A Record subclass standing in for the global `type_name`."""
    return type(type_name.rsplit(".", 1)[-1], (Record,), {"type_name": type_name})


class AttributedDict(dict):
    """Stands in for OrderedDict: a dict that also takes the attributes torch pickles on
    state dicts (`_metadata`)."""


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """Protocol-2 pickles write bytes as _codecs.encode(text, 'latin1'); no other codec is allowed."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refused codec {encoding!r}")
    return text.encode("latin1")


COMMON_GLOBALS: dict[tuple[str, str], Callable] = {
    ("_codecs", "encode"): _latin1_bytes,
    ("collections", "OrderedDict"): AttributedDict,
    ("argparse", "Namespace"): record("argparse.Namespace"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose globals come from `allowed`; `path` names the file in errors."""

    def __init__(self, file, path: str, allowed: dict[tuple[str, str], Callable], persistent_load=None):
        super().__init__(file, encoding="latin1")
        self._path = path
        self._allowed = {**COMMON_GLOBALS, **allowed}
        self._persistent = persistent_load

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise CheckpointError(
                self._path, f"refused to load: the pickle asks for {module}.{name}, which a weights file never needs"
            ) from None

    def persistent_load(self, pid):
        if self._persistent is None:
            raise CheckpointError(self._path, "refused to load: unexpected persistent reference in the pickle")
        return self._persistent(pid)


def restricted_load(data: bytes | io.BufferedIOBase, path: str, allowed, persistent_load=None) -> Any:
    """Unpickle `data` under the allow-list; every failure becomes a CheckpointError."""
    file = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    try:
        return RestrictedUnpickler(file, path, allowed, persistent_load).load()
    except CheckpointError:
        raise
    except RecursionError:
        raise CheckpointError(path, "the pickle is nested too deeply") from None
    except Exception as exc:  # any malformed byte stream: EOFError, UnpicklingError, ValueError, ...
        raise CheckpointError(path, f"corrupt pickle ({type(exc).__name__}: {exc})") from None
