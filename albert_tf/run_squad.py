"""albert-run-squad: fine-tune ALBERT on SQuAD v1.1 or v2.0, as the original run_squad_v1/v2.

    albert-run-squad --albert_config_file=out/albert_base/albert_config.json --init_checkpoint=out/albert_base \\
        --spm_model_file=albert_base/30k-clean.model --train_file=squad/train-v1.1.json \\
        --predict_file=squad/dev-v1.1.json --do_train --do_predict --max_seq_length=384 --doc_stride=128 \\
        --max_query_length=64 --train_batch_size=48 --learning_rate=5e-5 --num_train_epochs=2 \\
        --warmup_proportion=0.1 --output_dir=out/squad1 --export_dir=out/export

Add --version_2_with_negative for SQuAD v2.0 (unanswerable questions). The flag names are
the original's; the original's feature-cache flags (--train_feature_file,
--predict_feature_file, --predict_feature_left_file) and v2 beam flags (--start_n_top,
--end_n_top) are accepted and ignored with a warning. --do_predict writes
predictions.json, nbest_predictions.json and (v2.0) null_odds.json, and when the file has
answers, EM/F1 exactly as the official evaluation scripts compute them
(eval_results.json; the best checkpoint by F1 is kept in <output_dir>/best).
"""

from albert_tf.cli_support import log, quiet_absl_info, quiet_tensorflow, run_main

quiet_tensorflow()

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("albert_config_file", None, "albert_config.json of the model.")
flags.DEFINE_string("spm_model_file", None, "SentencePiece model.")
flags.DEFINE_string("vocab_file", None, "WordPiece vocab.txt (albert_zh); used without --spm_model_file.")
flags.DEFINE_string("output_dir", None, "Checkpoints, predictions and eval results.")
flags.DEFINE_string("train_file", None, "SQuAD JSON for training, e.g. train-v1.1.json.")
flags.DEFINE_string("predict_file", None, "SQuAD JSON to answer, e.g. dev-v1.1.json (scored when it has answers).")
flags.DEFINE_string("init_checkpoint", None, "A checkpoint of ours (pretraining or converted); default random weights.")
flags.DEFINE_bool("do_lower_case", True, "Lower-case the input text.")
flags.DEFINE_bool("version_2_with_negative", False, "SQuAD v2.0: some questions have no answer.")
flags.DEFINE_integer("max_seq_length", 384, "Packed length of question + context window.")
flags.DEFINE_integer("doc_stride", 128, "Tokens between the starts of consecutive context windows.")
flags.DEFINE_integer("max_query_length", 64, "Questions are cut to this many tokens.")
flags.DEFINE_bool("do_train", False, "Fine-tune on --train_file.")
flags.DEFINE_bool("do_predict", False, "Answer (and score, if it has answers) --predict_file.")
flags.DEFINE_integer("train_batch_size", 32, "Training batch size.")
flags.DEFINE_integer("predict_batch_size", 8, "Prediction batch size.")
flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate (AdamW).")
flags.DEFINE_float("num_train_epochs", 3.0, "Epochs; steps = questions / train_batch_size × epochs.")
flags.DEFINE_float("warmup_proportion", 0.1, "Share of the steps spent in linear warmup.")
flags.DEFINE_integer("train_step", None, "Training steps (overrides --num_train_epochs).")
flags.DEFINE_integer("save_checkpoints_steps", 1000, "Checkpoint (and score --predict_file) every this many steps.")
flags.DEFINE_integer("n_best_size", 20, "Candidates kept per question in nbest_predictions.json.")
flags.DEFINE_integer("max_answer_length", 30, "Longest answer, in tokens.")
flags.DEFINE_float("null_score_diff_threshold", 0.0,
                   "v2.0: answer \"\" when null score − best span score exceeds this (see best_f1_thresh).")
