# Tensor codec: numpy arrays to and from the PredictRequest and
# PredictResponse messages of the PAI-EAS TensorFlow and PyTorch processors,
# written and read here without the protobuf runtime.
#
# The schemas are proto/tf_request.proto and proto/pytorch_predict.proto.
# Wire format: https://protobuf.dev/programming-guides/encoding/
#
# Encoding computes the exact message size first, allocates the bytes object
# once and writes every field into it. Decoding first scans the whole message
# and checks its wire format (every length against the buffer, before use),
# then builds the arrays: float and double values as read-only views on the
# input, varint values through typed C loops.

from cpython.buffer cimport (
    PyBUF_SIMPLE,
    PyBUF_STRIDES,
    PyBUF_WRITABLE,
    PyBuffer_IsContiguous,
    PyBuffer_Release,
    PyObject_CheckBuffer,
    PyObject_GetBuffer,
)
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

import numpy as np

DT_INVALID = 0
DT_FLOAT = 1
DT_DOUBLE = 2
DT_INT32 = 3
DT_UINT8 = 4
DT_INT16 = 5
DT_INT8 = 6
DT_STRING = 7
DT_COMPLEX64 = 8
DT_INT64 = 9
DT_BOOL = 10
DT_QINT8 = 11
DT_QUINT8 = 12
DT_QINT32 = 13
DT_BFLOAT16 = 14
DT_QINT16 = 15
DT_QUINT16 = 16
DT_UINT16 = 17
DT_COMPLEX128 = 18
DT_HALF = 19
DT_RESOURCE = 20
DT_VARIANT = 21

_CODE_NAMES = (
    "DT_INVALID", "DT_FLOAT", "DT_DOUBLE", "DT_INT32", "DT_UINT8", "DT_INT16",
    "DT_INT8", "DT_STRING", "DT_COMPLEX64", "DT_INT64", "DT_BOOL", "DT_QINT8",
    "DT_QUINT8", "DT_QINT32", "DT_BFLOAT16", "DT_QINT16", "DT_QUINT16",
    "DT_UINT16", "DT_COMPLEX128", "DT_HALF", "DT_RESOURCE", "DT_VARIANT",
)

# ArrayProto field numbers. The value field of a tensor follows its dtype.
cdef enum:
    _DTYPE_FIELD = 1
    _SHAPE_FIELD = 2
    _FLOAT_FIELD = 3
    _DOUBLE_FIELD = 4
    _INT_FIELD = 5
    _STRING_FIELD = 6
    _INT64_FIELD = 7
    _BOOL_FIELD = 8

# Wire types, the low three bits of every tag.
cdef enum:
    _VARINT = 0
    _FIXED64 = 1
    _LEN = 2
    _START_GROUP = 3
    _END_GROUP = 4
    _FIXED32 = 5

# C element types of integer and bool tensors.
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
# numpy 1.x arrays have at most 32 dimensions.
cdef int _MAX_DIMS = 32
# Runs of at least this many bytes are copied or decoded without the GIL.
cdef Py_ssize_t _NOGIL_BYTES = 1 << 16
cdef Py_ssize_t _SSIZE_MAX = <Py_ssize_t>((<size_t>-1) >> 1)

_FLOAT32_LE = np.dtype("<f4")
_FLOAT64_LE = np.dtype("<f8")
_OBJECT = np.dtype(object)

# The numpy dtype of every code whose values the schema can carry.
_CODE_DTYPES = {
    DT_FLOAT: np.dtype(np.float32),
    DT_DOUBLE: np.dtype(np.float64),
    DT_INT32: np.dtype(np.int32),
    DT_UINT8: np.dtype(np.uint8),
    DT_INT16: np.dtype(np.int16),
    DT_INT8: np.dtype(np.int8),
    DT_STRING: _OBJECT,
    DT_INT64: np.dtype(np.int64),
    DT_BOOL: np.dtype(np.bool_),
    DT_QINT8: np.dtype(np.int8),
    DT_QUINT8: np.dtype(np.uint8),
    DT_QINT32: np.dtype(np.int32),
    DT_QINT16: np.dtype(np.int16),
    DT_QUINT16: np.dtype(np.uint16),
    DT_UINT16: np.dtype(np.uint16),
}

