"""albert-run-pretraining: MLM + SOP pretraining with LAMB or AdamW under tf.distribute.

    albert-run-pretraining --input_file='data/train-*.tfrecord' --output_dir=out/pretrain \\
        --albert_config_file=albert_config.json --train_batch_size=64 --max_seq_length=128 \\
        --num_train_steps=10000 --num_warmup_steps=500 --learning_rate=0.00176

The flag names and defaults are those of the original run_pretraining.py. Running the
same command again after a crash resumes from the last checkpoint in --output_dir.
"""

from albert_tf.cli_support import log, quiet_absl_info, quiet_tensorflow, run_main  # noqa: E402

quiet_tensorflow()

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("input_file", None, "TFRecord files (globs, comma-separated) of albert-create-pretraining-data.")
flags.DEFINE_string("output_dir", None, "Checkpoints, TensorBoard logs and eval results go here.")
flags.DEFINE_string("albert_config_file", None, "albert_config.json of the model.")
flags.DEFINE_string("init_checkpoint", None, "Initial weights (a checkpoint of ours; convert TF1 ones first).")
flags.DEFINE_bool("init_from_group0", False, "Initialize every group from group 0 of --init_checkpoint.")
flags.DEFINE_integer("max_seq_length", 512, "Sequence length of the TFRecords.")
flags.DEFINE_integer("max_predictions_per_seq", 20, "Masked positions per sequence in the TFRecords.")
flags.DEFINE_integer("train_batch_size", 4096, "Global training batch size.")
flags.DEFINE_integer("eval_batch_size", 64, "Global evaluation batch size.")
flags.DEFINE_float("learning_rate", 0.00176, "Peak learning rate.")
flags.DEFINE_integer("num_train_steps", 125000, "Training steps.")
flags.DEFINE_integer("num_warmup_steps", 3125, "Linear warm-up steps.")
flags.DEFINE_integer("start_warmup_step", 0, "Step at which warm-up starts.")
flags.DEFINE_float("poly_power", 1.0, "Exponent of the polynomial decay.")
flags.DEFINE_enum("optimizer", "lamb", ["lamb", "adamw"], "Optimizer.")
flags.DEFINE_integer("save_checkpoints_steps", 5000, "Checkpoint every this many steps.")
flags.DEFINE_integer("keep_checkpoint_max", 5, "Checkpoints kept.")
flags.DEFINE_bool("do_train", True, "Train.")
flags.DEFINE_bool("do_eval", False, "Evaluate MLM/SOP on --input_file after training.")
flags.DEFINE_integer("max_eval_steps", 100, "Evaluation batches.")
flags.DEFINE_string("eval_input_file", None, "Held-out TFRecords for --do_eval (default: --input_file, as the original).")
flags.DEFINE_integer("random_seed", 12345, "Seed of initialization and input shuffling.")
flags.DEFINE_enum(
    "distribution_strategy",
    "default",
    ["default", "mirrored", "multi_worker_mirrored", "tpu"],
    "tf.distribute strategy: one device, all local devices, TF_CONFIG workers, or a TPU.",
)
flags.DEFINE_string("tpu_name", None, "TPU name or grpc:// address for --distribution_strategy=tpu.")
flags.DEFINE_enum("mixed_precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"], "Precision policy.")
flags.DEFINE_bool("jit_compile", False, "Compile the training step with XLA.")
flags.DEFINE_integer("log_steps", 100, "Log metrics every this many steps.")
flags.DEFINE_integer("cpu_replicas", 0, "Split the CPU into this many logical devices (for mirrored runs without GPUs).")
flags.mark_flags_as_required(["input_file", "output_dir", "albert_config_file"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.do_train and not FLAGS.do_eval:
        raise app.UsageError("nothing to do: set --do_train and/or --do_eval")
    from albert_tf.config import AlbertConfig, AlbertConfigError

    try:
        config = AlbertConfig.from_json_file(FLAGS.albert_config_file)
    except AlbertConfigError as e:
        log(f"albert-run-pretraining: --albert_config_file: {e}")
        return 1
    from albert_tf.training.options import (PretrainingError, PretrainingOptions, check_pretraining_options,
                                            input_files)

    options = PretrainingOptions(
        input_file=FLAGS.input_file,
        output_dir=FLAGS.output_dir,
        albert_config=config,
        init_checkpoint=FLAGS.init_checkpoint,
        init_from_group0=FLAGS.init_from_group0,
        max_seq_length=FLAGS.max_seq_length,
        max_predictions_per_seq=FLAGS.max_predictions_per_seq,
        train_batch_size=FLAGS.train_batch_size,
        eval_batch_size=FLAGS.eval_batch_size,
        learning_rate=FLAGS.learning_rate,
        num_train_steps=FLAGS.num_train_steps,
        num_warmup_steps=FLAGS.num_warmup_steps,
        start_warmup_step=FLAGS.start_warmup_step,
        poly_power=FLAGS.poly_power,
        optimizer=FLAGS.optimizer,
        save_checkpoints_steps=FLAGS.save_checkpoints_steps,
        keep_checkpoint_max=FLAGS.keep_checkpoint_max,
        do_train=FLAGS.do_train,
        do_eval=FLAGS.do_eval,
        max_eval_steps=FLAGS.max_eval_steps,
        random_seed=FLAGS.random_seed,
        mixed_precision=FLAGS.mixed_precision,
        jit_compile=FLAGS.jit_compile,
        log_steps=FLAGS.log_steps,
        eval_input_file=FLAGS.eval_input_file,
    )
    # TensorFlow (seconds to import) only once the flags, the config, the input patterns
    # and the output directory are known to be usable; the records are read after it.
    try:
        check_pretraining_options(options)
        for flag, pattern in (("--input_file", options.input_file), ("--eval_input_file", options.eval_input_file)):
            if pattern:
                input_files(pattern, flag)
    except PretrainingError as e:
        log(f"albert-run-pretraining: {e}")
        return 1
    import tensorflow as tf

    quiet_absl_info()
    from albert_tf.training.distribute import create_strategy
    from albert_tf.training.pretraining import PretrainingRun

    if FLAGS.cpu_replicas > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * FLAGS.cpu_replicas)
    try:
        strategy = create_strategy(FLAGS.distribution_strategy, FLAGS.tpu_name)
        run = PretrainingRun(options, strategy, log=log)
        log(f"{strategy.num_replicas_in_sync} replica(s); {run.restore_or_initialize()}")
        if FLAGS.do_train:
            run.train()
        if FLAGS.do_eval:
            results = run.evaluate()
            log("eval: " + "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in sorted(results.items())))
    except PretrainingError as e:
        log(f"albert-run-pretraining: {e}")
        return 1
    return 0


def run():
    """Console-script entry point."""
    run_main(main, __name__)


if __name__ == "__main__":
    run()
