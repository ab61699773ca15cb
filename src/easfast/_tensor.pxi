# One tensor: a numpy array to and from one ArrayProto message (dtype,
# array_shape and the value field of its dtype). Encoding resolves the DT_*
# code, converts the values to the wire layout in one copy at most and computes
# the exact size before anything is written. Decoding first scans the message
# and checks its wire format (every length against the buffer, before use),
# then builds the array: one packed float or double run as a read-only view on
# the input, varint values through typed C loops. Decoding relies on the rule
# that a parser must accept a repeated scalar field packed (in one or more
# length-delimited runs) or one value per record, in any mix. Both directions
# rely on float and double values being little-endian IEEE 754, the memory
# layout of a little-endian numpy array, so they are copied or viewed as is.

from cpython.buffer cimport (
    PyBUF_SIMPLE,
    PyBUF_STRIDES,
    PyBUF_WRITABLE,
    PyBuffer_IsContiguous,
    PyBuffer_Release,
    PyObject_GetBuffer,
)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

# numpy 1.x arrays have at most 32 dimensions.
cdef int _MAX_DIMS = 32
cdef Py_ssize_t _SSIZE_MAX = <Py_ssize_t>((<size_t>-1) >> 1)

_INT64_MAX = 0x7FFFFFFFFFFFFFFF

# numpy functions called per tensor, bound once instead of looked up on the
# module every call.
_np_asarray = np.asarray
_np_empty = np.empty
_np_ndarray = np.ndarray
_np_generic = np.generic


# ------------------------------------------------------------------ encode --

cdef str _label(str role, object name):
    if isinstance(name, str):
        return f"{role} {name!r}"
    return f"{role} {name}"


@cython.final
@cython.freelist(8)
cdef class _Tensor:
    """One tensor ready to write: its values in wire layout and its sizes."""

    cdef:
        object name           # map key (str) or list index, for messages
        bytes key             # UTF-8 map key, or None for a repeated field
        int code
        int field             # ArrayProto field of the values
        int elem              # C element type of an integer or bool tensor
        object array          # the values, in wire layout after _prepare_tensor
        Py_buffer view
        bint has_view
        tuple shape
        Py_ssize_t count
        list strings          # values of a string tensor, as bytes
        Py_ssize_t dims_size  # packed dims
        Py_ssize_t shape_size  # ArrayShape message
        Py_ssize_t payload    # packed values, or every string_val field
        Py_ssize_t body_size  # ArrayProto message
        Py_ssize_t entry_size  # map entry message, when key is set

    def __dealloc__(self):
        if self.has_view:
            PyBuffer_Release(&self.view)


# Resolving a tensor only chooses its DT_* code and checks that its values can
# be sent. Casts and layout changes happen later in _prepare_tensor, after
# the message size check, and in one copy at most.
cdef _Tensor _resolve(
    str role, object name, object tensor, bint convert, bint torch
):
    """Return a _Tensor with the code, array and count of a tensor argument."""
    cdef object forced = None
    cdef int code
    cdef _Tensor t
    if type(tensor) is tuple:
        if len(tensor) != 2:
            raise EncodeError(
                f"{_label(role, name)} is a tuple of {len(tensor)} items; pass "
                "a numpy array or a (dtype_code, array) pair"
            )
        forced, tensor = tensor
    if isinstance(tensor, _np_ndarray):
        array = tensor
    elif isinstance(tensor, _np_generic):
        array = _np_asarray(tensor)
    else:
        raise EncodeError(
            f"{_label(role, name)} must be a numpy array, got "
            f"{type(tensor).__name__}; convert it with np.asarray(...)"
        )
    if forced is None:
        code = _infer_code(role, name, array, convert)
    else:
        code = _check_forced_code(role, name, forced, array)
    if torch and code == DT_BOOL:
        if not convert:
            raise EncodeError(
                f"{_label(role, name)} is bool, but the PyTorch schema has no "
                "bool_val field; cast with arr.astype(np.uint8), or pass "
                "convert=True"
            )
        code = DT_UINT8
    t = _Tensor.__new__(_Tensor)
    t.name = name
    t.code = code
    t.array = array
    t.count = array.size
    return t