# ArrayProto field that carries the values of each code. The PyTorch schema
# has no bool_val, so there DT_BOOL values travel in int_val.
_TF_VALUE_FIELDS = {
    DT_FLOAT: _FLOAT_FIELD,
    DT_DOUBLE: _DOUBLE_FIELD,
    DT_INT32: _INT_FIELD,
    DT_UINT8: _INT_FIELD,
    DT_INT16: _INT_FIELD,
    DT_INT8: _INT_FIELD,
    DT_STRING: _STRING_FIELD,
    DT_INT64: _INT64_FIELD,
    DT_BOOL: _BOOL_FIELD,
    DT_QINT8: _INT_FIELD,
    DT_QUINT8: _INT_FIELD,
    DT_QINT32: _INT_FIELD,
    DT_QINT16: _INT_FIELD,
    DT_QUINT16: _INT_FIELD,
    DT_UINT16: _INT_FIELD,
}
_TORCH_VALUE_FIELDS = dict(_TF_VALUE_FIELDS)
_TORCH_VALUE_FIELDS[DT_BOOL] = _INT_FIELD

_FIELD_NAMES = {
    _FLOAT_FIELD: "float_val",
    _DOUBLE_FIELD: "double_val",
    _INT_FIELD: "int_val",
    _STRING_FIELD: "string_val",
    _INT64_FIELD: "int64_val",
    _BOOL_FIELD: "bool_val",
}

# Inferred code of each numpy (kind, itemsize) the schema carries exactly.
_KIND_CODES = {
    ("f", 4): DT_FLOAT,
    ("f", 8): DT_DOUBLE,
    ("i", 1): DT_INT8,
    ("i", 2): DT_INT16,
    ("i", 4): DT_INT32,
    ("i", 8): DT_INT64,
    ("u", 1): DT_UINT8,
    ("u", 2): DT_UINT16,
    ("b", 1): DT_BOOL,
}

# Exact dtype objects first: one dict lookup, before the (kind, itemsize)
# lookup that also finds non-native byte orders.
cdef dict _DTYPE_CODES = {
    np.dtype(f"{kind}{itemsize}"): code
    for (kind, itemsize), code in _KIND_CODES.items()
}

_KIND_ELEMS = {
    ("i", 1): _I8,
    ("u", 1): _U8,
    ("i", 2): _I16,
    ("u", 2): _U16,
    ("i", 4): _I32,
    ("i", 8): _I64,
    ("b", 1): _BOOL,
}

_INT64_MAX = 0x7FFFFFFFFFFFFFFF

# numpy functions called per tensor, bound once instead of looked up on the
# module every call.
_np_asarray = np.asarray
_np_empty = np.empty
_np_ndarray = np.ndarray
_np_generic = np.generic

# The tables above as C arrays indexed by DT_* code, for the per-tensor
# paths: the value field in each schema (0: none) and the C element type of
# integer and bool codes (0: not one).
cdef enum:
    _CODE_COUNT = 22

cdef int _tf_fields[_CODE_COUNT]
cdef int _torch_fields[_CODE_COUNT]
cdef int _code_elems[_CODE_COUNT]


cdef int _fill_code_tables() except -1:
    cdef int code
    for code in range(_CODE_COUNT):
        _tf_fields[code] = _TF_VALUE_FIELDS.get(code, 0)
        _torch_fields[code] = _TORCH_VALUE_FIELDS.get(code, 0)
        dt = _CODE_DTYPES.get(code)
        _code_elems[code] = (
            0 if dt is None else _KIND_ELEMS.get((dt.kind, dt.itemsize), 0)
        )
    return 0


_fill_code_tables()


