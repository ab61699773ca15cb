"""TensorFlow PredictRequest/PredictResponse encoding and decoding."""

from __future__ import annotations

import numpy as np
import pytest

from easfast import _core as core
from easfast.exceptions import EncodeError

NUMERIC = [
    (np.float32, core.DT_FLOAT),
    (np.float64, core.DT_DOUBLE),
    (np.int8, core.DT_INT8),
    (np.int16, core.DT_INT16),
    (np.int32, core.DT_INT32),
    (np.int64, core.DT_INT64),
    (np.uint8, core.DT_UINT8),
    (np.uint16, core.DT_UINT16),
    (np.bool_, core.DT_BOOL),
]
NUMERIC_IDS = [np.dtype(dtype).name for dtype, _ in NUMERIC]


def extreme_values(dtype: type) -> np.ndarray:
    """Return a 2x3 array with the dtype's minimum, maximum, zero and -1."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return np.array([[True, False, True], [False, False, True]])
    info = np.finfo(dt) if dt.kind == "f" else np.iinfo(dt)
    low = info.min
    values = [low, info.max, 0, 1, -1 if low < 0 else 2, 7]
    return np.array(values, dtype=dt).reshape(2, 3)


class TestDtypeTables:
    @pytest.mark.parametrize(("dtype", "code"), NUMERIC, ids=NUMERIC_IDS)
    def test_dtype_code_of_numeric(self, dtype, code):
        assert core.dtype_code(dtype) == code

    @pytest.mark.parametrize(("dtype", "code"), NUMERIC, ids=NUMERIC_IDS)
    def test_numpy_dtype_of_numeric(self, dtype, code):
        assert core.numpy_dtype(code) == np.dtype(dtype)

    @pytest.mark.parametrize("dtype", ["S3", "U2", object])
    def test_dtype_code_of_strings(self, dtype):
        assert core.dtype_code(dtype) == core.DT_STRING

    def test_numpy_dtype_of_string_is_object(self):
        assert core.numpy_dtype(core.DT_STRING) == np.dtype(object)

    @pytest.mark.parametrize(
        ("code", "dtype"),
        [
            (core.DT_QINT8, np.int8),
            (core.DT_QUINT8, np.uint8),
            (core.DT_QINT16, np.int16),
            (core.DT_QUINT16, np.uint16),
            (core.DT_QINT32, np.int32),
        ],
        ids=["qint8", "quint8", "qint16", "quint16", "qint32"],
    )
    def test_quantized_codes_map_to_integers(self, code, dtype):
        assert core.numpy_dtype(code) == np.dtype(dtype)

    @pytest.mark.parametrize(
        "code",
        [
            core.DT_INVALID,
            core.DT_COMPLEX64,
            core.DT_BFLOAT16,
            core.DT_HALF,
            core.DT_COMPLEX128,
            core.DT_RESOURCE,
            core.DT_VARIANT,
            99,
            -1,
        ],
    )
    def test_numpy_dtype_rejects_codes_without_field(self, code):
        with pytest.raises(EncodeError, match="has no value field.*use one of"):
            core.numpy_dtype(code)

    @pytest.mark.parametrize(
        ("dtype", "hint"),
        [
            (np.float16, r"astype\(np.float32\), or pass convert=True"),
            (np.uint32, r"astype\(np.int64\), or pass convert=True"),
            (np.uint64, r"below 2\*\*63"),
            (np.complex64, r"arr.real and arr.imag"),
            ("M8[s]", "cast to float32"),
        ],
        ids=["float16", "uint32", "uint64", "complex64", "datetime"],
    )
    def test_dtype_code_rejects_with_hint(self, dtype, hint):
        with pytest.raises(EncodeError, match=hint):
            core.dtype_code(dtype)

    def test_constants_follow_schema_enum(self, pb):
        for name, number in pb.tf.ArrayDataType.items():
            assert getattr(core, name) == number


class TestNumericRoundTrip:
    @pytest.mark.parametrize(("dtype", "code"), NUMERIC, ids=NUMERIC_IDS)
    def test_request_keeps_dtype_shape_values(self, dtype, code):
        array = extreme_values(dtype)

        body = core.encode_tf_request("serving", {"x": array}, ["y", "z"])
        signature, inputs, names = core.decode_tf_request(body)

        assert signature == "serving"
        assert names == ["y", "z"]
        assert inputs["x"].dtype == array.dtype
        assert inputs["x"].shape == (2, 3)
        np.testing.assert_array_equal(inputs["x"], array)

    @pytest.mark.parametrize(("dtype", "code"), NUMERIC, ids=NUMERIC_IDS)
    def test_response_keeps_dtype_shape_values(self, dtype, code):
        array = extreme_values(dtype)

        outputs = core.decode_tf_response(core.encode_tf_response({"y": array}))

        assert outputs["y"].dtype == array.dtype
        assert outputs["y"].shape == (2, 3)
        np.testing.assert_array_equal(outputs["y"], array)

    @pytest.mark.parametrize(("dtype", "code"), NUMERIC, ids=NUMERIC_IDS)
    def test_google_reads_dtype_code_and_shape(self, pb, dtype, code):
        body = core.encode_tf_request("", {"x": extreme_values(dtype)})

        message = pb.tf.PredictRequest.FromString(body)

        assert message.inputs["x"].dtype == code
        assert list(message.inputs["x"].array_shape.dim) == [2, 3]

    def test_float_nan_and_infinities_survive(self):
        array = np.array([np.nan, np.inf, -np.inf, -0.0], dtype=np.float32)

        decoded = core.decode_tf_response(core.encode_tf_response({"y": array}))["y"]

        assert decoded.tobytes() == array.tobytes()

    def test_many_inputs_and_outputs(self):
        inputs = {f"in{i}": np.full((i + 1,), i, dtype=np.int32) for i in range(20)}

        _, decoded, _ = core.decode_tf_request(core.encode_tf_request("", inputs))

        assert list(decoded) == list(inputs)
        for name, array in inputs.items():
            np.testing.assert_array_equal(decoded[name], array)

    def test_unicode_names_and_signature(self):
        body = core.encode_tf_request(
            "sérving", {"图像": np.zeros(1, np.float32)}, ["ü"]
        )

        signature, inputs, names = core.decode_tf_request(body)

        assert signature == "sérving"
        assert list(inputs) == ["图像"]
        assert names == ["ü"]

    def test_empty_request_has_no_fields(self):
        assert core.encode_tf_request("", {}) == b""
        assert core.encode_tf_request(None, {}) == b""
        assert core.decode_tf_request(b"") == ("", {}, [])

    def test_empty_response_decodes_to_empty_dict(self):
        assert core.decode_tf_response(b"") == {}


class TestNegativeInt32:
    def test_negative_int32_takes_ten_bytes(self, pb):
        body = core.encode_tf_response({"y": np.array([-1], dtype=np.int32)})

        # The message ends with int_val: tag, length 10, then the varint.
        value = pb.tf.PredictResponse.FromString(body).outputs["y"]
        assert list(value.int_val) == [-1]
        assert body.endswith(b"\x2a\x0a" + b"\xff" * 9 + b"\x01")

    def test_int8_minimum_round_trips(self):
        array = np.array([-128, 127], dtype=np.int8)

        decoded = core.decode_tf_response(core.encode_tf_response({"y": array}))["y"]

        np.testing.assert_array_equal(decoded, array)


class TestZeroCopyDecode:
    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    def test_float_output_is_read_only_view_on_body(self, dtype):
        body = core.encode_tf_response({"y": np.arange(6, dtype=dtype).reshape(2, 3)})

        decoded = core.decode_tf_response(body)["y"]

        assert not decoded.flags.writeable
        assert not decoded.flags.owndata
        assert np.shares_memory(decoded, np.frombuffer(body, np.uint8))

    def test_view_outlives_caller_reference_to_body(self):
        body = core.encode_tf_response({"y": np.arange(1000, dtype=np.float32)})
        decoded = core.decode_tf_response(body)["y"]
        del body

        np.testing.assert_array_equal(decoded, np.arange(1000, dtype=np.float32))

    @pytest.mark.parametrize("prefix", range(8))
    def test_view_correct_at_any_byte_offset(self, prefix):
        # A longer name moves the float payload to every alignment mod 8.
        array = np.linspace(-1, 1, 9, dtype=np.float64)
        body = core.encode_tf_response({"n" * (prefix + 1): array})

        decoded = core.decode_tf_response(body)["n" * (prefix + 1)]

        np.testing.assert_array_equal(decoded, array)

    def test_bytearray_body_gives_read_only_view(self):
        body = bytearray(core.encode_tf_response({"y": np.ones(4, np.float32)}))

        decoded = core.decode_tf_response(body)["y"]

        assert not decoded.flags.writeable
        np.testing.assert_array_equal(decoded, np.ones(4, np.float32))

    def test_memoryview_slice_body_decodes(self):
        body = core.encode_tf_response({"y": np.arange(3, dtype=np.float32)})
        padded = b"xx" + body + b"yy"

        decoded = core.decode_tf_response(memoryview(padded)[2:-2])["y"]

        np.testing.assert_array_equal(decoded, np.arange(3, dtype=np.float32))

    def test_integer_outputs_are_writable_copies(self):
        body = core.encode_tf_response({"y": np.arange(3, dtype=np.int64)})

        decoded = core.decode_tf_response(body)["y"]

        assert decoded.flags.writeable
        assert not np.shares_memory(decoded, np.frombuffer(body, np.uint8))

    def test_decode_rejects_non_buffer(self):
        with pytest.raises(TypeError, match="needs bytes, bytearray or memoryview"):
            core.decode_tf_response("not bytes")


class TestForcedCodes:
    @pytest.mark.parametrize(
        ("code", "dtype"),
        [
            (core.DT_QINT8, np.int8),
            (core.DT_QUINT8, np.uint8),
            (core.DT_QINT16, np.int16),
            (core.DT_QUINT16, np.uint16),
            (core.DT_QINT32, np.int32),
        ],
        ids=["qint8", "quint8", "qint16", "quint16", "qint32"],
    )
    def test_quantized_code_round_trips(self, pb, code, dtype):
        array = extreme_values(dtype)

        body = core.encode_tf_response({"q": (code, array)})

        assert pb.tf.PredictResponse.FromString(body).outputs["q"].dtype == code
        decoded = core.decode_tf_response(body)["q"]
        assert decoded.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(decoded, array)

    def test_forced_code_upcasts_safely(self):
        body = core.encode_tf_request(
            "", {"x": (core.DT_INT64, np.array([1, -2], np.int32))}
        )

        decoded = core.decode_tf_request(body)[1]["x"]

        assert decoded.dtype == np.int64
        np.testing.assert_array_equal(decoded, [1, -2])

    def test_forced_code_rejects_narrowing(self):
        with pytest.raises(
            EncodeError,
            match=r"input 'x' has dtype float64 but DT_FLOAT needs float32; cast",
        ):
            core.encode_tf_request("", {"x": (core.DT_FLOAT, np.zeros(2))})

    @pytest.mark.parametrize("code", [core.DT_HALF, core.DT_INVALID, 42])
    def test_forced_code_without_field_rejected(self, code):
        with pytest.raises(
            EncodeError, match="input 'x': dtype code .* has no value field"
        ):
            core.encode_tf_request("", {"x": (code, np.zeros(2, np.float32))})

    def test_forced_code_must_be_int(self):
        with pytest.raises(EncodeError, match="dtype code must be an int"):
            core.encode_tf_request("", {"x": ("float", np.zeros(2, np.float32))})

    def test_tuple_of_three_rejected(self):
        with pytest.raises(EncodeError, match="tuple of 3 items"):
            core.encode_tf_request("", {"x": (1, 2, 3)})


class TestUnsupportedDtypes:
    @pytest.mark.parametrize(
        ("dtype", "hint"),
        [
            (np.float16, r"astype\(np.float32\)"),
            (np.uint32, r"astype\(np.int64\)"),
            (np.uint64, r"astype\(np.int64\)"),
            (np.complex64, "arr.real and arr.imag"),
            (np.complex128, "arr.real and arr.imag"),
        ],
        ids=["float16", "uint32", "uint64", "complex64", "complex128"],
    )
    def test_error_names_input_and_cast(self, dtype, hint):
        with pytest.raises(
            EncodeError, match=rf"input 'pixels' has dtype \w+, .*{hint}"
        ):
            core.encode_tf_request("", {"pixels": np.zeros(3, dtype=dtype)})

    def test_convert_sends_float16_as_float32(self, pb):
        array = np.array([0.5, -2.0, 65504.0], dtype=np.float16)

        body = core.encode_tf_request("", {"x": array}, convert=True)

        decoded = core.decode_tf_request(body)[1]["x"]
        assert decoded.dtype == np.float32
        np.testing.assert_array_equal(decoded, array.astype(np.float32))

    def test_convert_sends_uint32_as_int64(self):
        array = np.array([0, 2**32 - 1], dtype=np.uint32)

        decoded = core.decode_tf_request(
            core.encode_tf_request("", {"x": array}, convert=True)
        )[1]["x"]

        assert decoded.dtype == np.int64
        np.testing.assert_array_equal(decoded, [0, 2**32 - 1])

    def test_convert_sends_uint64_that_fits(self):
        array = np.array([0, 2**63 - 1], dtype=np.uint64)

        decoded = core.decode_tf_request(
            core.encode_tf_request("", {"x": array}, convert=True)
        )[1]["x"]

        assert decoded.dtype == np.int64
        np.testing.assert_array_equal(decoded, [0, 2**63 - 1])

    def test_convert_rejects_uint64_above_int64(self):
        array = np.array([1, 2**63], dtype=np.uint64)

        with pytest.raises(
            EncodeError,
            match=r"input 'x' has uint64 value 9223372036854775808, above the int64 maximum",
        ):
            core.encode_tf_request("", {"x": array}, convert=True)

    def test_convert_still_rejects_complex(self):
        with pytest.raises(EncodeError, match="arr.real and arr.imag"):
            core.encode_tf_request("", {"x": np.zeros(2, np.complex64)}, convert=True)


class TestEncodeArguments:
    def test_list_input_rejected_with_hint(self):
        with pytest.raises(
            EncodeError,
            match=r"input 'x' must be a numpy array, got list; convert it with np.asarray",
        ):
            core.encode_tf_request("", {"x": [1.0, 2.0]})

    def test_numpy_scalar_is_zero_d_tensor(self):
        decoded = core.decode_tf_request(
            core.encode_tf_request("", {"x": np.float32(2.5)})
        )[1]["x"]

        assert decoded.shape == ()
        assert decoded == np.float32(2.5)

    def test_inputs_must_be_mapping(self):
        with pytest.raises(
            EncodeError,
            match="inputs must be a mapping of names to numpy arrays, got list",
        ):
            core.encode_tf_request("", [np.zeros(1)])

    def test_input_names_must_be_str(self):
        with pytest.raises(EncodeError, match="input names must be str, got int 3"):
            core.encode_tf_request("", {3: np.zeros(1)})

    def test_output_filter_string_rejected(self):
        with pytest.raises(
            EncodeError,
            match="output_filter must be a sequence of output names, got the string 'scores'; wrap it in a list",
        ):
            core.encode_tf_request("", {}, "scores")

    def test_signature_must_be_str(self):
        with pytest.raises(
            EncodeError, match="signature_name must be a str, got bytes"
        ):
            core.encode_tf_request(b"sig", {})

    def test_lone_surrogate_name_rejected(self):
        with pytest.raises(
            EncodeError, match="input name '\\\\ud800' is not valid Unicode"
        ):
            core.encode_tf_request("", {"\ud800": np.zeros(1)})
