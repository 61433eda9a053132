"""A pickle writer for checkpoints: opcodes written directly, array bytes straight from memory.

Python's pickler is either fast (the C one, which must copy every array into a `bytes` object
and import each global it names) or flexible (the pure-Python one, which costs about twenty
function calls per tensor). The pickles the writers produce are few in kind: a dict of tensor
records built from a few globals, small tuples, numbers and strings. This writes exactly that,
as Python's own pickler would (framed in protocol 4), remembering only the globals and the
`Reduce`s that ask for it, so that nothing of a tensor outlives its own entry.
"""
from __future__ import annotations

import pickle
import struct
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

FRAME_TARGET = 64 * 1024  # as Python's pickler: frames of about this size, larger bytes outside them
BATCH = 1000  # dict items per SETITEMS, as Python's pickler batches them


@dataclass(frozen=True)
class Global:
    """A global named in the pickle (`module.name`), never imported here."""

    module: str
    name: str


@dataclass(frozen=True)
class Reduce:
    """`func(*args)`, then BUILD with `state` unless it is None; remembered under `memo_key` if given."""

    func: Global
    args: tuple
    state: Any = None
    memo_key: Hashable = None


@dataclass(frozen=True)
class Persistent:
    """A persistent id: the loader's `persistent_load(pid)` supplies the object."""

    pid: tuple


_U1, _U2, _U4, _U8, _I4 = (struct.Struct(f) for f in ("<B", "<H", "<I", "<Q", "<i"))


class PickleWriter:
    """Writes one pickle (protocol 2 or 4) to `file`: `dump_dict(items)` writes a dict, lazily."""

    def __init__(self, file, protocol: int):
        if protocol not in (2, 4):
            raise ValueError(f"protocol {protocol} is not written here")
        self.file, self.protocol = file, protocol
        self.frame = bytearray()
        self.memo: dict[Hashable, int] = {}

    def dump_dict(self, items: Iterable[tuple[str, Any]]) -> None:
        """A pickled dict of `items`, each value built only when its turn comes and dropped after."""
        self.file.write(pickle.PROTO + bytes([self.protocol]))
        self.frame += pickle.EMPTY_DICT
        batch = 0
        for key, value in items:
            if batch == 0:
                self.frame += pickle.MARK
            self.save(key)
            self.save(value)
            del value  # before the next value is built: one tensor in memory at a time
            batch += 1
            if batch == BATCH:
                self.frame += pickle.SETITEMS
                batch = 0
            if len(self.frame) >= FRAME_TARGET:
                self._commit_frame()
        if batch:
            self.frame += pickle.SETITEMS
        self.frame += pickle.STOP
        self._commit_frame()

    def save(self, obj: Any) -> None:
        if obj is None:
            self.frame += pickle.NONE
        elif obj is True or obj is False:
            self.frame += pickle.NEWTRUE if obj else pickle.NEWFALSE
        elif type(obj) is int:
            self._int(obj)
        elif type(obj) is str:
            self._str(obj)
        elif isinstance(obj, (bytes, memoryview)):
            self._bytes(obj)
        elif type(obj) is tuple:
            self._tuple(obj)
        elif type(obj) is Global:
            if not self._get(obj):
                self._global(obj)
                self._put(obj)
        elif type(obj) is Reduce:
            self._reduce(obj)
        elif type(obj) is Persistent:
            self.save(obj.pid)
            self.frame += pickle.BINPERSID
        else:
            raise TypeError(f"cannot write a {type(obj).__name__} into a checkpoint pickle")

    def _int(self, n: int) -> None:
        if 0 <= n <= 0xFF:
            self.frame += pickle.BININT1 + _U1.pack(n)
        elif 0 <= n <= 0xFFFF:
            self.frame += pickle.BININT2 + _U2.pack(n)
        elif -(1 << 31) <= n < 1 << 31:
            self.frame += pickle.BININT + _I4.pack(n)
        else:
            encoded = pickle.encode_long(n)
            self.frame += pickle.LONG1 + _U1.pack(len(encoded)) + encoded

    def _str(self, text: str) -> None:
        encoded = text.encode("utf-8", "surrogatepass")
        if self.protocol >= 4 and len(encoded) <= 0xFF:
            self.frame += pickle.SHORT_BINUNICODE + _U1.pack(len(encoded)) + encoded
        elif len(encoded) <= 0xFFFFFFFF:
            self.frame += pickle.BINUNICODE + _U4.pack(len(encoded)) + encoded
        else:
            self.frame += pickle.BINUNICODE8 + _U8.pack(len(encoded)) + encoded

    def _bytes(self, data: bytes | memoryview) -> None:
        if self.protocol < 3:
            raise TypeError("protocol 2 has no opcode for bytes")
        n = data.nbytes if isinstance(data, memoryview) else len(data)
        if n <= 0xFF:
            header = pickle.SHORT_BINBYTES + _U1.pack(n)
        elif n <= 0xFFFFFFFF:
            header = pickle.BINBYTES + _U4.pack(n)
        else:
            header = pickle.BINBYTES8 + _U8.pack(n)
        if n < FRAME_TARGET:
            self.frame += header
            self.frame += data
            return
        self._commit_frame()  # large bytes go outside any frame, straight from memory
        self.file.write(header)
        self.file.write(data)

    def _tuple(self, items: tuple) -> None:
        if not items:
            self.frame += pickle.EMPTY_TUPLE
            return
        if len(items) > 3:
            self.frame += pickle.MARK
        for item in items:
            self.save(item)
        self.frame += (pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3)[len(items) - 1] if len(items) <= 3 else pickle.TUPLE

    def _global(self, name: Global) -> None:
        if self.protocol >= 4:
            self._str(name.module)
            self._str(name.name)
            self.frame += pickle.STACK_GLOBAL
        else:
            self.frame += pickle.GLOBAL + f"{name.module}\n{name.name}\n".encode()

    def _reduce(self, obj: Reduce) -> None:
        """func, args, REDUCE; then remembered (if asked) before its state is built, as Python's
        pickler does, so that a later use refers to the finished object."""
        if obj.memo_key is not None and self._get(obj.memo_key):
            return
        self.save(obj.func)
        self.save(obj.args)
        self.frame += pickle.REDUCE
        if obj.memo_key is not None:
            self._put(obj.memo_key)
        if obj.state is not None:
            self.save(obj.state)
            self.frame += pickle.BUILD

    def _get(self, key: Hashable) -> bool:
        index = self.memo.get(key)
        if index is None:
            return False
        self.frame += pickle.BINGET + _U1.pack(index) if index <= 0xFF else pickle.LONG_BINGET + _U4.pack(index)
        return True

    def _put(self, key: Hashable) -> None:
        index = self.memo[key] = len(self.memo)
        if self.protocol >= 4:
            self.frame += pickle.MEMOIZE
        else:
            self.frame += pickle.BINPUT + _U1.pack(index) if index <= 0xFF else pickle.LONG_BINPUT + _U4.pack(index)

    def _commit_frame(self) -> None:
        if self.protocol >= 4 and len(self.frame) >= 4:
            self.file.write(pickle.FRAME + _U8.pack(len(self.frame)))
        self.file.write(self.frame)
        self.frame = bytearray()
