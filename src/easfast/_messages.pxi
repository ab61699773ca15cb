# The TensorFlow and PyTorch PredictRequest and PredictResponse messages: the
# public encode_* and decode_* functions and the map and list fields that hold
# their tensors. Encoding computes the exact message size first, allocates the
# bytes object once and writes every field into it. Decoding scans the whole
# message before it builds any array, so a wire-format error raises DecodeError
# before any array is allocated. Both rely on the rule that a
# map<string, ArrayProto> field is a repeated entry message with the key in
# field 1 and the value in field 2. A parser merges a message field that occurs
# more than once and keeps the last occurrence of a singular scalar field, so
# an entry's value may arrive in pieces and its last key wins.

from cpython.buffer cimport (
    PyBUF_SIMPLE,
    PyBuffer_Release,
    PyObject_CheckBuffer,
    PyObject_GetBuffer,
)
from cpython.bytes cimport PyBytes_AS_STRING
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy


# ------------------------------------------------------------------ encode --

cdef list _prepare_map(object tensors, str role, bint convert, bint torch):
    if tensors is None:
        return []
    if type(tensors) is not dict and not hasattr(tensors, "items"):
        raise EncodeError(
            f"{role}s must be a mapping of names to numpy arrays, got "
            f"{type(tensors).__name__}"
        )
    cdef list resolved = []
    for name, tensor in tensors.items():
        if not isinstance(name, str):
            raise EncodeError(
                f"{role} names must be str, got {type(name).__name__} {name!r}"
            )
        resolved.append(_resolve(role, name, tensor, convert, torch))
    return resolved


cdef list _prepare_list(object tensors, str role, bint convert, bint torch):
    if tensors is None:
        return []
    if isinstance(tensors, (np.ndarray, str, bytes)) or hasattr(tensors, "items"):
        raise EncodeError(
            f"{role}s must be a sequence of numpy arrays, got "
            f"{type(tensors).__name__}; wrap a single array in a list"
        )
    cdef list resolved = []
    for index, tensor in enumerate(tensors):
        resolved.append(_resolve(role, index, tensor, convert, torch))
    return resolved


cdef object _lower_bound(list tensors):
    """Return the fewest bytes the tensors can take, without copying them."""
    # TODO: the exact size of a varint tensor is known only after its
    # C-order copy, so a non-contiguous int64 tensor just under this bound
    # can cost a copy of up to 2 GiB before the size check rejects it.
    cdef _Tensor t
    total = 0
    for t in tensors:
        # A Python int: a broadcast array's count times 8 may overflow C.
        total += <object>t.count * _min_value_bytes(t.code)
    return total


cdef Py_ssize_t _build_tensors(
    list tensors, str role, bint torch, bint keyed
) except -1:
    """Prepare every resolved _Tensor; return their encoded size."""
    cdef _Tensor t
    cdef Py_ssize_t total = 0
    for t in tensors:
        _prepare_tensor(t, role, torch)
        if keyed:
            t.key = _name_utf8(role, t.name)
            t.entry_size = _field_size(len(t.key)) + _field_size(t.body_size)
            total += _field_size(t.entry_size)
        else:
            total += _field_size(t.body_size)
    return total


cdef uint8_t* _write_tensors(uint8_t* p, list tensors, uint8_t tag) except NULL:
    cdef _Tensor t
    for t in tensors:
        p[0] = tag
        if t.key is None:
            p = _write_varint(p + 1, <uint64_t>t.body_size)
        else:
            p = _write_varint(p + 1, <uint64_t>t.entry_size)
            p[0] = (1 << 3) | _LEN
            p = _write_varint(p + 1, <uint64_t>len(t.key))
            memcpy(p, PyBytes_AS_STRING(t.key), len(t.key))
            p += len(t.key)
            p[0] = (2 << 3) | _LEN
            p = _write_varint(p + 1, <uint64_t>t.body_size)
        p = _write_array(p, t)
    return p


