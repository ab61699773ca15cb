"""Fuzz easfast's four decoders with atheris (libFuzzer); run by test_fuzz.py.

Every input goes to decode_tf_response, decode_tf_request,
decode_torch_response and decode_torch_request. DecodeError is the only
exception allowed, and a decoded result must hold numpy arrays whose size
matches their shape, with float tensors read-only. Anything else, or a crash
of the process, is a finding that libFuzzer reports and saves as an artifact.

Usage: python fuzz_decoders.py [libFuzzer flags] CORPUS_DIR...

Coverage feedback comes from one of two sources, chosen by how the run starts:

- Native mode: easfast._core is a clang build with
  -fsanitize=fuzzer-no-link,address placed first on PYTHONPATH, and atheris's
  asan_with_fuzzer.so is in LD_PRELOAD. libFuzzer then gets feedback from
  every branch and comparison of the decoder's C code, and AddressSanitizer
  aborts on an out-of-bounds access. test_fuzz.py builds and starts this
  mode when clang is on PATH.
- Python-only mode: the ordinary extension, built without sanitizer
  coverage. libFuzzer gets feedback only from the Python branches below, which sort each
  outcome by error kind and result shape.

The script prints the path of the easfast._core it loaded to stderr, so the
caller can check which build ran.
"""

from __future__ import annotations

import sys

import atheris
import numpy as np

from easfast import _core
from easfast.exceptions import DecodeError

DECODERS = (
    _core.decode_tf_response,
    _core.decode_tf_request,
    _core.decode_torch_response,
    _core.decode_torch_request,
)

ERROR_KINDS = (
    "truncated",
    "longer than 10 bytes",
    "runs past the end",
    "out of range",
    "field number 0",
    "invalid wire type",
    "end-group",
    "group of field",
    "nested deeper",
    "not a whole number",
    "end inside a value",
    "more than 32 dimensions",
    "negative dimension",
    "larger than memory",
    "declares shape",
    "no value field",
    "outside the range",
    "not valid UTF-8",
)


@atheris.instrument_func
def error_kind(message: str) -> int:
    for index, kind in enumerate(ERROR_KINDS):
        if kind in message:
            return index
    raise AssertionError(f"DecodeError of an unknown kind: {message}")


@atheris.instrument_func
def check_array(array: object) -> int:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"decoded a {type(array).__name__}, not an ndarray")
    if array.size != int(np.prod(array.shape)):
        raise AssertionError(f"array of size {array.size} has shape {array.shape}")
    kind = array.dtype.kind
    if kind == "f":
        if array.flags.writeable:
            raise AssertionError("a float tensor came back writable")
        return 1 if array.ndim == 0 else 2
    if kind == "O":
        for item in array.ravel():
            if type(item) is not bytes:
                raise AssertionError(f"string element is {type(item).__name__}")
        return 3
    if kind == "b":
        return 4
    return 5 + array.dtype.itemsize


@atheris.instrument_func
def check_result(result: object) -> None:
    arrays: list[object] = []
    if isinstance(result, dict):
        arrays.extend(result.values())
    else:
        for part in result:
            if isinstance(part, dict):
                arrays.extend(part.values())
            elif isinstance(part, list):
                arrays.extend(a for a in part if not isinstance(a, (int, str)))
    for array in arrays:
        check_array(array)


@atheris.instrument_func
def test_one_input(data: bytes) -> None:
    for decode in DECODERS:
        try:
            result = decode(data)
        except DecodeError as exc:
            error_kind(str(exc))
        else:
            check_result(result)


def main() -> None:
    print(f"easfast._core loaded from {_core.__file__}", file=sys.stderr)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
