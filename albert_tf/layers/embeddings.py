"""Factorized ALBERT input embedding (the V×E part; the E→H projection is separate)."""

import keras
from keras import ops

from albert_tf.config import LAYER_NORM_EPSILON
from albert_tf.layers.normalization import AlbertLayerNorm


@keras.saving.register_keras_serializable(package="albert_tf")
class AlbertEmbedding(keras.layers.Layer):
    """word [V,E] + position [P,E] + token type [T,E] lookups, LayerNorm, dropout.

    Matches `bert/embeddings/*` of the original. Call with
    `(input_word_ids, input_type_ids)`, both int32 [batch, seq] with seq <= P;
    returns [batch, seq, E] in the layer's compute dtype (the LayerNorm itself runs
    in float32 under mixed precision).

    With `word_projection_size=H` (the brightmart/albert_zh layout) the word vectors go
    through `word_projection` [E, H] (no bias, `word_embeddings_2`) first, and the
    position/type tables and the LayerNorm are H wide; the output is [batch, seq, H].
    """

    def __init__(
        self,
        vocab_size,
        embedding_size,
        max_position_embeddings,
        type_vocab_size,
        initializer_range=0.02,
        dropout_rate=0.0,
        layer_norm_epsilon=LAYER_NORM_EPSILON,
        word_projection_size=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.word_projection_size = word_projection_size
        self.output_size = word_projection_size or embedding_size
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.dropout_rate = dropout_rate
        self.layer_norm_epsilon = layer_norm_epsilon
        self.layer_norm = AlbertLayerNorm(
            epsilon=layer_norm_epsilon, dtype="float32", name="layer_norm"
        )
        self.dropout = keras.layers.Dropout(dropout_rate, name="dropout")

    def build(self, input_word_ids_shape, input_type_ids_shape=None):
        init = keras.initializers.TruncatedNormal(stddev=self.initializer_range)
        self.word_embeddings = self.add_weight(
            name="word_embeddings", shape=(self.vocab_size, self.embedding_size), initializer=init
        )
        self.word_projection = None
        if self.word_projection_size:
            self.word_projection = self.add_weight(
                name="word_projection", shape=(self.embedding_size, self.word_projection_size), initializer=init
            )
        self.position_embeddings = self.add_weight(
            name="position_embeddings", shape=(self.max_position_embeddings, self.output_size), initializer=init
        )
        self.token_type_embeddings = self.add_weight(
            name="token_type_embeddings", shape=(self.type_vocab_size, self.output_size), initializer=init
        )
        self.layer_norm.build((None, None, self.output_size))
        self.built = True

    def call(self, input_word_ids, input_type_ids, training=None):
        seq_len = ops.shape(input_word_ids)[1]
        words = ops.take(self.word_embeddings, input_word_ids, axis=0)
        if self.word_projection is not None:
            words = ops.matmul(words, self.word_projection)
        types = ops.take(self.token_type_embeddings, input_type_ids, axis=0)
        positions = self.position_embeddings[:seq_len]
        summed = words + types + positions  # [T, E] broadcasts over the batch
        normed = self.layer_norm(ops.cast(summed, "float32"))
        return self.dropout(ops.cast(normed, self.compute_dtype), training=training)


    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            embedding_size=self.embedding_size,
            max_position_embeddings=self.max_position_embeddings,
            type_vocab_size=self.type_vocab_size,
            initializer_range=self.initializer_range,
            dropout_rate=self.dropout_rate,
            layer_norm_epsilon=self.layer_norm_epsilon,
            word_projection_size=self.word_projection_size,
        )
        return config