cdef bytes _name_utf8(str role, str name):
    try:
        return name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodeError(
            f"{role} name {name!r} is not valid Unicode ({exc.reason})"
        ) from exc


cdef bytes _utf8(object text, str what):
    if isinstance(text, str):
        try:
            return (<str>text).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EncodeError(
                f"{what} {text!r} is not valid Unicode ({exc.reason})"
            ) from exc
    raise EncodeError(f"{what} must be a str, got {type(text).__name__} {text!r}")


cdef list _output_names(object output_filter):
    if output_filter is None:
        return []
    if isinstance(output_filter, (str, bytes)):
        raise EncodeError(
            f"output_filter must be a sequence of output names, got the string "
            f"{output_filter!r}; wrap it in a list"
        )
    return [_utf8(name, "output_filter name") for name in output_filter]


cdef int32_t _int32(object value, str what) except? -1:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EncodeError(f"{what} must be an int, got {type(value).__name__}")
    if not -0x80000000 <= value <= 0x7FFFFFFF:
        raise EncodeError(f"{what} {value} is outside the int32 range")
    return value


def encode_tf_request(signature_name, inputs, output_filter=(), *, convert=False):
    """Encode a TensorFlow PredictRequest; see _core.pyi for the contract."""
    cdef bytes signature = b"" if signature_name is None else _utf8(
        signature_name, "signature_name"
    )
    cdef list tensors = _prepare_map(inputs, "input", convert, False)
    cdef list names = _output_names(output_filter)
    cdef Py_ssize_t size = 0
    cdef uint8_t* start
    cdef uint8_t* p
    cdef bytes name

    _check_message_size(_lower_bound(tensors), "the TensorFlow request")
    if signature:
        size += _field_size(len(signature))
    size += _build_tensors(tensors, "input", False, True)
    for name in names:
        size += _field_size(len(name))

    out = _allocate(size, "the TensorFlow request", &start)
    p = start
    if signature:
        p = _write_string_field(p, (1 << 3) | _LEN, signature)
    p = _write_tensors(p, tensors, (2 << 3) | _LEN)
    for name in names:
        p = _write_string_field(p, (3 << 3) | _LEN, name)
    _check_written(p, start, size)
    return out


def encode_tf_response(outputs):
    """Encode a TensorFlow PredictResponse; see _core.pyi for the contract."""
    cdef list tensors = _prepare_map(outputs, "output", False, False)
    cdef Py_ssize_t size
    cdef uint8_t* start
    cdef uint8_t* p

    _check_message_size(_lower_bound(tensors), "the TensorFlow response")
    size = _build_tensors(tensors, "output", False, True)
    out = _allocate(size, "the TensorFlow response", &start)
    p = _write_tensors(start, tensors, (1 << 3) | _LEN)
    _check_written(p, start, size)
    return out


def encode_torch_request(
    inputs, map_inputs=None, output_filter=(), debug_level=0, *, convert=False
):
    """Encode a PyTorch PredictRequest; see _core.pyi for the contract."""
    cdef list tensors = _prepare_list(inputs, "input", convert, True)
    cdef list map_tensors = _prepare_map(map_inputs, "map input", convert, True)
    cdef list indexes = []
    cdef int32_t debug = _int32(debug_level, "debug_level")
    cdef Py_ssize_t filter_size = 0
    cdef Py_ssize_t size = 0
    cdef int32_t index
    cdef uint8_t* start
    cdef uint8_t* p

    if output_filter is None:
        output_filter = ()
    for item in output_filter:
        index = _int32(item, "output_filter index")
        indexes.append(index)
        filter_size += _varint_size(<uint64_t>(<int64_t>index))
    _check_message_size(
        _lower_bound(tensors) + _lower_bound(map_tensors), "the PyTorch request"
    )
    size += _build_tensors(tensors, "input", True, False)
    if indexes:
        size += _field_size(filter_size)
    size += _build_tensors(map_tensors, "map input", True, True)
    if debug:
        # Field 100 needs a two-byte tag.
        size += 2 + _varint_size(<uint64_t>(<int64_t>debug))

    out = _allocate(size, "the PyTorch request", &start)
    p = _write_tensors(start, tensors, (1 << 3) | _LEN)
    if indexes:
        p[0] = (2 << 3) | _LEN
        p = _write_varint(p + 1, <uint64_t>filter_size)
        for item in indexes:
            index = item
            p = _write_varint(p, <uint64_t>(<int64_t>index))
    p = _write_tensors(p, map_tensors, (3 << 3) | _LEN)
    if debug:
        p = _write_varint(p, (100 << 3) | _VARINT)
        p = _write_varint(p, <uint64_t>(<int64_t>debug))
    _check_written(p, start, size)
    return out


