"""DT_STRING tensors: bytes_, str_ and object arrays in, object arrays of bytes out."""

from __future__ import annotations

import numpy as np
import pytest
from codec_wire import entry, length_field, shape, tf_response, varint_field

from easfast import _core as core
from easfast.exceptions import DecodeError, EncodeError

EVERY_BYTE = bytes(range(256))


def round_trip(array: np.ndarray) -> np.ndarray:
    return core.decode_tf_response(core.encode_tf_response({"s": array}))["s"]


class TestStringEncode:
    def test_object_bytes_keep_every_byte(self, pb):
        values = [EVERY_BYTE, b"", b"\x00", b"tail\x00\x00", b"\x00head"]
        array = np.array(values, dtype=object)

        body = core.encode_tf_response({"s": array})

        assert (
            list(pb.tf.PredictResponse.FromString(body).outputs["s"].string_val)
            == values
        )
        decoded = core.decode_tf_response(body)["s"]
        assert decoded.dtype == object
        assert decoded.tolist() == values

    def test_object_str_sent_as_utf8(self, pb):
        array = np.array(["héllo", "图像", "", "nul\x00"], dtype=object)

        body = core.encode_tf_response({"s": array})

        assert list(pb.tf.PredictResponse.FromString(body).outputs["s"].string_val) == [
            "héllo".encode(),
            "图像".encode(),
            b"",
            b"nul\x00",
        ]

    def test_mixed_bytes_and_str_objects(self):
        decoded = round_trip(
            np.array([b"a", "b", np.bytes_(b"c"), np.str_("d")], object)
        )

        assert decoded.tolist() == [b"a", b"b", b"c", b"d"]

    def test_unicode_array_sent_as_utf8(self):
        decoded = round_trip(np.array([["ä", "bc"], ["", "€"]]))

        assert decoded.shape == (2, 2)
        assert decoded.tolist() == [[b"\xc3\xa4", b"bc"], [b"", b"\xe2\x82\xac"]]

    def test_bytes_array_keeps_inner_nul(self):
        decoded = round_trip(np.array([b"a\x00b", b"\x00c"], dtype="S4"))

        assert decoded.tolist() == [b"a\x00b", b"\x00c"]

    def test_bytes_array_drops_trailing_nul(self):
        # numpy reads an S element without its trailing NULs, so they are not
        # sent. The same value in an object array keeps them.
        array = np.array([b"ab\x00\x00"], dtype="S4")

        assert round_trip(array).tolist() == [b"ab"]
        assert round_trip(array.astype(object)).tolist() == [b"ab"]
        assert round_trip(np.array([b"ab\x00\x00"], object)).tolist() == [b"ab\x00\x00"]

    def test_zero_d_string(self):
        decoded = round_trip(np.array(b"only", dtype=object))

        assert decoded.shape == ()
        assert decoded[()] == b"only"

    def test_zero_size_string_tensor(self):
        decoded = round_trip(np.empty((0, 3), dtype=object))

        assert decoded.shape == (0, 3)
        assert decoded.dtype == object

    def test_string_fortran_order_sent_in_c_order(self):
        array = np.asfortranarray(np.array([[b"a", b"b"], [b"c", b"d"]], dtype=object))

        assert round_trip(array).tolist() == [[b"a", b"b"], [b"c", b"d"]]

    def test_forced_string_code(self):
        decoded = round_trip((core.DT_STRING, np.array(["x"])))

        assert decoded.tolist() == [b"x"]

    def test_forced_string_code_on_numbers_rejected(self):
        with pytest.raises(
            EncodeError,
            match="output 's' has dtype float32 but DT_STRING needs bytes, str or object values",
        ):
            core.encode_tf_response({"s": (core.DT_STRING, np.zeros(1, np.float32))})

    def test_non_string_object_rejected_with_index(self):
        array = np.array([[b"a", b"b"], [b"c", 3.5]], dtype=object)

        with pytest.raises(
            EncodeError,
            match=r"output 's' element \(1, 1\) is float; a string tensor needs bytes or str elements",
        ):
            core.encode_tf_response({"s": array})

    def test_list_element_error_names_index(self):
        good = np.array([b"a"], dtype=object)
        bad = np.array([b"a", 2], dtype=object)

        with pytest.raises(
            EncodeError, match=r"^output 1 element \(1,\) is int; a string tensor"
        ):
            core.encode_torch_response([good, bad])

    def test_lone_surrogate_element_rejected(self):
        array = np.array(["ok", "\ud800"], dtype=object)

        with pytest.raises(
            EncodeError, match=r"output 's' element \(1,\) is not valid Unicode"
        ):
            core.encode_tf_response({"s": array})

    def test_torch_strings_round_trip(self):
        array = np.array([b"\x00\xff", "é"], dtype=object)

        outputs, named = core.decode_torch_response(
            core.encode_torch_response([array], {"n": array})
        )

        assert outputs[0].tolist() == [b"\x00\xff", "é".encode()]
        assert named["n"].tolist() == [b"\x00\xff", "é".encode()]


class TestStringDecode:
    def test_google_strings_decode_as_bytes(self, pb):
        message = pb.tf.PredictResponse()
        value = message.outputs["s"]
        value.dtype = core.DT_STRING
        value.array_shape.dim.extend([1, 3])
        value.string_val.extend([EVERY_BYTE, b"", b"\x00\x00"])

        decoded = core.decode_tf_response(message.SerializeToString())["s"]

        assert decoded.shape == (1, 3)
        assert decoded.tolist() == [[EVERY_BYTE, b"", b"\x00\x00"]]
        assert all(type(item) is bytes for item in decoded.ravel())

    def test_strings_across_split_value(self):
        # protobuf merges the two pieces of the map value: the strings join.
        first = varint_field(1, core.DT_STRING) + shape(3) + length_field(6, b"a")
        second = length_field(6, b"b") + length_field(6, b"c\x00")

        decoded = core.decode_tf_response(tf_response(entry("s", first, second)))["s"]

        assert decoded.tolist() == [b"a", b"b", b"c\x00"]

    def test_string_count_mismatch_rejected(self):
        body = tf_response(
            entry(
                "s", varint_field(1, core.DT_STRING) + shape(2) + length_field(6, b"a")
            )
        )

        with pytest.raises(
            DecodeError,
            match=r"output 's' declares shape \(2,\) \(2 values\) but carries 1 string_val values",
        ):
            core.decode_tf_response(body)
