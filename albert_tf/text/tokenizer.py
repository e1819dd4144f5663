"""Python tokenizers with one API and two back ends.

- `SentencePieceTokenizer`: English ALBERT. It applies the original `preprocess_text`
  and then the digit-comma rule of the original `encode_pieces`.
- `WordPieceTokenizer`: `vocab.txt` models (albert_zh). It runs BERT basic tokenization,
  which splits CJK characters, and then greedy longest-match WordPiece.

Both expose `tokenize(text) -> pieces`, `encode(text) -> ids`, the conversions between
pieces and ids, the special-token ids, and `is_word_start(piece)`, which whole-word
masking uses. `load_tokenizer` picks the back end from the flags that the original
scripts take.
"""

import abc
import unicodedata

import sentencepiece as spm

from albert_tf.text.normalize import (
    is_bert_control,
    is_bert_punctuation,
    is_bert_whitespace,
    is_cjk_character,
    preprocess_text,
)

SPIECE_UNDERLINE = "\u2581"

# The punctuation set of the original `_is_start_piece_sp` (create_pretraining_data.py).
_SP_START_PUNCTUATION = frozenset('!"#$%&()*+,-./:;?@[\\]^_`{|}~')
_ENGLISH_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")

SPM_SPECIAL_PIECES = ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]")
WORDPIECE_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


class TokenizerError(ValueError):
    """A tokenizer file is missing, unreadable or lacks a special token; the message
    names the file."""


class AlbertTokenizer(abc.ABC):
    """Common interface of the two back ends.

    Attributes: `vocab_size`, and the ids `pad_id`, `unk_id`, `cls_id`, `sep_id`
    and `mask_id`.
    """

    do_lower_case: bool
    vocab_size: int
    pad_id: int
    unk_id: int
    cls_id: int
    sep_id: int
    mask_id: int

    @abc.abstractmethod
    def tokenize(self, text: str) -> list:
        """Returns the pieces (list of str) of `text`."""

    @abc.abstractmethod
    def convert_tokens_to_ids(self, tokens) -> list:
        """Returns the ids (list of int) of the pieces."""

    @abc.abstractmethod
    def convert_ids_to_tokens(self, ids) -> list:
        """Returns the pieces (list of str) of the ids."""

    @abc.abstractmethod
    def is_word_start(self, piece: str) -> bool:
        """True if `piece` starts a word. Whole-word masking groups a piece with the
        piece before it when this is False."""

    @abc.abstractmethod
    def normalize_char(self, char: str) -> str:
        """What normalization makes of one character (str, possibly "" or longer).
        SQuAD uses it to map tokens back to character offsets."""

    @abc.abstractmethod
    def piece_surface(self, piece: str):
        """The characters of the normalized text that `piece` stands for (str, "" for a
        bare word-start marker), or None when they are unknown ([UNK] of WordPiece).
        SQuAD uses it to map tokens back to character offsets."""

    def encode(self, text: str) -> list:
        """Returns the ids (list of int) of `text`."""
        return self.convert_tokens_to_ids(self.tokenize(text))

    @property
    def special_ids(self) -> frozenset:
        """The ids of pad, unk, cls, sep and mask."""
        return frozenset((self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id))


