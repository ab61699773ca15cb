"""Request and response classes with the official SDK's names and methods.

``StringRequest`` sends bytes as they are. ``TFRequest`` and ``TorchRequest``
collect numpy arrays and encode them with the compiled codec in
``to_string()``, which caches the body. ``PredictClient.predict`` calls
``to_string()`` once per call and reuses the body across retries.
Responses decode in ``parse_response``, which ``predict`` calls inside its
retry loop: a 200 whose body is not a valid message raises ``DecodeError``
there, and the call is retried on another instance.

Differences from ``eas_prediction`` 0.36, all deliberate:

* ``add_feed`` takes a list, a tuple or a numpy array of any shape whose
  value count matches ``shape``, and converts it to the dtype of the
  ``DT_*`` code. It raises ``EncodeError`` when it cannot: a wrong count,
  floats for an integer type, or integers out of range. Feeding the same name twice
  replaces the first feed instead of appending to it.
* ``get_values`` returns a ``TensorValues``, a read-only sequence of Python
  scalars like the protobuf repeated field it replaces (``list(values)``
  is JSON-serialisable, ``values[0]`` is an ``int``, ``float``, ``bool`` or
  ``bytes``). ``numpy.asarray(values)`` is the flat numpy view on the
  response body, without a copy. It also covers the dtypes for which the
  official SDK returned None (for example uint8 outputs of the TF class).
* Asking for an output the response lacks raises ``OutputNotFoundError``
  (a ``PredictException`` and a ``KeyError``) listing the outputs it has,
  where the official SDK returned an empty field.
* ``parse_response`` of ``TFRequest`` and ``TorchRequest`` raises
  ``DecodeError`` for a response without any output (an empty 200 body,
  for example), where the official SDK returned an empty response.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, SupportsIndex, Union, overload

import numpy as np

from . import _core
from .exceptions import DecodeError, EncodeError, OutputNotFoundError

__all__ = [
    "Request",
    "Response",
    "StringRequest",
    "StringResponse",
    "TFRequest",
    "TFResponse",
    "TensorValues",
    "TorchRequest",
    "TorchResponse",
]

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

Content = Union[Sequence[Any], np.ndarray]
Tensor = tuple[int, np.ndarray]


class Request(abc.ABC):
    """Base of every request: ``to_string()`` gives the body to send."""

    @abc.abstractmethod
    def to_string(self) -> bytes | str:
        """Return the request body."""

    @abc.abstractmethod
    def parse_response(self, response_data: bytes) -> Any:
        """Return the response object for the body ``response_data``."""


class Response(abc.ABC):
    """Base of every response."""


# ---------------------------------------------------------------- strings --


class StringRequest(Request):
    """A body sent as is: bytes, or str encoded as UTF-8.

    Any other type raises ``EncodeError``, here and in ``to_string()``.
    """

    def __init__(self, request_data: bytes | bytearray | str | None = None):
        self.request_data = b"" if request_data is None else request_data
        _check_string_data(self.request_data)

    def __str__(self) -> str:
        data = self.request_data
        return data if isinstance(data, str) else bytes(data).decode(
            "utf-8", "replace")

    def to_string(self) -> bytes:
        """Return the body: the bytes given, or the str encoded as UTF-8."""
        data = self.request_data
        if isinstance(data, bytes):
            return data
        _check_string_data(data)
        if isinstance(data, str):
            return _utf8(data, "the StringRequest text")
        return bytes(data)

    def parse_response(self, response_data: bytes) -> StringResponse:
        """Wrap the response body in a ``StringResponse``."""
        return StringResponse(response_data)


def _check_string_data(data: object) -> None:
    if not isinstance(data, (bytes, bytearray, memoryview, str)):
        raise EncodeError(
            "StringRequest data must be bytes or str, got "
            f"{type(data).__name__}; encode other values first, for example "
            "with json.dumps"
        )


def _utf8(text: str, what: str) -> bytes:
    # str.encode("utf-8") fails only on a lone surrogate.
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodeError(
            f"{what} contains {text[exc.start]!r} at index {exc.start}, a "
            "lone surrogate that UTF-8 cannot encode; it usually comes from "
            "decoding bytes with errors='surrogateescape', so send the "
            "original bytes instead"
        ) from None


class StringResponse(Response):
    """A response body; ``response_data`` contains the bytes received."""

    def __init__(self, response_data: bytes | None = None):
        self.response_data = b"" if response_data is None else response_data

    def __str__(self) -> str:
        return self.response_data.decode("utf-8", "replace")

    def to_string(self) -> str:
        """Return the body decoded as UTF-8 (invalid bytes replaced)."""
        return str(self)


# ------------------------------------------------------- feed conversion --


def _convert(
    content: Content, code: int, shape: Sequence[int], kind: str, key: object
) -> Tensor:
    # Turn a feed into (code, array of the code's dtype and of ``shape``).
    # Errors name the feed as f"{kind} {key!r}", such as "input 'images'".
    dims = _check_shape(shape, kind, key)
    try:
        dtype = _core.numpy_dtype(code)
    except EncodeError as exc:
        raise EncodeError(f"{_label(kind, key)}: {exc}") from None
    if dtype.kind == "O":
        array = _string_array(content, kind, key)
    else:
        try:
            source = content if isinstance(content, np.ndarray) \
                else np.asarray(content)
        except (ValueError, TypeError) as exc:
            raise EncodeError(
                f"{_label(kind, key)}: content is not a rectangular list of "
                f"numbers ({exc})"
            ) from None
        if source.dtype == dtype:
            array = source  # no conversion, so no value can change
        else:
            _check_kind(source, dtype, code, _label(kind, key))
            try:
                array = _cast(source, dtype)
            except FloatingPointError:
                info = np.finfo(dtype)
                raise EncodeError(
                    f"{_label(kind, key)}: a value of the {source.dtype} "
                    f"content is out of the {dtype} range "
                    f"(-{info.max:.4g}..{info.max:.4g}); scale the values, or "
                    "use DT_DOUBLE"
                ) from None
            except (ValueError, TypeError, OverflowError) as exc:
                raise EncodeError(
                    f"{_label(kind, key)}: cannot convert {source.dtype} content "
                    f"to {dtype} ({exc})"
                ) from None

    # math.prod works on Python ints, so the count cannot wrap around.
    expected = math.prod(dims)
    if array.size != expected:
        raise EncodeError(
            f"{_label(kind, key)}: shape {list(dims)} needs {expected} values "
            f"but the content has {array.size}; pass a shape that matches the "
            "content"
        )
    if expected == 0:
        # An empty array takes any shape with a 0 in it, but numpy still
        # rejects one whose other dimensions describe too many bytes.
        _check_empty_shape(dims, array.dtype, _label(kind, key))
    if array.shape != dims:
        array = array.reshape(dims)
    return code, array


def _check_empty_shape(dims: tuple[int, ...], dtype: np.dtype, what: str) -> None:
    limit = np.iinfo(np.intp).max
    product = math.prod(dim for dim in dims if dim)
    if max(dims, default=0) > limit or product * dtype.itemsize > limit:
        raise EncodeError(
            f"{what}: shape {list(dims)} is too large for numpy: its non-zero "
            f"dimensions multiply to {product} values of {dtype.itemsize} "
            f"bytes, more than {limit} bytes; pass the real shape of the "
            "content"
        )


def _cast(source: np.ndarray, dtype: np.dtype) -> np.ndarray:
    # A cast to a narrower float type turns finite values beyond its range
    # into inf; errstate makes numpy raise FloatingPointError instead.
    if dtype.kind == "f" and source.dtype.kind == "f" \
            and source.dtype.itemsize > dtype.itemsize:
        with np.errstate(over="raise"):
            return source.astype(dtype, copy=False)
    return source.astype(dtype, copy=False)


def _label(kind: str, key: object) -> str:
    return f"{kind} {key!r}"


def _check_shape(shape: Sequence[int], kind: str, key: object) -> tuple[int, ...]:
    try:
        dims = tuple(shape)
    except TypeError:
        raise EncodeError(
            f"{_label(kind, key)}: shape must be a list of ints such as "
            f"[1, 784], got {shape!r}"
        ) from None
    exact = True
    for dim in dims:
        if type(dim) is not int:
            exact = False
            if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
                raise EncodeError(
                    f"{_label(kind, key)}: shape {list(dims)} must contain "
                    f"ints >= 0, got {dim!r}"
                )
        if dim < 0:
            raise EncodeError(
                f"{_label(kind, key)}: shape {list(dims)} must contain ints "
                f">= 0, got {dim!r}"
            )
    return dims if exact else tuple(int(dim) for dim in dims)


def _check_kind(source: np.ndarray, dtype: np.dtype, code: int, what: str) -> None:
    # Refuse conversions that would silently change values.
    kind = source.dtype.kind
    if source.size == 0:
        return
    if dtype.kind in "iu":
        if kind not in "biu":
            raise EncodeError(
                f"{what}: DT code {code} needs integers but the content is "
                f"{source.dtype}; round it first, or use DT_FLOAT"
            )
        info = np.iinfo(dtype)
        low, high = source.min(), source.max()
        if low < info.min or high > info.max:
            raise EncodeError(
                f"{what}: values {low}..{high} do not fit in {dtype} "
                f"({info.min}..{info.max})"
            )
    elif dtype.kind == "b":
        if kind not in "biu" or (kind != "b" and not np.isin(source, (0, 1)).all()):
            raise EncodeError(
                f"{what}: DT_BOOL needs booleans (or 0/1), got {source.dtype} "
                "content"
            )
    elif dtype.kind in "fc" and kind not in "biufc":
        raise EncodeError(
            f"{what}: DT code {code} needs numbers but the content is "
            f"{source.dtype}"
        )
    elif dtype.kind == "f" and kind == "c":
        raise EncodeError(
            f"{what}: DT code {code} is real but the content is complex"
        )


def _string_array(content: Content, kind: str, key: object) -> np.ndarray:
    flat = np.asarray(content, dtype=object).reshape(-1)
    out = np.empty(flat.shape, dtype=object)
    for i, item in enumerate(flat):
        if isinstance(item, str):
            out[i] = _utf8(item, f"{_label(kind, key)}: DT_STRING item {i}")
        elif isinstance(item, (bytes, bytearray, np.bytes_)):
            out[i] = bytes(item)
        else:
            raise EncodeError(
                f"{_label(kind, key)}: DT_STRING needs str or bytes values, "
                f"item {i} is {type(item).__name__}"
            )
    return out


def _no_outputs(processor: str, body: bytes) -> DecodeError:
    return DecodeError(
        f"the response ({len(body)} bytes) has no outputs, which a "
        f"{processor} model never returns; check that the service runs the "
        f"{processor} processor"
    )


def _missing(kind: str, key: object, available: Sequence[object]) -> OutputNotFoundError:
    listed = ", ".join(repr(name) for name in available) or "none"
    return OutputNotFoundError(
        f"the response has no {kind} {key!r}; it has: {listed}",
        name=key,
        available=list(available),
    )


# ---------------------------------------------------------- output values --


class TensorValues(Sequence[Any]):
    """The values of one output, flat, as a read-only sequence of Python scalars.

    It behaves like the protobuf repeated field that ``get_values`` returns
    in the official SDK: ``len(values)``, ``values[0]`` (an ``int``,
    ``float``, ``bool`` or ``bytes``), ``values[1:3]`` (a list), iteration,
    and ``==`` with a list. ``numpy.asarray(values)`` and ``values.array``
    give the flat numpy array without a copy; for float outputs it is a
    read-only view on the response body.
    """

    __slots__ = ("_array",)

    def __init__(self, array: np.ndarray) -> None:
        self._array = array.reshape(-1)

    @property
    def array(self) -> np.ndarray:
        """The values as a flat numpy array (no copy)."""
        return self._array

    def tolist(self) -> list[Any]:
        """Return the values as a list of Python scalars."""
        return self._array.tolist()

    def __len__(self) -> int:
        return int(self._array.shape[0])

    @overload
    def __getitem__(self, index: SupportsIndex) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        if isinstance(index, slice):
            return self._array[index].tolist()
        return self._array.item(index)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._array.tolist())

    def __contains__(self, value: object) -> bool:
        return value in self._array.tolist()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TensorValues):
            return self.tolist() == other.tolist()
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return self.tolist() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to lists, so unhashable

    def __repr__(self) -> str:
        return repr(self._array.tolist())

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        array = self._array
        if dtype is None or np.dtype(dtype) == array.dtype:
            return array.copy() if copy else array
        if copy is False:
            raise ValueError(
                f"cannot convert {array.dtype} output values to {np.dtype(dtype)} "
                "without a copy; pass copy=None or copy=True"
            )
        return array.astype(dtype)


# ------------------------------------------------------------- TensorFlow --


class TFRequest(Request):
    """A TensorFlow PredictRequest built from numpy arrays or lists."""

    DT_INVALID = DT_INVALID
    DT_FLOAT = DT_FLOAT
    DT_DOUBLE = DT_DOUBLE
    DT_INT32 = DT_INT32
    DT_UINT8 = DT_UINT8
    DT_INT16 = DT_INT16
    DT_INT8 = DT_INT8
    DT_STRING = DT_STRING
    DT_COMPLEX64 = DT_COMPLEX64
    DT_INT64 = DT_INT64
    DT_BOOL = DT_BOOL
    DT_QINT8 = DT_QINT8
    DT_QUINT8 = DT_QUINT8
    DT_QINT32 = DT_QINT32
    DT_BFLOAT16 = DT_BFLOAT16
    DT_QINT16 = DT_QINT16
    DT_QUINT16 = DT_QUINT16
    DT_UINT16 = DT_UINT16
    DT_COMPLEX128 = DT_COMPLEX128
    DT_HALF = DT_HALF
    DT_RESOURCE = DT_RESOURCE
    DT_VARIANT = DT_VARIANT

    def __init__(self, signature_name: str | None = None) -> None:
        self.signature_name = signature_name
        self.inputs: dict[str, Tensor] = {}
        self.output_filter: list[str] = []
        self._body: bytes | None = None

    def __str__(self) -> str:
        feeds = ", ".join(f"{name}: {array.dtype}{list(array.shape)}"
                          for name, (_, array) in self.inputs.items())
        return (f"TFRequest(signature={self.signature_name!r}, inputs={{{feeds}}}, "
                f"fetch={self.output_filter})")

    def set_signature_name(self, signature_name: str) -> None:
        """Set the model signature to call."""
        self.signature_name = signature_name
        self._body = None

    def add_feed(
        self, input_name: str, shape: Sequence[int], content_type: int,
        content: Content,
    ) -> None:
        """Set input ``input_name`` to ``content`` of ``shape`` and DT_* type.

        Raises ``EncodeError`` when the content does not convert to the type
        or its value count differs from the product of ``shape``.
        """
        if not isinstance(input_name, str):
            raise EncodeError(f"input name must be a str, got {input_name!r}")
        self.inputs[input_name] = _convert(
            content, content_type, shape, "input", input_name)
        self._body = None

    def add_fetch(self, output_name: str) -> None:
        """Ask for output ``output_name``; with none, the model returns all."""
        self.output_filter.append(output_name)
        self._body = None

    def to_string(self) -> bytes:
        """Return the encoded PredictRequest (encoded once, then cached)."""
        if self._body is None:
            self._body = _core.encode_tf_request(
                self.signature_name or "", self.inputs, self.output_filter)
        return self._body

    def parse_response(self, response_data: bytes) -> TFResponse:
        """Decode a PredictResponse body.

        Raises ``DecodeError`` if it is invalid or has no outputs, which a
        TensorFlow model never returns.
        """
        response = TFResponse(response_data)
        if not response.outputs:
            raise _no_outputs("TensorFlow", response_data)
        return response


class TFResponse(Response, Mapping[str, np.ndarray]):
    """The outputs of a TensorFlow PredictResponse.

    ``response[name]`` is the output as a numpy array of its shape.
    ``get_values(name)`` returns the same data flat, as a ``TensorValues``
    sequence of Python scalars, and ``get_tensor_shape(name)`` its shape as
    a list. Float outputs are read-only views on the response body.
    """

    def __init__(self, response_data: bytes | None = None) -> None:
        self.response_data = b"" if response_data is None else response_data
        self.outputs: dict[str, np.ndarray] = _core.decode_tf_response(
            self.response_data)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.outputs[name]
        except KeyError:
            raise _missing("output", name, list(self.outputs)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.outputs)

    def __len__(self) -> int:
        return len(self.outputs)

    def __str__(self) -> str:
        parts = ", ".join(f"{name}: {array.dtype}{list(array.shape)}"
                          for name, array in self.outputs.items())
        return f"TFResponse({{{parts}}})"

    def to_string(self) -> str:
        """Return a short description of the outputs."""
        return str(self)

    def get_tensor_shape(self, output_name: str) -> list[int]:
        """Return the shape of output ``output_name``."""
        return list(self[output_name].shape)

    def get_values(self, output_name: str) -> TensorValues:
        """Return the values of output ``output_name``, flat."""
        return TensorValues(self[output_name])


# ---------------------------------------------------------------- PyTorch --


class TorchRequest(Request):
    """A PyTorch PredictRequest: positional inputs, named inputs, fetches."""

    DT_FLOAT = DT_FLOAT
    DT_DOUBLE = DT_DOUBLE
    DT_UINT8 = DT_UINT8
    DT_INT8 = DT_INT8
    DT_INT16 = DT_INT16
    DT_INT32 = DT_INT32
    DT_INT64 = DT_INT64

    def __init__(self, flag: bool = False) -> None:
        # flag=True sends a snappy-compressed body (raw block format), as in
        # the official SDK. It needs the "snappy" extra (cramjam).
        self.flag = flag
        self.inputs: dict[int, Tensor] = {}
        self.map_inputs: dict[str, Tensor] = {}
        self.output_filter: list[int] = []
        self.debug_level = 0
        self._body: bytes | None = None

    def __str__(self) -> str:
        return (f"TorchRequest(inputs={sorted(self.inputs)}, "
                f"map_inputs={list(self.map_inputs)}, fetch={self.output_filter})")

    def set_debug_level(self, dbg_lvl: int = 0) -> None:
        """Set the processor's debug level (sent as ``debug_level``, an int32)."""
        if isinstance(dbg_lvl, bool) or not isinstance(dbg_lvl, (int, np.integer)) \
                or not -(2**31) <= dbg_lvl < 2**31:
            raise EncodeError(
                f"debug level must be an int in the int32 range, got {dbg_lvl!r}"
            )
        self.debug_level = int(dbg_lvl)
        self._body = None

    def add_feed(
        self, index: int, shape: Sequence[int], content_type: int, content: Content
    ) -> None:
        """Set positional input ``index`` to ``content`` of ``shape`` and type."""
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise EncodeError(f"input index must be an int >= 0, got {index!r}")
        self.inputs[index] = _convert(content, content_type, shape,
                                      "input", index)
        self._body = None

    def add_feed_map(
        self, index: str, shape: Sequence[int], content_type: int, content: Content
    ) -> None:
        """Set named input ``index`` (a str) to ``content`` of ``shape`` and type."""
        if not isinstance(index, str):
            raise EncodeError(f"map input name must be a str, got {index!r}")
        self.map_inputs[index] = _convert(content, content_type, shape,
                                          "map input", index)
        self._body = None

    def add_fetch(self, output_index: int) -> None:
        """Ask for positional output ``output_index``."""
        self.output_filter.append(output_index)
        self._body = None

    def to_string(self) -> bytes:
        """Return the encoded PredictRequest (encoded once, then cached)."""
        if self._body is None:
            count = max(self.inputs) + 1 if self.inputs else 0
            missing = [i for i in range(count) if i not in self.inputs]
            if missing:
                raise EncodeError(
                    f"positional inputs {missing} are missing; inputs are "
                    f"sent as a list, so feed every index from 0 to {count - 1}"
                )
            body = _core.encode_torch_request(
                [self.inputs[i] for i in range(count)], self.map_inputs,
                self.output_filter, self.debug_level)
            if self.flag:
                body = _snappy_compress(body)
            self._body = body
        return self._body

    def parse_response(self, response_data: bytes) -> TorchResponse:
        """Decode a PredictResponse body.

        Raises ``DecodeError`` if it is invalid or has no outputs, which a
        PyTorch model never returns.
        """
        response = TorchResponse(response_data)
        if not response.outputs and not response.map_outputs:
            raise _no_outputs("PyTorch", response_data)
        return response


