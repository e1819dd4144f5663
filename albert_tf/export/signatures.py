"""The serving tf.Module: an ALBERT model plus its in-graph tokenizer, and the signatures.

Signature names, input names and output names are a public contract (README, "Serving
signatures"). Every signature takes a batch of any size; sequence lengths are dynamic,
so a batch costs what its longest row costs.

| signature        | inputs                                                       | export kinds |
|------------------|--------------------------------------------------------------|--------------|
| serving_default  | text, text_b (tf.string [B]; text_b optional, "" = none)     | all          |
| encode           | input_word_ids, input_mask, input_type_ids (int32 [B, T])     | all          |
| serve_examples   | examples (tf.string [B]: serialized tf.Example of the original run_classifier features) | all |
| mlm              | encode inputs + masked_lm_positions (int32 [B, P])            | pretrainer   |
| sop              | encode inputs                                                | pretrainer   |

Outputs of serving_default, encode and serve_examples: for an encoder export (backbone
or pretrainer) `pooled_output` float32 [B, H], `sequence_output` float32 [B, T, H] and
`input_mask` int32 [B, T]; for a classifier `logits` float32 [B, L],
`probabilities` float32 [B, L] and `label_id` int32 [B] (regression, L = 1:
`logits` and `predictions` float32 [B]); for a SQuAD model (`squad`) `start_logits`
and `end_logits` float32 [B, T] plus `input_word_ids` and `input_mask` int32 [B, T]
(serving_default takes the question as `text` and the context as `text_b`; mapping
tokens back to context characters and windowing long contexts is the client's job, as
`albert_tf.finetune.squad` does it). serve_examples also returns `predictions` (the
label id, as the original Estimator export named it) for a classifier.
`mlm` returns `mlm_logits` float32 [B, P, V]; `sop` returns `sop_logits` float32 [B, 2].

With `xla_short_lengths` (albert-export --xla_short_lengths) every signature but `mlm`
sends a batch of one short row through an XLA-compiled float32 copy of the model (see
`AlbertServingModule`); callers see the same names, shapes and values. The XLA-compiled
functions (that copy, and the model under --xla) hold the dense kernels as graph
constants, up to CONSTANT_KERNELS_MAX_BYTES.
"""

import contextlib
import math
import types

import tensorflow as tf
from tensorflow.python.saved_model import save_context

from albert_tf.layers.dense import constant_kernels, dense_layers, float32_matmuls
from albert_tf.models.backbone import INPUT_NAMES

SIGNATURES_BY_KIND = {
    "backbone": ("serving_default", "encode", "serve_examples"),
    "pretrainer": ("serving_default", "encode", "serve_examples", "mlm", "sop"),
    "classifier": ("serving_default", "encode", "serve_examples", "classify"),
    "squad": ("serving_default", "encode", "serve_examples"),
}
# Signatures whose SignatureDef method_name must not be predict (set after saving, since
# tf.saved_model.save writes every signature as tensorflow/serving/predict).
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
# Original run_classifier feature names → our input names.
EXAMPLE_FEATURES = {"input_ids": "input_word_ids", "input_mask": "input_mask", "segment_ids": "input_type_ids"}
# Model outputs with a token axis (axis 1): cut back to the request's length after the
# XLA short-input path ran them padded.
TOKEN_AXIS_OUTPUTS = ("sequence_output", "start_logits", "end_logits")
# XLA-compiled functions hold the dense kernels as graph constants (faster: see
# `constant_kernels`) when the float32 kernels take at most this much. Each such trace
# holds its own copy in saved_model.pb (an ALBERT-base backbone export's is 33 MB), and
# a GraphDef must stay under 2 GB: ALBERT-base's kernels take 30 MiB, xlarge's 210 MiB,
# and xxlarge (836 MiB) keeps reading variables.
CONSTANT_KERNELS_MAX_BYTES = 256 * 2**20


def ids_spec(name):
    """The TensorSpec of a token-id input: int32 [batch, length], both dynamic."""
    return tf.TensorSpec([None, None], tf.int32, name=name)


