"""Type stubs for easfast._core, the compiled selector and codec."""

from collections.abc import Container, Iterable, Iterator

class Endpoint:
    """One service instance: host, port and weight, immutable."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def weight(self) -> int: ...
    @property
    def address(self) -> str:
        """``host:port``, with an IPv6 host in brackets."""
    def __init__(self, host: str, port: int, weight: int = 100) -> None: ...

class EndpointSnapshot:
    """An immutable endpoint list; empty or all-zero lists raise NoEndpointsError."""

    @property
    def endpoints(self) -> tuple[Endpoint, ...]: ...
    @property
    def total_weight(self) -> int: ...
    def __init__(self, endpoints: Iterable[Endpoint]) -> None: ...
    @classmethod
    def from_tuples(
        cls, items: Iterable[tuple[str, int, int]]
    ) -> EndpointSnapshot: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Endpoint]: ...

class SmoothWeightedRoundRobin:
    """nginx's smooth weighted round robin over an EndpointSnapshot."""

    def __init__(self, snapshot: EndpointSnapshot | Iterable[Endpoint]) -> None: ...
    @property
    def snapshot(self) -> EndpointSnapshot: ...
    def pick(self, exclude: Container[str] | None = None) -> Endpoint:
        """Return the next endpoint, avoiding addresses in ``exclude`` if possible."""
    def update(self, snapshot: EndpointSnapshot | Iterable[Endpoint]) -> None:
        """Swap in a new list; surviving addresses keep their running weight."""

# ------------------------------------------------------------------- codec --
#
# numpy arrays to and from the PredictRequest/PredictResponse messages of the
# PAI-EAS TensorFlow processor (proto/tf_request.proto) and PyTorch processor
# (proto/pytorch_predict.proto).
#
# A tensor argument is a numpy array (or numpy scalar), whose DT_* code is
# inferred from its dtype, or a ``(dtype_code, array)`` pair that forces the
# code, for example ``(DT_QINT8, int8_array)``. Any memory layout is accepted
# (Fortran order, slices, negative strides, broadcast views, big-endian):
# values are always sent in C order. float32/float64/int8/int16/int32/int64/
# uint8/uint16/bool map to their DT_* codes; bytes_, str_ and object arrays of
# bytes or str are DT_STRING (str sent as UTF-8). numpy treats the trailing
# NUL bytes of an ``S`` array element as padding, so they are not sent. Use an
# object array of bytes to send them.
#
# Decoded arrays have the dtype and shape the message declares. float and
# double tensors are read-only views on ``data`` (zero copy; they keep it
# alive). Integer and bool tensors are new arrays; DT_Q* codes decode to their
# integer dtypes. Strings are object arrays of ``bytes`` with every byte kept.
# A tensor without dimensions is 0-d when it carries one value and 1-d
# otherwise. Repeated map keys keep the last value; unknown fields, groups
# included, are skipped.

from collections.abc import Mapping, Sequence
from typing import TypeAlias

import numpy
import numpy.typing

_TensorArg: TypeAlias = numpy.ndarray | numpy.generic | tuple[int, numpy.ndarray]
_BytesLike: TypeAlias = bytes | bytearray | memoryview

DT_INVALID: int
DT_FLOAT: int
DT_DOUBLE: int
DT_INT32: int
DT_UINT8: int
DT_INT16: int
DT_INT8: int
DT_STRING: int
DT_COMPLEX64: int
DT_INT64: int
DT_BOOL: int
DT_QINT8: int
DT_QUINT8: int
DT_QINT32: int
DT_BFLOAT16: int
DT_QINT16: int
DT_QUINT16: int
DT_UINT16: int
DT_COMPLEX128: int
DT_HALF: int
DT_RESOURCE: int
DT_VARIANT: int

def numpy_dtype(code: int) -> numpy.dtype:
    """Return the numpy dtype that DT_* ``code`` decodes to (object for strings).

    Raises EncodeError for codes the schema cannot carry values of
    (DT_INVALID, DT_COMPLEX*, DT_BFLOAT16, DT_HALF, DT_RESOURCE, DT_VARIANT).
    """

