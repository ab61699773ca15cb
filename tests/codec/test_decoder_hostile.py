"""The decoders follow the protobuf wire rules and reject bad bytes with DecodeError."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from codec_wire import (
    END_GROUP,
    FIXED32,
    FIXED64,
    START_GROUP,
    entry,
    length_field,
    packed_floats,
    packed_varints,
    shape,
    tag,
    tf_response,
    unknown_fields,
    varint,
    varint_field,
)
from google.protobuf.message import DecodeError as GoogleDecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from easfast import _core as core
from easfast.exceptions import DecodeError

DECODERS = [
    core.decode_tf_response,
    core.decode_tf_request,
    core.decode_torch_response,
    core.decode_torch_request,
]
DECODER_IDS = ["tf_response", "tf_request", "torch_response", "torch_request"]


def dtype_field(code: int) -> bytes:
    return varint_field(1, code)


def single_output(*value_pieces: bytes) -> np.ndarray:
    return core.decode_tf_response(tf_response(entry("y", *value_pieces)))["y"]


class TestPackedAndUnpacked:
    def test_unpacked_floats(self):
        body = (
            dtype_field(core.DT_FLOAT)
            + shape(2)
            + b"".join(tag(3, FIXED32) + struct.pack("<f", v) for v in (1.5, -2.0))
        )

        np.testing.assert_array_equal(single_output(body), [1.5, -2.0])

    def test_unpacked_doubles(self):
        body = (
            dtype_field(core.DT_DOUBLE)
            + shape(2)
            + b"".join(tag(4, FIXED64) + struct.pack("<d", v) for v in (0.1, 1e300))
        )

        np.testing.assert_array_equal(single_output(body), [0.1, 1e300])

    @pytest.mark.parametrize(
        ("code", "field", "dtype"),
        [
            (core.DT_INT32, 5, np.int32),
            (core.DT_INT64, 7, np.int64),
            (core.DT_UINT16, 5, np.uint16),
        ],
        ids=["int32", "int64", "uint16"],
    )
    def test_unpacked_varints(self, code, field, dtype):
        values = (
            [0, 1, 300, 65535] if dtype == np.uint16 else [-1, 0, 2**31 - 1, -(2**31)]
        )
        body = (
            dtype_field(code)
            + shape(4)
            + b"".join(varint_field(field, v) for v in values)
        )

        decoded = single_output(body)

        assert decoded.dtype == dtype
        np.testing.assert_array_equal(decoded, values)

    def test_packed_and_unpacked_mixed(self):
        body = (
            dtype_field(core.DT_FLOAT)
            + shape(5)
            + packed_floats(3, [1.0, 2.0])
            + tag(3, FIXED32)
            + struct.pack("<f", 3.0)
            + packed_floats(3, [])
            + packed_floats(3, [4.0, 5.0])
        )

        decoded = single_output(body)

        np.testing.assert_array_equal(decoded, [1, 2, 3, 4, 5])
        assert not decoded.flags.writeable

    def test_mixed_varint_runs(self):
        body = (
            dtype_field(core.DT_INT64)
            + packed_varints(7, [1, -2])
            + varint_field(7, 3)
            + shape(2, 2)
            + packed_varints(7, [-4])
        )

        np.testing.assert_array_equal(single_output(body), [[1, -2], [3, -4]])

    def test_unpacked_bools(self):
        body = (
            dtype_field(core.DT_BOOL)
            + shape(3)
            + varint_field(8, 1)
            + varint_field(8, 0)
            + varint_field(8, 2**40)
        )

        np.testing.assert_array_equal(single_output(body), [True, False, True])

    def test_unpacked_dims(self):
        dims = length_field(2, varint_field(1, 2) + varint_field(1, 1))
        body = dtype_field(core.DT_INT32) + dims + packed_varints(5, [7, 8])

        assert single_output(body).shape == (2, 1)


class TestFieldOrderAndMerging:
    def test_values_before_dtype_and_shape(self):
        body = (
            packed_floats(4, [1.0, 2.0], "<d")
            + shape(1, 2)
            + dtype_field(core.DT_DOUBLE)
        )

        decoded = single_output(body)

        assert decoded.dtype == np.float64
        assert decoded.shape == (1, 2)

    def test_last_dtype_wins(self):
        body = (
            dtype_field(core.DT_INT64)
            + packed_floats(3, [1.0])
            + dtype_field(core.DT_FLOAT)
        )

        assert single_output(body).dtype == np.float32

    def test_split_value_pieces_merge(self):
        first = dtype_field(core.DT_FLOAT) + packed_floats(3, [1.0])
        second = shape(2) + packed_floats(3, [2.0])

        np.testing.assert_array_equal(single_output(first, second), [1.0, 2.0])

    def test_split_shapes_append_dims(self):
        body = (
            dtype_field(core.DT_INT32)
            + shape(2)
            + shape(3)
            + packed_varints(5, range(6))
        )

        assert single_output(body).shape == (2, 3)

    def test_repeated_map_key_keeps_last(self):
        first = entry("y", dtype_field(core.DT_INT32) + packed_varints(5, [1, 2]))
        other = entry("z", dtype_field(core.DT_INT32) + packed_varints(5, [9]))
        last = entry("y", dtype_field(core.DT_FLOAT) + packed_floats(3, [5.0]))

        outputs = core.decode_tf_response(tf_response(first, other, last))

        assert sorted(outputs) == ["y", "z"]
        assert outputs["y"].dtype == np.float32
        assert outputs["y"] == 5.0

    def test_repeated_key_drops_invalid_earlier_value(self, pb):
        # Only the surviving value has to make sense, as with Google's parser.
        broken = entry(
            "y", dtype_field(core.DT_INT32) + shape(9) + packed_varints(5, [1])
        )
        good = entry("y", dtype_field(core.DT_INT32) + packed_varints(5, [1]))
        body = tf_response(broken, good)

        assert core.decode_tf_response(body)["y"] == 1
        assert list(pb.tf.PredictResponse.FromString(body).outputs["y"].int_val) == [1]

    def test_key_after_value_and_repeated_key_field(self):
        body = length_field(2, dtype_field(core.DT_INT32) + packed_varints(5, [4]))
        body += length_field(1, b"first") + length_field(1, b"second")

        assert list(core.decode_tf_response(tf_response(body))) == ["second"]

    def test_entry_without_key_uses_empty_name(self):
        body = length_field(2, dtype_field(core.DT_INT32) + packed_varints(5, [4]))

        assert list(core.decode_tf_response(tf_response(body))) == [""]

    def test_last_signature_name_wins(self):
        body = length_field(1, b"a") + length_field(1, b"b")

        assert core.decode_tf_request(body)[0] == "b"

    def test_last_debug_level_wins(self):
        body = varint_field(100, 1) + varint_field(100, -3)

        assert core.decode_torch_request(body)[3] == -3


class TestUnknownFields:
    def test_skipped_everywhere_in_tf_response(self):
        shape_body = unknown_fields() + packed_varints(1, [2]) + unknown_fields()
        array = (
            unknown_fields()
            + dtype_field(core.DT_FLOAT)
            + length_field(2, shape_body)
            + unknown_fields()
            + packed_floats(3, [1.0, 2.0])
        )
        entry_body = (
            unknown_fields()
            + length_field(1, b"y")
            + unknown_fields()
            + length_field(2, array)
        )
        body = unknown_fields() + length_field(1, entry_body) + unknown_fields()

        np.testing.assert_array_equal(core.decode_tf_response(body)["y"], [1.0, 2.0])

    def test_skipped_in_torch_request(self):
        array = unknown_fields() + dtype_field(core.DT_INT32) + packed_varints(5, [5])
        body = (
            unknown_fields()
            + length_field(1, array)
            + unknown_fields()
            + varint_field(100, 4)
            + unknown_fields()
        )

        listed, _, _, debug = core.decode_torch_request(body)

        assert listed[0] == 5
        assert debug == 4

    def test_known_field_with_other_wire_type_skipped(self):
        # dtype as a length field and float_val as a varint are unknown fields.
        body = (
            dtype_field(core.DT_FLOAT)
            + length_field(1, b"\x05")
            + varint_field(3, 99)
            + packed_floats(3, [1.0])
        )

        assert single_output(body).dtype == np.float32
        assert single_output(body) == 1.0

    def test_google_agrees_on_unknown_fields(self, pb):
        body = tf_response(
            entry(
                "y",
                unknown_fields() + dtype_field(core.DT_FLOAT) + packed_floats(3, [3.0]),
            )
        )

        assert list(pb.tf.PredictResponse.FromString(body).outputs["y"].float_val) == [
            3.0
        ]
        assert (
            single_output(
                unknown_fields() + dtype_field(core.DT_FLOAT) + packed_floats(3, [3.0])
            )
            == 3.0
        )


class TestVarintRules:
    def test_negative_int32_ten_bytes(self):
        body = dtype_field(core.DT_INT32) + length_field(5, varint(-5))

        assert len(varint(-5)) == 10
        assert single_output(body) == -5

    def test_int32_truncated_to_low_32_bits(self, pb):
        raw = (1 << 40) + 7
        body = dtype_field(core.DT_INT32) + packed_varints(5, [raw, (1 << 32) - 1])

        decoded = single_output(body)

        np.testing.assert_array_equal(decoded, [7, -1])
        message = pb.tf.ArrayProto.FromString(body)
        assert list(message.int_val) == [7, -1]

    def test_debug_level_truncated_to_int32(self):
        assert core.decode_torch_request(varint_field(100, (1 << 33) + 2))[3] == 2

    def test_ten_byte_varint_drops_bits_past_64(self):
        # The tenth byte carries bit 63 only; higher bits are dropped.
        raw = b"\x81" + b"\x80" * 8 + b"\x7f"
        body = dtype_field(core.DT_INT64) + length_field(7, raw)

        assert single_output(body) == np.int64(-(2**63) + 1)

    def test_dtype_enum_truncated_to_int32(self):
        body = varint_field(1, (1 << 32) + core.DT_FLOAT) + packed_floats(3, [2.0])

        assert single_output(body).dtype == np.float32


class TestMalformedInput:
    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"\x0a", "truncated varint at byte 1"),
            (
                b"\x0a\x05ab",
                "length 5 at byte 1 runs past the end of its message at byte 4",
            ),
            (
                b"\x0a" + varint(2**63),
                "length 9223372036854775808 at byte 1 runs past the end",
            ),
            (b"\x0a" + varint(2**64 - 1), "runs past the end"),
            (b"\x08" + b"\xff" * 10 + b"\x01", "varint longer than 10 bytes at byte 1"),
            (b"\xff" * 11, "varint longer than 10 bytes at byte 0"),
            (varint(2**35), r"tag 34359738368 out of range"),
            (b"\x00", "field number 0"),
            (tag(1, 7), "invalid wire type 7"),
            (tag(1, 6), "invalid wire type 6"),
            (b"\x0c", "unexpected end-group tag"),
            (
                tag(5, START_GROUP) + varint_field(1, 1),
                "group of field 5 is not closed",
            ),
            (
                tag(5, START_GROUP) + tag(6, END_GROUP),
                "group of field 5 closed by field 6",
            ),
            (tag(5, FIXED64) + b"1234567", "truncated 8-byte value at byte 1"),
            (tag(5, FIXED32) + b"123", "truncated 4-byte value at byte 1"),
        ],
        ids=[
            "truncated_length",
            "length_past_end",
            "length_2_pow_63",
            "length_max_uint64",
            "overlong_varint",
            "overlong_tag",
            "tag_over_32_bits",
            "field_zero",
            "wire_type_7",
            "wire_type_6",
            "lone_end_group",
            "unclosed_group",
            "mismatched_end_group",
            "truncated_fixed64",
            "truncated_fixed32",
        ],
    )
    @pytest.mark.parametrize("decode", DECODERS, ids=DECODER_IDS)
    def test_rejected_with_reason(self, decode, body, message):
        with pytest.raises(DecodeError, match=message):
            decode(body)

    @pytest.mark.parametrize("decode", DECODERS, ids=DECODER_IDS)
    def test_deep_group_nesting_rejected(self, decode):
        body = tag(9, START_GROUP) * 150 + tag(9, END_GROUP) * 150

        with pytest.raises(DecodeError, match="nested deeper than 100 levels"):
            decode(body)

    def test_nesting_below_limit_accepted(self):
        body = tag(9, START_GROUP) * 90 + tag(9, END_GROUP) * 90

        assert core.decode_tf_response(body) == {}

    def test_error_names_schema_and_next_step(self):
        with pytest.raises(
            DecodeError,
            match=r"^invalid TensorFlow PredictResponse \(1 bytes\): truncated varint at byte 1; check that the service runs the TensorFlow processor and that the body arrived whole$",
        ):
            core.decode_tf_response(b"\x0a")

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            (packed_floats(3, [1.0])[:-1], "runs past the end"),
            (
                length_field(3, b"\x00" * 6),
                r"packed float_val of 6 bytes at byte \d+ is not a whole number of 4-byte values",
            ),
            (
                length_field(4, b"\x00" * 12),
                r"packed double_val of 12 bytes at byte \d+ is not a whole number of 8-byte values",
            ),
            (
                length_field(5, b"\x01\x80"),
                r"packed varints from byte \d+ end inside a value",
            ),
            (
                length_field(7, b"\xff" * 10 + b"\x01"),
                r"varint longer than 10 bytes in the packed run at byte \d+",
            ),
            (length_field(8, b"\x80"), "end inside a value"),
            (length_field(2, length_field(1, b"\x80")), "end inside a value"),
            (
                length_field(2, packed_varints(1, [1] * 33)),
                "array_shape has more than 32 dimensions",
            ),
            (
                length_field(2, varint_field(1, 1) * 33),
                "array_shape has more than 32 dimensions",
            ),
            (tag(3, FIXED32) + b"\x00\x00", r"truncated 4-byte value at byte \d+"),
            (tag(4, FIXED64) + b"\x00\x00", r"truncated 8-byte value at byte \d+"),
        ],
        ids=[
            "truncated_packed_floats",
            "ragged_floats",
            "ragged_doubles",
            "truncated_packed_varint",
            "overlong_packed_varint",
            "truncated_packed_bool",
            "truncated_packed_dim",
            "too_many_packed_dims",
            "too_many_unpacked_dims",
            "truncated_unpacked_float",
            "truncated_unpacked_double",
        ],
    )
    def test_array_wire_errors(self, value, message):
        with pytest.raises(DecodeError, match=message):
            single_output(value)

    def test_invalid_utf8_output_name(self):
        with pytest.raises(
            DecodeError, match="output name at byte 4 is not valid UTF-8"
        ):
            core.decode_tf_response(tf_response(entry(b"\xff\xfe", dtype_field(1))))

    def test_invalid_utf8_signature(self):
        with pytest.raises(
            DecodeError, match="signature_name at byte 2 is not valid UTF-8"
        ):
            core.decode_tf_request(length_field(1, b"\xc3"))

    def test_invalid_utf8_output_filter(self):
        with pytest.raises(
            DecodeError, match="output_filter name at byte 2 is not valid UTF-8"
        ):
            core.decode_tf_request(length_field(3, b"\xed\xa0\x80"))

    @pytest.mark.parametrize("decode", DECODERS, ids=DECODER_IDS)
    def test_non_buffer_rejected(self, decode):
        with pytest.raises(
            TypeError,
            match=r"needs bytes, bytearray or memoryview, got (list|NoneType|str)",
        ):
            decode([1, 2])
        with pytest.raises(TypeError, match="got NoneType"):
            decode(None)
        with pytest.raises(TypeError, match="got str"):
            decode("text")


class TestSemanticErrors:
    @pytest.mark.parametrize(
        ("value", "message"),
        [
            (
                dtype_field(core.DT_FLOAT) + shape(2, 3) + packed_floats(3, [1.0] * 5),
                r"output 'y' declares shape \(2, 3\) \(6 values\) but carries 5 float_val values",
            ),
            (
                dtype_field(core.DT_INT64) + shape(0, 3) + packed_varints(7, [1]),
                r"declares shape \(0, 3\) \(0 values\) but carries 1 int64_val values",
            ),
            (
                dtype_field(core.DT_INT32) + shape(-1) + packed_varints(5, [1]),
                r"output 'y' has negative dimension in shape \(-1,\)",
            ),
            (
                dtype_field(core.DT_FLOAT) + shape(2**62, 2**62),
                r"declares shape .* larger than memory can hold",
            ),
            (
                dtype_field(core.DT_FLOAT) + shape(0, 2**62),
                r"declares shape \(0, 4611686018427387904\), larger than memory can hold",
            ),
            (
                dtype_field(core.DT_DOUBLE)
                + shape(2**40)
                + packed_floats(4, [1.0], "<d"),
                r"\(1099511627776 values\) but carries 1 double_val",
            ),
            (
                dtype_field(core.DT_HALF) + packed_varints(5, [1]),
                "output 'y' has dtype DT_HALF, which has no value field in the schema, so easfast cannot read it",
            ),
            (
                dtype_field(99) + packed_varints(5, [1]),
                "has dtype unknown dtype code 99",
            ),
            (
                dtype_field(-1) + packed_varints(5, [1]),
                "has dtype unknown dtype code -1",
            ),
            (packed_floats(3, [1.0]), "has dtype DT_INVALID"),
            (
                dtype_field(core.DT_UINT8) + packed_varints(5, [300]),
                r"output 'y' has value 300, outside the range of uint8",
            ),
            (
                dtype_field(core.DT_INT8) + packed_varints(5, [-129]),
                "value -129, outside the range of int8",
            ),
            (
                dtype_field(core.DT_UINT16) + packed_varints(5, [-1]),
                "value -1, outside the range of uint16",
            ),
            (
                dtype_field(core.DT_QINT16) + varint_field(5, 40000),
                "value 40000, outside the range of int16",
            ),
        ],
        ids=[
            "count_below_shape",
            "values_in_zero_size",
            "negative_dim",
            "dims_overflow",
            "zero_size_too_large",
            "count_far_below_shape",
            "half_without_field",
            "unknown_code",
            "negative_code",
            "missing_dtype",
            "uint8_out_of_range",
            "int8_out_of_range",
            "uint16_negative",
            "qint16_out_of_range",
        ],
    )
    def test_rejected_with_reason(self, value, message):
        with pytest.raises(DecodeError, match=message):
            single_output(value)

    def test_no_dims_with_many_values_is_1d(self):
        decoded = single_output(
            dtype_field(core.DT_INT32) + packed_varints(5, [1, 2, 3])
        )

        assert decoded.shape == (3,)

    def test_no_dims_with_one_value_is_0d(self):
        decoded = single_output(
            dtype_field(core.DT_INT32) + shape() + packed_varints(5, [4])
        )

        assert decoded.shape == ()
        assert decoded == 4

    def test_no_dims_no_values_is_empty_1d(self):
        decoded = single_output(dtype_field(core.DT_DOUBLE))

        assert decoded.shape == (0,)
        assert decoded.dtype == np.float64

    def test_zero_size_with_large_dims(self):
        decoded = single_output(dtype_field(core.DT_FLOAT) + shape(0, 2**40))

        assert decoded.shape == (0, 2**40)

    def test_values_of_other_fields_ignored(self):
        body = (
            dtype_field(core.DT_FLOAT)
            + packed_varints(5, [1, 2])
            + packed_floats(3, [7.0])
        )

        assert single_output(body) == 7.0

    def test_error_in_torch_names_index(self):
        body = length_field(
            1, dtype_field(core.DT_INT32) + packed_varints(5, [1])
        ) + length_field(1, dtype_field(core.DT_HALF))

        with pytest.raises(DecodeError, match="output 1 has dtype DT_HALF"):
            core.decode_torch_response(body)

    def test_error_in_torch_map_names_key(self):
        body = length_field(
            2, entry("probs", dtype_field(core.DT_UINT8) + packed_varints(5, [256]))
        )

        with pytest.raises(DecodeError, match="map output 'probs' has value 256"):
            core.decode_torch_response(body)


def valid_bodies() -> list[bytes]:
    """Return one valid body per decoder, in DECODERS order."""
    tensors = {
        "f": np.arange(6, dtype=np.float32).reshape(2, 3),
        "i": np.array([-1, 2**40], np.int64),
        "s": np.array([b"a\x00", b""], object),
        "b": np.array([True, False]),
    }
    torch_tensors = {k: v for k, v in tensors.items() if k != "b"}
    return [
        core.encode_tf_response(tensors),
        core.encode_tf_request("sig", tensors, ["f"]),
        core.encode_torch_response(list(torch_tensors.values()), torch_tensors),
        core.encode_torch_request(
            list(torch_tensors.values()), torch_tensors, [0, -1], 5
        ),
    ]


class TestTruncationAndNoise:
    @pytest.mark.parametrize("index", range(4), ids=DECODER_IDS)
    def test_every_truncation_raises_decode_error_or_decodes(self, index):
        decode = DECODERS[index]
        body = valid_bodies()[index]
        outcomes = {"error": 0, "decoded": 0}

        for cut in range(len(body)):
            try:
                decode(body[:cut])
            except DecodeError:
                outcomes["error"] += 1
            else:
                outcomes["decoded"] += 1

        assert outcomes["error"] > len(body) // 2
        assert outcomes["decoded"] >= 1  # the empty prefix, at least

    @pytest.mark.parametrize("index", range(4), ids=DECODER_IDS)
    def test_prefix_google_rejects_is_rejected(self, pb, index):
        decode = DECODERS[index]
        body = valid_bodies()[index]
        message_type = [
            pb.tf.PredictResponse,
            pb.tf.PredictRequest,
            pb.torch.PredictResponse,
            pb.torch.PredictRequest,
        ][index]
        rejected = 0

        for cut in range(len(body)):
            try:
                message_type.FromString(body[:cut])
            except GoogleDecodeError:
                rejected += 1
                with pytest.raises(DecodeError):
                    decode(body[:cut])

        assert rejected > 0

    @settings(max_examples=300, deadline=None)
    @given(data=st.binary(max_size=300))
    def test_random_bytes_only_decode_error(self, data):
        for decode in DECODERS:
            try:
                decode(data)
            except DecodeError:
                pass

    @settings(max_examples=200, deadline=None)
    @given(data=st.data())
    def test_mutated_bodies_only_decode_error(self, data):
        index = data.draw(st.integers(0, 3))
        body = bytearray(valid_bodies()[index])
        for _ in range(data.draw(st.integers(1, 4))):
            position = data.draw(st.integers(0, len(body) - 1))
            body[position] = data.draw(st.integers(0, 255))

        for decode in DECODERS:
            try:
                decode(bytes(body))
            except DecodeError:
                pass
