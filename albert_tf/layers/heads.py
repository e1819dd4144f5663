"""Heads: masked-LM (tied to the word embeddings), sentence-order (also the classifier
head), and the SQuAD start/end span head."""

import keras
from keras import ops

from albert_tf.config import LAYER_NORM_EPSILON
from albert_tf.layers.dense import AlbertDense
from albert_tf.layers.normalization import AlbertLayerNorm
from albert_tf.layers.activations import get_activation


def gather_positions(sequence, positions):
    """Gathers `sequence` [B, T, H] at `positions` int [B, P]; returns [B, P, H]."""
    batch, seq_len, width = ops.shape(sequence)[0], ops.shape(sequence)[1], ops.shape(sequence)[2]
    offsets = ops.arange(batch, dtype="int32")[:, None] * seq_len
    flat_positions = ops.reshape(ops.cast(positions, "int32") + offsets, (-1,))
    flat_sequence = ops.reshape(sequence, (-1, width))
    gathered = ops.take(flat_sequence, flat_positions, axis=0)
    return ops.reshape(gathered, (batch, ops.shape(positions)[1], width))


@keras.saving.register_keras_serializable(package="albert_tf")
class AlbertMaskedLMHead(keras.layers.Layer):
    """MLM head: gather → dense(H→E) → activation → LayerNorm → x·Wᵀ + output_bias.

    W is the word-embedding matrix [V, E] of `embedding_layer` (an AlbertEmbedding),
    so input and output embeddings are tied as in the original `cls/predictions`.
    Call with `sequence_output` [B, T, H] and `masked_lm_positions` int32 [B, P];
    returns float32 logits [B, P, V].

    `embedding_layer` is a reference, not configuration: the owning model (e.g.
    AlbertPretrainer) passes it again when it is rebuilt from its config.
    """

    def __init__(
        self,
        embedding_layer,
        hidden_act="gelu",
        initializer_range=0.02,
        layer_norm_epsilon=LAYER_NORM_EPSILON,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.embedding_layer = embedding_layer
        self.hidden_act = hidden_act
        self.activation = get_activation(hidden_act)
        self.initializer_range = initializer_range
        self.layer_norm_epsilon = layer_norm_epsilon
        # The transform is as wide as the embedding layer's output: E officially, H in the
        # brightmart layout, whose logits then go back through the projection.
        self.transform_dense = AlbertDense(
            embedding_layer.output_size,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
            dtype=self.dtype_policy,
            name="transform_dense",
        )
        self.transform_layer_norm = AlbertLayerNorm(
            epsilon=layer_norm_epsilon, dtype="float32", name="transform_layer_norm"
        )

    def build(self, sequence_output_shape, masked_lm_positions_shape=None):
        self.transform_dense.build(tuple(sequence_output_shape))
        self.transform_layer_norm.build((None, None, self.embedding_layer.output_size))
        self.output_bias = self.add_weight(
            name="output_bias", shape=(self.embedding_layer.vocab_size,), initializer="zeros"
        )
        self.built = True

    def call(self, sequence_output, masked_lm_positions):
        x = gather_positions(sequence_output, masked_lm_positions)
        x = self.activation(self.transform_dense(x))
        x = ops.cast(self.transform_layer_norm(ops.cast(x, "float32")), self.compute_dtype)
        if self.embedding_layer.word_projection is not None:
            x = ops.matmul(x, ops.transpose(self.embedding_layer.word_projection))
        logits = ops.matmul(x, ops.transpose(self.embedding_layer.word_embeddings))
        return ops.cast(logits, "float32") + ops.cast(self.output_bias, "float32")


    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_act=self.hidden_act,
            initializer_range=self.initializer_range,
            layer_norm_epsilon=self.layer_norm_epsilon,
        )
        return config


@keras.saving.register_keras_serializable(package="albert_tf")
class AlbertSentenceOrderHead(keras.layers.Layer):
    """SOP head on the pooled output: logits = pooled · output_weightsᵀ + output_bias.

    With `num_classes` labels it is also the original run_classifier head
    (AlbertClassifier uses it that way).

    `output_weights` is stored [2, H] (out × in) like the original
    `cls/seq_relationship/output_weights`. Call with `pooled_output` [B, H];
    returns float32 logits [B, 2] (label 0 = sentences in order, 1 = swapped).
    """

    def __init__(self, hidden_size, initializer_range=0.02, num_classes=2, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.initializer_range = initializer_range
        self.num_classes = num_classes

    def build(self, input_shape=None):
        self.output_weights = self.add_weight(
            name="output_weights",
            shape=(self.num_classes, self.hidden_size),
            initializer=keras.initializers.TruncatedNormal(stddev=self.initializer_range),
        )
        self.output_bias = self.add_weight(name="output_bias", shape=(self.num_classes,), initializer="zeros")
        self.built = True

    def call(self, pooled_output):
        logits = ops.matmul(pooled_output, ops.transpose(self.output_weights))
        return ops.cast(logits, "float32") + ops.cast(self.output_bias, "float32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_size=self.hidden_size,
            initializer_range=self.initializer_range,
            num_classes=self.num_classes,
        )
        return config


@keras.saving.register_keras_serializable(package="albert_tf")
class AlbertSpanHead(keras.layers.Layer):
    """Start/end span logits on every token, as the original run_squad_v1 head.

    `output_weights` is stored [2, H] and `output_bias` [2], like the original
    `cls/squad/output_weights` / `cls/squad/output_bias` (row 0 = start, row 1 = end).
    Call with `sequence_output` [B, T, H]; returns float32 (start_logits [B, T],
    end_logits [B, T]).
    """

    def __init__(self, hidden_size, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.initializer_range = initializer_range

    def build(self, input_shape=None):
        self.output_weights = self.add_weight(
            name="output_weights",
            shape=(2, self.hidden_size),
            initializer=keras.initializers.TruncatedNormal(stddev=self.initializer_range),
        )
        self.output_bias = self.add_weight(name="output_bias", shape=(2,), initializer="zeros")
        self.built = True

    def call(self, sequence_output):
        batch, length = ops.shape(sequence_output)[0], ops.shape(sequence_output)[1]
        # One 2-D MatMul over [B*T, H] (see the note on Dense layers in WORKSPACE_NOTES).
        flat = ops.reshape(sequence_output, (-1, self.hidden_size))
        logits = ops.cast(ops.matmul(flat, ops.transpose(self.output_weights)), "float32")
        logits = ops.reshape(logits + ops.cast(self.output_bias, "float32"), (batch, length, 2))
        return logits[:, :, 0], logits[:, :, 1]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1]), (input_shape[0], input_shape[1])

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, initializer_range=self.initializer_range)
        return config
