"""Any memory layout in, values in C order out; the zero-copy paths; size limits."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from easfast import _core as core
from easfast.exceptions import EncodeError

DTYPES = ["f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "?"]


def base_array(dtype: str) -> np.ndarray:
    """Return a 4x6 array of distinct values (alternating for bool)."""
    values = np.arange(-12, 12).reshape(4, 6)
    if dtype == "?":
        return values % 3 == 0
    if dtype[0] == "u":
        values = values + 12
    return values.astype(dtype)


LAYOUTS = {
    "fortran": lambda a: np.asfortranarray(a),
    "column_slice": lambda a: a[:, 1:5],
    "step_slice": lambda a: a[::2, ::3],
    "negative_strides": lambda a: a[::-1, ::-2],
    "transposed": lambda a: a.T,
    "broadcast_rows": lambda a: np.broadcast_to(a[0], (3, 6)),
    "broadcast_scalar": lambda a: np.broadcast_to(a[1, 1], (2, 3, 4)),
    "big_endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "big_endian_fortran": lambda a: np.asfortranarray(
        a.astype(a.dtype.newbyteorder(">"))
    ),
    "zero_d": lambda a: a[2, 3].reshape(()),
    "zero_rows": lambda a: a[:0],
    "zero_middle": lambda a: a.reshape(4, 1, 6)[:, :0, :],
    "new_axis": lambda a: a[:, None, 2],
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", list(LAYOUTS), ids=list(LAYOUTS))
class TestLayouts:
    def test_values_sent_in_c_order(self, pb, layout, dtype):
        array = LAYOUTS[layout](base_array(dtype))

        body = core.encode_tf_response({"y": array})

        message = pb.tf.PredictResponse.FromString(body).outputs["y"]
        assert list(message.array_shape.dim) == list(array.shape)
        field = {
            "f": message.float_val if array.dtype.itemsize == 4 else message.double_val,
            "i": message.int64_val if array.dtype.itemsize == 8 else message.int_val,
            "u": message.int_val,
            "b": message.bool_val,
        }[array.dtype.kind]
        assert list(field) == np.ascontiguousarray(array).ravel().tolist()

    def test_round_trip_keeps_shape_and_values(self, layout, dtype):
        array = LAYOUTS[layout](base_array(dtype))

        decoded = core.decode_tf_response(core.encode_tf_response({"y": array}))["y"]

        assert decoded.shape == array.shape
        assert decoded.dtype == array.dtype.newbyteorder("=")
        np.testing.assert_array_equal(decoded, array)


class TestZeroCopy:
    def test_float_encode_allocates_body_once(self):
        array = np.ones(1 << 21, dtype=np.float32)  # 8 MiB

        tracemalloc.start()
        try:
            body = core.encode_tf_response({"y": array})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        assert len(body) > array.nbytes
        # One body-sized allocation; an intermediate copy would double it.
        assert peak < array.nbytes + (1 << 16)

    def test_float_decode_allocates_no_values(self):
        body = core.encode_tf_response({"y": np.ones(1 << 21, dtype=np.float32)})

        tracemalloc.start()
        try:
            decoded = core.decode_tf_response(body)["y"]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        assert decoded.size == 1 << 21
        assert peak < 1 << 16

    def test_fortran_float_copied_once(self):
        array = np.asfortranarray(np.ones((1024, 1024), dtype=np.float32))

        tracemalloc.start()
        try:
            core.encode_tf_response({"y": array})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        # The C-order copy and the body, nothing more.
        assert peak < 2 * array.nbytes + (1 << 16)


class TestMessageSizeLimit:
    def test_float_broadcast_over_2gib_rejected_before_copy(self):
        huge = np.broadcast_to(np.float32(1), (2**29 + 1,))

        tracemalloc.start()
        try:
            with pytest.raises(
                EncodeError,
                match=r"the TensorFlow request would take \d+ bytes, over protobuf's 2 GiB message limit; split the batch",
            ):
                core.encode_tf_request("", {"x": huge})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        assert peak < 1 << 20

    def test_int64_broadcast_over_2gib_rejected(self):
        huge = np.broadcast_to(np.int64(0), (2**31,))

        with pytest.raises(EncodeError, match="over protobuf's 2 GiB message limit"):
            core.encode_torch_request([huge])

    def test_exact_size_over_limit_rejected(self):
        # 2100 references to one 1 MiB string: small in memory, 2.2 GB on the wire.
        big = b"x" * (1 << 20)
        array = np.empty(2100, dtype=object)
        array[:] = [big] * 2100

        with pytest.raises(
            EncodeError, match=r"the TensorFlow response would take 22\d{8} bytes"
        ):
            core.encode_tf_response({"s": array})

    def test_sum_of_inputs_counts(self):
        half = np.broadcast_to(np.float32(0), (2**28,))

        with pytest.raises(EncodeError, match="over protobuf's 2 GiB message limit"):
            core.encode_tf_request("", {"a": half, "b": half})

    def test_float16_convert_checked_before_cast(self):
        huge = np.broadcast_to(np.float16(1), (2**29 + 1,))

        with pytest.raises(EncodeError, match="over protobuf's 2 GiB message limit"):
            core.encode_tf_request("", {"x": huge}, convert=True)
