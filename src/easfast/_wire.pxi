# Protobuf wire format: the C-level writers and readers that every codec
# message is built from, with no knowledge of tensors or schemas. Writers fill
# a buffer whose exact size was computed first. Readers check every step
# against the end of the enclosing message and raise DecodeError on malformed
# input. Both rely on the rule that a record is a varint tag
# (field_number << 3 | wire_type) followed by a value whose wire type alone
# gives its length: a varint, 8 bytes, 4 bytes, a length-prefixed payload, or a
# group up to the end-group tag of the same field. A reader can therefore skip
# a field that it does not know.
# Wire format: https://protobuf.dev/programming-guides/encoding/

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport (
    int8_t,
    int16_t,
    int32_t,
    int64_t,
    uint8_t,
    uint16_t,
    uint32_t,
    uint64_t,
)
from libc.string cimport memcpy

# Wire types, the low three bits of every tag.
cdef enum:
    _VARINT = 0
    _FIXED64 = 1
    _LEN = 2
    _START_GROUP = 3
    _END_GROUP = 4
    _FIXED32 = 5

# C element types of the integer and bool arrays that packed varint runs
# are written from and decoded into.
cdef enum:
    _I8 = 1
    _U8 = 2
    _I16 = 3
    _U16 = 4
    _I32 = 5
    _I64 = 6
    _BOOL = 7

# protobuf rejects messages of 2 GiB or more, in both directions.
cdef Py_ssize_t _MAX_MESSAGE = 0x7FFFFFFF
# Nesting limit for messages and groups, the default of Google's protobuf
# (DEFAULT_RECURSION_LIMIT in google/protobuf/internal/decoder.py).
cdef int _MAX_DEPTH = 100
# Runs of at least this many bytes are copied or decoded without the GIL.
cdef Py_ssize_t _NOGIL_BYTES = 1 << 16


cdef inline Py_ssize_t _elem_size(int elem) noexcept:
    if elem == _I64:
        return 8
    if elem == _I32:
        return 4
    if elem == _I16 or elem == _U16:
        return 2
    return 1


# ----------------------------------------------------------------- writing --

cdef inline Py_ssize_t _varint_size(uint64_t value) noexcept nogil:
    cdef Py_ssize_t size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


cdef inline uint8_t* _write_varint(uint8_t* p, uint64_t value) noexcept nogil:
    while value >= 0x80:
        p[0] = <uint8_t>(value | 0x80)
        value >>= 7
        p += 1
    p[0] = <uint8_t>value
    return p + 1


cdef inline Py_ssize_t _field_size(Py_ssize_t payload) noexcept nogil:
    """Return the size of a one-byte tag, a length and ``payload`` bytes."""
    return 1 + _varint_size(<uint64_t>payload) + payload


ctypedef fused _int_t:
    int8_t
    uint8_t
    int16_t
    uint16_t
    int32_t
    int64_t


