"""Codec speed: easfast beside eas_prediction's TFRequest/TFResponse.

Run with the bench virtualenv described in README.md. Each case is one
group, so every table compares easfast with the official SDK. Encoding is also
compared with ``bytearray(arr)``, one plain copy of the array's buffer.
"""

from __future__ import annotations

import numpy as np
import pytest

from easfast import _core

eas_prediction = pytest.importorskip("eas_prediction")
TFRequest = eas_prediction.TFRequest
TFResponse = eas_prediction.TFResponse

SHAPES = {
    "1x784": (1, 784),
    "1x3x224x224": (1, 3, 224, 224),
    "64x3x224x224": (64, 3, 224, 224),
}
# The official SDK needs seconds per call at the largest size.
SDK_ROUNDS = {"1x784": 200, "1x3x224x224": 5, "64x3x224x224": 1}

RNG = np.random.default_rng(0)
FLOATS = {size: RNG.random(shape, dtype=np.float32) for size, shape in SHAPES.items()}
INT64 = RNG.integers(-(2**40), 2**40, size=(1, 784), dtype=np.int64)


def sdk_encode(array: np.ndarray, code: int) -> bytes:
    request = TFRequest("predict")
    request.add_feed("images", list(array.shape), code, array.ravel().tolist())
    return request.to_string()


def sdk_decode(body: bytes, dtype: type) -> np.ndarray:
    response = TFResponse(body)
    values = np.array(response.get_values("scores"), dtype=dtype)
    return values.reshape(response.get_tensor_shape("scores"))


def easfast_encode(array: np.ndarray) -> bytes:
    return _core.encode_tf_request("predict", {"images": array})


def easfast_decode(body: bytes) -> np.ndarray:
    return _core.decode_tf_response(body)["scores"]


def label(benchmark, case: str, impl: str) -> None:
    benchmark.group = case
    benchmark.extra_info["case"] = case
    benchmark.extra_info["impl"] = impl


@pytest.mark.parametrize("size", list(SHAPES))
class TestFloat32:
    def test_encode_easfast(self, benchmark, size):
        label(benchmark, f"encode float32 {size}", "easfast")
        body = benchmark(easfast_encode, FLOATS[size])
        assert len(body) > FLOATS[size].nbytes

    def test_encode_bytearray(self, benchmark, size):
        label(benchmark, f"encode float32 {size}", "bytearray(arr)")
        copy = benchmark(bytearray, FLOATS[size])
        assert len(copy) == FLOATS[size].nbytes

    def test_encode_sdk(self, benchmark, size):
        label(benchmark, f"encode float32 {size}", "eas_prediction")
        array = FLOATS[size]
        body = benchmark.pedantic(
            sdk_encode, (array, TFRequest.DT_FLOAT), rounds=SDK_ROUNDS[size]
        )
        assert _core.decode_tf_request(body)[1]["images"].shape == array.shape

    def test_decode_easfast(self, benchmark, size):
        label(benchmark, f"decode float32 {size}", "easfast")
        body = _core.encode_tf_response({"scores": FLOATS[size]})
        scores = benchmark(easfast_decode, body)
        np.testing.assert_array_equal(scores, FLOATS[size])

    def test_decode_sdk(self, benchmark, size):
        label(benchmark, f"decode float32 {size}", "eas_prediction")
        body = _core.encode_tf_response({"scores": FLOATS[size]})
        scores = benchmark.pedantic(
            sdk_decode, (body, np.float32), rounds=SDK_ROUNDS[size]
        )
        np.testing.assert_array_equal(scores, FLOATS[size])


class TestInt64:
    def test_encode_easfast(self, benchmark):
        label(benchmark, "encode int64 1x784", "easfast")
        benchmark(easfast_encode, INT64)

    def test_encode_sdk(self, benchmark):
        label(benchmark, "encode int64 1x784", "eas_prediction")
        benchmark.pedantic(sdk_encode, (INT64, TFRequest.DT_INT64), rounds=200)

    def test_decode_easfast(self, benchmark):
        label(benchmark, "decode int64 1x784", "easfast")
        body = _core.encode_tf_response({"scores": INT64})
        np.testing.assert_array_equal(benchmark(easfast_decode, body), INT64)

    def test_decode_sdk(self, benchmark):
        label(benchmark, "decode int64 1x784", "eas_prediction")
        body = _core.encode_tf_response({"scores": INT64})
        scores = benchmark.pedantic(sdk_decode, (body, np.int64), rounds=200)
        np.testing.assert_array_equal(scores, INT64)
