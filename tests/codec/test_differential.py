"""easfast against Google's protobuf runtime, over dtypes, shapes and layouts.

Properties checked with hypothesis:

* bytes easfast encodes parse with Google's runtime to the same dtype code,
  dims and values (in C order);
* bytes Google encodes, packed or unpacked, and bytes that mix both forms and
  split one tensor into several merged pieces, decode with easfast to the
  same arrays that Google's runtime reads from them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from codec_wire import length_field
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from easfast import _core as core

SETTINGS = settings(max_examples=200, deadline=None)

NUMERIC_DTYPES = ["f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "?"]
VALUE_FIELDS = {
    "f4": "float_val",
    "f8": "double_val",
    "i1": "int_val",
    "i2": "int_val",
    "i4": "int_val",
    "i8": "int64_val",
    "u1": "int_val",
    "u2": "int_val",
    "?": "bool_val",
    "O": "string_val",
}
LAYOUTS = [
    "c",
    "fortran",
    "reversed",
    "strided",
    "broadcast",
    "big_endian",
    "transposed",
]
names = st.text(min_size=0, max_size=8)


def field_name(array: np.ndarray) -> str:
    dt = array.dtype
    if dt.kind in "bO":
        return VALUE_FIELDS["?" if dt.kind == "b" else "O"]
    return VALUE_FIELDS[f"{dt.kind}{dt.itemsize}"]


def apply_layout(array: np.ndarray, layout: str) -> np.ndarray:
    """Return an array with the same values as ``array`` in another memory layout."""
    if layout == "fortran":
        return np.asfortranarray(array)
    if layout == "reversed" and array.ndim:
        return np.ascontiguousarray(array[::-1])[::-1]
    if layout == "strided" and array.ndim:
        return np.repeat(array, 2, axis=-1)[..., ::2]
    if layout == "broadcast":
        return np.broadcast_to(array, (2, *array.shape))
    if layout == "big_endian" and array.dtype.kind in "fiu":
        return array.astype(array.dtype.newbyteorder(">"))
    if layout == "transposed":
        return np.ascontiguousarray(array.T).T
    return array


@st.composite
def numeric_arrays(draw: Any, dtypes: list[str] = NUMERIC_DTYPES) -> np.ndarray:
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
    array = draw(hnp.arrays(dtype, shape))
    return apply_layout(array, draw(st.sampled_from(LAYOUTS)))


@st.composite
def string_arrays(draw: Any) -> np.ndarray:
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
    count = int(np.prod(shape))
    values = draw(st.lists(st.binary(max_size=12), min_size=count, max_size=count))
    array = np.empty(count, dtype=object)
    array[:] = values
    return apply_layout(
        array.reshape(shape), draw(st.sampled_from(["c", "fortran", "reversed"]))
    )


tensors = st.one_of(numeric_arrays(), string_arrays())
torch_tensors = st.one_of(numeric_arrays(NUMERIC_DTYPES[:-1]), string_arrays())


def fill(proto: Any, array: np.ndarray) -> None:
    """Write ``array`` into a Google ArrayProto: code, dims, values in C order."""
    proto.dtype = core.dtype_code(array.dtype)
    proto.array_shape.dim.extend(array.shape)
    getattr(proto, field_name(array)).extend(np.asarray(array).ravel().tolist())


def assert_proto_equals(proto: Any, array: np.ndarray) -> None:
    assert proto.dtype == core.dtype_code(array.dtype)
    assert list(proto.array_shape.dim) == list(array.shape)
    values = list(getattr(proto, field_name(array)))
    expected = np.asarray(array).ravel()
    if array.dtype.kind == "O":
        assert values == expected.tolist()
    else:
        np.testing.assert_array_equal(np.array(values, dtype=array.dtype), expected)


def assert_decoded_equals(decoded: np.ndarray, array: np.ndarray) -> None:
    assert decoded.shape == array.shape
    assert decoded.dtype == array.dtype.newbyteorder("=")
    if array.dtype.kind == "O":
        assert decoded.tolist() == array.tolist()
    else:
        np.testing.assert_array_equal(decoded, array)


class TestEasfastBytesParseWithGoogle:
    @SETTINGS
    @given(
        signature=names,
        inputs=st.dictionaries(names, tensors, max_size=3),
        output_filter=st.lists(names, max_size=3),
    )
    def test_tf_request(self, pb, signature, inputs, output_filter):
        body = core.encode_tf_request(signature, inputs, output_filter)

        message = pb.tf.PredictRequest.FromString(body)

        assert message.signature_name == signature
        assert list(message.output_filter) == output_filter
        assert set(message.inputs) == set(inputs)
        for name, array in inputs.items():
            assert_proto_equals(message.inputs[name], array)

    @SETTINGS
    @given(outputs=st.dictionaries(names, tensors, max_size=3))
    def test_tf_response(self, pb, outputs):
        message = pb.tf.PredictResponse.FromString(core.encode_tf_response(outputs))

        assert set(message.outputs) == set(outputs)
        for name, array in outputs.items():
            assert_proto_equals(message.outputs[name], array)

    @SETTINGS
    @given(
        inputs=st.lists(torch_tensors, max_size=3),
        map_inputs=st.dictionaries(names, torch_tensors, max_size=2),
        output_filter=st.lists(st.integers(-(2**31), 2**31 - 1), max_size=3),
        debug_level=st.integers(-(2**31), 2**31 - 1),
    )
    def test_torch_request(self, pb, inputs, map_inputs, output_filter, debug_level):
        body = core.encode_torch_request(inputs, map_inputs, output_filter, debug_level)

        message = pb.torch.PredictRequest.FromString(body)

        assert len(message.inputs) == len(inputs)
        for proto, array in zip(message.inputs, inputs):
            assert_proto_equals(proto, array)
        assert set(message.map_inputs) == set(map_inputs)
        for name, array in map_inputs.items():
            assert_proto_equals(message.map_inputs[name], array)
        assert list(message.output_filter) == output_filter
        assert message.debug_level == debug_level

    @SETTINGS
    @given(
        outputs=st.lists(torch_tensors, max_size=3),
        map_outputs=st.dictionaries(names, torch_tensors, max_size=2),
    )
    def test_torch_response(self, pb, outputs, map_outputs):
        body = core.encode_torch_response(outputs, map_outputs)

        message = pb.torch.PredictResponse.FromString(body)

        assert len(message.outputs) == len(outputs)
        for proto, array in zip(message.outputs, outputs):
            assert_proto_equals(proto, array)
        for name, array in map_outputs.items():
            assert_proto_equals(message.map_outputs[name], array)


class TestGoogleBytesDecodeWithEasfast:
    @SETTINGS
    @given(outputs=st.dictionaries(names, tensors, max_size=3), packed=st.booleans())
    def test_tf_response(self, pb, outputs, packed):
        message = pb.tf.PredictResponse() if packed else pb.unpacked.TFPredictResponse()
        for name, array in outputs.items():
            fill(message.outputs[name], array)

        decoded = core.decode_tf_response(message.SerializeToString())

        assert set(decoded) == set(outputs)
        for name, array in outputs.items():
            assert_decoded_equals(decoded[name], array)

    @SETTINGS
    @given(
        signature=names,
        inputs=st.dictionaries(names, tensors, max_size=3),
        output_filter=st.lists(names, max_size=3),
        packed=st.booleans(),
    )
    def test_tf_request(self, pb, signature, inputs, output_filter, packed):
        message = pb.tf.PredictRequest() if packed else pb.unpacked.TFPredictRequest()
        message.signature_name = signature
        message.output_filter.extend(output_filter)
        for name, array in inputs.items():
            fill(message.inputs[name], array)

        decoded_signature, decoded, decoded_filter = core.decode_tf_request(
            message.SerializeToString()
        )

        assert decoded_signature == signature
        assert decoded_filter == output_filter
        for name, array in inputs.items():
            assert_decoded_equals(decoded[name], array)

    @SETTINGS
    @given(
        inputs=st.lists(torch_tensors, max_size=3),
        map_inputs=st.dictionaries(names, torch_tensors, max_size=2),
        output_filter=st.lists(st.integers(-(2**31), 2**31 - 1), max_size=3),
        debug_level=st.integers(-(2**31), 2**31 - 1),
        packed=st.booleans(),
    )
    def test_torch_request(
        self, pb, inputs, map_inputs, output_filter, debug_level, packed
    ):
        message = (
            pb.torch.PredictRequest() if packed else pb.unpacked.TorchPredictRequest()
        )
        for array in inputs:
            fill(message.inputs.add(), array)
        for name, array in map_inputs.items():
            fill(message.map_inputs[name], array)
        message.output_filter.extend(output_filter)
        message.debug_level = debug_level

        listed, mapped, indexes, level = core.decode_torch_request(
            message.SerializeToString()
        )

        assert len(listed) == len(inputs)
        for decoded, array in zip(listed, inputs):
            assert_decoded_equals(decoded, array)
        for name, array in map_inputs.items():
            assert_decoded_equals(mapped[name], array)
        assert indexes == output_filter
        assert level == debug_level

    @SETTINGS
    @given(
        outputs=st.lists(torch_tensors, max_size=3),
        map_outputs=st.dictionaries(names, torch_tensors, max_size=2),
        packed=st.booleans(),
    )
    def test_torch_response(self, pb, outputs, map_outputs, packed):
        message = (
            pb.torch.PredictResponse() if packed else pb.unpacked.TorchPredictResponse()
        )
        for array in outputs:
            fill(message.outputs.add(), array)
        for name, array in map_outputs.items():
            fill(message.map_outputs[name], array)

        listed, mapped = core.decode_torch_response(message.SerializeToString())

        for decoded, array in zip(listed, outputs):
            assert_decoded_equals(decoded, array)
        for name, array in map_outputs.items():
            assert_decoded_equals(mapped[name], array)


class TestMixedAndSplitPieces:
    @SETTINGS
    @given(array=tensors, data=st.data())
    def test_split_tensor_decodes_like_google(self, pb, array, data):
        # Concatenated ArrayProto messages merge and their repeated fields
        # append. The values are cut into runs, each written packed or
        # unpacked, and the pieces are spread over several map-entry values.
        values = np.asarray(array).ravel().tolist()
        cuts = sorted(data.draw(st.lists(st.integers(0, len(values)), max_size=4)))
        head = pb.tf.ArrayProto(dtype=core.dtype_code(array.dtype))
        head.array_shape.dim.extend(array.shape)
        pieces = [head.SerializeToString()]
        for start, stop in zip([0, *cuts], [*cuts, len(values)]):
            module = pb.tf if data.draw(st.booleans()) else pb.unpacked
            piece = module.ArrayProto()
            getattr(piece, field_name(array)).extend(values[start:stop])
            pieces.append(piece.SerializeToString())
        splits = sorted(
            data.draw(st.lists(st.integers(1, len(pieces) - 1), max_size=3))
        )
        groups = [
            b"".join(pieces[start:stop])
            for start, stop in zip([0, *splits], [*splits, len(pieces)])
        ]
        entry = length_field(1, b"t") + b"".join(length_field(2, g) for g in groups)
        body = length_field(1, entry)

        reference = pb.tf.PredictResponse.FromString(body).outputs["t"]
        decoded = core.decode_tf_response(body)["t"]

        assert_proto_equals(reference, array)
        assert_decoded_equals(decoded, array)
