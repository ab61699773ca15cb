"""The simulator's processors, checked against DigitModel.

Requests are built with Google's protobuf classes compiled from the
project's ``.proto`` files, so the server's decoding is checked by an
independent implementation, and with easfast's own codec.
"""

from __future__ import annotations

import http.client
import importlib.util
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

from easfast import _core
from easfast.exceptions import DecodeError
from easfast.testing import SIGNATURE_NAME, Fault, string_response

PROTO_DIR = Path(__file__).resolve().parents[1] / "src" / "easfast" / "proto"
PATH = "/api/predict/mnist"
DT_FLOAT, DT_INT64, DT_STRING = 1, 9, 7


def _compile(proto: Path, out: Path) -> ModuleType:
    from grpc_tools import protoc

    status = protoc.main(
        ["protoc", f"-I{proto.parent}", f"--python_out={out}", str(proto)]
    )
    if status != 0:
        raise RuntimeError(f"protoc failed with status {status} on {proto}")
    name = f"_easfast_simulator_test_{proto.stem}_pb2"
    spec = importlib.util.spec_from_file_location(name, out / f"{proto.stem}_pb2.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pb(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    out = tmp_path_factory.mktemp("simulator_pb2")
    return SimpleNamespace(
        tf=_compile(PROTO_DIR / "tf_request.proto", out),
        torch=_compile(PROTO_DIR / "pytorch_predict.proto", out),
    )


def post(address: str, body: bytes) -> tuple[int, bytes]:
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", PATH, body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def fill_float(proto, array: np.ndarray) -> None:
    proto.dtype = DT_FLOAT
    proto.array_shape.dim.extend(array.shape)
    proto.float_val.extend(array.ravel().tolist())


def read_array(proto) -> np.ndarray:
    shape = tuple(proto.array_shape.dim)
    if proto.dtype == DT_FLOAT:
        return np.array(proto.float_val, np.float32).reshape(shape)
    if proto.dtype == DT_INT64:
        return np.array(proto.int64_val, np.int64).reshape(shape)
    raise AssertionError(f"unexpected dtype {proto.dtype}")


def tf_request(
    pb, images: np.ndarray, signature: str = SIGNATURE_NAME, filters=()
) -> bytes:
    request = pb.tf.PredictRequest(signature_name=signature)
    fill_float(request.inputs["images"], images)
    request.output_filter.extend(filters)
    return request.SerializeToString()


class TestTFProcessor:
    @pytest.fixture
    def eas(self, local_eas):
        return local_eas(instances=2, processor="tf")

    def test_scores_match_digit_model(self, eas, pb, digits, digit_model):
        images, labels = digits
        status, body = post(eas.instances[0].address, tf_request(pb, images[:16]))
        assert status == 200
        response = pb.tf.PredictResponse.FromString(body)
        assert sorted(response.outputs) == ["classes", "scores"]

        scores, classes = digit_model.predict(images[:16])
        np.testing.assert_allclose(
            read_array(response.outputs["scores"]), scores, rtol=1e-6
        )
        np.testing.assert_array_equal(read_array(response.outputs["classes"]), classes)
        assert np.mean(classes == labels[:16]) > 0.8

    def test_easfast_codec_round_trip(self, eas, digits, digit_model):
        images = digits[0][:5]
        body = _core.encode_tf_request(SIGNATURE_NAME, {"images": images})
        status, data = post(eas.gateway_endpoint, body)
        assert status == 200
        outputs = _core.decode_tf_response(data)
        scores, classes = digit_model.predict(images)
        assert outputs["scores"].dtype == np.float32
        assert outputs["classes"].dtype == np.int64
        np.testing.assert_array_equal(outputs["scores"], scores)
        np.testing.assert_array_equal(outputs["classes"], classes)

    def test_empty_signature_is_accepted(self, eas, pb, digits):
        status, _ = post(
            eas.instances[0].address, tf_request(pb, digits[0][:1], signature="")
        )
        assert status == 200

    def test_output_filter_is_honoured(self, eas, pb, digits, digit_model):
        body = tf_request(pb, digits[0][:3], filters=["classes"])
        status, data = post(eas.instances[0].address, body)
        assert status == 200
        response = pb.tf.PredictResponse.FromString(data)
        assert list(response.outputs) == ["classes"]
        expected = digit_model.predict(digits[0][:3])[1]
        np.testing.assert_array_equal(read_array(response.outputs["classes"]), expected)

    @pytest.mark.parametrize("dtype", [np.float64, np.uint8, np.int32], ids=str)
    def test_other_numeric_dtypes_are_cast(self, eas, digits, digit_model, dtype):
        images = (digits[0][:4] * (255 if dtype != np.float64 else 1)).astype(dtype)
        status, data = post(
            eas.instances[0].address, _core.encode_tf_request("", {"images": images})
        )
        assert status == 200
        scores, _ = digit_model.predict(images)
        np.testing.assert_array_equal(_core.decode_tf_response(data)["scores"], scores)

    def test_square_images_are_accepted(self, eas, digits, digit_model):
        images = digits[0][:2].reshape(2, 28, 28)
        status, data = post(
            eas.instances[0].address, _core.encode_tf_request("", {"images": images})
        )
        assert status == 200
        assert _core.decode_tf_response(data)["scores"].shape == (2, 10)

    def test_empty_batch(self, eas):
        images = np.zeros((0, 784), np.float32)
        status, data = post(
            eas.instances[0].address, _core.encode_tf_request("", {"images": images})
        )
        assert status == 200
        assert _core.decode_tf_response(data)["scores"].shape == (0, 10)

    def test_unknown_signature_gets_400(self, eas, pb, digits):
        status, body = post(
            eas.instances[0].address, tf_request(pb, digits[0][:1], "serve")
        )
        assert status == 400
        assert b"unknown signature_name 'serve'" in body

    def test_unknown_output_gets_400(self, eas, pb, digits):
        status, body = post(
            eas.instances[0].address, tf_request(pb, digits[0][:1], filters=["x"])
        )
        assert status == 400
        assert b"unknown output_filter names ['x']" in body

    def test_missing_images_gets_400(self, eas, pb):
        status, body = post(
            eas.instances[0].address, pb.tf.PredictRequest().SerializeToString()
        )
        assert status == 400
        assert b"missing input 'images'" in body

    def test_extra_input_gets_400(self, eas, pb, digits):
        request = pb.tf.PredictRequest()
        fill_float(request.inputs["images"], digits[0][:1])
        fill_float(request.inputs["mask"], digits[0][:1])
        status, body = post(eas.instances[0].address, request.SerializeToString())
        assert status == 400
        assert b"unknown inputs ['mask']" in body

    def test_wrong_shape_gets_400(self, eas, pb):
        status, body = post(
            eas.instances[0].address, tf_request(pb, np.zeros((2, 100), np.float32))
        )
        assert status == 400
        assert b"input 'images' has shape [2, 100]" in body

    def test_string_images_get_400(self, eas, pb):
        request = pb.tf.PredictRequest()
        images = request.inputs["images"]
        images.dtype = DT_STRING
        images.array_shape.dim.append(1)
        images.string_val.append(b"pixels")
        status, body = post(eas.instances[0].address, request.SerializeToString())
        assert status == 400
        assert b"input 'images' has dtype object" in body

    def test_malformed_body_gets_400(self, eas):
        status, body = post(eas.instances[0].address, b"\x0f\xffnot protobuf")
        assert status == 400
        assert b"invalid TensorFlow PredictRequest" in body
        assert b"invalid wire type 7" in body
        assert eas.instances[0].request_count == 1

    def test_garbage_fault_fails_to_decode(self, eas, digits):
        eas.instances[0].set_fault(Fault.garbage())
        status, body = post(
            eas.instances[0].address,
            _core.encode_tf_request("", {"images": digits[0][:1]}),
        )
        assert status == 200
        with pytest.raises(DecodeError):
            _core.decode_tf_response(body)


class TestTorchProcessor:
    @pytest.fixture
    def eas(self, local_eas):
        return local_eas(instances=1, processor="torch")

    def test_positional_input_gets_positional_outputs(
        self, eas, pb, digits, digit_model
    ):
        images = digits[0][:6]
        request = pb.torch.PredictRequest()
        fill_float(request.inputs.add(), images)
        status, data = post(eas.instances[0].address, request.SerializeToString())
        assert status == 200
        response = pb.torch.PredictResponse.FromString(data)
        assert len(response.outputs) == 2
        assert len(response.map_outputs) == 0
        scores, classes = digit_model.predict(images)
        np.testing.assert_allclose(read_array(response.outputs[0]), scores, rtol=1e-6)
        np.testing.assert_array_equal(read_array(response.outputs[1]), classes)

    def test_named_input_gets_named_outputs(self, eas, pb, digits, digit_model):
        images = digits[0][6:9]
        request = pb.torch.PredictRequest()
        fill_float(request.map_inputs["images"], images)
        status, data = post(eas.instances[0].address, request.SerializeToString())
        assert status == 200
        response = pb.torch.PredictResponse.FromString(data)
        assert len(response.outputs) == 0
        assert sorted(response.map_outputs) == ["classes", "scores"]
        scores, classes = digit_model.predict(images)
        np.testing.assert_allclose(
            read_array(response.map_outputs["scores"]), scores, rtol=1e-6
        )
        np.testing.assert_array_equal(
            read_array(response.map_outputs["classes"]), classes
        )

    def test_easfast_codec_round_trip(self, eas, digits, digit_model):
        images = digits[0][:4]
        status, data = post(
            eas.instances[0].address, _core.encode_torch_request([images])
        )
        assert status == 200
        outputs, named = _core.decode_torch_response(data)
        scores, classes = digit_model.predict(images)
        np.testing.assert_array_equal(outputs[0], scores)
        np.testing.assert_array_equal(outputs[1], classes)
        assert named == {}

    def test_output_filter_picks_by_index(self, eas, digits, digit_model):
        images = digits[0][:2]
        body = _core.encode_torch_request([images], output_filter=[1])
        status, data = post(eas.instances[0].address, body)
        assert status == 200
        outputs, _ = _core.decode_torch_response(data)
        assert len(outputs) == 1
        np.testing.assert_array_equal(outputs[0], digit_model.predict(images)[1])

    @pytest.mark.parametrize(
        ("build", "message"),
        [
            (
                lambda images: _core.encode_torch_request([images], output_filter=[2]),
                b"output_filter indexes [2] out of range",
            ),
            (
                lambda images: _core.encode_torch_request([images, images]),
                b"got 2 inputs; this model takes one",
            ),
            (
                lambda images: _core.encode_torch_request([images], {"images": images}),
                b"not both",
            ),
            (
                lambda images: _core.encode_torch_request([], {"pixels": images}),
                b"unknown map_inputs ['pixels']",
            ),
            (lambda images: _core.encode_torch_request([]), b"missing input"),
            (
                lambda images: _core.encode_torch_request([images[:, :10]]),
                b"inputs[0] has shape [1, 10]",
            ),
            (lambda images: b"\x0f\xff", b"invalid PyTorch PredictRequest"),
        ],
        ids=[
            "filter",
            "two-inputs",
            "both-forms",
            "map-name",
            "no-input",
            "shape",
            "bytes",
        ],
    )
    def test_bad_request_gets_400(self, eas, digits, build, message):
        status, body = post(eas.instances[0].address, build(digits[0][:1]))
        assert status == 400
        assert message in body


class TestCustomProcessor:
    def test_function_output_is_sent(self, local_eas):
        eas = local_eas(instances=1, processor=lambda body: b"len=%d" % len(body))
        assert eas.processor == "custom"
        assert post(eas.instances[0].address, b"abcd") == (200, b"len=4")

    def test_value_error_becomes_400(self, local_eas):
        def reject(body: bytes) -> bytes:
            raise ValueError(f"cannot use {len(body)} bytes")

        eas = local_eas(instances=1, processor=reject)
        assert post(eas.instances[0].address, b"ab") == (400, b"cannot use 2 bytes\n")

    def test_crash_becomes_500(self, local_eas, caplog):
        def crash(body: bytes) -> bytes:
            raise KeyError("boom")

        eas = local_eas(instances=1, processor=crash)
        status, body = post(eas.instances[0].address, b"ab")
        assert status == 500
        assert b"simulator error: KeyError('boom')" in body
        assert any("handler failed" in record.getMessage() for record in caplog.records)


class TestStringProcessor:
    def test_reverses_bytes(self, local_eas):
        eas = local_eas(instances=1, processor="string")
        body = bytes(range(256))
        assert post(eas.instances[0].address, body) == (200, body[::-1])

    def test_string_response_function(self):
        assert string_response(b"abc") == b"cba"
        assert string_response(b"") == b""