cdef int _infer_code(str role, object name, object array, bint convert) except -1:
    dt = array.dtype
    code = _DTYPE_CODES.get(dt)
    if code is not None:
        return code
    key = (dt.kind, dt.itemsize)
    code = _KIND_CODES.get(key)
    if code is not None:
        return code
    if dt.kind in "SUO":
        return DT_STRING
    if convert:
        # The stated conversions: exact, or checked value by value.
        if key == ("f", 2) or dt.name == "bfloat16":
            return DT_FLOAT
        if key == ("u", 4):
            return DT_INT64
        if key == ("u", 8):
            if array.size and int(array.max()) > _INT64_MAX:
                raise EncodeError(
                    f"{_label(role, name)} has uint64 value {int(array.max())}, "
                    "above the int64 maximum, so convert=True cannot send it as "
                    "DT_INT64; send it as DT_DOUBLE with arr.astype(np.float64) "
                    "if rounding is acceptable"
                )
            return DT_INT64
    raise EncodeError(_unsupported_dtype_message(_label(role, name), dt))


cdef int _check_forced_code(
    str role, object name, object code, object array
) except -1:
    if isinstance(code, bool) or not isinstance(code, int):
        raise EncodeError(
            f"{_label(role, name)}: the dtype code must be an int such as "
            f"DT_FLOAT, got {code!r}"
        )
    target = _CODE_DTYPES.get(code)
    if target is None:
        raise EncodeError(
            f"{_label(role, name)}: dtype code {_describe_code(code)} has no "
            f"value field in the EAS tensor schema; use one of {_carried_codes()}"
        )
    dt = array.dtype
    if dt is target:
        return code
    if code == DT_STRING:
        if dt.kind not in "SUO":
            raise EncodeError(
                f"{_label(role, name)} has dtype {dt} but DT_STRING needs bytes, "
                "str or object values; cast with arr.astype(bytes)"
            )
        return code
    if (dt.kind, dt.itemsize) == (target.kind, target.itemsize):
        return code
    if np.can_cast(dt, target, "safe"):
        return code
    raise EncodeError(
        f"{_label(role, name)} has dtype {dt} but {_code_name(code)} needs "
        f"{target}; cast with arr.astype(np.{target})"
    )


cdef Py_ssize_t _min_value_bytes(int code):
    """Return the fewest bytes one value of ``code`` takes on the wire."""
    if code == DT_FLOAT:
        return 4
    if code == DT_DOUBLE:
        return 8
    if code == DT_STRING:
        return 2
    return 1


cdef list _string_values(str role, object name, object array):
    """Return the elements of a string tensor as bytes, in C order."""
    kind = array.dtype.kind
    # NOTE: numpy drops the trailing NUL bytes of an S element when it is
    # read, so they are not sent; object arrays of bytes keep every byte.
    items = array.ravel().tolist()
    if kind == "S":
        return items
    cdef list values = []
    for index, item in enumerate(items):
        if type(item) is bytes:
            values.append(item)
        elif isinstance(item, bytes):
            values.append(bytes(item))
        elif isinstance(item, str):
            try:
                values.append((<str>item).encode("utf-8"))
            except UnicodeEncodeError as exc:
                raise EncodeError(
                    f"{_label(role, name)} element {_position(index, array)} "
                    f"is not valid Unicode ({exc.reason}); pass it as bytes"
                ) from exc
        else:
            raise EncodeError(
                f"{_label(role, name)} element {_position(index, array)} is "
                f"{type(item).__name__}; a string tensor needs bytes or str "
                "elements"
            )
    return values


cdef tuple _position(Py_ssize_t index, object array):
    """Return the index tuple of flat C-order position ``index``."""
    return tuple([int(i) for i in np.unravel_index(index, array.shape)])


cdef int _hold_wire_values(_Tensor t, object wire) except -1:
    """Hold a C-contiguous buffer of ``t``'s values in dtype ``wire``."""
    array = t.array
    # NOTE: an array whose dtype is the wire dtype object itself already has
    # the wire byte order (numpy shares one dtype object per native type),
    # so it is sent from its own buffer when it is also C-contiguous.
    if array.dtype is wire:
        PyObject_GetBuffer(array, &t.view, PyBUF_STRIDES)
        if PyBuffer_IsContiguous(&t.view, b"C"):
            t.has_view = True
            return 0
        PyBuffer_Release(&t.view)
    t.array = array = _np_asarray(array, wire, "C")
    PyObject_GetBuffer(array, &t.view, PyBUF_SIMPLE)
    t.has_view = True
    return 0