cdef inline int _value_field(long long code, bint torch) noexcept:
    """Return the ArrayProto field of ``code``'s values; 0 if it has none."""
    if code < 0 or code >= _CODE_COUNT:
        return 0
    return _torch_fields[code] if torch else _tf_fields[code]


cdef inline Py_ssize_t _elem_size(int elem) noexcept:
    if elem == _I64:
        return 8
    if elem == _I32:
        return 4
    if elem == _I16 or elem == _U16:
        return 2
    return 1


# ---------------------------------------------------------------- dtypes --

cdef str _code_name(long long code):
    if 0 <= code < len(_CODE_NAMES):
        return _CODE_NAMES[code]
    return f"unknown dtype code {code}"


cdef str _describe_code(object code):
    if isinstance(code, int) and 0 <= code < len(_CODE_NAMES):
        return f"{code} ({_CODE_NAMES[code]})"
    return repr(code)


cdef str _carried_codes():
    return ", ".join(_CODE_NAMES[code] for code in sorted(_CODE_DTYPES))


def numpy_dtype(code):
    """Return the numpy dtype of a DT_* code; EncodeError if it has none."""
    if isinstance(code, int) and not isinstance(code, bool):
        dtype = _CODE_DTYPES.get(code)
        if dtype is not None:
            return dtype
    raise EncodeError(
        f"dtype code {_describe_code(code)} has no value field in the EAS "
        f"tensor schema; use one of {_carried_codes()}"
    )


def dtype_code(dtype):
    """Return the DT_* code for a numpy dtype; EncodeError if the schema lacks it."""
    dt = np.dtype(dtype)
    code = _KIND_CODES.get((dt.kind, dt.itemsize))
    if code is not None:
        return code
    if dt.kind in "SUO":
        return DT_STRING
    raise EncodeError(_unsupported_dtype_message("dtype", dt))


cdef str _unsupported_dtype_message(str label, object dt):
    key = (dt.kind, dt.itemsize)
    if key == ("f", 2) or dt.name == "bfloat16":
        hint = "cast with arr.astype(np.float32), or pass convert=True"
    elif key == ("u", 4):
        hint = "cast with arr.astype(np.int64), or pass convert=True"
    elif key == ("u", 8):
        hint = (
            "cast with arr.astype(np.int64) if every value is below 2**63, "
            "or pass convert=True"
        )
    elif dt.kind == "c":
        hint = "send arr.real and arr.imag as two float tensors"
    elif dt.kind == "f":
        hint = "cast with arr.astype(np.float64)"
    else:
        hint = (
            "cast to float32, float64, int8, int16, int32, int64, uint8, "
            "uint16, bool, bytes or str"
        )
    return (
        f"{label} has dtype {dt}, which the EAS tensor schema cannot carry "
        f"exactly; {hint}"
    )


# ------------------------------------------------------------ varint helpers --

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


cdef int _check_message_size(object size, str what) except -1:
    if size > _MAX_MESSAGE:
        raise EncodeError(
            f"{what} would take {size} bytes, over protobuf's 2 GiB message "
            "limit; split the batch into smaller requests"
        )
    return 0


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


cdef uint8_t* _write_string_field(uint8_t* p, uint8_t tag, bytes value) except NULL:
    cdef Py_ssize_t n = len(value)
    p[0] = tag
    p = _write_varint(p + 1, <uint64_t>n)
    memcpy(p, PyBytes_AS_STRING(value), n)
    return p + n


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


# ------------------------------------------------------------ wire reading --
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


cdef str _read_utf8(const uint8_t* buf, Py_ssize_t start, Py_ssize_t stop, str what):
    try:
        return PyUnicode_DecodeUTF8(<const char*>buf + start, stop - start, NULL)
    except UnicodeDecodeError as exc:
        raise DecodeError(
            f"{what} at byte {start} is not valid UTF-8 ({exc.reason})"
        ) from exc


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


# ------------------------------------------------------------ decode entry --

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
