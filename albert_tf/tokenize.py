"""albert-tokenize: print the token ids (and pieces) of text lines read on stdin.

    echo "Hello, world" | albert-tokenize --spm_model_file=30k-clean.model --pieces
    albert-tokenize --vocab_file=vocab_chinese.txt --in_graph < lines.txt

It prints one JSON object per input line: {"ids": [...]} plus "pieces" with
--pieces. --in_graph uses the tensorflow-text layers that exported models use, so
comparing the two outputs checks their parity from outside.
"""

import json
import sys

from albert_tf.cli_support import log, quiet_tensorflow, run_main  # noqa: E402

quiet_tensorflow()

from absl import app, flags  # noqa: E402

from albert_tf.text.tokenizer import TokenizerError, load_tokenizer  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("spm_model_file", None, "SentencePiece model (English ALBERT).")
flags.DEFINE_string("vocab_file", None, "WordPiece vocab.txt (albert_zh); used when --spm_model_file is not set.")
flags.DEFINE_bool("do_lower_case", True, "Lower-case before tokenizing (as the model was trained).")
flags.DEFINE_bool("pieces", False, "Also print the pieces.")
flags.DEFINE_bool("in_graph", False, "Tokenize with the tensorflow-text layers instead of Python.")
flags.DEFINE_integer("batch_size", 256, "Lines per in-graph call.")

_LINE_ENDS = "\r\n"


def _read_lines(stream):
    for number, raw in enumerate(stream, start=1):
        try:
            yield raw.decode("utf-8").rstrip(_LINE_ENDS)
        except UnicodeDecodeError as e:
            raise TokenizerError(f"stdin:{number}: invalid UTF-8 ({e.reason} at byte {e.start})") from None


def _batches(lines, size):
    batch = []
    for line in lines:
        batch.append(line)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def tokenize_lines(lines, tokenizer, in_graph=False, with_pieces=False, batch_size=256):
    """Yields one dict per line: {"ids": [int]} (+ "pieces": [str] with `with_pieces`)."""
    if not in_graph:
        for line in lines:
            pieces = tokenizer.tokenize(line)
            record = {"ids": tokenizer.convert_tokens_to_ids(pieces)}
            if with_pieces:
                record["pieces"] = pieces
            yield record
        return
    import tensorflow as tf

    from albert_tf.text.layers import SentencePieceTokenizerLayer, WordPieceTokenizerLayer

    if hasattr(tokenizer, "sp"):
        layer = SentencePieceTokenizerLayer(tokenizer.model_proto, do_lower_case=tokenizer.do_lower_case)
    else:
        layer = WordPieceTokenizerLayer(tokenizer.vocab, do_lower_case=tokenizer.do_lower_case)
    for batch in _batches(lines, batch_size):
        texts = tf.constant(batch)
        ids = layer(texts).to_list()
        if with_pieces and hasattr(layer, "tokenize_to_pieces"):
            pieces = [[p.decode("utf-8") for p in row] for row in layer.tokenize_to_pieces(texts).to_list()]
        elif with_pieces:
            pieces = [tokenizer.convert_ids_to_tokens(row) for row in ids]
        for i, row in enumerate(ids):
            record = {"ids": row}
            if with_pieces:
                record["pieces"] = pieces[i]
            yield record


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        tokenizer = load_tokenizer(FLAGS.spm_model_file, FLAGS.vocab_file, FLAGS.do_lower_case)
        records = tokenize_lines(
            _read_lines(sys.stdin.buffer), tokenizer, FLAGS.in_graph, FLAGS.pieces, FLAGS.batch_size
        )
        for record in records:
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    except TokenizerError as e:
        log(f"albert-tokenize: {e}")
        return 1
    return 0


def run():
    """Console-script entry point."""
    run_main(main, __name__)


if __name__ == "__main__":
    run()