cdef int _prepare_tensor(_Tensor t, str role, bint torch) except -1:
    """Convert ``t``'s values to the wire layout and compute its sizes."""
    cdef bytes value

    t.field = _value_field(t.code, torch)
    t.shape = t.array.shape
    if t.field == _STRING_FIELD:
        t.strings = _string_values(role, t.name, t.array)
        t.payload = 0
        for value in t.strings:
            t.payload += _field_size(len(value))
    elif t.field == _FLOAT_FIELD or t.field == _DOUBLE_FIELD:
        _hold_wire_values(t, _FLOAT32_LE if t.field == _FLOAT_FIELD else _FLOAT64_LE)
        t.payload = t.view.len
    else:
        _hold_wire_values(t, _CODE_DTYPES[t.code])
        t.elem = _code_elems[t.code]
        if t.view.len >= _NOGIL_BYTES:
            with nogil:
                t.payload = _int_payload_size(t.view.buf, t.count, t.elem)
        else:
            t.payload = _int_payload_size(t.view.buf, t.count, t.elem)

    t.dims_size = 0
    for dim in t.shape:
        t.dims_size += _varint_size(<uint64_t>dim)
    t.shape_size = _field_size(t.dims_size) if t.shape else 0
    # dtype (tag and a one-byte code), then array_shape, written even when
    # empty so that a 0-d tensor reads back with an empty shape.
    t.body_size = 2 + _field_size(t.shape_size)
    if t.count:
        if t.field == _STRING_FIELD:
            t.body_size += t.payload
        else:
            t.body_size += _field_size(t.payload)
    return 0


cdef uint8_t* _write_array(uint8_t* p, _Tensor t) except NULL:
    cdef bytes value
    cdef Py_ssize_t n

    p[0] = (_DTYPE_FIELD << 3) | _VARINT
    p[1] = <uint8_t>t.code
    p += 2
    p[0] = (_SHAPE_FIELD << 3) | _LEN
    p = _write_varint(p + 1, <uint64_t>t.shape_size)
    if t.shape:
        p[0] = (1 << 3) | _LEN
        p = _write_varint(p + 1, <uint64_t>t.dims_size)
        for dim in t.shape:
            p = _write_varint(p, <uint64_t>dim)
    if not t.count:
        return p

    if t.field == _STRING_FIELD:
        for value in t.strings:
            n = len(value)
            p[0] = (_STRING_FIELD << 3) | _LEN
            p = _write_varint(p + 1, <uint64_t>n)
            memcpy(p, PyBytes_AS_STRING(value), n)
            p += n
        return p

    p[0] = (t.field << 3) | _LEN
    p = _write_varint(p + 1, <uint64_t>t.payload)
    if t.field == _FLOAT_FIELD or t.field == _DOUBLE_FIELD:
        # Little-endian IEEE values back to back: the array's own buffer.
        if t.payload >= _NOGIL_BYTES:
            with nogil:
                memcpy(p, t.view.buf, t.payload)
        else:
            memcpy(p, t.view.buf, t.payload)
        return p + t.payload
    if t.payload >= _NOGIL_BYTES:
        with nogil:
            p = _write_int_payload(p, t.view.buf, t.count, t.elem)
    else:
        p = _write_int_payload(p, t.view.buf, t.count, t.elem)
    return p


# ------------------------------------------------------------- decode scan --

@cython.final
@cython.freelist(8)
cdef class _ArrayMessage:
    """Where one ArrayProto sits in the input and what the scan counted.

    protobuf merges a message field that occurs more than once, so a map
    entry's value may come in several pieces; ``in_entry`` then says that
    ``start:end`` is the map entry and every field 2 in it is a piece.
    """

    cdef:
        str role               # "output", "map input", ...: for messages
        object name            # map key or list index: for messages
        Py_ssize_t start
        Py_ssize_t end
        bint in_entry
        int32_t dtype
        int ndim
        int64_t dims[32]       # the first _MAX_DIMS dimensions, in order
        Py_ssize_t counts[9]   # values per field number
        Py_ssize_t chunks[9]   # packed runs and single values per field number
        Py_ssize_t first[9]    # payload offset of the first chunk
        bint first_packed[9]


cdef inline bint _is_value_wire(int field, int wire) noexcept:
    # A packable field may come packed (length-delimited) or one value per
    # field; a wire type that does not fit the field makes it an unknown field.
    if wire == _LEN:
        return True
    if field == _FLOAT_FIELD:
        return wire == _FIXED32
    if field == _DOUBLE_FIELD:
        return wire == _FIXED64
    if field == _STRING_FIELD:
        return False
    return wire == _VARINT


