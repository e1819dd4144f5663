"""Keras layers of the ALBERT model; each is small, serializable and has `get_config`."""

from albert_tf.layers.activations import get_activation
from albert_tf.layers.attention import AlbertSelfAttention
from albert_tf.layers.dense import AlbertDense, set_matmul_dtype
from albert_tf.layers.embeddings import AlbertEmbedding
from albert_tf.layers.encoder import AlbertSharedEncoder
from albert_tf.layers.normalization import AlbertLayerNorm
from albert_tf.layers.heads import AlbertMaskedLMHead, AlbertSentenceOrderHead, AlbertSpanHead
from albert_tf.layers.transformer_block import AlbertTransformerBlock

__all__ = [
    "AlbertDense",
    "AlbertEmbedding",
    "AlbertLayerNorm",
    "AlbertMaskedLMHead",
    "AlbertSelfAttention",
    "AlbertSentenceOrderHead",
    "AlbertSharedEncoder",
    "AlbertSpanHead",
    "AlbertTransformerBlock",
    "get_activation",
    "set_matmul_dtype",
]
