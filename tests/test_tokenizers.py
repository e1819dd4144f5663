"""Python tokenizers: the original rules, special ids and error cases."""

import json
import unicodedata

import pytest
import sentencepiece as spm

from albert_tf.text import SentencePieceTokenizer, TokenizerError, WordPieceTokenizer, load_tokenizer, preprocess_text
from albert_tf.text import normalize
from albert_tf.text.packing import pack_pair, truncate_pair_lengths


def test_preprocess_text_is_the_original_rule():
    assert preprocess_text("  Café\t\u00a0 Déjà  vu \n", lower=False) == "Cafe Deja vu"
    assert preprocess_text("ÀÉÎ  Õ", lower=True) == "aei o"
    assert preprocess_text("``x''", lower=False) == "``x''"  # no quote rewriting in the original
    assert preprocess_text("", lower=True) == ""


def test_shipped_re2_classes_equal_the_predicates_of_this_python():
    """re2_classes.json holds every class for each supported Python's Unicode version, and
    for the running one equals a fresh scan of the predicates (so a changed predicate
    without a rewritten table fails here)."""
    tables = json.load(open(normalize.RE2_CLASSES_FILE, encoding="utf-8"))
    assert {"13.0.0", "14.0.0", "15.0.0", "15.1.0"} <= set(tables)  # Pythons 3.10-3.13
    assert all(set(classes) == set(normalize.RE2_CLASS_PREDICATES) for classes in tables.values())
    assert normalize.shipped_re2_classes() == tables[unicodedata.unidata_version]
    for name in normalize.RE2_CLASS_PREDICATES:
        assert normalize.re2_class(name) == normalize.compute_re2_class(name), name
    assert "\\x{3000}" in normalize.re2_class("python_space")  # spot checks of the meaning
    assert "\\x{4e00}-\\x{9fff}" in normalize.re2_class("cjk")
    with pytest.raises(KeyError, match="no RE2 class named 'spaces'"):
        normalize.re2_class("spaces")


def test_spm_model_has_albert_special_ids(spm_model_file):
    tok = SentencePieceTokenizer(spm_model_file)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert tok.convert_ids_to_tokens(range(5)) == ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    assert tok.vocab_size == 2000


def test_digit_comma_rule_splits_the_comma_off(spm_model_file):
    tok = SentencePieceTokenizer(spm_model_file)
    pieces = tok.tokenize("in 1999, then")
    assert "," in pieces and not any(p.endswith(",") and len(p) > 1 for p in pieces)
    raw = tok.sp.EncodeAsPieces("in 1999, then")
    assert any(len(p) > 1 and p.endswith(",") for p in raw) or raw == pieces  # the rule had work to do
    assert tok.encode("in 1999, then") == tok.convert_tokens_to_ids(pieces)


def test_lower_casing_flag(spm_model_file):
    lower = SentencePieceTokenizer(spm_model_file, do_lower_case=True)
    cased = SentencePieceTokenizer(spm_model_file, do_lower_case=False)
    assert lower.tokenize("The LOBSTER") == lower.tokenize("the lobster")
    assert cased.tokenize("The LOBSTER") != cased.tokenize("the lobster")


def test_sentencepiece_word_starts_follow_the_original():
    tok = SentencePieceTokenizer.__new__(SentencePieceTokenizer)
    assert tok.is_word_start("\u2581the") and tok.is_word_start("<unk>") and tok.is_word_start(",")
    assert tok.is_word_start("99")  # digits are not English letters: a new word
    assert tok.is_word_start("é")  # foreign characters too
    assert not tok.is_word_start("ing") and not tok.is_word_start("S")


def test_wordpiece_basic_and_greedy_longest_match(wordpiece_vocab_file):
    tok = WordPieceTokenizer(wordpiece_vocab_file, do_lower_case=True)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 100, 101, 102, 103)
    assert tok.basic_tokenize("Héllo,世界!  x") == ["hello", ",", "世", "界", "!", "x"]
    assert tok.wordpiece("unaffable") == ["un", "##aff", "##able"]
    assert tok.wordpiece("x" * 201) == ["[UNK]"]
    assert "\u2603" not in tok.token_to_id and tok.tokenize("a \u2603") == ["a", "[UNK]"]
    cased = WordPieceTokenizer(wordpiece_vocab_file, do_lower_case=False)
    assert cased.basic_tokenize("Héllo") == ["Héllo"]


def test_wordpiece_vocab_duplicates_keep_first_id(wordpiece_vocab_file):
    tok = WordPieceTokenizer(wordpiece_vocab_file)
    assert tok.token_to_id["[PAD]"] == 0 and tok.vocab.count("[PAD]") == 1


def test_load_tokenizer_errors(tmp_path, spm_model_file, wordpiece_vocab_file):
    assert isinstance(load_tokenizer(spm_model_file=spm_model_file, vocab_file=wordpiece_vocab_file), SentencePieceTokenizer)
    assert isinstance(load_tokenizer(vocab_file=wordpiece_vocab_file), WordPieceTokenizer)
    with pytest.raises(TokenizerError, match="give --spm_model_file"):
        load_tokenizer()
    with pytest.raises(TokenizerError, match="absent.model: cannot read"):
        load_tokenizer(spm_model_file=str(tmp_path / "absent.model"))
    bad_vocab = tmp_path / "vocab.txt"
    bad_vocab.write_text("[PAD]\n[UNK]\nhello\n")
    with pytest.raises(TokenizerError, match=r"vocab.txt: missing special token\(s\) \['\[CLS\]', '\[SEP\]', '\[MASK\]'\]"):
        load_tokenizer(vocab_file=str(bad_vocab))
    garbage = tmp_path / "garbage.model"
    garbage.write_bytes(b"not a model")
    with pytest.raises(TokenizerError, match="garbage.model: not a SentencePiece model"):
        load_tokenizer(spm_model_file=str(garbage))


def test_spm_model_without_albert_specials_is_rejected(tmp_path, spm_model_file):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog\n" * 50)
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "plain"), vocab_size=30, minloglevel=2)
    with pytest.raises(TokenizerError, match=r"plain.model: the model has no '<pad>' piece"):
        SentencePieceTokenizer(str(tmp_path / "plain.model"))


def test_pack_pair_truncates_the_longer_segment_first():
    packed = pack_pair([5, 6, 7, 8, 9, 10], [20, 21], 8, cls_id=2, sep_id=3)
    assert packed["input_word_ids"] == [2, 5, 6, 7, 3, 20, 21, 3]
    assert packed["input_type_ids"] == [0, 0, 0, 0, 0, 1, 1, 1]
    short = pack_pair([5], None, 6, cls_id=2, sep_id=3)
    assert short == {"input_word_ids": [2, 5, 3, 0, 0, 0], "input_mask": [1, 1, 1, 0, 0, 0], "input_type_ids": [0] * 6}
    assert truncate_pair_lengths(10, 10, 9) == (5, 4)
