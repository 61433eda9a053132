"""A small restricted pickle interpreter that leaves large byte strings in the file.

`pickle` reads every byte string into memory, so unpickling a checkpoint holds all of its
tensors at once. This interpreter runs a pickle straight from a memory map and, for each
large byte string, records only where it lies (`FileBytes`), so a reader can map the bytes
of one tensor at a time. It understands the binary opcodes (protocols 2 to 5) that pickles
of containers, numbers, strings and bytes use; globals resolve only through the caller's
`find_class` (an allow-list of the caller's own functions) and only those are ever called,
and persistent ids (torch's storages) go to the caller's `persistent_load`. Its memo is a
dict, so no index can make it allocate. Being Python, it is also the fast way to read a
torch pickle safely: Python's unpickler first needs a walk over every opcode to bound the
memo it would allocate. An opcode it does not know raises `Unsupported`, so that the caller
can decide what to do; a malformed stream raises CheckpointError. Nothing from the file is
imported or executed.
"""
from __future__ import annotations

import math
import pickle
import pickletools
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import CheckpointError

MIN_MAPPED = 1 << 12  # byte strings shorter than this are read; longer ones stay in the file
MAX_LONG_BYTES = 1 << 10  # LONG4 integers of more bytes than this are refused


class Unsupported(Exception):
    """An opcode or construct this interpreter does not run (e.g. protocol 0 text opcodes)."""


@dataclass(frozen=True)
class FileBytes:
    """A byte string left in the file: `length` bytes starting at `offset`."""

    offset: int
    length: int


def scan(
    data,
    path: str,
    find_class: Callable[[str, str], Any],
    persistent_load: Callable[[Any], Any],
    leave_in_file: bool = True,
) -> Any:
    """Run the pickle in `data` (bytes or an mmap) and return what it builds. Persistent ids go
    to `persistent_load`; with `leave_in_file` false, every byte string is read."""
    try:
        return _Machine(data, find_class, persistent_load, MIN_MAPPED if leave_in_file else math.inf).run()
    except (CheckpointError, Unsupported):
        raise
    except Exception as exc:  # only our own code runs, so any other failure is a malformed stream
        raise CheckpointError(path, f"corrupt pickle ({type(exc).__name__}: {exc})") from None