def dtype_code(dtype: numpy.typing.DTypeLike) -> int:
    """Return the DT_* code of a numpy dtype; EncodeError if the schema lacks it."""

def encode_tf_request(
    signature_name: str | None,
    inputs: Mapping[str, _TensorArg],
    output_filter: Sequence[str] = (),
    *,
    convert: bool = False,
) -> bytes:
    """Encode a TensorFlow PredictRequest.

    Parameters
    ----------
    signature_name
        The model signature; ``None`` or ``""`` leaves it unset.
    inputs
        Input name to tensor.
    output_filter
        Names of the outputs to return; empty requests every output.
    convert
        Send dtypes the schema cannot carry exactly by a stated conversion:
        float16 and bfloat16 as float32, uint32 as int64, and uint64 as int64
        when every value is below 2**63. Complex values are never converted.

    Raises
    ------
    EncodeError
        A tensor is not a numpy array, has a dtype the schema cannot carry
        (the message names the input and the cast to use), a string element
        is neither bytes nor str, or the message would reach protobuf's
        2 GiB limit (checked before the message is allocated).
    """

def encode_tf_response(outputs: Mapping[str, _TensorArg]) -> bytes:
    """Encode a TensorFlow PredictResponse; EncodeError as for requests."""

def decode_tf_response(data: _BytesLike) -> dict[str, numpy.ndarray]:
    """Decode a TensorFlow PredictResponse into output name -> array.

    Raises DecodeError on any malformed body. Examples are truncated or
    overlong values, lengths past the end and nesting deeper than 100 levels.
    A dtype without a value field, a value that does not fit the dtype and a
    value count that does not match the shape raise it too. Raises TypeError
    if ``data`` is not a bytes-like object.
    """

def decode_tf_request(
    data: _BytesLike,
) -> tuple[str, dict[str, numpy.ndarray], list[str]]:
    """Decode a TensorFlow PredictRequest into (signature, inputs, output_filter).

    Raises DecodeError and TypeError as decode_tf_response does.
    """

def encode_torch_request(
    inputs: Sequence[_TensorArg],
    map_inputs: Mapping[str, _TensorArg] | None = None,
    output_filter: Sequence[int] = (),
    debug_level: int = 0,
    *,
    convert: bool = False,
) -> bytes:
    """Encode a PyTorch PredictRequest.

    Parameters
    ----------
    inputs
        Tensors sent as the repeated ``inputs`` field, in order.
    map_inputs
        Input name to tensor, sent as ``map_inputs``.
    output_filter
        Indexes (int32) of the outputs to return; empty requests every output.
    debug_level
        The processor's int32 debug level; 0 leaves it unset.
    convert
        As for encode_tf_request, and bool is sent as DT_UINT8, because the
        PyTorch schema has no bool_val field. Without it a bool tensor raises
        EncodeError.

    Raises
    ------
    EncodeError
        As for encode_tf_request, and for indexes or a debug level outside
        the int32 range.
    """

def encode_torch_response(
    outputs: Sequence[_TensorArg], map_outputs: Mapping[str, _TensorArg] | None = None
) -> bytes:
    """Encode a PyTorch PredictResponse; EncodeError as for requests."""

def decode_torch_response(
    data: _BytesLike,
) -> tuple[list[numpy.ndarray], dict[str, numpy.ndarray]]:
    """Decode a PyTorch PredictResponse into (outputs, map_outputs).

    A DT_BOOL tensor is read from int_val, the PyTorch schema having no
    bool_val. Raises DecodeError and TypeError as decode_tf_response does.
    """

def decode_torch_request(
    data: _BytesLike,
) -> tuple[list[numpy.ndarray], dict[str, numpy.ndarray], list[int], int]:
    """Decode a PyTorch PredictRequest.

    Returns (inputs, map_inputs, output_filter, debug_level). Raises
    DecodeError and TypeError as decode_tf_response does.
    """
