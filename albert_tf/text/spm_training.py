"""Training a SentencePiece model with ALBERT's conventions.

The ids are fixed: `<pad>`=0, `<unk>`=1, `[CLS]`=2, `[SEP]`=3, `[MASK]`=4. BOS and EOS
are off. The training text goes through the same `preprocess_text` as encoding does, so
the vocabulary is learnt on text shaped like the text it will later encode.
"""

import glob
import os
import shutil
import sys
import tempfile
import time

import sentencepiece as spm

from albert_tf.text.normalize import preprocess_text

# Pieces the official recipe registers as user-defined symbols (ids 5-12).
OFFICIAL_USER_SYMBOLS = ("(", ")", '"', "-", ".", "\u2013", "\u00a3", "\u20ac")


class CorpusError(ValueError):
    """Input text cannot be used; the message names the file (and line)."""


def expand_input_patterns(patterns, flag="--input"):
    """Expands comma-separated globs (list of str) into a sorted list of files per
    pattern. Raises CorpusError naming `flag` and the pattern if one matches nothing."""
    files = []
    for pattern in patterns:
        for part in [p for p in str(pattern).split(",") if p]:
            if "://" in part:  # gs://, hdfs://: TensorFlow's file systems (imported only then)
                import tensorflow as tf

                matches = sorted(tf.io.gfile.glob(part))
            else:
                matches = sorted(m for m in glob.glob(part) if os.path.isfile(m))
            if not matches:
                raise CorpusError(f"{flag}: no file matches {part!r}")
            files.extend(matches)
    if not files:
        raise CorpusError(f"{flag}: no input files given")
    return files


def iter_lines(path, skip_bad_lines=False, counters=None):
    """Yields (line_number, text) of a UTF-8 file.

    Raises CorpusError naming the file when it cannot be read, and naming file:line on
    invalid UTF-8. With `skip_bad_lines`, such a line is skipped instead and counted in
    counters["bad_lines"].
    """
    try:
        f = open(path, "rb")
    except OSError as e:
        raise CorpusError(f"{path}: cannot read ({e.strerror})") from None
    with f:
        for number, raw in enumerate(f, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                if not skip_bad_lines:
                    raise CorpusError(
                        f"{path}:{number}: invalid UTF-8 ({e.reason} at byte {e.start}); "
                        "fix the file or pass --skip_bad_lines"
                    ) from None
                if counters is not None:
                    counters["bad_lines"] = counters.get("bad_lines", 0) + 1


def train_sentencepiece(
    input_files,
    model_prefix,
    vocab_size=30000,
    do_lower_case=True,
    character_coverage=0.99995,
    model_type="unigram",
    input_sentence_size=0,
    num_threads=None,
    log=None,
):
    """Trains a model on the lines of `input_files`. It writes `<model_prefix>.model`
    and `.vocab` atomically and returns the path of the `.model` file.

    Raises CorpusError when the corpus is empty or too small for `vocab_size`.
    """

    read_errors = []  # SentencePiece swallows exceptions raised by the iterator

    def sentences():
        count = 0
        start = time.perf_counter()
        try:
            for path in input_files:
                for _, line in iter_lines(path):
                    text = preprocess_text(line, lower=do_lower_case)
                    if text:
                        count += 1
                        if log and count % 100000 == 0:
                            log(f"read {count:,} lines ({time.perf_counter() - start:.0f} s)")
                        yield text
        except CorpusError as e:
            read_errors.append(e)

    out_dir = os.path.dirname(os.path.abspath(model_prefix))
    os.makedirs(out_dir, exist_ok=True)
    work = tempfile.mkdtemp(dir=out_dir, prefix=".spm-train-")
    tmp_prefix = os.path.join(work, "model")
    try:
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=sentences(),
                model_prefix=tmp_prefix,
                vocab_size=vocab_size,
                model_type=model_type,
                character_coverage=character_coverage,
                pad_id=0,
                unk_id=1,
                bos_id=-1,
                eos_id=-1,
                control_symbols=["[CLS]", "[SEP]", "[MASK]"],
                user_defined_symbols=list(OFFICIAL_USER_SYMBOLS),
                input_sentence_size=input_sentence_size,
                shuffle_input_sentence=True,
                num_threads=num_threads or os.cpu_count() or 1,
                minloglevel=1,
            )
        except RuntimeError as e:
            if read_errors:
                raise read_errors[0] from None
            message = str(e)
            if "Vocabulary size too high" in message or "vocab_size" in message:
                raise CorpusError(f"--vocab_size={vocab_size} is too large for this corpus: {message}") from None
            if "Sentence iterator" in message or "empty" in message.lower() or "no sentences" in message.lower():
                raise CorpusError(f"--input: the corpus has no text ({message})") from None
            raise
        if read_errors:
            raise read_errors[0]
        for ext in (".model", ".vocab"):
            os.replace(tmp_prefix + ext, model_prefix + ext)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return model_prefix + ".model"


def _stderr(line):
    print(line, file=sys.stderr, flush=True)
