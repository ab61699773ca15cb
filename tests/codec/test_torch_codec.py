"""PyTorch PredictRequest/PredictResponse encoding and decoding."""

from __future__ import annotations

import numpy as np
import pytest
from codec_wire import length_field, packed_varints, shape, varint_field

from easfast import _core as core
from easfast.exceptions import DecodeError, EncodeError


class TestTorchRequest:
    def test_indexed_inputs_keep_order(self):
        inputs = [
            np.arange(6, dtype=np.float32).reshape(2, 3),
            np.array([-1, 2**40], dtype=np.int64),
            np.array([[1.5]], dtype=np.float64),
        ]

        listed, mapped, indexes, debug = core.decode_torch_request(
            core.encode_torch_request(inputs)
        )

        assert len(listed) == 3
        for decoded, array in zip(listed, inputs):
            assert decoded.dtype == array.dtype
            assert decoded.shape == array.shape
            np.testing.assert_array_equal(decoded, array)
        assert mapped == {}
        assert indexes == []
        assert debug == 0

    def test_named_inputs_round_trip(self):
        body = core.encode_torch_request(
            [],
            {
                "images": np.ones((1, 4), np.float32),
                "ids": np.arange(3, dtype=np.int32),
            },
        )

        listed, mapped, _, _ = core.decode_torch_request(body)

        assert listed == []
        assert list(mapped) == ["images", "ids"]
        np.testing.assert_array_equal(mapped["images"], np.ones((1, 4), np.float32))
        np.testing.assert_array_equal(mapped["ids"], np.arange(3, dtype=np.int32))

    def test_output_filter_and_debug_level(self):
        body = core.encode_torch_request(
            [np.zeros(1, np.float32)], output_filter=[0, 2, -1], debug_level=7
        )

        _, _, indexes, debug = core.decode_torch_request(body)

        assert indexes == [0, 2, -1]
        assert debug == 7

    @pytest.mark.parametrize("level", [1, -1, 2**31 - 1, -(2**31)])
    def test_debug_level_int32_range(self, pb, level):
        body = core.encode_torch_request([], debug_level=level)

        assert pb.torch.PredictRequest.FromString(body).debug_level == level
        assert core.decode_torch_request(body)[3] == level

    def test_google_reads_every_field(self, pb):
        body = core.encode_torch_request(
            [np.array([1.0, 2.0], np.float32)],
            {"m": np.array([3], np.int16)},
            output_filter=[1, -5],
            debug_level=3,
        )

        message = pb.torch.PredictRequest.FromString(body)

        assert len(message.inputs) == 1
        assert list(message.inputs[0].float_val) == [1.0, 2.0]
        assert message.inputs[0].dtype == core.DT_FLOAT
        assert list(message.map_inputs["m"].int_val) == [3]
        assert message.map_inputs["m"].dtype == core.DT_INT16
        assert list(message.output_filter) == [1, -5]
        assert message.debug_level == 3

    def test_google_request_decodes(self, pb):
        message = pb.torch.PredictRequest(debug_level=-2)
        message.output_filter.extend([4, -4])
        tensor = message.inputs.add(dtype=core.DT_INT64)
        tensor.array_shape.dim.extend([2])
        tensor.int64_val.extend([-7, 7])
        named = message.map_inputs["x"]
        named.dtype = core.DT_DOUBLE
        named.array_shape.dim.extend([1, 1])
        named.double_val.append(0.25)

        listed, mapped, indexes, debug = core.decode_torch_request(
            message.SerializeToString()
        )

        np.testing.assert_array_equal(listed[0], np.array([-7, 7], np.int64))
        assert mapped["x"].shape == (1, 1)
        assert mapped["x"][0, 0] == 0.25
        assert indexes == [4, -4]
        assert debug == -2

    def test_unpacked_output_filter_decodes(self):
        body = varint_field(2, 3) + varint_field(2, -1) + packed_varints(2, [9])

        assert core.decode_torch_request(body)[2] == [3, -1, 9]

    def test_output_filter_out_of_int32_rejected(self):
        with pytest.raises(
            EncodeError,
            match="output_filter index 2147483648 is outside the int32 range",
        ):
            core.encode_torch_request([], output_filter=[2**31])

    def test_output_filter_non_int_rejected(self):
        with pytest.raises(
            EncodeError, match="output_filter index must be an int, got str"
        ):
            core.encode_torch_request([], output_filter=["scores"])

    def test_debug_level_bool_rejected(self):
        with pytest.raises(EncodeError, match="debug_level must be an int, got bool"):
            core.encode_torch_request([], debug_level=True)

    def test_single_array_as_inputs_rejected(self):
        with pytest.raises(
            EncodeError,
            match="inputs must be a sequence of numpy arrays, got ndarray; wrap a single array in a list",
        ):
            core.encode_torch_request(np.zeros(3, np.float32))

    def test_mapping_as_inputs_rejected(self):
        with pytest.raises(
            EncodeError, match="inputs must be a sequence of numpy arrays, got dict"
        ):
            core.encode_torch_request({"x": np.zeros(3, np.float32)})

    def test_indexed_error_names_position(self):
        with pytest.raises(EncodeError, match="input 1 has dtype float16"):
            core.encode_torch_request(
                [np.zeros(1, np.float32), np.zeros(1, np.float16)]
            )


