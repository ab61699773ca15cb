"""Tests of the request and response classes (codec round trips, no network)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import ClassVar

import numpy as np
import pytest

from easfast import (
    DecodeError,
    EncodeError,
    OutputNotFoundError,
    PredictException,
    StringRequest,
    StringResponse,
    TFRequest,
    TFResponse,
    TorchRequest,
    TorchResponse,
    _core,
)
from easfast.requests import TensorValues

PROTO_DIR = Path(__file__).resolve().parents[1] / "src" / "easfast" / "proto"


@pytest.fixture(scope="module")
def tf_pb2(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """Google's generated classes for tf_request.proto, the reference."""
    from grpc_tools import protoc  # type: ignore[import-untyped]

    out = tmp_path_factory.mktemp("tf_pb2")
    status = protoc.main(["protoc", f"-I{PROTO_DIR}", f"--python_out={out}",
                          str(PROTO_DIR / "tf_request.proto")])
    assert status == 0
    name = "_easfast_test_requests_tf_pb2"
    spec = importlib.util.spec_from_file_location(name, out / "tf_request_pb2.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class TestStringRequest:
    def test_str_is_utf8_encoded(self) -> None:
        assert StringRequest("é€").to_string() == "é€".encode()

    def test_bytes_kept_with_nul(self) -> None:
        assert StringRequest(b"\0a\0").to_string() == b"\0a\0"

    def test_none_is_empty_body(self) -> None:
        assert StringRequest().to_string() == b""

    @pytest.mark.parametrize("data", [5, ["a"], 1.5, {"a": 1}],
                             ids=["int", "list", "float", "dict"])
    def test_other_types_rejected(self, data: object) -> None:
        with pytest.raises(EncodeError, match="bytes or str, got"):
            StringRequest(data)  # type: ignore[arg-type]

    def test_type_checked_again_in_to_string(self) -> None:
        request = StringRequest(b"x")
        request.request_data = 5  # type: ignore[assignment]
        with pytest.raises(EncodeError, match="got int"):
            request.to_string()

    def test_bytearray_accepted(self) -> None:
        assert StringRequest(bytearray(b"ab")).to_string() == b"ab"

    def test_lone_surrogate_rejected(self) -> None:
        with pytest.raises(EncodeError, match="index 1, a lone surrogate"):
            StringRequest("a\udcffb").to_string()

    def test_response_keeps_bytes(self) -> None:
        response = StringRequest(b"x").parse_response(b"\xff\0ok")
        assert isinstance(response, StringResponse)
        assert response.response_data == b"\xff\0ok"
        assert str(response) == "\ufffd\0ok"


class TestTFRequestFeeds:
    @pytest.mark.parametrize("content", [
        [0.5, 1.5, 2.5, 3.5],
        (0.5, 1.5, 2.5, 3.5),
        np.array([[0.5, 1.5], [2.5, 3.5]], dtype=np.float64),
        np.array([0.5, 1.5, 2.5, 3.5], dtype=np.float32),
    ], ids=["list", "tuple", "float64-2d", "float32"])
    def test_content_forms_encode_alike(self, content: object) -> None:
        request = TFRequest("sig")
        request.add_feed("x", [2, 2], TFRequest.DT_FLOAT, content)
        signature, inputs, fetch = _core.decode_tf_request(request.to_string())
        assert signature == "sig"
        assert fetch == []
        assert inputs["x"].dtype == np.float32
        np.testing.assert_array_equal(
            inputs["x"], np.array([[0.5, 1.5], [2.5, 3.5]], dtype=np.float32))

    @pytest.mark.parametrize("code, dtype, values", [
        (TFRequest.DT_DOUBLE, np.float64, [1.25, -2.5]),
        (TFRequest.DT_INT8, np.int8, [-128, 127]),
        (TFRequest.DT_INT16, np.int16, [-3, 3]),
        (TFRequest.DT_INT32, np.int32, [-(2**31), 2**31 - 1]),
        (TFRequest.DT_INT64, np.int64, [-(2**63), 2**63 - 1]),
        (TFRequest.DT_UINT8, np.uint8, [0, 255]),
        (TFRequest.DT_UINT16, np.uint16, [0, 65535]),
        (TFRequest.DT_QINT8, np.int8, [-1, 1]),
        (TFRequest.DT_BOOL, np.bool_, [True, False]),
    ], ids=["double", "int8", "int16", "int32", "int64", "uint8", "uint16",
            "qint8", "bool"])
    def test_dtype_codes_round_trip(self, code: int, dtype: type,
                                    values: list) -> None:
        request = TFRequest()
        request.add_feed("v", [2], code, values)
        _, inputs, _ = _core.decode_tf_request(request.to_string())
        assert inputs["v"].dtype == np.dtype(dtype)
        assert inputs["v"].tolist() == values

    def test_strings_encode_as_bytes(self) -> None:
        request = TFRequest()
        request.add_feed("s", [2], TFRequest.DT_STRING, ["é", b"\0b"])
        _, inputs, _ = _core.decode_tf_request(request.to_string())
        assert inputs["s"].tolist() == ["é".encode(), b"\0b"]

    def test_fetch_and_signature_sent(self) -> None:
        request = TFRequest()
        request.set_signature_name("predict_images")
        request.add_feed("x", [1], TFRequest.DT_INT32, [1])
        request.add_fetch("scores")
        request.add_fetch("classes")
        signature, _, fetch = _core.decode_tf_request(request.to_string())
        assert signature == "predict_images"
        assert fetch == ["scores", "classes"]

    def test_body_encoded_once_and_invalidated(self) -> None:
        request = TFRequest()
        request.add_feed("x", [1], TFRequest.DT_INT32, [1])
        body = request.to_string()
        assert request.to_string() is body
        request.add_feed("x", [1], TFRequest.DT_INT32, [2])
        assert request.to_string() is not body
        _, inputs, _ = _core.decode_tf_request(request.to_string())
        assert inputs["x"].tolist() == [2]

    def test_count_mismatch_shows_both(self) -> None:
        request = TFRequest()
        with pytest.raises(EncodeError, match=r"shape \[2, 3\] needs 6 values "
                           r"but the content has 5"):
            request.add_feed("x", [2, 3], TFRequest.DT_FLOAT, [1.0] * 5)

    def test_numpy_int_shape_normalised(self) -> None:
        request = TFRequest()
        shape = (np.int64(2), np.int32(2))
        request.add_feed("x", shape, TFRequest.DT_FLOAT, [1.0] * 4)
        _, inputs, _ = _core.decode_tf_request(request.to_string())
        assert inputs["x"].shape == (2, 2)
        with pytest.raises(EncodeError, match=r"shape \[2, 3\] needs 6 values"):
            request.add_feed("y", (np.int64(2), np.int64(3)),
                             TFRequest.DT_FLOAT, [1.0] * 5)

    @pytest.mark.parametrize("code, content, match", [
        (TFRequest.DT_INT32, [1.5], "needs integers"),
        (TFRequest.DT_UINT8, [256], "do not fit"),
        (TFRequest.DT_INT8, np.array([-129], dtype=np.int64), "do not fit"),
        (TFRequest.DT_BOOL, [2], "DT_BOOL"),
        (TFRequest.DT_FLOAT, ["a"], "needs numbers"),
        (TFRequest.DT_STRING, [1], "str or bytes"),
        (TFRequest.DT_FLOAT, [[1.0], [2.0, 3.0]], "rectangular"),
        (TFRequest.DT_HALF, [1.0], "DT_HALF"),
        (99, [1.0], "99"),
    ], ids=["float-into-int", "uint8-overflow", "int8-underflow", "bool-2",
            "str-into-float", "int-into-string", "ragged", "half", "unknown"])
    def test_bad_content_raises_encode_error(self, code: int, content: object,
                                             match: str) -> None:
        with pytest.raises(EncodeError, match=match) as info:
            TFRequest().add_feed("feed", [1], code, content)
        assert "'feed'" in str(info.value)
        assert isinstance(info.value, PredictException)
        assert info.value.code == 400

    @pytest.mark.parametrize("shape", [[-1], [1.5], "12", [True]],
                             ids=["negative", "float", "str", "bool"])
    def test_bad_shape_raises_encode_error(self, shape: object) -> None:
        with pytest.raises(EncodeError, match="shape"):
            TFRequest().add_feed("x", shape, TFRequest.DT_FLOAT, [1.0])


class TestTFResponse:
    def _response(self) -> TFResponse:
        body = _core.encode_tf_response({
            "scores": np.arange(6, dtype=np.float32).reshape(2, 3),
            "classes": np.array([2, 1], dtype=np.int64),
        })
        return TFRequest().parse_response(body)

    def test_get_values_flat(self) -> None:
        values = self._response().get_values("scores")
        assert isinstance(values, TensorValues)
        assert len(values) == 6
        assert values.array.shape == (6,)
        assert values.tolist() == [0, 1, 2, 3, 4, 5]

    def test_get_tensor_shape_list_of_ints(self) -> None:
        shape = self._response().get_tensor_shape("scores")
        assert shape == [2, 3]
        assert all(type(dim) is int for dim in shape)

    def test_mapping_gives_shaped_arrays(self) -> None:
        response = self._response()
        assert set(response) == {"scores", "classes"}
        assert len(response) == 2
        assert response["scores"].shape == (2, 3)
        assert "classes" in response
        assert "missing" not in response
        assert response.get("missing") is None
        assert dict(response).keys() == {"scores", "classes"}

    def test_unknown_output_lists_available(self) -> None:
        with pytest.raises(OutputNotFoundError, match="'classes', 'scores'|"
                           "'scores', 'classes'") as info:
            self._response().get_values("probabilities")
        assert info.value.name == "probabilities"
        assert sorted(info.value.available) == ["classes", "scores"]
        assert isinstance(info.value, KeyError)
        assert isinstance(info.value, PredictException)

    def test_garbage_body_raises_decode_error(self) -> None:
        with pytest.raises(DecodeError):
            TFRequest().parse_response(b"\x0f\xff\xfe not protobuf")

    def test_empty_body_raises_decode_error(self) -> None:
        with pytest.raises(DecodeError, match="no outputs"):
            TFRequest().parse_response(b"")

    def test_empty_response_object_still_constructs(self) -> None:
        assert len(TFResponse(b"")) == 0


class TestTensorValues:
    OUTPUTS: ClassVar[dict[str, np.ndarray]] = {
        "scores": np.array([[0.1, 0.25], [0.5, 1e-8]], dtype=np.float32),
        "doubles": np.array([1.5, -2.0], dtype=np.float64),
        "classes": np.array([3, -1, 2**40], dtype=np.int64),
        "small": np.array([[-7, 8]], dtype=np.int32),
        "flags": np.array([True, False]),
        "names": np.array([b"cat", b"\x00dog\x00", b""], dtype=object),
    }

    def _response(self) -> TFResponse:
        return TFResponse(_core.encode_tf_response(self.OUTPUTS))

    def test_json_dumps_of_float_values(self) -> None:
        values = self._response().get_values("scores")
        assert json.loads(json.dumps(list(values))) == list(values)
        assert json.dumps(list(values)).startswith("[0.10000000149011612, 0.25,")

    def test_json_dumps_of_int64_values(self) -> None:
        values = self._response().get_values("classes")
        assert json.dumps(list(values)) == "[3, -1, 1099511627776]"

    def test_items_are_python_scalars(self) -> None:
        response = self._response()
        assert type(response.get_values("scores")[0]) is float
        assert type(response.get_values("doubles")[1]) is float
        assert type(response.get_values("classes")[2]) is int
        assert type(response.get_values("small")[0]) is int
        assert type(response.get_values("flags")[0]) is bool
        assert type(response.get_values("names")[1]) is bytes
        assert all(type(item) is int for item in response.get_values("classes"))

    def test_strings_stay_bytes(self) -> None:
        values = self._response().get_values("names")
        assert list(values) == [b"cat", b"\x00dog\x00", b""]

    def test_json_dumps_of_decoded_strings(self) -> None:
        # bytes are not JSON, with the official SDK too: programs decode them.
        values = self._response().get_values("names")
        text = json.dumps([item.decode("utf-8") for item in values])
        assert text == '["cat", "\\u0000dog\\u0000", ""]'
        with pytest.raises(TypeError):
            json.dumps(list(values))

    def test_indexing_and_slicing(self) -> None:
        values = self._response().get_values("classes")
        assert values[-1] == 2**40
        assert values[np.int64(1)] == -1
        assert values[1:] == [-1, 2**40]
        assert isinstance(values[1:], list)
        assert values[::-1] == [2**40, -1, 3]
        with pytest.raises(IndexError):
            values[3]
        with pytest.raises(TypeError):
            values["0"]  # type: ignore[call-overload]

    def test_equality_with_lists(self) -> None:
        values = self._response().get_values("small")
        assert values == [-7, 8]
        assert [-7, 8] == values
        assert values == (-7, 8)
        assert values != [-7, 9]
        assert values != [-7]
        assert values == self._response().get_values("small")
        assert values != "ab"
        assert values != 5

    def test_repr_like_a_list(self) -> None:
        values = self._response().get_values("classes")
        assert repr(values) == "[3, -1, 1099511627776]"

    def test_sequence_operations(self) -> None:
        values = self._response().get_values("classes")
        assert len(values) == 3
        assert bool(values)
        assert 3 in values
        assert 4 not in values
        assert values.index(-1) == 1
        assert values.count(3) == 1
        assert list(reversed(values)) == [2**40, -1, 3]
        assert sorted(values) == [-1, 3, 2**40]
        assert sum(values) == 2 + 2**40

    def test_unhashable_like_a_list(self) -> None:
        with pytest.raises(TypeError):
            hash(self._response().get_values("classes"))

    def test_asarray_shares_memory(self) -> None:
        response = self._response()
        values = response.get_values("scores")
        array = np.asarray(values)
        assert np.shares_memory(array, response["scores"])
        assert array.shape == (4,)
        assert array.dtype == np.float32
        assert not array.flags.writeable
        assert np.asarray(values, dtype=np.float32) is values.array

    def test_asarray_float_view_on_body(self) -> None:
        body = _core.encode_tf_response(self.OUTPUTS)
        view = np.asarray(TFResponse(body).get_values("scores"))
        assert np.shares_memory(view, np.frombuffer(body, dtype=np.uint8))

    def test_array_with_dtype_or_copy(self) -> None:
        values = self._response().get_values("scores")
        converted = np.asarray(values, dtype=np.float64)
        assert converted.dtype == np.float64
        assert not np.shares_memory(converted, values.array)
        copied = np.array(values, copy=True)
        assert not np.shares_memory(copied, values.array)
        np.testing.assert_array_equal(copied, values.array)
        with pytest.raises(ValueError, match="without a copy"):
            np.array(values, dtype=np.float64, copy=False)

    def test_empty_output(self) -> None:
        body = _core.encode_tf_response({"none": np.zeros(0, np.float32)})
        values = TFResponse(body).get_values("none")
        assert len(values) == 0
        assert values == []
        assert json.dumps(list(values)) == "[]"

    @pytest.mark.parametrize("name", ["scores", "doubles", "classes", "small",
                                      "flags", "names"])
    def test_matches_protobuf_repeated_field(
        self, tf_pb2: ModuleType, name: str
    ) -> None:
        # Google's runtime decodes the same body; the official SDK returns
        # its repeated field from get_values.
        body = _core.encode_tf_response(self.OUTPUTS)
        reference = tf_pb2.PredictResponse.FromString(body).outputs[name]
        field = {np.float32: "float_val", np.float64: "double_val",
                 np.int64: "int64_val", np.int32: "int_val",
                 np.bool_: "bool_val"}.get(self.OUTPUTS[name].dtype.type,
                                           "string_val")
        expected = getattr(reference, field)
        values = TFResponse(body).get_values(name)
        assert len(values) == len(expected)
        assert list(values) == list(expected)
        assert [type(item) for item in values] == [type(item) for item in expected]
        assert values[0] == expected[0]
        assert values[-1] == expected[-1]
        assert values[1:] == expected[1:]
        assert values == list(expected)
        assert repr(values) == repr(list(expected))
        if field != "string_val":
            assert json.dumps(list(values)) == json.dumps(list(expected))


class TestFeedChecks:
    def test_string_with_lone_surrogate_rejected(self) -> None:
        request = TFRequest("s")
        with pytest.raises(EncodeError, match="input 'x'.*item 1.*surrogate"):
            request.add_feed("x", [2], TFRequest.DT_STRING, ["ok", "\udcff"])

    @pytest.mark.parametrize("value", [1e300, -1e39], ids=["huge", "negative"])
    def test_float_out_of_float32_range_rejected(self, value: float) -> None:
        request = TFRequest("s")
        with pytest.raises(EncodeError, match="out of the float32 range"):
            request.add_feed("x", [1], TFRequest.DT_FLOAT, [value])

    def test_infinity_still_accepted(self) -> None:
        request = TFRequest("s")
        request.add_feed("x", [2], TFRequest.DT_FLOAT, [np.inf, 1e38])
        _, inputs, _ = _core.decode_tf_request(request.to_string())
        assert inputs["x"].tolist() == [np.inf, np.float32(1e38)]


class TestFeedShapes:
    @pytest.mark.parametrize("shape, product", [
        ([7, 0x6DB6DB6DB6DB6DB7], 7 * 0x6DB6DB6DB6DB6DB7),
        ([2**32, 2**32], 2**64),
        ([2**64 - 1], 2**64 - 1),
    ], ids=["wraps-to-one", "wraps-to-zero", "uint64-max"])
    def test_count_is_not_wrapped(self, shape: list[int], product: int) -> None:
        with pytest.raises(EncodeError, match=f"needs {product} values"):
            TFRequest("s").add_feed("x", shape, TFRequest.DT_FLOAT, [1.0])

    @pytest.mark.parametrize("shape, product", [
        ([0, 2**63], 2**63),
        ([0, 2**40, 2**40], 2**80),
        ([0, 2**62], 2**62),
    ], ids=["dim-over-int64", "product-over-int64", "bytes-over-int64"])
    def test_empty_content_with_huge_shape_rejected(
        self, shape: list[int], product: int
    ) -> None:
        with pytest.raises(EncodeError, match=f"multiply to {product} values"):
            TFRequest("s").add_feed("x", shape, TFRequest.DT_FLOAT, [])
        with pytest.raises(EncodeError, match=f"multiply to {product} values"):
            TorchRequest().add_feed(0, shape, TorchRequest.DT_FLOAT, [])

    def test_empty_content_with_zero_dim_accepted(self) -> None:
        request = TFRequest("s")
        request.add_feed("x", [0, 2**20], TFRequest.DT_FLOAT, [])
        _, inputs, _ = _core.decode_tf_request(request.to_string())
        assert inputs["x"].shape == (0, 2**20)


class TestTorchRequest:
    @pytest.mark.parametrize("level", ["x", 1.5, True, 2**31, None],
                             ids=["str", "float", "bool", "too-big", "none"])
    def test_debug_level_must_be_int32(self, level: object) -> None:
        with pytest.raises(EncodeError, match="debug level"):
            TorchRequest().set_debug_level(level)  # type: ignore[arg-type]

    def test_inputs_map_inputs_and_fetch(self) -> None:
        request = TorchRequest()
        request.add_feed(1, [2], TorchRequest.DT_INT64, [5, 6])
        request.add_feed(0, [1, 2], TorchRequest.DT_FLOAT, [0.5, 1.5])
        request.add_feed_map("images", [1], TorchRequest.DT_DOUBLE, [2.5])
        request.add_fetch(1)
        request.set_debug_level(2)
        inputs, map_inputs, fetch, debug = _core.decode_torch_request(
            request.to_string())
        assert [a.tolist() for a in inputs] == [[[0.5, 1.5]], [5, 6]]
        assert map_inputs["images"].tolist() == [2.5]
        assert fetch == [1]
        assert debug == 2

    def test_gap_in_positional_inputs_raises(self) -> None:
        request = TorchRequest()
        request.add_feed(1, [1], TorchRequest.DT_FLOAT, [1.0])
        with pytest.raises(EncodeError, match=r"\[0\] are missing"):
            request.to_string()

    def _feed(self, request: TorchRequest) -> TorchRequest:
        request.add_feed(0, [2, 64], TorchRequest.DT_FLOAT,
                         np.tile(np.arange(64, dtype=np.float32), 2))
        request.add_feed_map("ids", [3], TorchRequest.DT_INT64, [1, 2, 3])
        return request

    def test_snappy_flag_compresses_raw_block(self) -> None:
        cramjam = pytest.importorskip("cramjam")  # in the "test" extra
        plain = self._feed(TorchRequest()).to_string()
        body = self._feed(TorchRequest(flag=True)).to_string()
        assert body != plain
        assert len(body) < len(plain)
        assert bytes(cramjam.snappy.decompress_raw(body)) == plain
        # The raw format starts with the uncompressed length as a varint;
        # the framed format would start with the b"\xff\x06\x00\x00sNaPpY"
        # stream identifier.
        assert not body.startswith(b"\xff\x06\x00\x00sNaPpY")
        assert body[:2] == bytes([len(plain) & 0x7F | 0x80, len(plain) >> 7])
        inputs, map_inputs, _, _ = _core.decode_torch_request(
            bytes(cramjam.snappy.decompress_raw(body)))
        assert inputs[0].shape == (2, 64)
        assert map_inputs["ids"].tolist() == [1, 2, 3]

    def test_snappy_flag_without_package_raises(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A None entry in sys.modules makes the import raise ImportError.
        monkeypatch.setitem(sys.modules, "cramjam", None)
        request = self._feed(TorchRequest(flag=True))
        with pytest.raises(EncodeError, match=r'pip install "easfast\[snappy\]"'):
            request.to_string()

    def test_bad_index_raises(self) -> None:
        with pytest.raises(EncodeError, match="index"):
            TorchRequest().add_feed(-1, [1], TorchRequest.DT_FLOAT, [1.0])
        with pytest.raises(EncodeError, match="name"):
            TorchRequest().add_feed_map(3, [1], TorchRequest.DT_FLOAT,  # type: ignore[arg-type]
                                        [1.0])


class TestTorchResponse:
    def _response(self) -> TorchResponse:
        body = _core.encode_torch_response(
            [np.arange(4, dtype=np.float32).reshape(2, 2),
             np.array([7], dtype=np.int64)],
            {"scores": np.array([[0.25, 0.75]], dtype=np.float64)},
        )
        return TorchRequest().parse_response(body)

    def test_positional_outputs(self) -> None:
        response = self._response()
        assert response.get_tensor_shape(0) == [2, 2]
        assert response.get_values(0).tolist() == [0, 1, 2, 3]
        assert response.get_values(1).tolist() == [7]

    def test_map_outputs(self) -> None:
        response = self._response()
        assert response.get_tensor_shape_map("scores") == [1, 2]
        assert response.get_values_map("scores").tolist() == [0.25, 0.75]

    def test_empty_body_raises_decode_error(self) -> None:
        with pytest.raises(DecodeError, match="no outputs"):
            TorchRequest().parse_response(b"")

    def test_map_outputs_alone_are_outputs(self) -> None:
        body = _core.encode_torch_response(
            [], {"scores": np.array([0.5], dtype=np.float32)})
        response = TorchRequest().parse_response(body)
        assert response.get_values_map("scores").tolist() == [0.5]

    def test_unknown_outputs_list_available(self) -> None:
        response = self._response()
        with pytest.raises(OutputNotFoundError, match="0, 1"):
            response.get_values(2)
        with pytest.raises(OutputNotFoundError, match="'scores'"):
            response.get_values_map("classes")
