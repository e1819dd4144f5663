"""Fine-tuning AlbertClassifier on a GLUE-style task: train, evaluate, predict, export.

`ClassifierRun` follows the original run_classifier: AdamW (no bias correction, weight
decay 0.01) with linear warmup and decay, gradient clipping at global norm 1.0, dropout
0.1 on the pooled output, cross-entropy (MSE for STS-B-style regression). It keeps the
checkpoint with the best dev metric in `<output_dir>/best/`, writes `eval_results.txt`,
and writes the GLUE submission file for the test split.
"""

import os

import numpy as np
import tensorflow as tf

from albert_tf.finetune import glue
from albert_tf.finetune.metrics import task_metrics
from albert_tf.finetune.options import CLASSIFIER_POSITIVE_FLAGS, ClassifierOptions, FinetuneError
from albert_tf.finetune.runner import FinetuneRun
from albert_tf.io_utils import write_text_atomically
from albert_tf.models import AlbertBackbone, AlbertClassifier
from albert_tf.models.backbone import INPUT_NAMES
from albert_tf.text import pack_pair

__all__ = ["ClassifierOptions", "ClassifierRun", "FinetuneError", "encode_examples"]


def encode_examples(examples, tokenizer, task, max_seq_length):
    """Tokenizes and packs examples: (inputs {name: int32 [N, max_seq_length]}, labels).

    Labels are int32 ids (float32 scores for regression), or None for unlabelled data.
    """
    rows = {name: [] for name in INPUT_NAMES}
    for example in examples:
        ids_b = tokenizer.encode(example.text_b) if example.text_b else None
        packed = pack_pair(tokenizer.encode(example.text_a), ids_b, max_seq_length, tokenizer.cls_id,
                           tokenizer.sep_id, tokenizer.pad_id)
        for name in INPUT_NAMES:
            rows[name].append(packed[name])
    inputs = {name: np.asarray(values, np.int32) for name, values in rows.items()}
    if any(e.label is None for e in examples):
        return inputs, None
    if task.is_regression:
        return inputs, np.asarray([float(e.label) for e in examples], np.float32)
    return inputs, np.asarray([task.labels.index(e.label) for e in examples], np.int32)


class ClassifierRun(FinetuneRun):
    """One fine-tuning job. Methods: initialize(), train(), evaluate(), predict()."""

    positive_flags = CLASSIFIER_POSITIVE_FLAGS
    export_kind = "classifier"

    def build_model(self):
        task = self.options.task
        self.num_labels = 1 if task.is_regression else len(task.labels)
        return AlbertClassifier(AlbertBackbone(self.options.albert_config), self.num_labels)

    def loss(self, outputs, labels):
        logits = outputs["logits"]
        if self.options.task.is_regression:
            return tf.reduce_mean(tf.square(logits[:, 0] - labels))
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))

    # ----------------------------------------------------------------- data
    def _split(self, split):
        try:
            examples = glue.read_examples(self.options.task, self.options.data_dir, split)
        except glue.TaskDataError as e:
            raise FinetuneError(str(e)) from None
        return examples, *encode_examples(examples, self.tokenizer, self.options.task, self.options.max_seq_length)

    # ----------------------------------------------------------------- jobs
    def train(self):
        """Trains to --train_step, saving (and evaluating, with --do_eval) every
        --save_checkpoints_steps. Returns the last eval results (or {})."""
        _, inputs, labels = self._split("train")
        return self.train_loop(inputs, labels, len(labels), self.evaluate if self.options.do_eval else None)

    def _predict_logits(self, inputs):
        return self.predict_batches(inputs, self.options.eval_batch_size)["logits"]

    def evaluate(self):
        """Dev metrics (dict); keeps the best checkpoint; writes eval_results.txt/json."""
        task = self.options.task
        _, inputs, labels = self._split("dev")
        logits = self._predict_logits(inputs)
        predictions = logits[:, 0] if task.is_regression else logits.argmax(-1)
        return self.record_results(task_metrics(task, labels, predictions), task.metric)

    def predict(self):
        """Writes the GLUE submission TSV (`index\\tprediction`) and per-example
        probabilities for the test split, from the best checkpoint when there is one.
        Returns the submission path."""
        o, task = self.options, self.options.task
        self.restore_best()
        _, inputs, _ = self._split("test")
        try:
            ids = glue.test_ids(task, o.data_dir)
        except glue.TaskDataError as e:
            raise FinetuneError(str(e)) from None
        logits = self._predict_logits(inputs)
        if task.is_regression:
            predictions = [f"{v:.3f}" for v in logits[:, 0]]
            details = [f"{v:.6f}" for v in logits[:, 0]]
        else:
            predictions = [task.labels[i] for i in logits.argmax(-1)]
            probabilities = tf.nn.softmax(logits).numpy()
            details = ["\t".join(f"{p:.6f}" for p in row) for row in probabilities]
        path = os.path.join(o.output_dir, "submission", task.submission)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_text_atomically(path, "index\tprediction\n" + "".join(f"{i}\t{p}\n" for i, p in zip(ids, predictions)))
        write_text_atomically(os.path.join(o.output_dir, "test_results.tsv"), "".join(d + "\n" for d in details))
        self.log(f"predict: {len(predictions):,} test predictions → {path}")
        return path
