"""albert-create-pretraining-data: raw text → MLM + SOP TFRecords in the original format.

    albert-create-pretraining-data --input_file='corpus/*.txt' \
        --output_file=out/train-0.tfrecord,out/train-1.tfrecord \
        --spm_model_file=30k-clean.model --max_seq_length=512 --num_workers=8

The flags keep the names and defaults of google-research/albert. The run streams the
input, processes blocks of documents in parallel, and writes byte-identical output for
the same inputs, flags and seed, whatever `--num_workers`.
"""

import os

from albert_tf.cli_support import log, quiet_tensorflow, run_main  # noqa: E402

quiet_tensorflow()

from absl import app, flags  # noqa: E402

from albert_tf.data.pipeline import create_pretraining_data  # noqa: E402
from albert_tf.data.worker import DataOptions, TokenizerSpec  # noqa: E402
from albert_tf.text.spm_training import CorpusError, expand_input_patterns  # noqa: E402
from albert_tf.text.tokenizer import TokenizerError, load_tokenizer  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("input_file", None, "Input text files: comma-separated, globs allowed.")
flags.DEFINE_string("output_file", None, "Output TFRecord files, comma-separated; several are written as shards.")
flags.DEFINE_string("vocab_file", None, "WordPiece vocab.txt (albert_zh); used when --spm_model_file is not set.")
flags.DEFINE_string("spm_model_file", None, "SentencePiece model (English ALBERT).")
flags.DEFINE_bool("do_lower_case", True, "Lower-case the input text.")
flags.DEFINE_bool("do_whole_word_mask", True, "Mask whole words (all their pieces) rather than single pieces.")
flags.DEFINE_bool("favor_shorter_ngram", True, "Draw n-gram lengths with p ∝ 1/n (False: reversed).")
flags.DEFINE_bool("random_next_sentence", False, "NSP-style random-document negatives instead of SOP swaps.")
flags.DEFINE_integer("max_seq_length", 512, "Maximum sequence length.")
flags.DEFINE_integer("ngram", 3, "Maximum n-gram length for masking.")
flags.DEFINE_integer("max_predictions_per_seq", 20, "Maximum masked LM predictions per sequence.")
flags.DEFINE_integer("random_seed", 12345, "Seed for every random draw.")
flags.DEFINE_integer("dupe_factor", 40, "Times to duplicate the input with different masks.")
flags.DEFINE_float("masked_lm_prob", 0.15, "Masked LM probability.")
flags.DEFINE_float("short_seq_prob", 0.1, "Probability of creating sequences shorter than the maximum length.")
flags.DEFINE_integer("num_workers", os.cpu_count() or 1, "Worker processes (output does not depend on it).")
flags.DEFINE_enum(
    "input_format",
    "sentence_per_line",
    ["sentence_per_line", "paragraph_per_line"],
    "sentence_per_line: the original format. paragraph_per_line: each line is a paragraph, split into sentences.",
)
flags.DEFINE_bool("skip_bad_lines", False, "Skip (and count) lines that are not valid UTF-8 instead of failing.")
flags.mark_flags_as_required(["input_file", "output_file"])


def validate_flags():
    """Raises app.UsageError naming the flag; returns warnings (list of str)."""
    checks = [
        (FLAGS.max_seq_length >= 5, "--max_seq_length must be >= 5 ([CLS] A [SEP] B [SEP])"),
        (FLAGS.max_predictions_per_seq >= 1, "--max_predictions_per_seq must be >= 1"),
        (0 <= FLAGS.masked_lm_prob <= 1, "--masked_lm_prob must be in [0, 1]"),
        (0 <= FLAGS.short_seq_prob <= 1, "--short_seq_prob must be in [0, 1]"),
        (FLAGS.dupe_factor >= 1, "--dupe_factor must be >= 1"),
        (FLAGS.ngram >= 1, "--ngram must be >= 1"),
        (FLAGS.num_workers >= 1, "--num_workers must be >= 1"),
        (FLAGS.spm_model_file or FLAGS.vocab_file, "give --spm_model_file (SentencePiece) or --vocab_file (WordPiece)"),
    ]
    for ok, message in checks:
        if not ok:
            raise app.UsageError(message)
    warnings = []
    expected = FLAGS.max_seq_length * FLAGS.masked_lm_prob
    if expected > 1.5 * FLAGS.max_predictions_per_seq:
        warnings.append(
            f"--masked_lm_prob={FLAGS.masked_lm_prob} × --max_seq_length={FLAGS.max_seq_length} = {expected:.0f} "
            f"predictions wanted, but --max_predictions_per_seq={FLAGS.max_predictions_per_seq} caps them: full-length "
            f"sequences will have only {FLAGS.max_predictions_per_seq / FLAGS.max_seq_length:.1%} of tokens masked"
        )
    return warnings


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    for warning in validate_flags():
        log(f"warning: {warning}")
    outputs = [p for p in FLAGS.output_file.split(",") if p]
    if not outputs:
        raise app.UsageError("--output_file: no output file given")
    if len(set(outputs)) != len(outputs):
        raise app.UsageError("--output_file: the same file is listed twice")
    spec = TokenizerSpec(FLAGS.spm_model_file, FLAGS.vocab_file, FLAGS.do_lower_case)
    options = DataOptions(
        max_seq_length=FLAGS.max_seq_length,
        max_predictions_per_seq=FLAGS.max_predictions_per_seq,
        masked_lm_prob=FLAGS.masked_lm_prob,
        dupe_factor=FLAGS.dupe_factor,
        short_seq_prob=FLAGS.short_seq_prob,
        ngram=FLAGS.ngram,
        favor_shorter_ngram=FLAGS.favor_shorter_ngram,
        do_whole_word_mask=FLAGS.do_whole_word_mask,
        random_next_sentence=FLAGS.random_next_sentence,
        random_seed=FLAGS.random_seed,
    )
    try:
        load_tokenizer(spec.spm_model_file, spec.vocab_file, spec.do_lower_case)  # fail before any work
        inputs = expand_input_patterns([FLAGS.input_file], flag="--input_file")
        log(f"reading {len(inputs)} file(s) with {FLAGS.num_workers} worker(s); writing {len(outputs)} shard(s)")
        summary = create_pretraining_data(
            inputs,
            outputs,
            spec,
            options,
            num_workers=FLAGS.num_workers,
            paragraph_per_line=FLAGS.input_format == "paragraph_per_line",
            skip_bad_lines=FLAGS.skip_bad_lines,
            log=log,
        )
    except (CorpusError, TokenizerError) as e:
        log(f"albert-create-pretraining-data: {e}")
        return 1
    log(summary.describe(summary.seconds))
    log(f"wrote {', '.join(outputs)}")
    return 0


def run():
    """Console-script entry point."""
    run_main(main, __name__)


if __name__ == "__main__":
    run()