cdef Py_ssize_t _scan_shape(
    const uint8_t* buf, Py_ssize_t pos, Py_ssize_t end, _ArrayMessage msg, int depth
) except -1:
    cdef uint32_t tag
    cdef uint64_t value
    cdef Py_ssize_t stop
    cdef Py_ssize_t count
    while pos < end:
        pos = _read_tag(buf, pos, end, &tag)
        if tag == (1 << 3) | _LEN:
            pos = _read_length(buf, pos, end, &stop)
            count = _checked_varint_count(buf, pos, stop)
            if msg.ndim + count <= _MAX_DIMS:
                # The run was validated just above, so every read succeeds.
                while pos < stop:
                    pos = _read_varint(buf, pos, stop, &value)
                    msg.dims[msg.ndim] = <int64_t>value
                    msg.ndim += 1
            else:
                msg.ndim += count
            pos = stop
        elif tag == (1 << 3) | _VARINT:
            pos = _read_varint(buf, pos, end, &value)
            if msg.ndim < _MAX_DIMS:
                msg.dims[msg.ndim] = <int64_t>value
            msg.ndim += 1
        else:
            pos = _skip_field(buf, pos, end, tag, depth)
        if msg.ndim > _MAX_DIMS:
            raise DecodeError(
                f"array_shape has more than {_MAX_DIMS} dimensions "
                f"before byte {pos}"
            )
    return pos


cdef Py_ssize_t _scan_value(
    const uint8_t* buf, Py_ssize_t pos, Py_ssize_t end, _ArrayMessage msg,
    int field, int wire,
) except -1:
    cdef Py_ssize_t start
    cdef Py_ssize_t stop
    cdef Py_ssize_t count
    cdef Py_ssize_t width
    cdef uint64_t ignored
    if wire == _LEN:
        start = _read_length(buf, pos, end, &stop)
        if field == _STRING_FIELD:
            count = 1
        elif field == _FLOAT_FIELD or field == _DOUBLE_FIELD:
            width = 4 if field == _FLOAT_FIELD else 8
            if (stop - start) % width:
                raise DecodeError(
                    f"packed {_FIELD_NAMES[field]} of {stop - start} bytes at "
                    f"byte {start} is not a whole number of {width}-byte values"
                )
            count = (stop - start) // width
        else:
            count = _checked_varint_count(buf, start, stop)
        pos = stop
    else:
        start = pos
        count = 1
        if wire == _FIXED32:
            if end - pos < 4:
                raise DecodeError(f"truncated 4-byte value at byte {pos}")
            pos += 4
        elif wire == _FIXED64:
            if end - pos < 8:
                raise DecodeError(f"truncated 8-byte value at byte {pos}")
            pos += 8
        else:
            pos = _read_varint(buf, pos, end, &ignored)
    if msg.chunks[field] == 0:
        msg.first[field] = start
        msg.first_packed[field] = wire == _LEN
    msg.chunks[field] += 1
    msg.counts[field] += count
    return pos


cdef Py_ssize_t _scan_array(
    const uint8_t* buf, Py_ssize_t pos, Py_ssize_t end, _ArrayMessage msg,
    bint has_bool, int depth,
) except -1:
    cdef uint32_t tag
    cdef uint64_t value
    cdef Py_ssize_t stop
    cdef int field
    cdef int wire
    while pos < end:
        pos = _read_tag(buf, pos, end, &tag)
        field = tag >> 3
        wire = tag & 7
        if tag == (_DTYPE_FIELD << 3) | _VARINT:
            pos = _read_varint(buf, pos, end, &value)
            msg.dtype = <int32_t>value  # an enum is an int32 on the wire
        elif tag == (_SHAPE_FIELD << 3) | _LEN:
            pos = _read_length(buf, pos, end, &stop)
            _scan_shape(buf, pos, stop, msg, depth + 1)
            pos = stop
        elif (
            _FLOAT_FIELD <= field <= _BOOL_FIELD
            and (field != _BOOL_FIELD or has_bool)
            and _is_value_wire(field, wire)
        ):
            pos = _scan_value(buf, pos, end, msg, field, wire)
        else:
            pos = _skip_field(buf, pos, end, tag, depth)
    return pos


# ------------------------------------------------------------ decode build --

cdef struct _Cursor:
    const uint8_t* buf
    Py_ssize_t pos        # inside the current ArrayProto piece
    Py_ssize_t end
    Py_ssize_t outer_pos  # inside the map entry, when the pieces sit in one
    Py_ssize_t outer_end
    bint in_entry


