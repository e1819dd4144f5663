"""In-graph tokenizers and packer: ids identical to the Python tokenizers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from albert_tf.text import SentencePieceTokenizer, WordPieceTokenizer, pack_pair
from albert_tf.text.layers import AlbertPacker, SentencePieceTokenizerLayer, WordPieceTokenizerLayer
from tests.conftest import HARD_CASES, corpus_lines


def assert_same_ids(python, layer, texts):
    got = layer(tf.constant(texts)).to_list()
    mismatches = [(t[:60], g[:12], python.encode(t)[:12]) for t, g in zip(texts, got) if g != python.encode(t)]
    assert not mismatches, f"{len(mismatches)} of {len(texts)} texts differ, first: {mismatches[:3]}"


@pytest.mark.parametrize("lower", [True, False])
def test_sentencepiece_layer_matches_python_on_corpus_and_hard_cases(spm_model_file, lower):
    python = SentencePieceTokenizer(spm_model_file, do_lower_case=lower)
    layer = SentencePieceTokenizerLayer.from_file(spm_model_file, do_lower_case=lower)
    texts = corpus_lines() + HARD_CASES
    assert_same_ids(python, layer, texts)
    pieces = layer.tokenize_to_pieces(tf.constant(HARD_CASES)).to_list()
    assert [[p.decode("utf-8") for p in row] for row in pieces] == [python.tokenize(t) for t in HARD_CASES]


@pytest.mark.parametrize("lower", [True, False])
def test_wordpiece_layer_matches_python_on_corpus_and_hard_cases(wordpiece_vocab_file, lower):
    python = WordPieceTokenizer(wordpiece_vocab_file, do_lower_case=lower)
    layer = WordPieceTokenizerLayer.from_file(wordpiece_vocab_file, do_lower_case=lower)
    assert_same_ids(python, layer, corpus_lines() + HARD_CASES)
    assert python.encode("東京") == [python.token_to_id["東"], python.token_to_id["京"]]


def test_packer_matches_python_packing():
    rng = np.random.default_rng(0)
    rows_a = [list(rng.integers(5, 50, size=n)) for n in rng.integers(0, 20, size=40)]
    rows_b = [list(rng.integers(5, 50, size=n)) for n in rng.integers(0, 20, size=40)]
    packer = AlbertPacker(16, cls_id=2, sep_id=3, pad_id=0)
    pair = packer(tf.ragged.constant(rows_a, dtype=tf.int32), tf.ragged.constant(rows_b, dtype=tf.int32))
    single = packer(tf.ragged.constant(rows_a, dtype=tf.int32))
    for i, (a, b) in enumerate(zip(rows_a, rows_b)):
        for packed, expected in ((pair, pack_pair(a, b, 16, 2, 3)), (single, pack_pair(a, None, 16, 2, 3))):
            for key in expected:
                assert packed[key][i].numpy().tolist() == expected[key], (i, key)


def test_packer_pads_to_longest_row_when_asked():
    packer = AlbertPacker(512, cls_id=2, sep_id=3, pad_to_sequence_length=False)
    out = packer(tf.ragged.constant([[7, 8], [9]], dtype=tf.int32))
    assert out["input_word_ids"].numpy().tolist() == [[2, 7, 8, 3], [2, 9, 3, 0]]
    assert out["input_mask"].numpy().tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]


def test_layers_round_trip_through_get_config(spm_model_file, wordpiece_vocab_file):
    texts = tf.constant(["Hello, World 1999, ok", "東京"])
    for layer in (
        SentencePieceTokenizerLayer.from_file(spm_model_file),
        WordPieceTokenizerLayer.from_file(wordpiece_vocab_file),
        AlbertPacker(8, cls_id=2, sep_id=3),
    ):
        clone = keras.layers.deserialize(keras.layers.serialize(layer))
        assert clone.get_config() == layer.get_config()
        if not isinstance(layer, AlbertPacker):
            assert clone(texts).to_list() == layer(texts).to_list()


def test_layers_work_inside_tf_function(spm_model_file):
    tokenizer = SentencePieceTokenizerLayer.from_file(spm_model_file)
    packer = AlbertPacker(12, cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.string)])
    def preprocess(a, b):
        return packer(tokenizer(a), tokenizer(b))

    eager = packer(tokenizer(tf.constant(["one two", "three"])), tokenizer(tf.constant(["four", "five six seven"])))
    graph = preprocess(tf.constant(["one two", "three"]), tf.constant(["four", "five six seven"]))
    for key in eager:
        np.testing.assert_array_equal(graph[key], eager[key])


def test_lowercase_mismatches_agree_with_lowering_each_character_alone():
    """The table python_lower patches is computed from one joined string; each entry (and
    a sample of the rest) must agree with tf.strings.lower on the character alone."""
    import random
    import sys

    from albert_tf.text.layers import _lowercase_mismatches, python_lower

    mismatches = dict(_lowercase_mismatches())

    def tf_lower(chars):
        return [s.decode("utf-8") for s in tf.strings.lower(tf.constant(chars), encoding="utf-8").numpy()]

    chars = list(mismatches)
    assert all(low != c.lower() for c, low in zip(chars, tf_lower(chars)))
    rng = random.Random(0)
    others = [c for c in (chr(rng.randrange(1, sys.maxunicode + 1)) for _ in range(20000))
              if not 0xD800 <= ord(c) <= 0xDFFF and c not in mismatches]
    others += [chr(cp) for cp in range(1, 0x2000) if chr(cp) not in mismatches]  # every cased script up to Greek
    assert [low == c.lower() for c, low in zip(others, tf_lower(others))] == [True] * len(others)
    text = tf.constant(["".join(chars) + " ΟΔΟΣ"])
    final_sigma = "\u03c2"
    assert python_lower(text).numpy()[0].decode("utf-8") == "".join(chars).lower() + " οδο" + final_sigma
