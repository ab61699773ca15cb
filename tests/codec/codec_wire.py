"""Hand-written protobuf wire bytes, for messages Google's runtime never emits.

The tests build packed/unpacked mixes, split messages, unknown fields and
malformed input with these helpers; each returns ``bytes``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

VARINT, FIXED64, LEN, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5


def varint(value: int) -> bytes:
    """Encode ``value`` as a varint; negative values take ten bytes."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(field: int, wire: int) -> bytes:
    return varint((field << 3) | wire)


def length_field(field: int, payload: bytes) -> bytes:
    return tag(field, LEN) + varint(len(payload)) + payload


def varint_field(field: int, value: int) -> bytes:
    return tag(field, VARINT) + varint(value)


def packed_varints(field: int, values: Iterable[int]) -> bytes:
    return length_field(field, b"".join(varint(v) for v in values))


def packed_floats(field: int, values: Iterable[float], fmt: str = "<f") -> bytes:
    return length_field(field, b"".join(struct.pack(fmt, v) for v in values))


def shape(*dims: int) -> bytes:
    """Return an array_shape field (ArrayProto field 2) with packed dims."""
    return length_field(2, packed_varints(1, dims) if dims else b"")


def entry(key: bytes | str, *value_pieces: bytes) -> bytes:
    """Return the body of a map<string, ArrayProto> entry.

    Each piece becomes one field 2, which protobuf merges into one value.
    """
    if isinstance(key, str):
        key = key.encode()
    return length_field(1, key) + b"".join(length_field(2, p) for p in value_pieces)


def tf_response(*entries: bytes) -> bytes:
    """Return a TF PredictResponse whose outputs are the given entry bodies."""
    return b"".join(length_field(1, e) for e in entries)


def unknown_fields() -> bytes:
    """Return one unknown field of every wire type, a nested group included."""
    group = (
        tag(91, START_GROUP)
        + varint_field(1, 7)
        + tag(92, START_GROUP)
        + length_field(2, b"inner")
        + tag(92, END_GROUP)
        + tag(91, END_GROUP)
    )
    return (
        varint_field(90, 2**63)
        + tag(93, FIXED64)
        + b"\x01" * 8
        + length_field(94, b"\xff\x00skip")
        + tag(95, FIXED32)
        + b"\x02" * 4
        + group
    )