cdef inline void _open_cursor(
    _Cursor* c, const uint8_t* buf, _ArrayMessage msg
) noexcept:
    c.buf = buf
    c.in_entry = msg.in_entry
    if msg.in_entry:
        c.pos = c.end = 0
        c.outer_pos = msg.start
        c.outer_end = msg.end
    else:
        c.pos = msg.start
        c.end = msg.end


cdef int _next_field(_Cursor* c, uint32_t* tag) except -1:
    """Move to the next field of the ArrayProto; return 0 after the last one."""
    cdef uint32_t outer
    cdef Py_ssize_t stop
    while c.pos >= c.end:
        if not c.in_entry or c.outer_pos >= c.outer_end:
            return 0
        c.outer_pos = _read_tag(c.buf, c.outer_pos, c.outer_end, &outer)
        if outer == (2 << 3) | _LEN:
            c.pos = _read_length(c.buf, c.outer_pos, c.outer_end, &stop)
            c.end = stop
            c.outer_pos = stop
        else:
            c.outer_pos = _skip_field(c.buf, c.outer_pos, c.outer_end, outer, 1)
    c.pos = _read_tag(c.buf, c.pos, c.end, tag)
    return 1


cdef str _message_label(_ArrayMessage msg):
    return _label(msg.role, msg.name)


cdef tuple _decoded_shape(
    _ArrayMessage msg, Py_ssize_t count, Py_ssize_t itemsize, int field
):
    cdef int ndim = msg.ndim
    cdef int i
    cdef int64_t dim
    cdef Py_ssize_t product = 1
    cdef bint has_zero = False

    # No dimensions: one value is a 0-d array, any other count a 1-d array.
    if ndim == 0:
        return () if count == 1 else (count,)

    # The scan rejects more than _MAX_DIMS dimensions, so all are in msg.dims.
    shape = tuple([msg.dims[i] for i in range(ndim)])
    for i in range(ndim):
        if msg.dims[i] < 0:
            raise DecodeError(
                f"{_message_label(msg)} has negative dimension in shape {shape}"
            )
    for i in range(ndim):
        dim = msg.dims[i]
        if dim == 0:
            has_zero = True
        elif product > _SSIZE_MAX // itemsize // dim:
            raise DecodeError(
                f"{_message_label(msg)} declares shape {shape}, larger than "
                "memory can hold"
            )
        else:
            product *= dim
    if has_zero:
        product = 0
    if product != count:
        raise DecodeError(
            f"{_message_label(msg)} declares shape {shape} ({product} values) "
            f"but carries {count} {_FIELD_NAMES[field]} values"
        )
    return shape


cdef char* _array_data(object array) except NULL:
    """Return the data pointer of a new, writable, contiguous numpy array."""
    cdef Py_buffer view
    cdef char* data
    PyObject_GetBuffer(array, &view, PyBUF_WRITABLE)
    data = <char*>view.buf
    # NOTE: numpy never moves an array's data, and the caller keeps the only
    # reference to the array, so the pointer outlives the released view.
    PyBuffer_Release(&view)
    return data


cdef Py_ssize_t _gather_ints(
    const uint8_t* buf, Py_ssize_t pos, Py_ssize_t end, char* out,
    Py_ssize_t limit, int elem, bint wide, _ArrayMessage msg, object dtype,
) except -1:
    """Decode one packed run or one value into ``out``; return the count."""
    cdef int64_t bad = 0
    cdef Py_ssize_t n
    if end - pos >= _NOGIL_BYTES:
        with nogil:
            n = _decode_run(buf, pos, end, out, limit, elem, wide, &bad)
    else:
        n = _decode_run(buf, pos, end, out, limit, elem, wide, &bad)
    if n == -1:
        raise DecodeError(
            f"{_message_label(msg)} has value {bad}, outside the range of "
            f"{dtype}; the service sent values that do not fit the declared dtype"
        )
    if n < 0:  # defensive: the scan validated and counted every varint
        raise DecodeError(f"{_message_label(msg)}: malformed varints at byte {pos}")
    return n


