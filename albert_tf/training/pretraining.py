"""The MLM + SOP pretraining run: model, optimizer, distributed input, checkpoints, logs.

`PretrainingRun` keeps one job's state. It validates everything before training. It
restores the latest checkpoint of `output_dir`, so that a killed run restarted with
the same command continues at the same step, with the same optimizer state and
learning rate. It trains with logs, TensorBoard summaries and periodic checkpoints,
and it evaluates into `eval_results.txt` / `.json` like the original.
"""

import json
import os
import shutil
import tempfile
import time

import keras
import tensorflow as tf

from albert_tf.checkpoints import (
    CheckpointError,
    build_model,
    describe_checkpoint,
    resolve_checkpoint,
    restore_weights,
)
from albert_tf.data.dataset import pretraining_dataset
from albert_tf.data.schema import PRETRAINING_FEATURES, feature_lengths
from albert_tf.io_utils import write_text_atomically
from albert_tf.models import AlbertBackbone, AlbertPretrainer
from albert_tf.models.pretrainer import PRETRAINER_INPUT_NAMES
from albert_tf.training.distribute import is_chief
from albert_tf.training.losses import masked_lm_loss, sentence_order_loss
from albert_tf.training.optimizers import create_optimizer
from albert_tf.training.options import (
    PRECISIONS,
    PretrainingError,
    PretrainingOptions,
    check_pretraining_options,
    input_files,
)

# The options and their error live in training/options.py (no TensorFlow); importing
# them from here keeps working.
__all__ = ["PRECISIONS", "PretrainingError", "PretrainingOptions", "PretrainingRun", "check_input_files"]


def check_input_files(input_file, max_seq_length, max_predictions_per_seq, flag="--input_file"):
    """Expands the patterns and checks the first record of each file against the flags.

    Returns the list of files. Raises PretrainingError naming `flag`, the file, the
    feature and both lengths on a mismatch.
    """
    files = input_files(input_file, flag)
    expected = feature_lengths(max_seq_length, max_predictions_per_seq)
    length_flags = {"seq": "--max_seq_length", "pred": "--max_predictions_per_seq"}
    for path in files:
        try:
            first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
        except tf.errors.OpError as e:
            raise PretrainingError(f"{flag} {path}: not a TFRecord file ({e.message})") from None
        if first is None:
            raise PretrainingError(f"{flag} {path}: the file holds no records")
        example = tf.train.Example.FromString(first.numpy())
        for name, kind, length_kind in PRETRAINING_FEATURES:
            if name not in example.features.feature:
                raise PretrainingError(f"{flag} {path}: feature {name!r} is missing")
            feature = example.features.feature[name]
            values = feature.float_list.value if kind == "float" else feature.int64_list.value
            if len(values) != expected[name]:
                raise PretrainingError(
                    f"{flag} {path}: feature {name!r} has length {len(values)}, but "
                    f"{length_flags.get(length_kind, 'the schema')} asks for {expected[name]}"
                )
    return files