def _snappy_compress(body: bytes) -> bytes:
    # The official SDK calls python-snappy's snappy.compress, which writes
    # the raw snappy block format (no framing). cramjam's compress_raw
    # writes the same bytes: python-snappy 0.7 and later is built on it.
    try:
        import cramjam
    except ImportError:
        raise EncodeError(
            "TorchRequest(flag=True) sends a snappy-compressed body, which "
            'needs the cramjam package; install it with pip install '
            '"easfast[snappy]", or pass flag=False'
        ) from None
    return bytes(cramjam.snappy.compress_raw(body))


class TorchResponse(Response):
    """The outputs of a PyTorch PredictResponse.

    ``outputs`` is the list of positional outputs and ``map_outputs`` the
    dict of named ones, as numpy arrays of their shapes.
    """

    def __init__(self, response_data: bytes | None = None) -> None:
        self.response_data = b"" if response_data is None else response_data
        outputs, map_outputs = _core.decode_torch_response(self.response_data)
        self.outputs: list[np.ndarray] = list(outputs)
        self.map_outputs: dict[str, np.ndarray] = dict(map_outputs)

    def __str__(self) -> str:
        return (f"TorchResponse(outputs={[list(a.shape) for a in self.outputs]}, "
                f"map_outputs={list(self.map_outputs)})")

    def to_string(self) -> str:
        """Return a short description of the outputs."""
        return str(self)

    def _output(self, index: int) -> np.ndarray:
        if isinstance(index, bool) or not isinstance(index, int) \
                or not 0 <= index < len(self.outputs):
            raise _missing("output index", index, list(range(len(self.outputs))))
        return self.outputs[index]

    def _map_output(self, name: str) -> np.ndarray:
        try:
            return self.map_outputs[name]
        except KeyError:
            raise _missing("map output", name, list(self.map_outputs)) from None

    def get_tensor_shape(self, output_index: int) -> list[int]:
        """Return the shape of positional output ``output_index``."""
        return list(self._output(output_index).shape)

    def get_values(self, output_index: int) -> TensorValues:
        """Return the values of positional output ``output_index``, flat."""
        return TensorValues(self._output(output_index))

    def get_tensor_shape_map(self, output_index: str) -> list[int]:
        """Return the shape of named output ``output_index``."""
        return list(self._map_output(output_index).shape)

    def get_values_map(self, output_index: str) -> TensorValues:
        """Return the values of named output ``output_index``, flat."""
        return TensorValues(self._map_output(output_index))
