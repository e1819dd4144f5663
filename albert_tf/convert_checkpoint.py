"""albert-convert-checkpoint: original TF1 ALBERT checkpoints to albert_tf, and back.

    albert-convert-checkpoint --tf1_checkpoint=albert_base/model.ckpt-best \\
        --albert_config_file=albert_base/albert_config.json --model=pretrainer --output_dir=out/albert_base
    albert-convert-checkpoint --to_tf1 --checkpoint=out/pretrain \\
        --albert_config_file=out/albert_base/albert_config.json --model=pretrainer --output_dir=out/tf1

The mapping is an explicit table (albert_tf/convert/tf1_names.py), and the conversion is
strict. An unknown checkpoint variable, a missing one or a shape mismatch is an error
that lists the names. Optimizer slots and global_step are skipped on purpose, and a
TF-Hub "module/" prefix is removed.
"""

import json
import os

from absl import app, flags

from albert_tf.cli_support import log, quiet_absl_info, quiet_tensorflow, run_main

quiet_tensorflow()

FLAGS = flags.FLAGS
flags.DEFINE_string("tf1_checkpoint", None, "Original checkpoint prefix (e.g. albert_base/model.ckpt-best).")
flags.DEFINE_string("checkpoint", None, "With --to_tf1: a checkpoint of ours (file prefix or directory).")
flags.DEFINE_string("albert_config_file", None, "albert_config.json of the model.")
flags.DEFINE_string("output_dir", None, "Where the converted checkpoint and albert_config.json are written.")
flags.DEFINE_enum("model", "pretrainer", ["backbone", "pretrainer", "classifier", "squad"],
                  "What to convert: the encoder, it with MLM/SOP heads, or a fine-tuned run_classifier or "
                  "run_squad_v1 model.")
flags.DEFINE_integer("num_labels", None, "Classes of --model=classifier (default: read off output_bias).")
flags.DEFINE_bool("to_tf1", False, "Convert a checkpoint of ours to the original TF1 names.")
flags.DEFINE_list("allow_missing", [], "Name prefixes (e.g. cls/) that may be absent from the TF1 checkpoint.")
flags.mark_flags_as_required(["albert_config_file", "output_dir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    quiet_absl_info()
    import tensorflow as tf

    from albert_tf.checkpoints import CheckpointError, restore_model
    from albert_tf.config import AlbertConfig, AlbertConfigError
    from albert_tf.convert.tf1_checkpoint import (
        ConversionError,
        convert_tf1_to_model,
        model_to_tf1_arrays,
        read_tf1_checkpoint,
        write_tf1_checkpoint,
    )

    try:
        config = AlbertConfig.from_json_file(FLAGS.albert_config_file)
    except AlbertConfigError as e:
        log(f"albert-convert-checkpoint: --albert_config_file: {e}")
        return 1
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    try:
        if FLAGS.to_tf1:
            if not FLAGS.checkpoint:
                raise app.UsageError("--to_tf1 needs --checkpoint (a checkpoint of ours)")
            model, _ = restore_model(FLAGS.checkpoint, config, FLAGS.model)
            arrays = model_to_tf1_arrays(model, config, FLAGS.model)
            path = write_tf1_checkpoint(arrays, os.path.join(FLAGS.output_dir, "model.ckpt"))
            config.to_json_file(os.path.join(FLAGS.output_dir, "albert_config.json"))
            log(f"wrote {len(arrays)} variables with the original names to {path}")
            return 0
        if not FLAGS.tf1_checkpoint:
            raise app.UsageError("give --tf1_checkpoint (or --to_tf1 with --checkpoint)")
        arrays, hub = read_tf1_checkpoint(FLAGS.tf1_checkpoint)
        model, summary = convert_tf1_to_model(arrays, config, FLAGS.model, FLAGS.allow_missing, FLAGS.num_labels)
        # Through a manager, so the directory gets a "checkpoint" state file and works
        # wherever a checkpoint directory is asked for.
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), FLAGS.output_dir, max_to_keep=1,
                                             checkpoint_name="ckpt")
        path = manager.save(checkpoint_number=0)
        converted_config = model.config if FLAGS.model == "backbone" else model.backbone.config
        converted_config.to_json_file(os.path.join(FLAGS.output_dir, "albert_config.json"))
        summary.update(model=FLAGS.model, tf_hub_prefix_removed=hub, output=path)
        log(json.dumps(summary))
        if summary["layout"] == "brightmart":
            log("brightmart/albert_zh layout (word_embeddings_2, layer_shared): the written albert_config.json "
                "has embedding_projection_position=word_embeddings")
        log(f"mapped {summary['mapped']} variables, skipped {summary['skipped']} (optimizer slots, global_step), "
            f"{summary['parameters']:,} parameters → {path}")
    except (ConversionError, CheckpointError) as e:
        log(f"albert-convert-checkpoint: {e}")
        return 1
    return 0


def run():
    """Console-script entry point."""
    run_main(main, __name__)


if __name__ == "__main__":
    run()
