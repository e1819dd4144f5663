"""albert-run-classifier: fine-tune ALBERT on GLUE or your own TSV, as the original run_classifier.

    albert-run-classifier --task_name=mrpc --data_dir=glue/MRPC --albert_config_file=out/albert_base/albert_config.json \\
        --init_checkpoint=out/albert_base --spm_model_file=albert_base/30k-clean.model \\
        --do_train --do_eval --do_predict --max_seq_length=128 --train_batch_size=32 \\
        --learning_rate=2e-5 --train_step=800 --warmup_step=200 --output_dir=out/mrpc --export_dir=out/export

The flag names are the original's, so its command lines carry over. --task_name=tsv
reads your own train/dev/test.tsv (--text_a_column, --text_b_column, --label_column,
--labels). The best dev checkpoint is kept in <output_dir>/best; --do_predict writes the
GLUE submission file; --export_dir writes a classifier SavedModel for TF Serving
(raw-text signature returning labels and probabilities).
"""

from albert_tf.cli_support import log, quiet_absl_info, quiet_tensorflow, run_main

quiet_tensorflow()

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("task_name", None, "cola, sst-2, mrpc, sts-b, qqp, mnli, mismnli, qnli, rte, wnli, or tsv.")
flags.DEFINE_string("data_dir", None, "Directory holding the task's TSV files.")
flags.DEFINE_string("albert_config_file", None, "albert_config.json of the model.")
flags.DEFINE_string("init_checkpoint", None, "A checkpoint of ours (pretraining or converted); default random weights.")
flags.DEFINE_string("spm_model_file", None, "SentencePiece model.")
flags.DEFINE_string("vocab_file", None, "WordPiece vocab.txt (albert_zh); used without --spm_model_file.")
flags.DEFINE_bool("do_lower_case", True, "Lower-case the input text.")
flags.DEFINE_bool("do_train", False, "Fine-tune on train.tsv.")
flags.DEFINE_bool("do_eval", False, "Evaluate on the dev file (after each save when training).")
flags.DEFINE_bool("do_predict", False, "Write the GLUE submission file for the test file.")
flags.DEFINE_integer("max_seq_length", 512, "Packed sequence length.")
flags.DEFINE_integer("train_batch_size", 32, "Training batch size.")
flags.DEFINE_integer("eval_batch_size", 8, "Eval/predict batch size.")
flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate (AdamW).")
flags.DEFINE_integer("train_step", 1000, "Training steps.")
flags.DEFINE_integer("warmup_step", 0, "Linear warmup steps.")
flags.DEFINE_integer("save_checkpoints_steps", 1000, "Checkpoint (and eval) every this many steps.")
flags.DEFINE_string("output_dir", None, "Checkpoints, eval results and predictions.")
flags.DEFINE_string("export_dir", None, "Export base for a TF Serving SavedModel of the best checkpoint.")
flags.DEFINE_string("export_model_name", None, "Model name under --export_dir (default: the task name).")
flags.DEFINE_enum("optimizer", "adamw", ["adamw", "lamb"], "Optimizer (the original fine-tunes with adamw).")
flags.DEFINE_integer("random_seed", 12345, "Seed.")
flags.DEFINE_integer("text_a_column", 0, "--task_name=tsv: column of the first text.")
flags.DEFINE_integer("text_b_column", None, "--task_name=tsv: column of the second text (none by default).")
flags.DEFINE_integer("label_column", 1, "--task_name=tsv: column of the label.")
flags.DEFINE_list("labels", [], "--task_name=tsv: the label values in id order (empty = regression).")
flags.DEFINE_bool("tsv_header", True, "--task_name=tsv: the files start with a header line.")
flags.mark_flags_as_required(["task_name", "data_dir", "albert_config_file", "output_dir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    quiet_absl_info()
    from albert_tf.config import AlbertConfig, AlbertConfigError
    from albert_tf.finetune import glue
    from albert_tf.finetune.options import ClassifierOptions, FinetuneError, check_classifier_options

    name = FLAGS.task_name.lower()
    if name == "tsv":
        task = glue.generic_tsv_task(FLAGS.text_a_column, FLAGS.text_b_column, FLAGS.label_column, FLAGS.labels,
                                     FLAGS.tsv_header)
    elif name in glue.TASKS:
        task = glue.TASKS[name]
    else:
        raise app.UsageError(f"--task_name={FLAGS.task_name}: expected one of {sorted(glue.TASKS) + ['tsv']}")
    if not (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict):
        raise app.UsageError("at least one of --do_train, --do_eval, --do_predict")
    try:
        config = AlbertConfig.from_json_file(FLAGS.albert_config_file)
    except AlbertConfigError as e:
        log(f"albert-run-classifier: --albert_config_file: {e}")
        return 1
    options = ClassifierOptions(
        task=task, data_dir=FLAGS.data_dir, albert_config=config, output_dir=FLAGS.output_dir,
        spm_model_file=FLAGS.spm_model_file, vocab_file=FLAGS.vocab_file, do_lower_case=FLAGS.do_lower_case,
        init_checkpoint=FLAGS.init_checkpoint, do_train=FLAGS.do_train, do_eval=FLAGS.do_eval,
        do_predict=FLAGS.do_predict, max_seq_length=FLAGS.max_seq_length, train_batch_size=FLAGS.train_batch_size,
        eval_batch_size=FLAGS.eval_batch_size, learning_rate=FLAGS.learning_rate, train_step=FLAGS.train_step,
        warmup_step=FLAGS.warmup_step, save_checkpoints_steps=FLAGS.save_checkpoints_steps, optimizer=FLAGS.optimizer,
        random_seed=FLAGS.random_seed,
    )
    try:
        check_classifier_options(options)
    except FinetuneError as e:
        log(f"albert-run-classifier: {e}")
        return 1
    # TensorFlow (seconds to import) only once the flags and files are known to be usable.
    from albert_tf.finetune.classifier import ClassifierRun

    try:
        run = ClassifierRun(options, log=log)
        log(run.initialize())
        if FLAGS.do_train:
            run.train()
        if FLAGS.do_eval and not FLAGS.do_train:
            run.evaluate()
        if FLAGS.do_predict:
            run.predict()
        if FLAGS.export_dir:
            run.export(FLAGS.export_dir, FLAGS.export_model_name or name)
    except FinetuneError as e:
        log(f"albert-run-classifier: {e}")
        return 1
    return 0


def run():
    """Console-script entry point."""
    run_main(main, __name__)


if __name__ == "__main__":
    run()