class _Machine:
    def __init__(self, data, find_class, persistent_load, min_mapped):
        self.data, self.size, self.pos = data, len(data), 0
        self.find_class, self.persistent_load, self.min_mapped = find_class, persistent_load, min_mapped
        self.callables: dict[int, Any] = {}  # everything find_class returned: the only things REDUCE calls
        self.stack: list = []
        self.marks: list[list] = []  # the stacks set aside by MARK
        self.memo: dict[int, Any] = {}

    def run(self) -> Any:
        data, memo = self.data, self.memo
        while True:
            if self.pos >= self.size:
                raise ValueError("pickle data was truncated (no STOP)")
            code = data[self.pos]
            self.pos += 1
            # The commonest opcodes of a checkpoint (three in four), run here without a call.
            if code == _LONG_BINPUT:
                memo[_U4.unpack_from(data, self.pos)[0]] = self.stack[-1]
                self.pos += 4
            elif code == _BINGET:
                self.stack.append(memo[data[self.pos]])
                self.pos += 1
            elif code == _BININT1:
                self.stack.append(data[self.pos])
                self.pos += 1
            elif code == _MARK:
                self.marks.append(self.stack)
                self.stack = []
            elif code == _TUPLE:
                self.tuple_from_mark()
            elif code == _STOP:
                if len(self.stack) != 1 or self.marks:
                    raise ValueError("unbalanced stack at STOP")
                return self.stack[0]
            else:
                handler = _HANDLERS.get(code)
                if handler is None:
                    raise Unsupported(f"pickle opcode {_opcode_name(code)}")
                handler(self)

    # --- reading the stream -----------------------------------------------------------------

    def take(self, n: int) -> bytes:
        self.check_left(n)
        chunk = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return chunk

    def check_left(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise ValueError(f"pickle data was truncated: expected {n} bytes, {self.size - self.pos} remain")

    def unpack(self, fmt: struct.Struct) -> int:
        (value,) = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return value

    def line(self) -> str:
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            raise ValueError("pickle data was truncated")
        text = bytes(self.data[self.pos : end]).decode("utf-8")
        self.pos = end + 1
        return text

    def push(self, value) -> None:
        self.stack.append(value)

    def pop_mark(self) -> list:
        items = self.stack
        self.stack = self.marks.pop()
        return items

    # --- opcodes (named as in pickletools) -----------------------------------------------------

    def proto(self):
        if not 2 <= self.unpack(_U1) <= 5:
            raise Unsupported("pickle protocol below 2")

    def frame(self):
        self.unpack(_U8)  # a frame only groups the opcodes that follow: nothing to do

    def pop(self):
        self.stack.pop()

    def dup(self):
        self.push(self.stack[-1])

    def long(self, width: struct.Struct):
        n = self.unpack(width)
        if not 0 <= n <= MAX_LONG_BYTES:
            raise ValueError(f"integer of {n} bytes")
        self.push(int.from_bytes(self.take(n), "little", signed=True))

    def unicode(self, width: struct.Struct):
        self.push(self.take(self.unpack(width)).decode("utf-8", "surrogatepass"))

    def byte_string(self, width: struct.Struct):
        n = self.unpack(width)
        if n < self.min_mapped:
            self.push(self.take(n))
            return
        self.check_left(n)
        self.push(FileBytes(self.pos, n))
        self.pos += n

    def tuple_of(self, n: int):
        if len(self.stack) < n:
            raise IndexError("stack underflow")
        self.stack[len(self.stack) - n :] = [tuple(self.stack[len(self.stack) - n :])]

    def tuple_from_mark(self):
        items = self.pop_mark()
        self.push(tuple(items))

    def list_from_mark(self):
        self.push(self.pop_mark())

    def append(self):
        value = self.stack.pop()
        _list(self.stack[-1]).append(value)

    def appends(self):
        items = self.pop_mark()
        _list(self.stack[-1]).extend(items)

    def dict_from_mark(self):
        self.push(_pairs_into({}, self.pop_mark()))

    def setitem(self):
        value, key = self.stack.pop(), self.stack.pop()
        _pairs_into(self.stack[-1], [key, value])

    def setitems(self):
        items = self.pop_mark()
        _pairs_into(self.stack[-1], items)

    def put(self, width: struct.Struct):
        self.memo[self.unpack(width)] = self.stack[-1]

    def memoize(self):
        self.memo[len(self.memo)] = self.stack[-1]

    def get(self, width: struct.Struct):
        self.push(self.memo[self.unpack(width)])

    def global_(self):
        module = self.line()
        self.resolve(module, self.line())

    def stack_global(self):
        name, module = self.stack.pop(), self.stack.pop()
        if not (isinstance(module, str) and isinstance(name, str)):
            raise TypeError("STACK_GLOBAL of non-strings")
        self.resolve(module, name)

    def resolve(self, module: str, name: str):
        found = self.find_class(module, name)
        self.callables[id(found)] = found
        self.push(found)

    def persistent(self):
        self.stack[-1] = self.persistent_load(self.stack[-1])

    def reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        if self.callables.get(id(func)) is not func or not isinstance(args, tuple):
            raise TypeError("REDUCE of something other than an allowed global")
        self.stack[-1] = func(*args)

    def build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        setstate = getattr(inst, "__setstate__", None)
        if setstate is None or isinstance(inst, type):
            raise Unsupported(f"BUILD of a {type(inst).__name__}")
        setstate(state)  # the caller's own stand-ins, or a numpy dtype


def _opcode_name(code: int) -> str:
    return next((op.name for op in pickletools.opcodes if op.code == chr(code)), f"byte 0x{code:02x}")


def _list(target) -> list:
    if type(target) is not list:
        raise TypeError(f"APPEND to a {type(target).__name__}")
    return target


def _pairs_into(target, items: list) -> dict:
    if not isinstance(target, dict) or len(items) % 2:
        raise TypeError("SETITEM(S) on something that is not a dict, or an odd number of items")
    for i in range(0, len(items), 2):
        target[items[i]] = items[i + 1]
    return target


_U1, _U2, _U4, _U8, _I4, _F8 = (struct.Struct(f) for f in ("<B", "<H", "<I", "<Q", "<i", ">d"))
_STOP, _LONG_BINPUT, _BINGET, _BININT1, _MARK, _TUPLE = (
    op[0] for op in (pickle.STOP, pickle.LONG_BINPUT, pickle.BINGET, pickle.BININT1, pickle.MARK, pickle.TUPLE)
)
M = _Machine
_HANDLERS: dict[int, Callable[[_Machine], None]] = {
    pickle.PROTO[0]: M.proto,
    pickle.FRAME[0]: M.frame,
    pickle.POP[0]: M.pop,
    pickle.POP_MARK[0]: lambda m: m.pop_mark(),
    pickle.DUP[0]: M.dup,
    pickle.NONE[0]: lambda m: m.push(None),
    pickle.NEWTRUE[0]: lambda m: m.push(True),
    pickle.NEWFALSE[0]: lambda m: m.push(False),
    pickle.BININT[0]: lambda m: m.push(m.unpack(_I4)),
    pickle.BININT2[0]: lambda m: m.push(m.unpack(_U2)),
    pickle.LONG1[0]: lambda m: m.long(_U1),
    pickle.LONG4[0]: lambda m: m.long(_I4),
    pickle.BINFLOAT[0]: lambda m: m.push(m.unpack(_F8)),
    pickle.SHORT_BINUNICODE[0]: lambda m: m.unicode(_U1),
    pickle.BINUNICODE[0]: lambda m: m.unicode(_U4),
    pickle.BINUNICODE8[0]: lambda m: m.unicode(_U8),
    pickle.SHORT_BINBYTES[0]: lambda m: m.byte_string(_U1),
    pickle.BINBYTES[0]: lambda m: m.byte_string(_U4),
    pickle.BINBYTES8[0]: lambda m: m.byte_string(_U8),
    pickle.BYTEARRAY8[0]: lambda m: m.byte_string(_U8),  # protocol 5's in-band buffers
    pickle.EMPTY_TUPLE[0]: lambda m: m.push(()),
    pickle.TUPLE1[0]: lambda m: m.tuple_of(1),
    pickle.TUPLE2[0]: lambda m: m.tuple_of(2),
    pickle.TUPLE3[0]: lambda m: m.tuple_of(3),
    pickle.EMPTY_LIST[0]: lambda m: m.push([]),
    pickle.LIST[0]: M.list_from_mark,
    pickle.APPEND[0]: M.append,
    pickle.APPENDS[0]: M.appends,
    pickle.EMPTY_DICT[0]: lambda m: m.push({}),
    pickle.DICT[0]: M.dict_from_mark,
    pickle.SETITEM[0]: M.setitem,
    pickle.SETITEMS[0]: M.setitems,
    pickle.MEMOIZE[0]: M.memoize,
    pickle.BINPUT[0]: lambda m: m.put(_U1),
    pickle.LONG_BINGET[0]: lambda m: m.get(_U4),
    pickle.GLOBAL[0]: M.global_,
    pickle.STACK_GLOBAL[0]: M.stack_global,
    pickle.BINPERSID[0]: M.persistent,
    pickle.REDUCE[0]: M.reduce,
    pickle.BUILD[0]: M.build,
}
del M