def encode_torch_response(outputs, map_outputs=None):
    """Encode a PyTorch PredictResponse; see _core.pyi for the contract."""
    cdef list tensors = _prepare_list(outputs, "output", False, True)
    cdef list map_tensors = _prepare_map(map_outputs, "map output", False, True)
    cdef Py_ssize_t size
    cdef uint8_t* start
    cdef uint8_t* p

    _check_message_size(
        _lower_bound(tensors) + _lower_bound(map_tensors), "the PyTorch response"
    )
    size = _build_tensors(tensors, "output", True, False)
    size += _build_tensors(map_tensors, "map output", True, True)
    out = _allocate(size, "the PyTorch response", &start)
    p = _write_tensors(start, tensors, (1 << 3) | _LEN)
    p = _write_tensors(p, map_tensors, (2 << 3) | _LEN)
    _check_written(p, start, size)
    return out


# ------------------------------------------------------------------ decode --

cdef Py_ssize_t _scan_entry(
    const uint8_t* buf, Py_ssize_t pos, Py_ssize_t end, _ArrayMessage msg,
    bint has_bool, int depth, Py_ssize_t* key_start, Py_ssize_t* key_stop,
) except -1:
    """Scan a map<string, ArrayProto> entry; the last key field wins."""
    cdef uint32_t tag
    cdef Py_ssize_t stop
    key_start[0] = key_stop[0] = 0
    msg.start = pos
    msg.end = end
    msg.in_entry = True
    while pos < end:
        pos = _read_tag(buf, pos, end, &tag)
        if tag == (1 << 3) | _LEN:
            pos = _read_length(buf, pos, end, &stop)
            key_start[0] = pos
            key_stop[0] = stop
            pos = stop
        elif tag == (2 << 3) | _LEN:
            pos = _read_length(buf, pos, end, &stop)
            _scan_array(buf, pos, stop, msg, has_bool, depth + 1)
            pos = stop
        else:
            pos = _skip_field(buf, pos, end, tag, depth)
    return pos


cdef Py_ssize_t _scan_map_field(
    const uint8_t* buf, Py_ssize_t pos, Py_ssize_t end, dict found,
    bint has_bool, str what,
) except -1:
    """Scan one map entry field at ``pos`` into ``found``; return its end."""
    cdef _ArrayMessage msg = _ArrayMessage.__new__(_ArrayMessage)
    cdef Py_ssize_t stop
    cdef Py_ssize_t key_start
    cdef Py_ssize_t key_stop
    pos = _read_length(buf, pos, end, &stop)
    _scan_entry(buf, pos, stop, msg, has_bool, 1, &key_start, &key_stop)
    found[_read_utf8(buf, key_start, key_stop, what)] = msg
    return stop


