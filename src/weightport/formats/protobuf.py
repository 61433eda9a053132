"""A small, bounded reader of the protobuf wire format, for Paddle's ProgramDesc and TensorDesc,
and the two encoders that writing a TensorDesc needs (`varint`, `field`).

It decodes one message level at a time into {field number: [values]} (varints as ints, length-
delimited fields as bytes, fixed 32/64-bit fields as bytes), so each caller names the fields it
needs and nothing else is interpreted. Every length is checked against what is left, varints stop
at ten bytes and nesting is the caller's (no recursion here): a hostile file is a ProtobufError,
never a hang, a huge allocation or a crash.
"""
from __future__ import annotations

import struct

VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5


class ProtobufError(ValueError):
    """Bytes that are not a well-formed protobuf message."""


def _varint(data: bytes | memoryview, position: int) -> tuple[int, int]:
    value = shift = 0
    for _ in range(10):
        if position >= len(data):
            raise ProtobufError("a varint runs past the end of the message")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
    raise ProtobufError("a varint longer than ten bytes")


def varint(value: int) -> bytes:
    """`value` as a varint; a negative one as the ten bytes of its 64-bit two's complement, as protobuf
    writes an int64."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(number: int, value: int | bytes) -> bytes:
    """One field: an int as a varint, bytes as length-delimited."""
    if isinstance(value, int):
        return varint(number << 3 | VARINT) + varint(value)
    return varint(number << 3 | BYTES) + varint(len(value)) + value


def fields(data: bytes | memoryview) -> dict[int, list]:
    """The fields of one message: field number -> its values in order (repeated fields have several)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtobufError("a number where a message belongs")
    found: dict[int, list] = {}
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtobufError("field number 0")
        if wire == VARINT:
            value, position = _varint(data, position)
        elif wire == BYTES:
            length, position = _varint(data, position)
            if length > len(data) - position:
                raise ProtobufError(f"field {number} claims {length} bytes; {len(data) - position} are left")
            value, position = bytes(data[position : position + length]), position + length
        elif wire in (FIXED32, FIXED64):
            size = 4 if wire == FIXED32 else 8
            if size > len(data) - position:
                raise ProtobufError(f"field {number} runs past the end of the message")
            value, position = bytes(data[position : position + size]), position + size
        else:
            raise ProtobufError(f"field {number} has wire type {wire}, which no Paddle message uses")
        found.setdefault(number, []).append(value)
    return found


def signed(value: int) -> int:
    """A varint as the int64/int32 it encodes (negative numbers are ten-byte two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def packed_varints(values: list) -> list[int]:
    """A repeated integer field's values, written packed (one bytes value) or one by one (ints)."""
    out: list[int] = []
    for value in values:
        if isinstance(value, int):
            out.append(value)
            continue
        position = 0
        while position < len(value):
            number, position = _varint(value, position)
            out.append(number)
    return out


def string(values: list, default: str = "") -> str:
    """The last value of a string field, decoded (protobuf keeps the last of a repeated scalar)."""
    if not values:
        return default
    try:
        return values[-1].decode("utf-8")
    except (AttributeError, UnicodeDecodeError):
        raise ProtobufError("a string field that is not UTF-8 text") from None


def integer(values: list, default: int = 0) -> int:
    if not values:
        return default
    if not isinstance(values[-1], int):
        raise ProtobufError("an integer field holding bytes")
    return signed(values[-1])


def floating(values: list, default: float = 0.0) -> float:
    """A float field (fixed32)."""
    if not values:
        return default
    if not isinstance(values[-1], bytes) or len(values[-1]) != 4:
        raise ProtobufError("a float field that is not four bytes")
    return struct.unpack("<f", values[-1])[0]
