"""albert-train-tokenizer: train a SentencePiece model with ALBERT's special-token ids.

    albert-train-tokenizer --input=corpus/*.txt --model_prefix=out/30k-clean \
        --vocab_size=30000 --do_lower_case

It writes `<model_prefix>.model` and `<model_prefix>.vocab` with `<pad>`=0, `<unk>`=1,
`[CLS]`=2, `[SEP]`=3 and `[MASK]`=4.
"""



from absl import app, flags

from albert_tf.cli_support import log, run_main

from albert_tf.text.spm_training import CorpusError, expand_input_patterns, train_sentencepiece

FLAGS = flags.FLAGS
flags.DEFINE_list("input", None, "Text files (comma-separated, globs allowed), one sentence or paragraph per line.")
flags.DEFINE_string("model_prefix", None, "Output prefix; writes <prefix>.model and <prefix>.vocab.")
flags.DEFINE_integer("vocab_size", 30000, "Vocabulary size, special tokens included.")
flags.DEFINE_bool("do_lower_case", True, "Lower-case the training text (as encoding will).")
flags.DEFINE_float("character_coverage", 0.99995, "Fraction of characters covered by the vocabulary.")
flags.DEFINE_enum("model_type", "unigram", ["unigram", "bpe", "char", "word"], "SentencePiece model type.")
flags.DEFINE_integer("input_sentence_size", 0, "Sample at most this many lines (0 = all).")
flags.DEFINE_integer("num_threads", None, "Trainer threads (default: all cores).")
flags.mark_flags_as_required(["input", "model_prefix"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if FLAGS.vocab_size < 6 + 8:
        raise app.UsageError("--vocab_size must leave room for the 5 special and 8 user-defined pieces")
    try:
        files = expand_input_patterns(FLAGS.input)
        log(f"training a {FLAGS.model_type} model of {FLAGS.vocab_size:,} pieces on {len(files)} file(s)")
        path = train_sentencepiece(
            files,
            FLAGS.model_prefix,
            vocab_size=FLAGS.vocab_size,
            do_lower_case=FLAGS.do_lower_case,
            character_coverage=FLAGS.character_coverage,
            model_type=FLAGS.model_type,
            input_sentence_size=FLAGS.input_sentence_size,
            num_threads=FLAGS.num_threads,
            log=log,
        )
    except CorpusError as e:
        log(f"albert-train-tokenizer: {e}")
        return 1
    print(f"wrote {path} and {FLAGS.model_prefix}.vocab")
    return 0


def run():
    """Console-script entry point."""
    run_main(main, __name__)


if __name__ == "__main__":
    run()