class AlbertServingModule(tf.Module):
    """What a SavedModel export holds: the model, the tokenizer and the packer.

    The Keras objects are kept out of TensorFlow's object tracking on purpose. A Keras 3
    variable exports as a *copy* of its tf.Variable, and TF1-style loaders (TF Serving's
    session path, `saved_model_cli`) restore that copy while the functions read the
    original, which stays uninitialized. So the module tracks exactly the tf.Variables
    the signature functions capture, plus the tokenizer's resources (`track_captures`).

    Args:
      model: an AlbertBackbone, AlbertPretrainer, AlbertClassifier or AlbertSpanExtractor
        (built, restored).
      kind: "backbone", "pretrainer", "classifier" or "squad".
      tokenizer: a SentencePieceTokenizerLayer or WordPieceTokenizerLayer.
      packer: an AlbertPacker with pad_to_sequence_length=False.
      jit_compile: compile the model part (not the tokenizer) with XLA, for every shape.
      xla_short_lengths: sorted lengths (may be empty). A batch of one row of at most
        the largest of them runs an XLA-compiled float32 copy of the model, padded to
        the first length that fits (so it is compiled once per length), and its
        outputs are cut back; everything else runs the graph. Not with jit_compile
        (export_saved_model checks both).
      tokenizer_asset: optional path of the tokenizer file, saved under assets/.

    Attributes: `kernel_bytes`, the size of the dense kernels at float32 (an int);
    `constant_kernels_max_bytes`, the limit it was held against (CONSTANT_KERNELS_MAX_BYTES);
    and `constant_kernels`, whether the XLA-compiled functions hold the kernels as graph
    constants.
    """

    def __init__(self, model, kind, tokenizer, packer, jit_compile=False, xla_short_lengths=(), tokenizer_asset=None):
        super().__init__(name="albert_serving")
        if kind not in SIGNATURES_BY_KIND:
            raise ValueError(f"unknown export kind {kind!r}")
        self._keras = types.SimpleNamespace(model=model, tokenizer=tokenizer, packer=packer)  # untracked
        self.kind = kind
        self.jit_compile = jit_compile
        self.xla_short_lengths = tuple(xla_short_lengths)
        if tokenizer_asset:
            self.tokenizer_asset = tf.saved_model.Asset(tokenizer_asset)
        self.num_labels = model.num_labels if kind == "classifier" else None
        self.kernel_bytes = sum(4 * math.prod(layer.kernel.shape) for layer in dense_layers(model))
        self.constant_kernels_max_bytes = CONSTANT_KERNELS_MAX_BYTES
        compiled = bool(jit_compile or xla_short_lengths)
        self.constant_kernels = compiled and self.kernel_bytes <= self.constant_kernels_max_bytes
        # Kept out of the module's attributes: tf.saved_model.save would list them as
        # functions of their own and trace every one again (the signatures reach them anyway).
        self._inner = types.SimpleNamespace(
            run_model=tf.function(self._compiled_model_outputs if jit_compile else self.model_outputs,
                                  jit_compile=jit_compile, reduce_retracing=True),
            run_short=tf.function(self._float32_model_outputs, jit_compile=True, reduce_retracing=True),
        )

    @property
    def model(self):
        """The Keras model (backbone, pretrainer or task model) the signatures run."""
        return self._keras.model

    def track_captures(self, concrete_functions):
        """Tracks the tf.Variables and tokenizer resources that the functions capture."""
        seen, variables = set(), []
        for function in concrete_functions:
            # `function.variables` also lists variables only read eagerly while tracing
            # (the kernels that `constant_kernels` turned into constants); keep those
            # the graph takes as inputs.
            handles = {id(tensor) for tensor in function.captured_inputs}
            for variable in function.variables:
                if id(variable.handle) in handles and id(variable) not in seen:
                    seen.add(id(variable))
                    variables.append(variable)
        self.captured_variables = variables
        self.tokenizer_resources = [
            t for t in tf.train.TrackableView(self._keras.tokenizer).descendants()
            if isinstance(t, tf.saved_model.experimental.TrackableResource)
        ]

    # ------------------------------------------------------------ model part
    def _backbone(self):
        return self.model if self.kind == "backbone" else self.model.backbone

    def model_outputs(self, inputs, masked_lm_positions=None, head="encoder"):
        """Runs the model in inference mode on dense int32 inputs; a dict of float32 outputs.

        head: "encoder" (pooled/sequence, or the task outputs of a classifier or SQuAD
        model), "mlm" (needs masked_lm_positions) or "sop".
        """
        if self.kind == "squad":
            return dict(self.model(inputs, training=False))
        if self.kind == "classifier":
            logits = self.model(inputs, training=False)["logits"]
            if self.num_labels == 1:
                return {"logits": logits, "predictions": logits[:, 0]}
            return {
                "logits": logits,
                "probabilities": tf.nn.softmax(logits, axis=-1),
                "label_id": tf.argmax(logits, axis=-1, output_type=tf.int32),
            }
        encoded = self._backbone()(inputs, training=False)
        if head == "mlm":
            return {"mlm_logits": self.model.mlm_head(encoded["sequence_output"], masked_lm_positions)}
        if head == "sop":
            return {"sop_logits": self.model.sop_head(encoded["pooled_output"])}
        return {"pooled_output": encoded["pooled_output"], "sequence_output": encoded["sequence_output"]}

    def _xla_tracing(self, float32):
        """The contexts an XLA-compiled function is traced in: float32 matmuls if asked,
        constant kernels if `constant_kernels`."""
        stack = contextlib.ExitStack()
        if float32:
            stack.enter_context(float32_matmuls())
        if self.constant_kernels:
            stack.enter_context(constant_kernels())
        return stack

    def _compiled_model_outputs(self, inputs, masked_lm_positions=None, head="encoder"):
        with self._xla_tracing(float32=False):
            return self.model_outputs(inputs, masked_lm_positions, head=head)

    def _float32_model_outputs(self, inputs, head="encoder"):
        with self._xla_tracing(float32=True):
            return self.model_outputs(inputs, head=head)

    def _run(self, inputs, head="encoder"):
        """The model on dense inputs through the graph or, for a single row that fits one
        of `xla_short_lengths`, through the XLA short-input path (padded to the first
        length that fits, outputs cut back). Returns what `model_outputs` returns."""
        if not self.xla_short_lengths:
            return self._inner.run_model(inputs, head=head)
        shape = tf.shape(inputs["input_word_ids"])
        batch, length = shape[0], shape[1]
        # One branch whose padding is computed, not a branch per length: at 12 tokens a
        # tf.switch_case over the lengths cost 0.35-0.4 ms per request over plain --xla,
        # this cond 0.15-0.3 ms (WORKSPACE_NOTES). XLA still compiles once per length,
        # since those are the only shapes it sees.
        sizes = tf.constant(self.xla_short_lengths)
        target = tf.gather(sizes, tf.minimum(tf.reduce_sum(tf.cast(sizes < length, tf.int32)), len(sizes) - 1))

        def short():
            padded = {name: tf.pad(tensor, [[0, 0], [0, target - length]]) for name, tensor in inputs.items()}
            outputs = self._inner.run_short(padded, head=head)
            return {name: value[:, :length] if name in TOKEN_AXIS_OUTPUTS else value
                    for name, value in outputs.items()}

        is_short = tf.logical_and(tf.equal(batch, 1), length <= self.xla_short_lengths[-1])
        return tf.cond(is_short, short, lambda: self._inner.run_model(inputs, head=head))

    def _encoder_outputs(self, inputs):
        outputs = dict(self._run(inputs))
        if self.kind != "classifier":
            outputs["input_mask"] = inputs["input_mask"]
        if self.kind == "squad":
            outputs["input_word_ids"] = inputs["input_word_ids"]
        return outputs

    # ------------------------------------------------------------ signatures
    def serve_text(self, text, text_b=tf.constant([""])):
        """Raw text: tf.string [B] (and text_b [B], or [1] broadcast; "" = no second segment)."""
        matching = tf.logical_or(tf.size(text_b) == 1, tf.size(text_b) == tf.size(text))
        check = tf.debugging.Assert(matching, ["text_b must hold 1 string or as many as text; got",
                                               tf.size(text_b), "strings for", tf.size(text)])
        with tf.control_dependencies([check]):
            text_b = tf.broadcast_to(text_b, tf.shape(text))
        k = self._keras
        inputs = k.packer(k.tokenizer(text), k.tokenizer(text_b))
        return self._encoder_outputs(inputs)

    def encode(self, input_word_ids, input_mask, input_type_ids):
        """Pre-tokenized int32 [B, T] inputs (T up to max_position_embeddings)."""
        inputs = {"input_word_ids": input_word_ids, "input_mask": input_mask, "input_type_ids": input_type_ids}
        return self._encoder_outputs(inputs)

    def serve_examples(self, examples):
        """Serialized tf.Example [B] with int64 `input_ids`, `input_mask`, `segment_ids`."""
        spec = {name: tf.io.VarLenFeature(tf.int64) for name in EXAMPLE_FEATURES}
        parsed = tf.io.parse_example(examples, spec)
        inputs = {ours: tf.cast(tf.sparse.to_dense(parsed[theirs]), tf.int32) for theirs, ours in EXAMPLE_FEATURES.items()}
        outputs = self._encoder_outputs(inputs)
        if self.kind == "classifier" and self.num_labels > 1:
            outputs["predictions"] = outputs["label_id"]
        return outputs

    def classify(self, inputs):
        """TF Serving Classify/Regress: serialized tf.Example [B] (features as serve_examples).

        Classification: `classes` tf.string [B, L] (label ids "0".."L-1") and `scores`
        float32 [B, L] (probabilities). Regression (L = 1): `outputs` float32 [B].
        """
        outputs = self.serve_examples(inputs)
        if self.num_labels == 1:
            return {"outputs": outputs["predictions"]}
        scores = outputs["probabilities"]
        labels = tf.strings.as_string(tf.range(self.num_labels))
        return {"classes": tf.tile(labels[None, :], [tf.shape(scores)[0], 1]), "scores": scores}

    def method_names(self):
        """{exported signature: method_name} for signatures that are not predict."""
        if self.kind != "classifier":
            return {}
        return {"regress": REGRESS_METHOD} if self.num_labels == 1 else {"classify": CLASSIFY_METHOD}

    def mlm(self, input_word_ids, input_mask, input_type_ids, masked_lm_positions):
        """MLM logits float32 [B, P, V] at int32 positions [B, P]."""
        inputs = {"input_word_ids": input_word_ids, "input_mask": input_mask, "input_type_ids": input_type_ids}
        return self._inner.run_model(inputs, masked_lm_positions, head="mlm")

    def sop(self, input_word_ids, input_mask, input_type_ids):
        """Sentence-order logits float32 [B, 2] (0 = in order, 1 = swapped)."""
        inputs = {"input_word_ids": input_word_ids, "input_mask": input_mask, "input_type_ids": input_type_ids}
        return self._run(inputs, head="sop")

    def signatures(self, save_options):
        """{signature name: tf.function} for this export kind; tracks what they capture.

        save_options: the tf.saved_model.SaveOptions the module will be saved with. The
        functions are traced under them, as tf.saved_model.save traces: a tf.function's
        cache key holds the save context's variable policy, so a trace made outside it is
        made again inside, and every signature (the model in it) would be traced twice.
        """
        ids = [ids_spec(name) for name in INPUT_NAMES]
        functions = {
            "serving_default": (self.serve_text, [tf.TensorSpec([None], tf.string, name="text"),
                                                  tf.TensorSpec([None], tf.string, name="text_b")]),
            "encode": (self.encode, ids),
            "serve_examples": (self.serve_examples, [tf.TensorSpec([None], tf.string, name="examples")]),
            "mlm": (self.mlm, ids + [ids_spec("masked_lm_positions")]),
            "sop": (self.sop, ids),
            "classify": (self.classify, [tf.TensorSpec([None], tf.string, name="inputs")]),
        }
        # Only the chosen functions become tf.functions: tf.saved_model.save traces every
        # tf.function attribute, and a backbone has no mlm/sop heads to trace.
        chosen = {}
        for name in SIGNATURES_BY_KIND[self.kind]:
            method, spec = functions[name]
            exported = next(iter(self.method_names())) if name == "classify" else name  # classify or regress
            chosen[exported] = tf.function(method, input_signature=spec)
        # The tf.functions themselves are returned (not concrete functions) so that the
        # SignatureDef keeps text_b's default.
        with save_context.save_context(save_options):
            self.track_captures([function.get_concrete_function() for function in chosen.values()])
        return chosen
