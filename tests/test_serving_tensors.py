"""albert_tf.serving.tensors: numpy ↔ TensorProto as TF Serving answers (typed fields)."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from albert_tf.serving.tensors import to_tensor_proto

RNG = np.random.default_rng(0)
ARRAYS = {
    "float32": np.concatenate([RNG.standard_normal(100), [0.1, 1e-40, 3.4e38, -0.0]]).astype(np.float32).reshape(8, 13),
    "float64": RNG.standard_normal((3, 5)),
    "int32": RNG.integers(-2**31, 2**31, size=(4, 6)).astype(np.int32),
    "int64": np.array([[-2**63, 2**63 - 1, 7]], np.int64),
    "uint8": np.arange(256, dtype=np.uint8).reshape(16, 16),
    "bool": np.array([True, False, True]),
    "bfloat16": RNG.standard_normal(9).astype(tf.bfloat16.as_numpy_dtype).reshape(3, 3),
    "float16": RNG.standard_normal(7).astype(np.float16),
    "string": np.array([b"a", "é".encode(), b""], object),
}


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_typed_fields_round_trip_exactly_as_tensorflow_reads_them(name):
    """Each dtype's typed field, read back by TensorFlow's own make_ndarray, gives the
    array bit for bit (float32 through Python floats included), at its shape."""
    array = ARRAYS[name]
    proto = to_tensor_proto(array)
    assert not proto.tensor_content  # typed fields, as TF Serving answers
    back = tf.make_ndarray(proto)
    assert back.shape == array.shape and back.dtype == array.dtype
    if array.dtype == object:
        assert back.tolist() == array.tolist()
    else:
        np.testing.assert_array_equal(back.view(np.uint8), np.ascontiguousarray(array).view(np.uint8))


def test_float32_field_serializes_as_tensorflows_own_proto():
    array = ARRAYS["float32"]
    ours = to_tensor_proto(array)
    reference = tf.make_tensor_proto(array)  # tensor_content: the same values, another field
    assert ours.dtype == reference.dtype == types_pb2.DT_FLOAT
    assert ours.tensor_shape == reference.tensor_shape
    assert np.frombuffer(reference.tensor_content, np.float32).tolist() == list(ours.float_val)
    assert to_tensor_proto(array, tensor_content=True) == reference
