"""In-graph tokenizers and packer: Keras preprocessing layers built on tensorflow-text.

They give ids identical to the Python tokenizers of albert_tf.text.tokenizer, so that an
exported model can take raw strings. Each normalisation rule is rebuilt from RE2
character classes that are computed from the same Python predicates
(albert_tf.text.normalize).

These layers run TensorFlow ops directly and need the TensorFlow backend. The tokenizer
layers take tf.string [batch] and return ragged int32 ids [batch, (tokens)].
`AlbertPacker` turns those ids into dense model inputs.
"""

import base64
import functools
import sys

import keras
import tensorflow as tf
import tensorflow_text as tf_text

from albert_tf.text.normalize import re2_class
from albert_tf.text.tokenizer import SPIECE_UNDERLINE, SentencePieceTokenizer, WordPieceTokenizer


class _StringLayer(keras.layers.Layer):
    """Base for layers that take strings or ragged tensors and run TF ops directly."""

    def __init__(self, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.built = True


@functools.lru_cache(maxsize=None)
def _lowercase_mismatches():
    """(char, python_lower) pairs where tf.strings.lower differs from Python's str.lower.

    These are the upper-case letters newer than TensorFlow's case tables (40 with TF 2.20
    under Python 3.11's Unicode 14). Final sigma is handled separately, because it depends
    on context.
    """
    # Every code point but the surrogates and the newline, lowered as one newline-separated
    # string (half the time of a 1.1M-element tensor). A newline is neither cased nor
    # case-ignorable, so no code point's lowering sees its neighbours.
    chars = [chr(cp) for cp in range(1, sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF and cp != 0x0A]
    with tf.init_scope():  # eager even when first reached while tracing a tf.function
        joined = tf.strings.lower(tf.constant("\n".join(chars)), encoding="utf-8").numpy().decode("utf-8")
    lowered = joined.split("\n")
    if len(lowered) != len(chars):
        raise RuntimeError(f"tf.strings.lower turned {len(chars)} newline-separated characters into {len(lowered)}")
    return tuple((c, c.lower()) for c, low in zip(chars, lowered) if low != c.lower())


def python_lower(text):
    """Python's `str.lower()` for tf.string tensors (final sigma included)."""
    mismatches = _lowercase_mismatches()
    if mismatches:
        any_class = "[" + "".join(f"\\x{{{ord(c):x}}}" for c, _ in mismatches) + "]"

        def rewrite(t):
            for char, lowered in mismatches:
                t = tf.strings.regex_replace(t, f"\\x{{{ord(char):x}}}", lowered.replace("\\", "\\\\"))
            return t

        has_any = tf.reduce_any(tf.strings.regex_full_match(text, f"(?s).*{any_class}.*"))
        text = tf.cond(has_any, lambda: rewrite(text), lambda: tf.identity(text))
    cased, ignorable, not_cased = re2_class("cased"), re2_class("case_ignorable"), re2_class("not_cased")
    text = tf.strings.regex_replace(
        text, f"({cased}{ignorable}*)\\x{{3a3}}({ignorable}*(?:{not_cased}|$))", "\\1\u03c2\\2"
    )
    return tf.strings.lower(text, encoding="utf-8")


def preprocess_text(text, lower):
    """The original `preprocess_text` in the graph: tf.string [batch] → tf.string [batch]."""
    text = tf.strings.regex_replace(text, re2_class("python_space") + "+", " ")
    text = tf.strings.regex_replace(text, "^ | $", "")
    text = tf_text.normalize_utf8(text, "NFKD")
    text = tf.strings.regex_replace(text, re2_class("combining"), "")
    return python_lower(text) if lower else text


@keras.saving.register_keras_serializable(package="albert_tf")
class SentencePieceTokenizerLayer(_StringLayer):
    """ALBERT SentencePiece tokenization in the graph, matching SentencePieceTokenizer.

    Args:
      model_proto: the serialized `.model` (bytes); see `from_file`.
      do_lower_case: lower-case the text after normalisation.

    Call with tf.string [batch]. Returns ragged int32 ids [batch, (tokens)].
    `tokenize_to_pieces` returns the ragged piece strings instead.
    """

    def __init__(self, model_proto, do_lower_case=True, **kwargs):
        super().__init__(**kwargs)
        if isinstance(model_proto, str):  # from get_config
            model_proto = base64.b64decode(model_proto)
        self.model_proto = model_proto
        self.do_lower_case = do_lower_case
        python = SentencePieceTokenizer(model_proto=model_proto, do_lower_case=do_lower_case)  # validates specials
        self.vocab_size = python.vocab_size
        self.cls_id, self.sep_id, self.pad_id, self.mask_id = python.cls_id, python.sep_id, python.pad_id, python.mask_id
        self._sp = tf_text.SentencepieceTokenizer(model=model_proto, out_type=tf.string)
        # The in-graph op stops reading at NUL. The Python path encodes NUL as an unknown
        # character, so NUL is swapped for an unknown private-use character (which gives
        # the same ids) and swapped back in the pieces.
        self._nul_stand_in = next(
            c for c in map(chr, range(0xE000, 0xF900)) if python.sp.PieceToId(c) == python.unk_id
        )

    @classmethod
    def from_file(cls, path, do_lower_case=True, **kwargs):
        """Builds the layer from a `.model` file."""
        with open(path, "rb") as f:
            return cls(f.read(), do_lower_case=do_lower_case, **kwargs)

    def tokenize_to_pieces(self, text):
        """tf.string [batch] → ragged tf.string pieces [batch, (tokens)]."""
        pieces = self._pieces_with_stand_in(text)
        flat = pieces.flat_values  # SentencePiece keeps an unknown character as a piece of its own
        return pieces.with_flat_values(tf.where(flat == self._nul_stand_in, "\x00", flat))

    def _pieces_with_stand_in(self, text):
        text = tf.strings.regex_replace(tf.convert_to_tensor(text, dtype=tf.string), "\\x00", self._nul_stand_in)
        return self._split_digit_commas(self._sp.tokenize(preprocess_text(text, self.do_lower_case)))

    def _split_digit_commas(self, pieces):
        flat = pieces.flat_values
        match = tf.strings.regex_full_match(flat, f"(?s).*{re2_class('python_digit')},")
        lengths = tf.strings.length(flat)
        body = tf.strings.substr(flat, tf.zeros_like(lengths), lengths - 1)
        body = tf.strings.regex_replace(body, SPIECE_UNDERLINE, "")
        reencoded = self._sp.tokenize(tf.where(match, body, ""))  # [M, (K)], empty rows when no match
        tail = tf.RaggedTensor.from_row_lengths(tf.where(match, ",", flat), tf.ones_like(flat, dtype=tf.int64))
        replaced = tf.concat([reencoded, tail], axis=1)  # [M, (K+1)]
        regrouped = tf.RaggedTensor.from_nested_row_splits(
            replaced.flat_values, (pieces.row_splits, replaced.row_splits)
        )
        return regrouped.merge_dims(1, 2)

    def call(self, text):
        pieces = self._pieces_with_stand_in(text)
        return tf.cast(pieces.with_flat_values(self._sp.string_to_id(pieces.flat_values)), tf.int32)

    def get_config(self):
        config = super().get_config()
        config.update(
            model_proto=base64.b64encode(self.model_proto).decode("ascii"),
            do_lower_case=self.do_lower_case,
        )
        return config


@keras.saving.register_keras_serializable(package="albert_tf")
class WordPieceTokenizerLayer(_StringLayer):
    """BERT basic tokenization + WordPiece in the graph, matching WordPieceTokenizer.

    Args:
      vocabulary: the tokens in id order (as WordPieceTokenizer.vocab); see `from_file`.
      do_lower_case: lower-case, NFD and strip Mn marks.

    Call with tf.string [batch]. Returns ragged int32 ids [batch, (tokens)].
    """

    max_chars_per_word = WordPieceTokenizer.max_chars_per_word

    def __init__(self, vocabulary, do_lower_case=True, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary = list(vocabulary)
        self.do_lower_case = do_lower_case
        index = {token: i for i, token in enumerate(self.vocabulary)}
        self.cls_id, self.sep_id, self.pad_id = index["[CLS]"], index["[SEP]"], index["[PAD]"]
        self.mask_id, self.unk_id = index["[MASK]"], index["[UNK]"]
        self.vocab_size = len(self.vocabulary)
        # Tokens that basic tokenization can never produce (empty, blank, or holding NUL)
        # break the tf-text trie builder. Placeholders that cannot match either keep
        # the ids aligned.
        reachable = [
            t if t.strip() and "\x00" not in t and t != "##" else f"[albert_tf_unreachable_{i}]"
            for i, t in enumerate(self.vocabulary)
        ]
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=reachable,
            suffix_indicator="##",
            max_bytes_per_word=4 * self.max_chars_per_word + 4,
            token_out_type=tf.int32,
            unknown_token="[UNK]",
            no_pretokenization=True,
            support_detokenization=False,
        )

    @classmethod
    def from_file(cls, path, do_lower_case=True, **kwargs):
        """Builds the layer from a `vocab.txt` (deduplicated as the original loader does)."""
        return cls(WordPieceTokenizer(path, do_lower_case=do_lower_case).vocab, do_lower_case=do_lower_case, **kwargs)

    def basic_tokenize(self, text):
        """tf.string [batch] → ragged tf.string words [batch, (words)]."""
        text = tf.convert_to_tensor(text, dtype=tf.string)
        text = tf.strings.regex_replace(text, re2_class("bert_control"), "")
        text = tf.strings.regex_replace(text, re2_class("bert_whitespace"), " ")
        text = tf.strings.regex_replace(text, f"({re2_class('cjk')})", " \\1 ")
        if self.do_lower_case:
            text = python_lower(text)
            text = tf_text.normalize_utf8(text, "NFD")
            text = tf.strings.regex_replace(text, re2_class("mark_nonspacing"), "")
        punctuation = re2_class("bert_punctuation")
        return tf_text.regex_split(
            text,
            delim_regex_pattern=f"{re2_class('python_space')}+|{punctuation}",
            keep_delim_regex_pattern=punctuation,
        )

    def call(self, text):
        words = self.basic_tokenize(text)
        too_long = tf.strings.length(words.flat_values, unit="UTF8_CHAR") > self.max_chars_per_word
        words = words.with_flat_values(tf.where(too_long, "[UNK]", words.flat_values))
        return self._wordpiece.tokenize(words).merge_dims(1, 2)

    def get_config(self):
        config = super().get_config()
        config.update(vocabulary=self.vocabulary, do_lower_case=self.do_lower_case)
        return config


@keras.saving.register_keras_serializable(package="albert_tf")
class AlbertPacker(_StringLayer):
    """Packs ragged ids into `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]` model inputs.

    When the pair is too long, the longer segment is trimmed first, at its end, which is
    the rule of `albert_tf.text.packing.truncate_pair_lengths`.

    A row whose B is empty is packed as a single segment, `[CLS] A [SEP]`, as the
    original run_classifier does (`if tokens_b:`).

    Args:
      sequence_length: the maximum packed length.
      cls_id, sep_id, pad_id: the special-token ids.
      pad_to_sequence_length: pad every batch to `sequence_length` (True), or only to the
        longest packed row of the batch (False: short requests cost what their length
        costs).
      bucket_lengths: with pad_to_sequence_length=False, round the padded length up to
        the next of these increasing lengths (fewer distinct shapes, e.g. for XLA);
        lengths above the last bucket pad to the longest row.

    Call with ragged int ids `ids_a` [batch, (n)] and optionally `ids_b`. Returns a dict
    of int32 [batch, T]: `input_word_ids`, `input_mask` and `input_type_ids`.
    """

    def __init__(self, sequence_length, cls_id, sep_id, pad_id=0, pad_to_sequence_length=True, bucket_lengths=(),
                 **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = sequence_length
        self.cls_id, self.sep_id, self.pad_id = cls_id, sep_id, pad_id
        self.pad_to_sequence_length = pad_to_sequence_length
        self.bucket_lengths = tuple(int(b) for b in bucket_lengths)
        if list(self.bucket_lengths) != sorted(set(self.bucket_lengths)) or any(b < 1 for b in self.bucket_lengths):
            raise ValueError(f"bucket_lengths must be increasing positive lengths, got {bucket_lengths}")

    @staticmethod
    def _keep_first(ids, lengths):
        positions = tf.ragged.range(ids.row_lengths(), dtype=lengths.dtype)
        return tf.ragged.boolean_mask(ids, positions < lengths[:, None])

    def call(self, ids_a, ids_b=None):
        ids_a = tf.cast(ids_a, tf.int32)
        batch = ids_a.nrows()
        cls = tf.fill([batch, 1], self.cls_id)
        sep = tf.fill([batch, 1], self.sep_id)
        len_a = ids_a.row_lengths()
        if ids_b is None:
            a = self._keep_first(ids_a, tf.minimum(len_a, self.sequence_length - 2))
            tokens = tf.concat([cls, a, sep], axis=1)
            types = tf.zeros_like(tokens)
        else:
            ids_b = tf.cast(ids_b, tf.int32)
            len_b = ids_b.row_lengths()
            has_b = tf.cast(len_b > 0, tf.int64)
            budget = self.sequence_length - 2 - has_b  # per row: one more [SEP] when there is a B
            fits = len_a + len_b <= budget
            keep_b = tf.where(fits, len_b, tf.minimum(len_b, tf.maximum(budget - len_a, budget // 2)))
            keep_a = tf.where(fits, len_a, tf.minimum(len_a, budget - keep_b))
            a, b = self._keep_first(ids_a, keep_a), self._keep_first(ids_b, keep_b)
            first = tf.concat([cls, a, sep], axis=1)
            sep_b = tf.RaggedTensor.from_row_lengths(tf.fill([tf.reduce_sum(has_b)], self.sep_id), has_b)
            second = tf.concat([b, sep_b], axis=1)
            tokens = tf.concat([first, second], axis=1)
            types = tf.concat([tf.zeros_like(first), tf.ones_like(second)], axis=1)
        if self.pad_to_sequence_length:
            shape = [None, self.sequence_length]
        else:
            longest = tf.reduce_max(tf.concat([tokens.row_lengths(), [0]], axis=0))
            shape = tf.stack([tokens.nrows(), self._bucket(longest)]) if self.bucket_lengths else None
        return {
            "input_word_ids": tokens.to_tensor(default_value=self.pad_id, shape=shape),
            "input_mask": tf.ones_like(tokens).to_tensor(default_value=0, shape=shape),
            "input_type_ids": types.to_tensor(default_value=0, shape=shape),
        }

    def _bucket(self, length):
        """The smallest bucket >= length (int64 scalar), or length above the last bucket."""
        buckets = tf.constant(self.bucket_lengths, tf.int64)
        larger = tf.boolean_mask(buckets, buckets >= length)
        return tf.cond(tf.size(larger) > 0, lambda: larger[0], lambda: length)

    def get_config(self):
        config = super().get_config()
        config.update(
            sequence_length=self.sequence_length,
            cls_id=self.cls_id,
            sep_id=self.sep_id,
            pad_id=self.pad_id,
            pad_to_sequence_length=self.pad_to_sequence_length,
            bucket_lengths=list(self.bucket_lengths),
        )
        return config
