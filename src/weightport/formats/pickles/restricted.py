"""A pickle reader that resolves only the globals a checkpoint legitimately needs.

Checkpoints are pickles, and an ordinary unpickler calls whatever a file names
(`os.system`, `builtins.eval`, ...). Here every global goes through an
allow-list that maps it to a function of ours; anything else is refused before
it can be called. Nothing from the file is ever imported or executed.
"""
from __future__ import annotations

import gc
import io
import mmap
import pickle
import pickletools
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ...errors import CheckpointError, RefusedPickle
from .scan import Unsupported, scan


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

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("malformed OrderedDict state")
        self.__dict__.update(state)


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
            raise RefusedPickle(self._path, f"{module}.{name}") from None

    def persistent_load(self, pid):
        if self._persistent is None:
            raise CheckpointError(self._path, "refused to load: unexpected persistent reference in the pickle")
        return self._persistent(pid)


def restricted_load(
    data: bytes | mmap.mmap | io.BufferedIOBase, path: str, allowed, persistent_load=None, leave_in_file: bool = False
) -> Any:
    """Unpickle `data` under the allow-list; every failure becomes a CheckpointError.

    Bytes and maps go through `pickle_scan` (with `leave_in_file`, its large byte strings stay in
    `data` as `FileBytes`), and what it does not run through Python's unpickler, after a walk over
    its opcodes that bounds what they ask for. A file is left just after the pickle's end, so that
    pickles stored one after another can be read in turn."""
    if isinstance(data, (bytes, bytearray, memoryview, mmap.mmap)):
        checker = RestrictedUnpickler(io.BytesIO(), path, allowed, persistent_load)
        try:
            with _cycles_uncollected():
                return scan(data, path, checker.find_class, checker.persistent_load, leave_in_file)
        except Unsupported:
            pass
    file = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    try:
        start = file.tell()
        _check_lengths(file)
        file.seek(start)
        with _cycles_uncollected():
            return RestrictedUnpickler(file, path, allowed, persistent_load).load()
    except CheckpointError:
        raise
    except RecursionError:
        raise CheckpointError(path, "the pickle is nested too deeply") from None
    except Exception as exc:  # any malformed byte stream: EOFError, UnpicklingError, ValueError, ...
        raise CheckpointError(path, f"corrupt pickle ({type(exc).__name__}: {exc})") from None


@contextmanager
def _cycles_uncollected() -> Iterator[None]:
    """Pause the cycle collector while a pickle builds its objects. They stay alive, so collecting
    finds nothing, yet the tens of thousands of containers of a large state dict set off several
    collections that walk every object in the process (for fcvit_b48, 25 ms of a 60 ms read)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _check_lengths(file) -> None:
    """Walk the pickle's opcodes, refusing any length or memo index beyond the input's size.
    Python's unpickler allocates a byte string of the stated length before reading it, and a
    memo table as long as the largest index it is given (zeroed, so really in memory): a dozen
    bytes could otherwise take gigabytes. Here each read is clamped to what the input holds
    (a short read is a ValueError), and memo indices are bounded by the input's size (a pickler
    numbers them 0, 1, 2, ...)."""
    start = file.tell()
    file.seek(0, 2)
    end = file.tell()
    file.seek(start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pickletools on odd escapes in text opcodes
        for opcode, arg, _ in pickletools.genops(_ClampedReader(file, end)):
            if opcode.name in _MEMO_PUTS and arg > end - start:
                raise ValueError(f"memo index {arg} in a pickle of {end - start} bytes")


_MEMO_PUTS = ("PUT", "BINPUT", "LONG_BINPUT")


class _ClampedReader:
    """Reads at most what is left before `end`."""

    def __init__(self, file, end: int):
        self.file, self.end = file, end

    def read(self, n: int = -1) -> bytes:
        left = max(self.end - self.file.tell(), 0)
        return self.file.read(left if n < 0 else min(n, left))

    def readline(self) -> bytes:
        return self.file.readline()