flags.DEFINE_string("export_dir", None, "Export base for a TF Serving SavedModel of the best checkpoint.")
flags.DEFINE_string("export_model_name", "squad", "Model name under --export_dir.")
flags.DEFINE_enum("optimizer", "adamw", ["adamw", "lamb"], "Optimizer (the original fine-tunes with adamw).")
flags.DEFINE_integer("random_seed", 12345, "Seed.")
# The original's flags that have no effect here; accepted so its command lines run.
IGNORED_FLAGS = {
    "train_feature_file": "features are built in memory",
    "predict_feature_file": "features are built in memory",
    "predict_feature_left_file": "features are built in memory",
    "start_n_top": "v2.0 uses the start/end head with a null-score threshold, not the beam head",
    "end_n_top": "v2.0 uses the start/end head with a null-score threshold, not the beam head",
}
for _name in ("train_feature_file", "predict_feature_file", "predict_feature_left_file"):
    flags.DEFINE_string(_name, None, f"Ignored ({IGNORED_FLAGS[_name]}).")
for _name in ("start_n_top", "end_n_top"):
    flags.DEFINE_integer(_name, None, f"Ignored ({IGNORED_FLAGS[_name]}).")
flags.mark_flags_as_required(["albert_config_file", "output_dir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    quiet_absl_info()
    from albert_tf.config import AlbertConfig, AlbertConfigError
    from albert_tf.finetune.options import FinetuneError, SquadOptions, check_squad_options

    if not (FLAGS.do_train or FLAGS.do_predict):
        raise app.UsageError("at least one of --do_train, --do_predict")
    for name, reason in IGNORED_FLAGS.items():
        if FLAGS[name].present:
            log(f"WARNING: --{name} is ignored: {reason}")
    try:
        config = AlbertConfig.from_json_file(FLAGS.albert_config_file)
    except AlbertConfigError as e:
        log(f"albert-run-squad: --albert_config_file: {e}")
        return 1
    options = SquadOptions(
        albert_config=config, output_dir=FLAGS.output_dir, train_file=FLAGS.train_file,
        predict_file=FLAGS.predict_file, version_2_with_negative=FLAGS.version_2_with_negative,
        spm_model_file=FLAGS.spm_model_file, vocab_file=FLAGS.vocab_file, do_lower_case=FLAGS.do_lower_case,
        init_checkpoint=FLAGS.init_checkpoint, do_train=FLAGS.do_train, do_predict=FLAGS.do_predict,
        max_seq_length=FLAGS.max_seq_length, doc_stride=FLAGS.doc_stride, max_query_length=FLAGS.max_query_length,
        train_batch_size=FLAGS.train_batch_size, predict_batch_size=FLAGS.predict_batch_size,
        learning_rate=FLAGS.learning_rate, num_train_epochs=FLAGS.num_train_epochs,
        warmup_proportion=FLAGS.warmup_proportion, train_step=FLAGS.train_step,
        save_checkpoints_steps=FLAGS.save_checkpoints_steps, n_best_size=FLAGS.n_best_size,
        max_answer_length=FLAGS.max_answer_length, null_score_diff_threshold=FLAGS.null_score_diff_threshold,
        optimizer=FLAGS.optimizer, random_seed=FLAGS.random_seed,
    )
    try:
        check_squad_options(options)
    except FinetuneError as e:
        log(f"albert-run-squad: {e}")
        return 1
    # TensorFlow (seconds to import) only once the flags and files are known to be usable.
    from albert_tf.finetune.question_answering import SquadRun

    try:
        run = SquadRun(options, log=log)
        log(run.initialize())
        if FLAGS.do_train:
            run.train()
        if FLAGS.do_predict:
            run.predict(use_best=True)
        if FLAGS.export_dir:
            run.export(FLAGS.export_dir, FLAGS.export_model_name)
    except FinetuneError as e:
        log(f"albert-run-squad: {e}")
        return 1
    return 0


def run():
    """Console-script entry point."""
    run_main(main, __name__)


if __name__ == "__main__":
    run()
