"""The checkpoint pickle writer against Python's own unpickler and pickletools."""
from __future__ import annotations

import collections
import io
import pickle
import pickletools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weightport.formats.pickles.writer import FRAME_TARGET, Global, Persistent, PickleWriter, Reduce


def values(with_bytes: bool):
    """Nested tuples of what the writer writes (protocol 2 has no opcode for bytes)."""
    leaves = st.none() | st.booleans() | st.integers(min_value=-(1 << 70), max_value=1 << 70) | st.text(max_size=300)
    if with_bytes:
        leaves |= st.binary(max_size=300)
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=5).map(tuple), max_leaves=12)


def _written(items, protocol: int) -> bytes:
    buf = io.BytesIO()
    PickleWriter(buf, protocol).dump_dict(items)
    return buf.getvalue()


def _loads(data: bytes):
    pickletools.dis(data, out=io.StringIO())  # well formed: balanced marks, frames, memo use
    return pickle.loads(data)


@settings(max_examples=200, deadline=None)
@given(st.data(), st.sampled_from([2, 4]))
@pytest.mark.slow
def test_plain_values_unpickle_to_themselves(data, protocol):
    content = data.draw(st.dictionaries(st.text(max_size=20), values(with_bytes=protocol == 4), max_size=8))
    assert _loads(_written(content.items(), protocol)) == content


def test_protocol_2_refuses_bytes():
    with pytest.raises(TypeError, match="protocol 2"):
        _written([("a", b"x")], 2)


@pytest.mark.parametrize("protocol", [2, 4])
def test_many_items_globals_and_remembered_reductions(protocol):
    """Over a thousand items (several SETITEMS batches) and over 256 remembered objects
    (LONG_BINGET), each remembered reduction built once and shared by every later use."""
    ordered = Global("collections", "OrderedDict")
    items = [
        (f"k{i}", (Reduce(ordered, ((("i", i),),), memo_key=i % 300), Reduce(ordered, ()), i)) for i in range(2500)
    ]
    loaded = _loads(_written(items, protocol))
    assert list(loaded) == [f"k{i}" for i in range(2500)]
    for i in range(2500):
        first, empty, n = loaded[f"k{i}"]
        assert first == collections.OrderedDict(i=i % 300) and first is loaded[f"k{i % 300}"][0]
        assert empty == collections.OrderedDict() and n == i


def test_large_bytes_are_written_outside_frames_from_memory():
    big = memoryview(bytes(range(256)) * (FRAME_TARGET // 256 + 3))
    data = _written([("small", b"s" * 100), ("big", big), ("after", "x")], 4)
    assert _loads(data) == {"small": b"s" * 100, "big": big.tobytes(), "after": "x"}
    frames = [(op.name, pos) for op, _, pos in pickletools.genops(data) if op.name in ("FRAME", "BINBYTES")]
    big_at = next(pos for name, pos in frames if name == "BINBYTES")
    for name, pos in frames:  # no frame spans the large bytes
        if name == "FRAME":
            length = int.from_bytes(data[pos + 1 : pos + 9], "little")
            assert pos + 9 + length <= big_at or pos > big_at


def test_state_is_built_after_the_reduction_is_remembered():
    """BUILD applies the state (here a numpy dtype's byte order); a later reference gets the same,
    built, object."""
    big_endian = (3, ">", None, None, None, -1, -1, 0)
    record = Reduce(Global("numpy", "dtype"), ("f4", False, True), state=big_endian, memo_key="dtype >f4")
    loaded = _loads(_written([("a", record), ("b", record)], 4))
    assert loaded["a"] is loaded["b"]
    assert loaded["a"].str == ">f4"


def test_persistent_ids_go_to_persistent_load():
    class Loader(pickle.Unpickler):
        def persistent_load(self, pid):
            return ("loaded", pid)

    data = _written([("t", Persistent(("storage", "0", 3)))], 2)
    assert Loader(io.BytesIO(data)).load() == {"t": ("loaded", ("storage", "0", 3))}


def test_unknown_objects_are_refused():
    with pytest.raises(TypeError, match="cannot write a float"):
        _written([("x", 1.5)], 4)
