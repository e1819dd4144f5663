"""One ALBERT attention + feed-forward block (post-LN), as `inner_group_{i}` of the original."""

import keras
from keras import ops

from albert_tf.config import LAYER_NORM_EPSILON
from albert_tf.layers.dense import AlbertDense
from albert_tf.layers.normalization import AlbertLayerNorm
from albert_tf.layers.activations import get_activation
from albert_tf.layers.attention import AlbertSelfAttention


@keras.saving.register_keras_serializable(package="albert_tf")
class AlbertTransformerBlock(keras.layers.Layer):
    """x → LN(x + drop(attn(x))) = a → LN(a + drop(W2·act(W1·a))).

    Sublayers (original names in brackets): `attention` [attention_1/...],
    `attention_layer_norm` [LayerNorm], `ffn_intermediate` [ffn_1/intermediate/dense],
    `ffn_output` [ffn_1/intermediate/output/dense], `output_layer_norm` [LayerNorm_1].
    Call with `x` [batch, seq, H] and `attention_mask` [batch, seq]; returns float32
    [batch, seq, H] (the LayerNorm output; residual sums and LayerNorms run in float32).
    """

    def __init__(
        self,
        hidden_size,
        num_heads,
        intermediate_size,
        hidden_act="gelu",
        initializer_range=0.02,
        hidden_dropout_rate=0.0,
        attention_dropout_rate=0.0,
        layer_norm_epsilon=LAYER_NORM_EPSILON,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.activation = get_activation(hidden_act)
        self.initializer_range = initializer_range
        self.hidden_dropout_rate = hidden_dropout_rate
        self.attention_dropout_rate = attention_dropout_rate
        self.layer_norm_epsilon = layer_norm_epsilon

        init = keras.initializers.TruncatedNormal(stddev=initializer_range)
        self.attention = AlbertSelfAttention(
            hidden_size,
            num_heads,
            initializer_range=initializer_range,
            dropout_rate=attention_dropout_rate,
            dtype=self.dtype_policy,
            name="attention",
        )
        self.attention_dropout = keras.layers.Dropout(hidden_dropout_rate, name="attention_output_dropout")
        self.attention_layer_norm = AlbertLayerNorm(
            epsilon=layer_norm_epsilon, dtype="float32", name="attention_layer_norm"
        )
        self.ffn_intermediate = AlbertDense(
            intermediate_size, kernel_initializer=init, dtype=self.dtype_policy, name="ffn_intermediate"
        )
        self.ffn_output = AlbertDense(hidden_size, kernel_initializer=init, dtype=self.dtype_policy, name="ffn_output")
        self.ffn_dropout = keras.layers.Dropout(hidden_dropout_rate, name="ffn_output_dropout")
        self.output_layer_norm = AlbertLayerNorm(
            epsilon=layer_norm_epsilon, dtype="float32", name="output_layer_norm"
        )

    def build(self, x_shape, attention_mask_shape=None):
        hidden_shape = (None, None, self.hidden_size)
        self.attention.build(hidden_shape)
        self.attention_layer_norm.build(hidden_shape)
        self.ffn_intermediate.build(hidden_shape)
        self.ffn_output.build((None, None, self.intermediate_size))
        self.output_layer_norm.build(hidden_shape)
        self.built = True

    def call(self, x, attention_mask, training=None):
        attended = self.attention_dropout(self.attention(x, attention_mask, training=training), training=training)
        attended = self.attention_layer_norm(ops.cast(x, "float32") + ops.cast(attended, "float32"))
        # The FFN runs on [B*T, H] for the 2-D MatMul (see AlbertSelfAttention.call).
        flat = ops.reshape(attended, (-1, self.hidden_size))
        hidden = self.activation(self.ffn_intermediate(flat))
        ffn = ops.reshape(self.ffn_output(hidden), ops.shape(attended))
        ffn = self.ffn_dropout(ffn, training=training)
        return self.output_layer_norm(attended + ops.cast(ffn, "float32"))


    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_size=self.hidden_size,
            num_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            hidden_act=self.hidden_act,
            initializer_range=self.initializer_range,
            hidden_dropout_rate=self.hidden_dropout_rate,
            attention_dropout_rate=self.attention_dropout_rate,
            layer_norm_epsilon=self.layer_norm_epsilon,
        )
        return config