cdef Py_ssize_t _scan_list_field(
    const uint8_t* buf, Py_ssize_t pos, Py_ssize_t end, list found
) except -1:
    """Scan one repeated ArrayProto field at ``pos`` into ``found``."""
    cdef _ArrayMessage msg = _ArrayMessage.__new__(_ArrayMessage)
    cdef Py_ssize_t stop
    pos = _read_length(buf, pos, end, &stop)
    msg.start = pos
    msg.end = stop
    _scan_array(buf, pos, stop, msg, False, 1)
    found.append(msg)
    return stop


cdef dict _build_map(
    object owner, const uint8_t* buf, dict found, str role, bint torch
):
    cdef dict arrays = {}
    cdef _ArrayMessage msg
    for name, msg in found.items():
        msg.role = role
        msg.name = name
        arrays[name] = _build_array(owner, buf, msg, torch)
    return arrays


cdef list _build_list(object owner, const uint8_t* buf, list found, str role):
    cdef list arrays = []
    cdef _ArrayMessage msg
    for index, msg in enumerate(found):
        msg.role = role
        msg.name = index
        arrays.append(_build_array(owner, buf, msg, True))
    return arrays


cdef object _buffer_owner(object data, str func):
    """Return ``data`` or a copy of it that exports one contiguous byte run."""
    if isinstance(data, bytes):
        return data
    if not PyObject_CheckBuffer(data) or isinstance(data, str):
        raise TypeError(
            f"{func}() needs bytes, bytearray or memoryview, got "
            f"{type(data).__name__}"
        )
    view = memoryview(data)
    if not view.c_contiguous:
        return view.tobytes()
    if view.ndim != 1 or view.itemsize != 1:
        return view.cast("B")
    return data


cdef object _wrap(object exc, str schema, Py_ssize_t size, str processor):
    return DecodeError(
        f"invalid {schema} ({size} bytes): {exc}; check that the service runs "
        f"the {processor} processor and that the body arrived whole"
    )


def decode_tf_response(data):
    """Decode a TensorFlow PredictResponse; see _core.pyi for the contract."""
    cdef Py_buffer view
    cdef const uint8_t* buf
    cdef Py_ssize_t pos = 0
    cdef uint32_t tag
    cdef dict found = {}
    owner = _buffer_owner(data, "decode_tf_response")
    PyObject_GetBuffer(owner, &view, PyBUF_SIMPLE)
    buf = <const uint8_t*>view.buf
    try:
        while pos < view.len:
            pos = _read_tag(buf, pos, view.len, &tag)
            if tag == (1 << 3) | _LEN:
                pos = _scan_map_field(buf, pos, view.len, found, True, "output name")
            else:
                pos = _skip_field(buf, pos, view.len, tag, 0)
        return _build_map(owner, buf, found, "output", False)
    except DecodeError as exc:
        raise _wrap(exc, "TensorFlow PredictResponse", view.len, "TensorFlow") from None
    finally:
        PyBuffer_Release(&view)


def decode_tf_request(data):
    """Decode a TensorFlow PredictRequest; see _core.pyi for the contract."""
    cdef Py_buffer view
    cdef const uint8_t* buf
    cdef Py_ssize_t pos = 0
    cdef Py_ssize_t stop
    cdef uint32_t tag
    cdef dict found = {}
    cdef list names = []
    cdef str signature = ""
    owner = _buffer_owner(data, "decode_tf_request")
    PyObject_GetBuffer(owner, &view, PyBUF_SIMPLE)
    buf = <const uint8_t*>view.buf
    try:
        while pos < view.len:
            pos = _read_tag(buf, pos, view.len, &tag)
            if tag == (1 << 3) | _LEN:
                pos = _read_length(buf, pos, view.len, &stop)
                signature = _read_utf8(buf, pos, stop, "signature_name")
                pos = stop
            elif tag == (2 << 3) | _LEN:
                pos = _scan_map_field(buf, pos, view.len, found, True, "input name")
            elif tag == (3 << 3) | _LEN:
                pos = _read_length(buf, pos, view.len, &stop)
                names.append(_read_utf8(buf, pos, stop, "output_filter name"))
                pos = stop
            else:
                pos = _skip_field(buf, pos, view.len, tag, 0)
        return signature, _build_map(owner, buf, found, "input", False), names
    except DecodeError as exc:
        raise _wrap(exc, "TensorFlow PredictRequest", view.len, "TensorFlow") from None
    finally:
        PyBuffer_Release(&view)


