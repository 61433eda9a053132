"""A pickle reader that resolves only the globals a checkpoint legitimately needs.

Checkpoints are pickles, and an ordinary unpickler calls whatever a file names
(`os.system`, `builtins.eval`, ...). Here every global goes through an
allow-list that maps it to a function of ours; anything else is refused before
it can be called. Nothing from the file is ever imported or executed.
"""
from __future__ import annotations

import collections
import io
import pickle
from typing import Any, Callable

from ..errors import CheckpointError


class Record:
    """Inert stand-in for harmless metadata objects (e.g. argparse.Namespace of training args)."""

    def __init__(self, type_name: str, *args: Any, **kwargs: Any):
        self.type_name = type_name
        self.state: dict = dict(kwargs)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.state.update(state)

    def __repr__(self) -> str:
        return f"{self.type_name}({', '.join(f'{k}={v!r}' for k, v in self.state.items())})"


def record(type_name: str) -> Callable[..., Record]:
    return lambda *args, **kwargs: Record(type_name, *args, **kwargs)


def _ordered_dict(*args):
    # OrderedDict is data; a plain dict keeps the order and drops the subclass.
    return dict(*args)


COMMON_GLOBALS: dict[tuple[str, str], Callable] = {
    ("collections", "OrderedDict"): _ordered_dict,
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