class TestTorchBool:
    def test_bool_input_rejected_without_convert(self):
        with pytest.raises(
            EncodeError,
            match=r"input 0 is bool, but the PyTorch schema has no bool_val field; cast with arr.astype\(np.uint8\), or pass convert=True",
        ):
            core.encode_torch_request([np.array([True])])

    def test_bool_map_input_rejected_without_convert(self):
        with pytest.raises(EncodeError, match="map input 'flags' is bool"):
            core.encode_torch_request([], {"flags": np.array([True])})

    def test_convert_sends_bool_as_uint8(self, pb):
        body = core.encode_torch_request([np.array([True, False, True])], convert=True)

        message = pb.torch.PredictRequest.FromString(body)
        assert message.inputs[0].dtype == core.DT_UINT8
        assert list(message.inputs[0].int_val) == [1, 0, 1]
        decoded = core.decode_torch_request(body)[0][0]
        assert decoded.dtype == np.uint8
        np.testing.assert_array_equal(decoded, [1, 0, 1])

    def test_bool_response_rejected(self):
        with pytest.raises(EncodeError, match="output 0 is bool"):
            core.encode_torch_response([np.array([True])])

    def test_dt_bool_output_reads_int_val(self):
        array = shape(3) + varint_field(1, core.DT_BOOL) + packed_varints(5, [0, 1, 2])

        outputs, _ = core.decode_torch_response(length_field(1, array))

        assert outputs[0].dtype == np.bool_
        np.testing.assert_array_equal(outputs[0], [False, True, True])

    def test_dt_bool_ignores_high_bits_of_int_val(self):
        # int_val is int32, so 2**32 reads as 0 and therefore False.
        array = varint_field(1, core.DT_BOOL) + packed_varints(5, [2**32])

        outputs, _ = core.decode_torch_response(length_field(1, array))

        assert outputs[0].shape == ()
        assert not outputs[0]


class TestTorchResponse:
    def test_indexed_and_named_outputs(self):
        scores = np.random.default_rng(1).random((2, 10), dtype=np.float32)
        classes = np.array([3, 7], dtype=np.int64)

        outputs, named = core.decode_torch_response(
            core.encode_torch_response([scores, classes], {"scores": scores})
        )

        np.testing.assert_array_equal(outputs[0], scores)
        np.testing.assert_array_equal(outputs[1], classes)
        np.testing.assert_array_equal(named["scores"], scores)
        assert not outputs[0].flags.writeable
        assert not named["scores"].flags.writeable

    def test_google_response_decodes(self, pb):
        message = pb.torch.PredictResponse()
        first = message.outputs.add(dtype=core.DT_FLOAT)
        first.array_shape.dim.extend([2])
        first.float_val.extend([0.5, -0.5])
        named = message.map_outputs["classes"]
        named.dtype = core.DT_INT32
        named.array_shape.dim.extend([1])
        named.int_val.append(-3)

        outputs, mapped = core.decode_torch_response(message.SerializeToString())

        np.testing.assert_array_equal(outputs[0], [0.5, -0.5])
        np.testing.assert_array_equal(mapped["classes"], [-3])

    def test_google_reads_response(self, pb):
        body = core.encode_torch_response(
            [np.array([[1, 2]], np.uint16)], {"s": np.array([b"a\x00"], object)}
        )

        message = pb.torch.PredictResponse.FromString(body)

        assert list(message.outputs[0].int_val) == [1, 2]
        assert list(message.outputs[0].array_shape.dim) == [1, 2]
        assert list(message.map_outputs["s"].string_val) == [b"a\x00"]

    def test_bool_val_field_is_unknown_in_torch(self):
        # Field 8 is bool_val only in the TF schema, so here it is skipped and
        # the DT_BOOL tensor has no values: a count mismatch.
        array = shape(1) + varint_field(1, core.DT_BOOL) + packed_varints(8, [1])

        with pytest.raises(
            DecodeError,
            match=r"declares shape \(1,\) \(1 values\) but carries 0 int_val values",
        ):
            core.decode_torch_response(length_field(1, array))

    def test_empty_response(self):
        assert core.decode_torch_response(b"") == ([], {})
        assert core.encode_torch_response([]) == b""
