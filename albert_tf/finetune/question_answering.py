"""Fine-tuning AlbertSpanExtractor on SQuAD v1.1 / v2.0: train, predict, evaluate.

`SquadRun` follows the original run_squad_v1: AdamW with linear warmup
(`warmup_proportion` of the steps) and decay, gradient clipping at 1.0, and the loss
(cross-entropy of the start position + cross-entropy of the end position) / 2. The
number of steps is len(train questions) / train_batch_size × num_train_epochs, as
the original computes it, unless `train_step` is given.

v2.0 uses the same start/end head: "no answer" is the span ([CLS], [CLS]), and a
question is answered "" when the null score beats the best span by more than
`null_score_diff_threshold` (the BERT v2.0 recipe). The original ALBERT run_squad_v2's
XLNet-style beam head with an answer classifier is not built.
"""

import json
import os

import tensorflow as tf

from albert_tf.finetune import squad
from albert_tf.finetune.options import SQUAD_POSITIVE_FLAGS, FinetuneError, SquadOptions, check_squad_flags
from albert_tf.finetune.runner import FinetuneRun
from albert_tf.finetune.squad_eval import evaluate
from albert_tf.io_utils import write_text_atomically
from albert_tf.models import AlbertBackbone, AlbertSpanExtractor

__all__ = ["FinetuneError", "SquadOptions", "SquadRun"]


class SquadRun(FinetuneRun):
    """One SQuAD job. Methods: initialize(), train(), predict()."""

    positive_flags = SQUAD_POSITIVE_FLAGS
    export_kind = "squad"

    def __init__(self, options, log=print):
        o = self.options = options
        check_squad_flags(o)
        self._train_examples = self._read(o.train_file, "--train_file", True) if o.do_train else None
        if o.train_step is None:
            questions = len(self._train_examples) if self._train_examples else 0
            o.train_step = max(1, int(questions / o.train_batch_size * o.num_train_epochs))
        if o.warmup_step is None:
            o.warmup_step = int(o.train_step * o.warmup_proportion)
        self._contexts = {}  # context → (ids, spans), shared by train and predict
        self._predict_data = None  # (examples, features, inputs) of --predict_file, built once
        super().__init__(o, log)

    def build_model(self):
        return AlbertSpanExtractor(AlbertBackbone(self.options.albert_config))

    def loss(self, outputs, labels):
        def cross_entropy(logits, positions):
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=positions, logits=logits))

        return (cross_entropy(outputs["start_logits"], labels["start_positions"])
                + cross_entropy(outputs["end_logits"], labels["end_positions"])) / 2

    # ----------------------------------------------------------------- data
    def _read(self, path, flag, is_training):
        try:
            return squad.read_squad_examples(path, self.options.version_2_with_negative, is_training, flag)
        except squad.SquadDataError as e:
            raise FinetuneError(str(e)) from None

    def _features(self, examples, is_training):
        o = self.options
        features = squad.convert_examples_to_features(
            examples, self.tokenizer, o.max_seq_length, o.doc_stride, o.max_query_length, is_training, self._contexts)
        inputs, labels = squad.features_to_arrays(features, o.max_seq_length, self.tokenizer.pad_id)
        return features, inputs, labels

    # ----------------------------------------------------------------- jobs
    def train(self):
        """Trains to the step count, saving every --save_checkpoints_steps; with
        --do_predict on a file with answers, evaluates at each save and keeps the best
        F1. Returns the last evaluation results (or {})."""
        features, inputs, labels = self._features(self._train_examples, is_training=True)
        self.log(f"train: {len(self._train_examples):,} questions → {len(features):,} windows")
        evaluate_each_save = self.options.do_predict and self._predict_examples_have_answers()
        return self.train_loop(inputs, labels, len(features), self.predict if evaluate_each_save else None)

    def _predict_examples_have_answers(self):
        return any(e.answers or e.is_impossible for e in self._predict_set()[0])

    def _predict_set(self):
        """(examples, features, inputs) of --predict_file: read and featurized once,
        then reused by every evaluation during training."""
        if self._predict_data is None:
            examples = self._read(self.options.predict_file, "--predict_file", False)
            features, inputs, _ = self._features(examples, is_training=False)
            self._predict_data = (examples, features, inputs)
        return self._predict_data

    def predict(self, use_best=False):
        """Answers --predict_file with the current weights (the best checkpoint's when
        `use_best` and there is one). Writes predictions.json, nbest_predictions.json,
        null_odds.json (v2.0) and, when the file has answers, the EM/F1 results (keeping
        the best checkpoint by F1). Returns the results dict ({} without answers)."""
        o = self.options
        best = self.restore_best() if use_best else None
        examples, features, inputs = self._predict_set()
        logits = self.predict_batches(inputs, o.predict_batch_size)
        prediction = squad.predict_answers(
            examples, features, logits["start_logits"], logits["end_logits"], o.n_best_size, o.max_answer_length,
            o.version_2_with_negative, o.null_score_diff_threshold)
        files = {"predictions.json": prediction.answers, "nbest_predictions.json": prediction.nbest}
        if o.version_2_with_negative:
            files["null_odds.json"] = prediction.null_odds
        for name, content in files.items():
            write_text_atomically(os.path.join(o.output_dir, name), json.dumps(content, indent=2, ensure_ascii=False))
        self.log(f"predict: {len(examples):,} questions ({len(features):,} windows) → "
                 f"{os.path.join(o.output_dir, 'predictions.json')}")
        if not self._predict_examples_have_answers():
            return {}
        results = evaluate(examples, prediction.answers, o.version_2_with_negative, prediction.null_odds or None)
        if best:
            return self.record_results(results, "f1", checkpoint=best)
        return self.record_results(results, "f1")
