"""Multi-head self-attention with the original's separate Q/K/V/output [H,H] kernels."""

import math

import keras
from keras import ops

from albert_tf.layers.dense import AlbertDense

# The original adds (1 - mask) * -10000 to the scores; kept for exact parity.
_MASK_PENALTY = -10000.0


@keras.saving.register_keras_serializable(package="albert_tf")
class AlbertSelfAttention(keras.layers.Layer):
    """Scaled dot-product self-attention over `num_heads` heads.

    Kernels are plain [H, H] matrices (`query`, `key`, `value`, `output_dense`), so the
    original `attention_1/self/{query,key,value}` and `attention_1/output/dense`
    variables map one to one. Call with `x` [batch, seq, H] and `attention_mask`
    (int or float [batch, seq], 1 = real token); returns [batch, seq, H]. Scores are
    softmaxed in float32 under mixed precision.
    """

    def __init__(self, hidden_size, num_heads, initializer_range=0.02, dropout_rate=0.0, **kwargs):
        super().__init__(**kwargs)
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size={hidden_size} is not divisible by num_heads={num_heads}")
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.head_size = hidden_size // num_heads
        self.initializer_range = initializer_range
        self.dropout_rate = dropout_rate

        def dense(name):
            return AlbertDense(
                hidden_size,
                kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
                dtype=self.dtype_policy,
                name=name,
            )

        self.query = dense("query")
        self.key = dense("key")
        self.value = dense("value")
        self.output_dense = dense("output_dense")
        self.dropout = keras.layers.Dropout(dropout_rate, name="dropout")

    def build(self, x_shape, attention_mask_shape=None):
        for layer in (self.query, self.key, self.value, self.output_dense):
            layer.build((None, None, self.hidden_size))
        self.built = True

    def _split_heads(self, x, batch, seq):
        x = ops.reshape(x, (batch, seq, self.num_heads, self.head_size))
        return ops.transpose(x, (0, 2, 1, 3))  # [B, N, T, D]

    def call(self, x, attention_mask, training=None):
        batch, seq = ops.shape(x)[0], ops.shape(x)[1]
        # Dense layers on [B*T, H]: a rank-3 input makes Keras emit a broadcasting
        # BatchMatMul, which runs about 1.8x slower on CPU than the 2-D MatMul
        # (benchmarks/encoder_ceiling.py --parts).
        flat = ops.reshape(x, (-1, self.hidden_size))
        q = self._split_heads(self.query(flat), batch, seq)
        k = self._split_heads(self.key(flat), batch, seq)
        v = self._split_heads(self.value(flat), batch, seq)
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))  # [B, N, T, T]
        scores = ops.cast(scores, "float32") * (1.0 / math.sqrt(self.head_size))
        # A reshape, not [:, None, None, :]: TensorFlow Lite has no StridedSlice with new axes
        # at dynamic shapes (albert-export --format=tflite).
        mask = ops.reshape(ops.cast(attention_mask, "float32"), (batch, 1, 1, seq))
        scores = scores + (1.0 - mask) * _MASK_PENALTY
        probs = ops.cast(ops.softmax(scores, axis=-1), self.compute_dtype)
        probs = self.dropout(probs, training=training)
        context = ops.transpose(ops.matmul(probs, v), (0, 2, 1, 3))  # [B, T, N, D]
        context = ops.reshape(context, (-1, self.hidden_size))
        return ops.reshape(self.output_dense(context), (batch, seq, self.hidden_size))


    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_size=self.hidden_size,
            num_heads=self.num_heads,
            initializer_range=self.initializer_range,
            dropout_rate=self.dropout_rate,
        )
        return config
