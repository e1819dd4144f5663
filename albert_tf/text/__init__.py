"""Tokenization: SentencePiece (English ALBERT) and WordPiece (albert_zh) in Python,
and the same tokenizers as in-graph Keras layers (albert_tf.text.layers).

Importing this package does not import TensorFlow; `albert_tf.text.layers` does.
"""

from albert_tf.text.tokenizer import (
    AlbertTokenizer,
    SentencePieceTokenizer,
    TokenizerError,
    WordPieceTokenizer,
    load_tokenizer,
)
from albert_tf.text.normalize import preprocess_text
from albert_tf.text.packing import pack_pair, truncate_pair_lengths

__all__ = [
    "AlbertTokenizer",
    "SentencePieceTokenizer",
    "TokenizerError",
    "WordPieceTokenizer",
    "load_tokenizer",
    "pack_pair",
    "preprocess_text",
    "truncate_pair_lengths",
]