# Negative int32 and int64 values are sign-extended to 64 bits on the wire,
# so each takes ten bytes.
cdef Py_ssize_t _varints_size(const _int_t* values, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef Py_ssize_t size = 0
    for i in range(n):
        size += _varint_size(<uint64_t>(<int64_t>values[i]))
    return size


cdef uint8_t* _write_varints(
    uint8_t* p, const _int_t* values, Py_ssize_t n
) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint64_t value
    for i in range(n):
        value = <uint64_t>(<int64_t>values[i])
        while value >= 0x80:
            p[0] = <uint8_t>(value | 0x80)
            value >>= 7
            p += 1
        p[0] = <uint8_t>value
        p += 1
    return p


cdef uint8_t* _write_bools(
    uint8_t* p, const uint8_t* values, Py_ssize_t n
) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        p[i] = values[i] != 0
    return p + n


cdef Py_ssize_t _int_payload_size(
    const void* data, Py_ssize_t n, int elem
) noexcept nogil:
    if elem == _I8:
        return _varints_size(<const int8_t*>data, n)
    if elem == _U8:
        return _varints_size(<const uint8_t*>data, n)
    if elem == _I16:
        return _varints_size(<const int16_t*>data, n)
    if elem == _U16:
        return _varints_size(<const uint16_t*>data, n)
    if elem == _I32:
        return _varints_size(<const int32_t*>data, n)
    if elem == _I64:
        return _varints_size(<const int64_t*>data, n)
    return n  # bool: one byte per value


cdef uint8_t* _write_int_payload(
    uint8_t* p, const void* data, Py_ssize_t n, int elem
) noexcept nogil:
    if elem == _I8:
        return _write_varints(p, <const int8_t*>data, n)
    if elem == _U8:
        return _write_varints(p, <const uint8_t*>data, n)
    if elem == _I16:
        return _write_varints(p, <const int16_t*>data, n)
    if elem == _U16:
        return _write_varints(p, <const uint16_t*>data, n)
    if elem == _I32:
        return _write_varints(p, <const int32_t*>data, n)
    if elem == _I64:
        return _write_varints(p, <const int64_t*>data, n)
    return _write_bools(p, <const uint8_t*>data, n)


cdef uint8_t* _write_string_field(uint8_t* p, uint8_t tag, bytes value) except NULL:
    cdef Py_ssize_t n = len(value)
    p[0] = tag
    p = _write_varint(p + 1, <uint64_t>n)
    memcpy(p, PyBytes_AS_STRING(value), n)
    return p + n


cdef int _check_message_size(object size, str what) except -1:
    if size > _MAX_MESSAGE:
        raise EncodeError(
            f"{what} would take {size} bytes, over protobuf's 2 GiB message "
            "limit; split the batch into smaller requests"
        )
    return 0


cdef bytes _allocate(Py_ssize_t size, str what, uint8_t** start):
    _check_message_size(size, what)
    out = PyBytes_FromStringAndSize(NULL, size)
    start[0] = <uint8_t*>PyBytes_AS_STRING(out)
    return out


cdef int _check_written(uint8_t* p, uint8_t* start, Py_ssize_t size) except -1:
    if p - start != size:  # defensive: the size pass and the write pass disagree
        raise RuntimeError(
            f"easfast codec wrote {p - start} bytes for a {size}-byte message"
        )
    return 0


# ----------------------------------------------------------------- reading --
#
# Every reader takes the buffer, a position and the end of the enclosing
# message, checks each step against that end and returns the new position.

cdef Py_ssize_t _read_varint(
    const uint8_t* buf, Py_ssize_t pos, Py_ssize_t end, uint64_t* value
) except -1:
    cdef Py_ssize_t start = pos
    cdef uint64_t result = 0
    cdef int shift = 0
    cdef uint8_t byte
    while True:
        if pos >= end:
            raise DecodeError(f"truncated varint at byte {start}")
        byte = buf[pos]
        pos += 1
        # Bits past the 64th in a ten-byte varint are dropped, as protobuf does.
        result |= (<uint64_t>(byte & 0x7F)) << shift
        if byte < 0x80:
            value[0] = result
            return pos
        shift += 7
        if shift >= 70:
            raise DecodeError(f"varint longer than 10 bytes at byte {start}")


cdef inline Py_ssize_t _read_tag(
    const uint8_t* buf, Py_ssize_t pos, Py_ssize_t end, uint32_t* tag
) except -1:
    cdef uint64_t value
    if pos < end and buf[pos] < 0x80:
        value = buf[pos]
        pos += 1
    else:
        pos = _read_varint(buf, pos, end, &value)
        if value > <uint64_t>0xFFFFFFFFU:
            raise DecodeError(f"tag {value} out of range before byte {pos}")
    if value >> 3 == 0:
        raise DecodeError(f"field number 0 in the tag before byte {pos}")
    tag[0] = <uint32_t>value
    return pos


cdef inline Py_ssize_t _read_length(
    const uint8_t* buf, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t* stop
) except -1:
    """Read a length prefix; return where the payload starts, set its ``stop``."""
    cdef uint64_t length
    cdef Py_ssize_t start = pos
    pos = _read_varint(buf, pos, end, &length)
    if length > <uint64_t>(end - pos):
        raise DecodeError(
            f"length {length} at byte {start} runs past the end of its "
            f"message at byte {end}"
        )
    stop[0] = pos + <Py_ssize_t>length
    return pos


cdef Py_ssize_t _skip_field(
    const uint8_t* buf, Py_ssize_t pos, Py_ssize_t end, uint32_t tag, int depth
) except -1:
    """Skip the value of an unknown field, groups included."""
    cdef uint64_t ignored
    cdef Py_ssize_t stop
    cdef uint32_t inner
    cdef int wire = tag & 7
    if wire == _VARINT:
        return _read_varint(buf, pos, end, &ignored)
    if wire == _FIXED64:
        if end - pos < 8:
            raise DecodeError(f"truncated 8-byte value at byte {pos}")
        return pos + 8
    if wire == _FIXED32:
        if end - pos < 4:
            raise DecodeError(f"truncated 4-byte value at byte {pos}")
        return pos + 4
    if wire == _LEN:
        _read_length(buf, pos, end, &stop)
        return stop
    if wire == _START_GROUP:
        if depth >= _MAX_DEPTH:
            raise DecodeError(
                f"messages nested deeper than {_MAX_DEPTH} levels at byte {pos}"
            )
        while pos < end:
            pos = _read_tag(buf, pos, end, &inner)
            if inner & 7 == _END_GROUP:
                if inner >> 3 != tag >> 3:
                    raise DecodeError(
                        f"group of field {tag >> 3} closed by field "
                        f"{inner >> 3} before byte {pos}"
                    )
                return pos
            pos = _skip_field(buf, pos, end, inner, depth + 1)
        raise DecodeError(f"group of field {tag >> 3} is not closed")
    if wire == _END_GROUP:
        raise DecodeError(f"unexpected end-group tag before byte {pos}")
    raise DecodeError(f"invalid wire type {wire} before byte {pos}")


# A packed run of varints is valid when every value ends within the run and
# none is longer than ten bytes. Returns the count, -1 when the run ends
# inside a value and -2 on an overlong value.
cdef Py_ssize_t _count_varints(
    const uint8_t* buf, Py_ssize_t pos, Py_ssize_t end
) noexcept nogil:
    cdef size_t count = 0
    cdef uint8_t window = 0
    cdef Py_ssize_t i
    if pos == end:
        return 0
    if buf[end - 1] & 0x80:
        return -1
    # Every byte below 0x80 ends one value. Both loops vectorize.
    for i in range(pos, end):
        count += buf[i] < 0x80
    # A value longer than ten bytes has ten continuation bytes in a row; any
    # such window ANDs to a byte with the high bit set. It needs ten more
    # bytes than values, so runs of short values skip this check.
    if <size_t>(end - pos) - count >= 10:
        for i in range(pos + 9, end):
            window |= (
                buf[i - 9] & buf[i - 8] & buf[i - 7] & buf[i - 6] & buf[i - 5]
                & buf[i - 4] & buf[i - 3] & buf[i - 2] & buf[i - 1] & buf[i]
            )
        if window & 0x80:
            return -2
    return <Py_ssize_t>count


cdef Py_ssize_t _checked_varint_count(
    const uint8_t* buf, Py_ssize_t pos, Py_ssize_t end
) except -1:
    cdef Py_ssize_t count
    if end - pos >= _NOGIL_BYTES:
        with nogil:
            count = _count_varints(buf, pos, end)
    else:
        count = _count_varints(buf, pos, end)
    if count == -1:
        raise DecodeError(f"packed varints from byte {pos} end inside a value")
    if count == -2:
        raise DecodeError(
            f"varint longer than 10 bytes in the packed run at byte {pos}"
        )
    return count


# Decodes the packed varints of [pos, end) into out, at most ``limit`` of
# them, keeping the low 32 bits of each unless ``wide``, as protobuf does for
# int32 fields. Returns the count, -1 when a value does not fit _int_t (the
# value goes to ``bad``) and -2 on a malformed run, which the scan excludes.
cdef Py_ssize_t _decode_varints(
    const uint8_t* buf, Py_ssize_t pos, Py_ssize_t end, _int_t* out,
    Py_ssize_t limit, bint wide, int64_t* bad,
) noexcept nogil:
    cdef Py_ssize_t n = 0
    cdef uint64_t raw
    cdef int shift
    cdef uint8_t byte
    cdef int64_t value
    while pos < end:
        if n >= limit:
            return -2
        raw = buf[pos]
        pos += 1
        if raw >= 0x80:
            raw &= 0x7F
            shift = 7
            while True:
                if pos >= end or shift > 63:
                    return -2
                byte = buf[pos]
                pos += 1
                raw |= (<uint64_t>(byte & 0x7F)) << shift
                if byte < 0x80:
                    break
                shift += 7
        value = <int64_t>raw if wide else <int64_t>(<int32_t>raw)
        out[n] = <_int_t>value
        if out[n] != value:
            bad[0] = value
            return -1
        n += 1
    return n


cdef Py_ssize_t _decode_bools(
    const uint8_t* buf, Py_ssize_t pos, Py_ssize_t end, uint8_t* out,
    Py_ssize_t limit, bint wide,
) noexcept nogil:
    cdef Py_ssize_t n = 0
    cdef uint64_t raw
    cdef int shift
    cdef uint8_t byte
    while pos < end:
        if n >= limit:
            return -2
        raw = 0
        shift = 0
        while True:
            if pos >= end or shift > 63:
                return -2
            byte = buf[pos]
            pos += 1
            raw |= (<uint64_t>(byte & 0x7F)) << shift
            if byte < 0x80:
                break
            shift += 7
        if not wide:
            raw &= <uint64_t>0xFFFFFFFFU
        out[n] = raw != 0
        n += 1
    return n


cdef Py_ssize_t _decode_run(
    const uint8_t* buf, Py_ssize_t pos, Py_ssize_t end, char* out,
    Py_ssize_t limit, int elem, bint wide, int64_t* bad,
) noexcept nogil:
    if elem == _I8:
        return _decode_varints(buf, pos, end, <int8_t*>out, limit, wide, bad)
    if elem == _U8:
        return _decode_varints(buf, pos, end, <uint8_t*>out, limit, wide, bad)
    if elem == _I16:
        return _decode_varints(buf, pos, end, <int16_t*>out, limit, wide, bad)
    if elem == _U16:
        return _decode_varints(buf, pos, end, <uint16_t*>out, limit, wide, bad)
    if elem == _I32:
        return _decode_varints(buf, pos, end, <int32_t*>out, limit, wide, bad)
    if elem == _I64:
        return _decode_varints(buf, pos, end, <int64_t*>out, limit, wide, bad)
    return _decode_bools(buf, pos, end, <uint8_t*>out, limit, wide)


cdef str _read_utf8(const uint8_t* buf, Py_ssize_t start, Py_ssize_t stop, str what):
    try:
        return PyUnicode_DecodeUTF8(<const char*>buf + start, stop - start, NULL)
    except UnicodeDecodeError as exc:
        raise DecodeError(
            f"{what} at byte {start} is not valid UTF-8 ({exc.reason})"
        ) from exc