cdef Py_ssize_t _read_int32s(
    const uint8_t* buf, Py_ssize_t pos, Py_ssize_t end, uint32_t tag, list out
) except -1:
    """Read a packed run or one value of a repeated int32 into ``out``."""
    cdef uint64_t raw
    cdef Py_ssize_t stop
    if tag & 7 == _VARINT:
        pos = _read_varint(buf, pos, end, &raw)
        out.append(<int32_t>raw)
        return pos
    pos = _read_length(buf, pos, end, &stop)
    while pos < stop:
        pos = _read_varint(buf, pos, stop, &raw)
        out.append(<int32_t>raw)
    return stop


def decode_torch_request(data):
    """Decode a PyTorch PredictRequest; see _core.pyi for the contract."""
    cdef Py_buffer view
    cdef const uint8_t* buf
    cdef Py_ssize_t pos = 0
    cdef uint64_t raw
    cdef uint32_t tag
    cdef list listed = []
    cdef dict found = {}
    cdef list indexes = []
    cdef int32_t debug_level = 0
    owner = _buffer_owner(data, "decode_torch_request")
    PyObject_GetBuffer(owner, &view, PyBUF_SIMPLE)
    buf = <const uint8_t*>view.buf
    try:
        while pos < view.len:
            pos = _read_tag(buf, pos, view.len, &tag)
            if tag == (1 << 3) | _LEN:
                pos = _scan_list_field(buf, pos, view.len, listed)
            elif tag == (2 << 3) | _LEN or tag == (2 << 3) | _VARINT:
                pos = _read_int32s(buf, pos, view.len, tag, indexes)
            elif tag == (3 << 3) | _LEN:
                pos = _scan_map_field(
                    buf, pos, view.len, found, False, "map input name"
                )
            elif tag == (100 << 3) | _VARINT:
                pos = _read_varint(buf, pos, view.len, &raw)
                debug_level = <int32_t>raw
            else:
                pos = _skip_field(buf, pos, view.len, tag, 0)
        return (
            _build_list(owner, buf, listed, "input"),
            _build_map(owner, buf, found, "map input", True),
            indexes,
            debug_level,
        )
    except DecodeError as exc:
        raise _wrap(exc, "PyTorch PredictRequest", view.len, "PyTorch") from None
    finally:
        PyBuffer_Release(&view)


def decode_torch_response(data):
    """Decode a PyTorch PredictResponse; see _core.pyi for the contract."""
    cdef Py_buffer view
    cdef const uint8_t* buf
    cdef Py_ssize_t pos = 0
    cdef uint32_t tag
    cdef list listed = []
    cdef dict found = {}
    owner = _buffer_owner(data, "decode_torch_response")
    PyObject_GetBuffer(owner, &view, PyBUF_SIMPLE)
    buf = <const uint8_t*>view.buf
    try:
        while pos < view.len:
            pos = _read_tag(buf, pos, view.len, &tag)
            if tag == (1 << 3) | _LEN:
                pos = _scan_list_field(buf, pos, view.len, listed)
            elif tag == (2 << 3) | _LEN:
                pos = _scan_map_field(
                    buf, pos, view.len, found, False, "map output name"
                )
            else:
                pos = _skip_field(buf, pos, view.len, tag, 0)
        return (
            _build_list(owner, buf, listed, "output"),
            _build_map(owner, buf, found, "map output", True),
        )
    except DecodeError as exc:
        raise _wrap(exc, "PyTorch PredictResponse", view.len, "PyTorch") from None
    finally:
        PyBuffer_Release(&view)