class SentencePieceTokenizer(AlbertTokenizer):
    """SentencePiece tokenization as the original ALBERT applies it.

    Each text goes through `preprocess_text` (collapse whitespace, strip accents,
    lower-case when `do_lower_case`), then `EncodeAsPieces`. A piece longer than one
    character that ends in a digit followed by "," is re-encoded without the comma (and
    without "▁"), and "," is appended. This is `encode_pieces` as it behaves under
    Python 3. Its attempt to drop a spurious leading "▁" compares str with bytes, so it
    never fires, and it does not fire here either.

    Args:
      model_file: path of a `.model` file, or None when `model_proto` is given.
      model_proto: the serialized model (bytes).
      do_lower_case: lower-case the text before encoding.
    """

    def __init__(self, model_file=None, do_lower_case=True, model_proto=None):
        source = model_file or "<serialized SentencePiece model>"
        if model_proto is None:
            try:
                with open(model_file, "rb") as f:
                    model_proto = f.read()
            except OSError as e:
                raise TokenizerError(f"--spm_model_file {model_file}: cannot read ({e.strerror})") from e
        self.model_proto = model_proto
        self.source = source
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.LoadFromSerializedProto(model_proto)
        except Exception as e:  # sentencepiece raises RuntimeError/OSError variants
            raise TokenizerError(f"--spm_model_file {source}: not a SentencePiece model ({e})") from e
        self.do_lower_case = do_lower_case
        self.vocab_size = self.sp.GetPieceSize()
        ids = {}
        for piece in SPM_SPECIAL_PIECES:
            piece_id = self.sp.PieceToId(piece)
            if self.sp.IdToPiece(piece_id) != piece:
                raise TokenizerError(
                    f"--spm_model_file {source}: the model has no {piece!r} piece; ALBERT needs "
                    f"{', '.join(SPM_SPECIAL_PIECES)} (train one with albert-train-tokenizer)"
                )
            ids[piece] = piece_id
        self.pad_id, self.unk_id = ids["<pad>"], ids["<unk>"]
        self.cls_id, self.sep_id, self.mask_id = ids["[CLS]"], ids["[SEP]"], ids["[MASK]"]
        self.vocab = [self.sp.IdToPiece(i) for i in range(self.vocab_size)]

    def normalize(self, text: str) -> str:
        """The original `preprocess_text` with this tokenizer's lower-casing."""
        return preprocess_text(text, lower=self.do_lower_case)

    def tokenize(self, text: str) -> list:
        return self.split_digit_commas(self.sp.EncodeAsPieces(self.normalize(text)))

    def encode_normalized(self, text: str) -> list:
        """Ids of text that already went through `normalize`."""
        return self.convert_tokens_to_ids(self.split_digit_commas(self.sp.EncodeAsPieces(text)))

    def split_digit_commas(self, pieces) -> list:
        """The `encode_pieces` rule: "…9," becomes the pieces of "…9" followed by ","."""
        out = []
        for piece in pieces:
            if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
                out.extend(self.sp.EncodeAsPieces(piece[:-1].replace(SPIECE_UNDERLINE, "")))
                out.append(",")
            else:
                out.append(piece)
        return out

    def convert_tokens_to_ids(self, tokens) -> list:
        return [self.sp.PieceToId(t) for t in tokens]

    def convert_ids_to_tokens(self, ids) -> list:
        return [self.sp.IdToPiece(int(i)) for i in ids]

    def normalize_char(self, char: str) -> str:
        return preprocess_text(char, lower=self.do_lower_case)

    def piece_surface(self, piece: str):
        # Unknown characters keep their surface in EncodeAsPieces, so none is None here.
        return piece[1:] if piece.startswith(SPIECE_UNDERLINE) else piece

    def is_word_start(self, piece: str) -> bool:
        # The original `_is_start_piece_sp`. A piece starts a word if it begins with
        # "▁" or "<", if it is a punctuation mark, or if it holds any character that is
        # not an English letter or one of those marks (digits and foreign scripts).
        if piece.startswith((SPIECE_UNDERLINE, "<")) or piece in _SP_START_PUNCTUATION:
            return True
        return not all(c.lower() in _ENGLISH_LETTERS or c in _SP_START_PUNCTUATION for c in piece)


