"""What every fine-tuning job shares: flag checks, tokenizer, optimizer, checkpoints
(resume, --init_checkpoint, best kept), and the training loop with progress lines.

`FinetuneRun` is subclassed by ClassifierRun (albert-run-classifier) and SquadRun
(albert-run-squad). A subclass builds its model (`build_model`), computes its loss
(`loss`), and decides what "evaluate" means; the base keeps the checkpoint with the best
value of the subclass's metric in `<output_dir>/best/`.
"""

import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from albert_tf.checkpoints import CheckpointError, restore_weights
from albert_tf.finetune.options import FinetuneError, check_common
from albert_tf.io_utils import write_text_atomically
from albert_tf.training.optimizers import create_optimizer


class FinetuneRun:
    """Base of one fine-tuning job.

    `options` needs: albert_config, output_dir, spm_model_file, vocab_file,
    do_lower_case, init_checkpoint, max_seq_length, train_batch_size, learning_rate,
    train_step, warmup_step, save_checkpoints_steps, optimizer, random_seed, log_steps,
    and the batch-size flags named in `positive_flags`.
    """

    positive_flags = ("train_batch_size", "train_step", "save_checkpoints_steps")
    export_kind = None  # albert-export --model of the task

    def __init__(self, options, log=print):
        self.options, self.log = options, log
        o = options
        self.tokenizer = check_common(o, self.positive_flags)
        keras.utils.set_random_seed(o.random_seed)
        self.model = self.build_model()
        self.optimizer, self.schedule = create_optimizer(o.optimizer, o.learning_rate, o.train_step, o.warmup_step)
        self.optimizer.build(self.model.trainable_variables)
        os.makedirs(o.output_dir, exist_ok=True)
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer)
        self.manager = tf.train.CheckpointManager(self.checkpoint, o.output_dir, max_to_keep=3, checkpoint_name="ckpt")
        self.best_dir = os.path.join(o.output_dir, "best")
        self.best_manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=self.model), self.best_dir,
                                                       max_to_keep=1, checkpoint_name="ckpt")
        o.albert_config.to_json_file(os.path.join(o.output_dir, "albert_config.json"))
        self._step_fn = self._predict_fn = None

    # --------------------------------------------------------- subclass API
    def build_model(self):
        """The task model (a keras.Model over the backbone inputs)."""
        raise NotImplementedError

    def loss(self, outputs, labels):
        """Scalar training loss from the model's output dict and a batch of labels."""
        raise NotImplementedError

    # ------------------------------------------------------------ checkpoints
    @property
    def step(self):
        """The optimizer step (int) reached so far."""
        return int(self.optimizer.iterations.numpy())

    def initialize(self):
        """Resumes from output_dir, else loads --init_checkpoint's encoder; returns what happened."""
        latest = self.manager.latest_checkpoint
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
            return f"resumed from {latest} at step {self.step}"
        if not self.options.init_checkpoint:
            return "WARNING: no --init_checkpoint: the model starts from random weights"
        try:
            prefix = restore_weights(self.options.init_checkpoint, self.model.backbone, "backbone", "--init_checkpoint")
        except CheckpointError as e:
            raise FinetuneError(str(e)) from None
        return f"initialized the encoder from {prefix} (fresh task head)"

    def restore_best(self):
        """Loads the best checkpoint's weights, if there is one; returns its prefix or None."""
        best = self.best_manager.latest_checkpoint
        if best:
            tf.train.Checkpoint(model=self.model).read(best).expect_partial().assert_existing_objects_matched()
        return best

    def best_or_latest_checkpoint(self):
        """Path prefix (str) of the best checkpoint by dev score, else the latest, else None."""
        return self.best_manager.latest_checkpoint or self.manager.latest_checkpoint

    def export(self, export_base, model_name):
        """Exports the best (else the latest) checkpoint with albert-export as a
        `self.export_kind` SavedModel under export_base/model_name; returns its path."""
        from albert_tf.export.exporter import ExportError, ExportOptions, export_saved_model

        o = self.options
        checkpoint = self.best_or_latest_checkpoint()
        if not checkpoint:
            raise FinetuneError("--export_dir: no checkpoint to export (train first)")
        try:
            return export_saved_model(ExportOptions(
                checkpoint=checkpoint, albert_config=o.albert_config, export_base=export_base, model_name=model_name,
                model=self.export_kind, spm_model_file=o.spm_model_file, vocab_file=o.vocab_file,
                do_lower_case=o.do_lower_case, max_seq_length=o.max_seq_length), log=self.log)
        except ExportError as e:
            raise FinetuneError(f"--export_dir: {e}") from None

    def record_results(self, results, metric, checkpoint=None):
        """Writes eval_results.txt/json and returns `results`.

        Results of the current weights get `global_step`, and the checkpoint is kept
        when `metric` is the best so far (`best/best_results.json`). Results of a
        restored `checkpoint` (a prefix) name it instead and change nothing else.
        """
        if checkpoint:
            results["checkpoint"] = checkpoint
        else:
            results["global_step"] = self.step
        best_path = os.path.join(self.best_dir, "best_results.json")
        best = json.load(open(best_path)) if os.path.exists(best_path) else None
        if not checkpoint and (best is None or results[metric] > best[metric]):
            self.best_manager.save(checkpoint_number=self.step)
            write_text_atomically(best_path, json.dumps(results, indent=2))
            results["best"] = True
        text = "".join(f"{k} = {v}\n" for k, v in sorted(results.items()))
        write_text_atomically(os.path.join(self.options.output_dir, "eval_results.txt"), text)
        write_text_atomically(os.path.join(self.options.output_dir, "eval_results.json"), json.dumps(results, indent=2))
        self.log("eval: " + "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                      for k, v in sorted(results.items())))
        return results

    # --------------------------------------------------------------- training
    def _train_step(self):
        if self._step_fn is None:
            @tf.function(reduce_retracing=True)
            def step(inputs, labels):
                with tf.GradientTape() as tape:
                    loss = self.loss(self.model(inputs, training=True), labels)
                variables = self.model.trainable_variables
                gradients = tape.gradient(loss, variables)
                gradients, _ = tf.clip_by_global_norm(gradients, 1.0)
                self.optimizer.apply_gradients(zip(gradients, variables))
                return loss

            self._step_fn = step
        return self._step_fn

    def train_loop(self, inputs, labels, num_examples, evaluate=None):
        """Trains to --train_step on shuffled, repeated batches of (inputs, labels),
        saving every --save_checkpoints_steps and then calling `evaluate()` (if given).
        Returns the last evaluation results (or {})."""
        o = self.options
        self.log(f"train: {num_examples:,} examples, {o.train_step} steps of {o.train_batch_size}")
        dataset = (tf.data.Dataset.from_tensor_slices((inputs, labels)).repeat()
                   .shuffle(min(num_examples, 10000), seed=o.random_seed).batch(o.train_batch_size))
        step_fn, results, started, losses = self._train_step(), {}, time.perf_counter(), []
        first_step = self.step
        for batch_inputs, batch_labels in dataset:
            if self.step >= o.train_step:
                break
            losses.append(float(step_fn(batch_inputs, batch_labels)))
            step = self.step
            if step % o.log_steps == 0 or step == o.train_step:
                rate = (step - first_step) / max(time.perf_counter() - started, 1e-9)
                self.log(f"step {step}/{o.train_step}  loss {np.mean(losses[-o.log_steps:]):.4f}  "
                         f"lr {float(self.schedule(step)):.3e}  {rate:.1f} steps/s")
            if step % o.save_checkpoints_steps == 0 or step == o.train_step:
                self.manager.save(checkpoint_number=step)
                if evaluate is not None:
                    results = evaluate()
        return results

    def predict_batches(self, inputs, batch_size):
        """Runs the model in inference mode over `inputs` (dict of arrays) in batches;
        returns {output name: numpy array concatenated over the batches}."""
        if self._predict_fn is None:
            # Compiled once (and once more for a short last batch): run eagerly, every
            # batch paid Keras's per-layer Python overhead.
            self._predict_fn = tf.function(lambda batch: self.model(batch, training=False), reduce_retracing=True)
        outputs = {}
        for batch in tf.data.Dataset.from_tensor_slices(inputs).batch(batch_size):
            for name, value in self._predict_fn(batch).items():
                outputs.setdefault(name, []).append(value.numpy())
        return {name: np.concatenate(values) for name, values in outputs.items()}
