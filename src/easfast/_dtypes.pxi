# Tensor dtypes: the DT_* codes of the schema's ArrayDataType enum, the numpy
# dtype of each code, and the ArrayProto field that carries its values in the
# TensorFlow and the PyTorch schema. They rely on the schema rule that an
# ArrayProto carries its values in the one repeated field chosen by its dtype
# (float_val for DT_FLOAT, int_val for the 8-, 16- and 32-bit integer codes, and
# so on), so a code without such a field cannot be sent at all. The schemas are
# proto/tf_request.proto and proto/pytorch_predict.proto.

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


# ----------------------------------------------------------------- lookups --

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