class WordPieceTokenizer(AlbertTokenizer):
    """BERT tokenization from a `vocab.txt`: basic tokenization, then WordPiece.

    Basic tokenization works in this order:
    1. Drop NUL, U+FFFD and control characters, and map whitespace to " ".
    2. Put spaces around CJK ideographs.
    3. Split on whitespace.
    4. When `do_lower_case`, lower-case each word, apply NFD and drop Mn marks.
    5. Split off every punctuation character.

    WordPiece then takes the longest vocabulary match at each position, marking
    continuations with "##". A word with no full match, or longer than 200 characters,
    becomes [UNK].

    Args:
      vocab_file: one token per line; a token's id is its line number.
      do_lower_case: as above.
    """

    max_chars_per_word = 200

    def __init__(self, vocab_file, do_lower_case=True):
        self.source = vocab_file
        self.do_lower_case = do_lower_case
        self.vocab = []
        self.token_to_id = {}
        try:
            with open(vocab_file, encoding="utf-8") as f:
                for line in f:
                    stripped = line.strip()
                    token = stripped.split()[0] if stripped else " "
                    if token not in self.token_to_id:
                        self.token_to_id[token] = len(self.vocab)
                        self.vocab.append(token)
        except OSError as e:
            raise TokenizerError(f"--vocab_file {vocab_file}: cannot read ({e.strerror})") from e
        except UnicodeDecodeError as e:
            raise TokenizerError(f"--vocab_file {vocab_file}: not UTF-8 ({e})") from e
        missing = [t for t in WORDPIECE_SPECIAL_TOKENS if t not in self.token_to_id]
        if missing:
            raise TokenizerError(f"--vocab_file {vocab_file}: missing special token(s) {missing}")
        self.vocab_size = len(self.vocab)
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            self.token_to_id[t] for t in WORDPIECE_SPECIAL_TOKENS
        )

    def basic_tokenize(self, text: str) -> list:
        """BERT basic tokenization; returns the list of words and punctuation marks."""
        cleaned = []
        for char in text:
            if char in ("\x00", "\ufffd") or is_bert_control(char):
                continue
            if is_bert_whitespace(char):
                cleaned.append(" ")
            elif is_cjk_character(char):
                cleaned.append(f" {char} ")
            else:
                cleaned.append(char)
        words = []
        for word in "".join(cleaned).split():
            if self.do_lower_case:
                word = unicodedata.normalize("NFD", word.lower())
                word = "".join(c for c in word if unicodedata.category(c) != "Mn")
            current = ""
            for char in word:
                if is_bert_punctuation(char):
                    if current:
                        words.append(current)
                        current = ""
                    words.append(char)
                else:
                    current += char
            if current:
                words.append(current)
        # Joining and splitting again drops the words that became empty or blank.
        return " ".join(words).split()

    def wordpiece(self, word: str) -> list:
        """Greedy longest-match WordPiece of one word; returns its pieces."""
        if len(word) > self.max_chars_per_word:
            return ["[UNK]"]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                candidate = word[start:end] if start == 0 else "##" + word[start:end]
                if candidate in self.token_to_id:
                    break
                end -= 1
            if end == start:
                return ["[UNK]"]
            pieces.append(candidate)
            start = end
        return pieces

    def tokenize(self, text: str) -> list:
        return [piece for word in self.basic_tokenize(text) for piece in self.wordpiece(word)]

    def convert_tokens_to_ids(self, tokens) -> list:
        return [self.token_to_id.get(t, self.unk_id) for t in tokens]

    def convert_ids_to_tokens(self, ids) -> list:
        return [self.vocab[int(i)] for i in ids]

    def normalize_char(self, char: str) -> str:
        if char in ("\x00", "\ufffd") or is_bert_control(char):
            return ""
        if not self.do_lower_case:
            return char
        decomposed = unicodedata.normalize("NFD", char.lower())
        return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")

    def piece_surface(self, piece: str):
        if piece == "[UNK]":
            return None
        return piece[2:] if piece.startswith("##") else piece

    def is_word_start(self, piece: str) -> bool:
        return not piece.startswith("##")


def load_tokenizer(spm_model_file=None, vocab_file=None, do_lower_case=True) -> AlbertTokenizer:
    """A SentencePieceTokenizer when `spm_model_file` is set (as in the original
    scripts, it wins over `vocab_file`). Otherwise a WordPieceTokenizer for
    `vocab_file`. Raises TokenizerError when neither file is given."""
    if spm_model_file:
        return SentencePieceTokenizer(spm_model_file, do_lower_case=do_lower_case)
    if vocab_file:
        return WordPieceTokenizer(vocab_file, do_lower_case=do_lower_case)
    raise TokenizerError("give --spm_model_file (SentencePiece) or --vocab_file (WordPiece vocab.txt)")