class PretrainingRun:
    """One pretraining job under a tf.distribute strategy."""

    def __init__(self, options, strategy=None, log=print):
        self.options = options
        self.strategy = strategy or tf.distribute.get_strategy()
        self.log = log
        self.chief = is_chief(self.strategy)
        self._validate()
        self.files = check_input_files(options.input_file, options.max_seq_length, options.max_predictions_per_seq)
        self.eval_files = (
            check_input_files(options.eval_input_file, options.max_seq_length, options.max_predictions_per_seq,
                              flag="--eval_input_file")
            if options.eval_input_file
            else self.files
        )
        keras.utils.set_random_seed(options.random_seed)
        with self.strategy.scope():
            self.model = AlbertPretrainer(AlbertBackbone(options.albert_config, dtype=options.mixed_precision))
            optimizer, self.schedule = create_optimizer(
                options.optimizer,
                options.learning_rate,
                options.num_train_steps,
                options.num_warmup_steps,
                options.start_warmup_step,
                options.poly_power,
            )
            self.optimizer = (
                keras.optimizers.LossScaleOptimizer(optimizer) if options.mixed_precision == "mixed_float16" else optimizer
            )
            self.optimizer.build(self.model.trainable_variables)
            self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer)
        self.checkpoint_dir = options.output_dir if self.chief else tempfile.mkdtemp(prefix="albert-worker-ckpt-")
        if self.chief:  # beside the checkpoints, so that albert-export finds the config
            options.albert_config.to_json_file(os.path.join(options.output_dir, "albert_config.json"))
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.checkpoint_dir, max_to_keep=options.keep_checkpoint_max, checkpoint_name="ckpt"
        )
        self._train_fn = None
        self._eval_fn = None

    # ----------------------------------------------------------------- checks
    def _validate(self):
        o = self.options
        check_pretraining_options(o)
        if o.train_batch_size % self.strategy.num_replicas_in_sync:
            raise PretrainingError(
                f"--train_batch_size={o.train_batch_size} is not divisible by the "
                f"{self.strategy.num_replicas_in_sync} replicas"
            )

    # ----------------------------------------------------------------- state
    @property
    def step(self):
        """The global step (optimizer iterations), an int."""
        return int(self.optimizer.iterations.numpy())

    def restore_or_initialize(self):
        """Restores the latest checkpoint of output_dir, else --init_checkpoint weights.

        Returns a str describing what happened.
        """
        latest = tf.train.latest_checkpoint(self.options.output_dir)
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
            return f"resumed from {latest} at step {self.step}"
        init = self.options.init_checkpoint
        if not init:
            return "initialized from scratch"
        try:
            prefix = resolve_checkpoint(init, "--init_checkpoint")
            held, _ = describe_checkpoint(prefix, "--init_checkpoint")
            # The heads come along only from a pretrainer; otherwise they start fresh.
            kind = "pretrainer" if held == "pretrainer" else "backbone"
            target = self.model if kind == "pretrainer" else self.model.backbone
            if self.options.init_from_group0:
                self._init_from_group0(prefix, kind, target)
                return f"initialized every group from group 0 of {prefix}"
            restore_weights(prefix, target, kind, "--init_checkpoint")
        except CheckpointError as e:
            raise PretrainingError(str(e)) from None
        return f"initialized {'weights' if kind == 'pretrainer' else 'the encoder (fresh MLM/SOP heads)'} from {prefix}"

    def _init_from_group0(self, prefix, kind, target):
        """Loads a one-group checkpoint and copies its group 0 into every group of `target`."""
        config = self.options.albert_config
        source = build_model(config.replace(num_hidden_groups=1), kind)
        restore_weights(prefix, source, kind, "--init_checkpoint")
        by_path = {v.path: v for v in source.weights}
        for variable in target.weights:
            name = variable.path
            for group in config.used_groups:
                name = name.replace(f"encoder/group_{group}_", "encoder/group_0_")
            variable.assign(by_path[name])

    # ----------------------------------------------------------------- steps
    def _distributed_dataset(self, batch_size, training):
        o = self.options
        files = self.files if training else self.eval_files

        def dataset_fn(context):
            return pretraining_dataset(
                files,
                o.max_seq_length,
                o.max_predictions_per_seq,
                context.get_per_replica_batch_size(batch_size),
                shuffle=training,
                seed=o.random_seed,
                repeat=training,
                input_context=context,
            )

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def _step_metrics(self, batch, outputs):
        mlm_logits = outputs["mlm_logits"]
        weights = batch["masked_lm_weights"]
        mlm_hits = tf.cast(tf.equal(tf.argmax(mlm_logits, -1, output_type=tf.int32), batch["masked_lm_ids"]), tf.float32)
        sop_hits = tf.cast(tf.equal(tf.argmax(outputs["sop_logits"], -1, output_type=tf.int32), batch["next_sentence_labels"]), tf.float32)
        mlm = masked_lm_loss(mlm_logits, batch["masked_lm_ids"], weights)
        sop = sentence_order_loss(outputs["sop_logits"], batch["next_sentence_labels"])
        sums = {
            "mlm_correct": tf.reduce_sum(mlm_hits * weights),
            "mlm_weight": tf.reduce_sum(weights),
            "sop_correct": tf.reduce_sum(sop_hits),
            "examples": tf.cast(tf.shape(sop_hits)[0], tf.float32),
        }
        return mlm, sop, sums

    def _build_train_fn(self):
        replicas = self.strategy.num_replicas_in_sync
        model, optimizer = self.model, self.optimizer
        scales_loss = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

        def step_fn(batch):
            with tf.GradientTape() as tape:
                outputs = model({name: batch[name] for name in PRETRAINER_INPUT_NAMES}, training=True)
                mlm, sop, sums = self._step_metrics(batch, outputs)
                loss = (mlm + sop) / replicas
                if scales_loss:
                    loss = optimizer.scale_loss(loss)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            return {"mlm_loss": mlm, "sop_loss": sop, **sums}

        if self.options.jit_compile:
            step_fn = tf.function(step_fn, jit_compile=True)

        @tf.function
        def train_fn(iterator):
            results = self.strategy.run(step_fn, args=(next(iterator),))
            return self._reduce(results)

        return train_fn

    def _reduce(self, results):
        mean, total = tf.distribute.ReduceOp.MEAN, tf.distribute.ReduceOp.SUM
        return {
            key: self.strategy.reduce(mean if key.endswith("_loss") else total, value, axis=None)
            for key, value in results.items()
        }

    @staticmethod
    def _metrics(totals, batches):
        return {
            "masked_lm_accuracy": totals["mlm_correct"] / max(totals["mlm_weight"], 1e-9),
            "masked_lm_loss": totals["mlm_loss"] / max(batches, 1),
            "sentence_order_accuracy": totals["sop_correct"] / max(totals["examples"], 1e-9),
            "sentence_order_loss": totals["sop_loss"] / max(batches, 1),
        }

    # ----------------------------------------------------------------- train / eval
    def train(self, until_step=None):
        """Trains from the current step to `until_step` (default num_train_steps).

        Returns the metrics of the last log line.
        """
        o = self.options
        until_step = min(until_step or o.num_train_steps, o.num_train_steps)
        if self._train_fn is None:
            self._iterator = iter(self._distributed_dataset(o.train_batch_size, training=True))
            self._train_fn = self._build_train_fn()
        iterator, train_fn = self._iterator, self._train_fn
        writer = tf.summary.create_file_writer(os.path.join(o.output_dir, "train")) if self.chief else None
        totals, batches = {}, 0
        start_step, window_start, run_start = self.step, time.perf_counter(), time.perf_counter()
        metrics = {}
        while self.step < until_step:
            result = train_fn(iterator)
            for key, value in result.items():
                totals[key] = totals.get(key, 0.0) + float(value)
            batches += 1
            step = self.step
            if step % o.log_steps == 0 or step == until_step:
                now = time.perf_counter()
                metrics = self._metrics(totals, batches)
                metrics["learning_rate"] = float(self.schedule(step - 1))
                metrics["examples_per_second"] = totals["examples"] / (now - window_start)
                metrics["loss"] = metrics["masked_lm_loss"] + metrics["sentence_order_loss"]
                done = step - start_step
                eta = (now - run_start) / max(done, 1) * (o.num_train_steps - step)
                self.log(
                    f"step {step}/{o.num_train_steps}  loss {metrics['loss']:.4f}  "
                    f"mlm_loss {metrics['masked_lm_loss']:.4f}  mlm_acc {metrics['masked_lm_accuracy']:.4f}  "
                    f"sop_loss {metrics['sentence_order_loss']:.4f}  sop_acc {metrics['sentence_order_accuracy']:.4f}  "
                    f"lr {metrics['learning_rate']:.3e}  {metrics['examples_per_second']:.1f} ex/s  ETA {_duration(eta)}"
                )
                if writer:
                    with writer.as_default(step=step):
                        for key, value in metrics.items():
                            tf.summary.scalar(key, value)
                totals, batches, window_start = {}, 0, now
            if step % o.save_checkpoints_steps == 0 or step == o.num_train_steps:
                self.manager.save(checkpoint_number=step)
        if writer:
            writer.flush()
        if not self.chief and self.step >= o.num_train_steps:
            shutil.rmtree(self.checkpoint_dir, ignore_errors=True)  # a worker's copy exists only for the collective save
        return metrics

    def evaluate(self):
        """Runs up to max_eval_steps eval batches over eval_input_file (default: input_file).

        It writes eval_results.txt ("key = value" lines, as the original) and
        eval_results.json, and returns the metrics dict.
        """
        o = self.options
        if self._eval_fn is None:  # traced once per run, not once per evaluation
            model = self.model

            def eval_fn(batch):
                outputs = model({name: batch[name] for name in PRETRAINER_INPUT_NAMES}, training=False)
                mlm, sop, sums = self._step_metrics(batch, outputs)
                return {"mlm_loss": mlm, "sop_loss": sop, **sums}

            @tf.function(reduce_retracing=True)
            def distributed_eval(batch):
                return self._reduce(self.strategy.run(eval_fn, args=(batch,)))

            self._eval_fn = distributed_eval
        distributed_eval = self._eval_fn
        totals, batches = {}, 0
        for batch in self._distributed_dataset(o.eval_batch_size, training=False):
            if batches >= o.max_eval_steps:
                break
            for key, value in distributed_eval(batch).items():
                totals[key] = totals.get(key, 0.0) + float(value)
            batches += 1
        results = self._metrics(totals, batches)
        results["global_step"] = self.step
        results["eval_batches"] = batches
        if self.chief:
            lines = "".join(f"{key} = {results[key]}\n" for key in sorted(results))
            write_text_atomically(os.path.join(o.output_dir, "eval_results.txt"), lines)
            write_text_atomically(os.path.join(o.output_dir, "eval_results.json"), json.dumps(results, indent=2) + "\n")
        return results


def _duration(seconds):
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