cdef object _build_floats(
    object owner, const uint8_t* buf, _ArrayMessage msg, int field,
    Py_ssize_t count, object dtype, tuple shape,
):
    cdef _Cursor c
    cdef uint32_t tag
    cdef Py_ssize_t stop
    cdef Py_ssize_t index = 0
    cdef Py_ssize_t width = 4 if field == _FLOAT_FIELD else 8
    cdef Py_ssize_t n
    cdef char* out

    if count == 0:
        array = _np_empty(shape, dtype)
        array.flags.writeable = False
        return array
    if msg.chunks[field] == 1 and msg.first_packed[field]:
        # Zero copy: the packed values are little-endian IEEE back to back.
        array = _np_ndarray(shape, dtype, owner, msg.first[field])
        if type(owner) is not bytes:
            array.flags.writeable = False
        return array

    array = _np_empty(shape, dtype)
    out = _array_data(array)
    _open_cursor(&c, buf, msg)
    while _next_field(&c, &tag):
        if <int>(tag >> 3) != field or not _is_value_wire(field, tag & 7):
            c.pos = _skip_field(buf, c.pos, c.end, tag, 2)
            continue
        if tag & 7 == _LEN:
            c.pos = _read_length(buf, c.pos, c.end, &stop)
        else:
            stop = c.pos + width
        n = stop - c.pos
        if n > (count - index) * width or stop > c.end:  # defensive
            raise DecodeError(
                f"{_message_label(msg)}: value count changed between reads"
            )
        memcpy(out + index * width, buf + c.pos, n)
        index += n // width
        c.pos = stop
    array.flags.writeable = False
    return array


cdef object _build_ints(
    const uint8_t* buf, _ArrayMessage msg, int field, Py_ssize_t count,
    object dtype, tuple shape,
):
    cdef _Cursor c
    cdef uint32_t tag
    cdef uint64_t ignored
    cdef Py_ssize_t start
    cdef Py_ssize_t stop
    cdef Py_ssize_t index = 0
    cdef int elem = _code_elems[msg.dtype]
    cdef Py_ssize_t itemsize = _elem_size(elem)
    # int_val is int32: protobuf keeps the low 32 bits of each varint.
    cdef bint wide = field != _INT_FIELD
    cdef char* out

    # A new array is C-contiguous, so the values fill it in order.
    array = _np_empty(shape, dtype)
    if count == 0:
        return array
    out = _array_data(array)
    _open_cursor(&c, buf, msg)
    while _next_field(&c, &tag):
        if <int>(tag >> 3) != field or not _is_value_wire(field, tag & 7):
            c.pos = _skip_field(buf, c.pos, c.end, tag, 2)
            continue
        if tag & 7 == _LEN:
            start = _read_length(buf, c.pos, c.end, &stop)
        else:
            start = c.pos
            stop = _read_varint(buf, c.pos, c.end, &ignored)
        index += _gather_ints(
            buf, start, stop, out + index * itemsize, count - index, elem, wide,
            msg, dtype,
        )
        c.pos = stop
    return array


cdef object _build_strings(const uint8_t* buf, _ArrayMessage msg, Py_ssize_t count):
    cdef _Cursor c
    cdef uint32_t tag
    cdef Py_ssize_t stop
    cdef list values = []
    _open_cursor(&c, buf, msg)
    while _next_field(&c, &tag):
        if tag == (_STRING_FIELD << 3) | _LEN:
            c.pos = _read_length(buf, c.pos, c.end, &stop)
            values.append(
                PyBytes_FromStringAndSize(<const char*>buf + c.pos, stop - c.pos)
            )
            c.pos = stop
        else:
            c.pos = _skip_field(buf, c.pos, c.end, tag, 2)
    array = _np_empty(count, _OBJECT)
    array[:] = values
    return array


cdef object _build_array(
    object owner, const uint8_t* buf, _ArrayMessage msg, bint torch
):
    """Return the numpy array of one scanned ArrayProto."""
    cdef int code = msg.dtype
    cdef int field = _value_field(code, torch)
    cdef Py_ssize_t count
    if field == 0:
        raise DecodeError(
            f"{_message_label(msg)} has dtype {_code_name(code)}, which has no "
            "value field in the schema, so easfast cannot read it"
        )
    count = msg.counts[field]
    if field == _FLOAT_FIELD:
        shape = _decoded_shape(msg, count, 4, field)
        return _build_floats(owner, buf, msg, field, count, _FLOAT32_LE, shape)
    if field == _DOUBLE_FIELD:
        shape = _decoded_shape(msg, count, 8, field)
        return _build_floats(owner, buf, msg, field, count, _FLOAT64_LE, shape)
    if field == _STRING_FIELD:
        shape = _decoded_shape(msg, count, sizeof(void*), field)
        return _build_strings(buf, msg, count).reshape(shape)
    dtype = _CODE_DTYPES[code]
    shape = _decoded_shape(msg, count, _elem_size(_code_elems[code]), field)
    return _build_ints(buf, msg, field, count, dtype, shape)
