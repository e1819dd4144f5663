"""TensorFlow Lite versions: `albert-export --format=tflite`.

A TFLite version directory holds `model.tflite` instead of a SavedModel, as TF Serving
expects it: `tensorflow_model_server --prefer_tflite_model=true` (and albert-serve with
the same flag) serves `<base_path>/<version>/model.tflite` with one signature,
`serving_default`:

- inputs `input_word_ids`, `input_mask`, `input_type_ids`: int32 [B, T] (any B, and T up
  to max_position_embeddings; the interpreter resizes when the shape changes);
- outputs what the SavedModel's `encode` signature returns for the export kind, without
  the `input_mask` / `input_word_ids` echoes: `pooled_output` float32 [B, H] and
  `sequence_output` float32 [B, T, H] for a backbone or pretrainer; `logits`,
  `probabilities`, `label_id` (or `logits`, `predictions` for regression) for a
  classifier; `start_logits`, `end_logits` for SQuAD.

With `--precision=dynamic_int8` the weight matrices are stored as int8 (one scale per
output channel) and TFLite quantizes each matmul's input on the fly (dynamic-range quantization);
LayerNorm, softmax, GELU and the outputs stay float32. The file is about a quarter of
the size, and on an AVX2 CPU it took 0.54-0.86× float32's time (README, Performance).
The export checks it against the float32 Keras model by cosine similarity instead of
absolute difference.

TF Serving's TFLite session has only the builtin TFLite ops, so the model takes token
ids: the tokenizer (tensorflow-text) cannot go into it. The tokenizer file, when given,
is copied to `assets.extra/` for clients. Why this format exists: on a CPU without
AVX-512, TFLite's XNNPACK kernels run ALBERT-base faster than TensorFlow's oneDNN and XLA
kernels (README, "On a CPU without AVX-512").
"""

import json
import os
import shutil
import warnings

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from albert_tf.export import warmup
from albert_tf.export.signatures import AlbertServingModule, ids_spec
from albert_tf.models.backbone import INPUT_NAMES

TFLITE_FILE = "model.tflite"  # TF Serving's kTfLiteModelFilename
SIGNATURE = "serving_default"
# The export checks the converted model against the Keras model on a padded batch: every
# output within this absolute difference (float32 kernels on both sides; measured 1e-6).
MAX_ABS_DIFFERENCE = 1e-3
# --precision=dynamic_int8 is checked by the cosine similarity of each float output row to
# the Keras model's instead (the accuracy rule for reduced precision; measured
# 0.9998 for ALBERT-base's pooled output).
MIN_COSINE = 0.999
# --precision values a TFLite version takes.
PRECISIONS = ("float32", "dynamic_int8")


class TfLiteConversionError(ValueError):
    """The model could not be converted to builtin TFLite ops, or the result disagrees with Keras."""


def tflite_function(model, kind):
    """A concrete function of the model on token ids with the variables frozen to constants.

    Takes int32 [B, T] input_word_ids, input_mask, input_type_ids; returns the dict of
    `AlbertServingModule.model_outputs` (the encoder head of the export kind).
    """
    module = AlbertServingModule(model, kind, tokenizer=None, packer=None)

    @tf.function(input_signature=[ids_spec(name) for name in INPUT_NAMES])
    def outputs(input_word_ids, input_mask, input_type_ids):
        return module.model_outputs({"input_word_ids": input_word_ids, "input_mask": input_mask,
                                     "input_type_ids": input_type_ids})

    traced = outputs.get_concrete_function()
    # Freezing loses the output names (the frozen function returns a flat list), so a
    # wrapper puts them back: the converter names the TFLite signature's outputs after them.
    frozen = convert_variables_to_constants_v2(traced)

    @tf.function(input_signature=[ids_spec(name) for name in INPUT_NAMES])
    def named(input_word_ids, input_mask, input_type_ids):
        flat = tf.nest.flatten(frozen(input_word_ids, input_mask, input_type_ids))
        return tf.nest.pack_sequence_as(traced.structured_outputs, flat)

    return named.get_concrete_function()


def convert(model, kind, precision="float32"):
    """The model as TFLite flatbuffer bytes (builtin ops only, one `serving_default`
    signature; `precision` of PRECISIONS). Raises TfLiteConversionError."""
    return convert_function(tflite_function(model, kind), precision)


def convert_function(function, precision="float32"):
    """A concrete function with no variables as TFLite bytes: builtin ops only, one
    `serving_default` signature named after its inputs and outputs; with
    precision="dynamic_int8", int8 weight matrices (dynamic-range quantization). Raises
    TfLiteConversionError."""
    if precision not in PRECISIONS:
        raise TfLiteConversionError(f"--precision={precision}: a TFLite version takes one of {list(PRECISIONS)}")
    # With no trackable object the converter writes no SignatureDef, and TF Serving then
    # names the inputs after tensors, not after the signature's keys.
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], tf.Module())
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # TF Serving links no Flex ops
    if precision == "dynamic_int8":
        # Weights of at least 1024 elements become int8; XNNPACK runs the int8 matmuls.
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    try:
        return converter.convert()
    except Exception as e:  # noqa: BLE001 - the converter raises several kinds; all mean "cannot convert"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TfLiteConversionError(f"TensorFlow Lite conversion failed: {first}") from None


def signature_runner(model_bytes, num_threads):
    """A tf.lite SignatureRunner for `serving_default` of TFLite bytes (XNNPACK, `num_threads`).

    Call it with int32 numpy inputs by name; it returns {output name: numpy}. Not
    thread-safe: one caller at a time per runner.
    """
    with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated" (for ai_edge_litert); TF 2.20 has it
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_content=model_bytes, num_threads=num_threads)
    runners = interpreter.get_signature_list()
    if SIGNATURE not in runners:
        raise TfLiteConversionError(f"the TFLite model has signatures {sorted(runners)}, not {SIGNATURE}")
    return interpreter.get_signature_runner(SIGNATURE)  # it keeps a reference to its interpreter


def version_runner(version_dir, num_threads):
    """`signature_runner` of the model.tflite in a version directory."""
    with open(os.path.join(version_dir, TFLITE_FILE), "rb") as f:
        return signature_runner(f.read(), num_threads)


def row_cosines(got, expected):
    """Cosine similarity of each row (first axis) of two float arrays, flattened; numpy [B] float64."""
    got = np.asarray(got, np.float64).reshape(len(got), -1)
    expected = np.asarray(expected, np.float64).reshape(len(expected), -1)
    norms = np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
    return np.sum(got * expected, axis=1) / np.maximum(norms, 1e-30)


def check_against_keras(model_bytes, model, kind, vocab_size, precision="float32"):
    """Runs the TFLite model and the Keras model on one padded batch of 2 × 12 ids.

    Returns a dict: `max_abs_difference` over the outputs, `min_cosine` (the lowest cosine
    similarity of a float output row) and `outputs` (the sorted output names). Raises
    TfLiteConversionError when an output is missing, or, for float32, differs by more than
    MAX_ABS_DIFFERENCE, or, for dynamic_int8, has a row below MIN_COSINE (integer outputs
    such as `label_id` are then not compared: they follow the checked logits).
    """
    rng = np.random.default_rng(0)
    ids = rng.integers(5, vocab_size, size=(2, 12)).astype(np.int32)
    mask = np.ones_like(ids)
    ids[1, 8:], mask[1, 8:] = 0, 0  # the second row is padded
    inputs = {"input_word_ids": ids, "input_mask": mask, "input_type_ids": np.zeros_like(ids)}
    module = AlbertServingModule(model, kind, tokenizer=None, packer=None)
    expected = {k: v.numpy() for k, v in module.model_outputs({k: tf.constant(v) for k, v in inputs.items()}).items()}
    got = signature_runner(model_bytes, num_threads=1)(**inputs)
    if set(got) != set(expected):
        raise TfLiteConversionError(f"the TFLite model returns {sorted(got)}, the Keras model {sorted(expected)}")
    floats = [k for k in expected if np.issubdtype(expected[k].dtype, np.floating)]
    worst = max(float(np.max(np.abs(got[k].astype(np.float64) - expected[k]))) for k in expected)
    cosines = {k: float(np.min(row_cosines(got[k], expected[k]))) for k in floats}
    lowest = min(cosines.values()) if cosines else 1.0
    if precision == "float32" and not worst <= MAX_ABS_DIFFERENCE:
        raise TfLiteConversionError(f"the TFLite model's outputs differ from the Keras model's by {worst:.3g} "
                                    f"(allowed {MAX_ABS_DIFFERENCE})")
    if precision != "float32" and not lowest >= MIN_COSINE:
        name = min(cosines, key=cosines.get)
        raise TfLiteConversionError(f"the {precision} TFLite model's {name} has cosine similarity {lowest:.6f} "
                                    f"to the float32 Keras model's (required at least {MIN_COSINE}); "
                                    f"export with --precision=float32")
    return {"max_abs_difference": worst, "min_cosine": lowest, "outputs": sorted(got)}


def write_tflite_version(staging, model, kind, config, tokenizer_file, model_name, write_warmup, log,
                         precision="float32", extra_manifest=None):
    """Fills the empty directory `staging` with a TFLite version of `precision` (PRECISIONS);
    returns the manifest (a dict).

    Writes model.tflite, and assets.extra/ with albert_config.json, the tokenizer file (if
    given), tf_serving_warmup_requests (if `write_warmup`) and albert_export.json (with
    `extra_manifest` merged in).
    """
    log(f"converting to TensorFlow Lite (builtin ops, {precision})")
    model_bytes = convert(model, kind, precision)
    check = check_against_keras(model_bytes, model, kind, config.vocab_size, precision)
    agreement = (f"outputs within {check['max_abs_difference']:.1e} of the Keras model" if precision == "float32" else
                 f"outputs at cosine similarity {check['min_cosine']:.6f} or more to the float32 Keras model")
    log(f"model.tflite: {len(model_bytes) / 2**20:.1f} MiB, {agreement}")
    with open(os.path.join(staging, TFLITE_FILE), "wb") as f:
        f.write(model_bytes)
    extra = os.path.join(staging, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    config.to_json_file(os.path.join(extra, "albert_config.json"))
    if tokenizer_file:
        shutil.copy(tokenizer_file, os.path.join(extra, os.path.basename(tokenizer_file)))
    records = 0
    if write_warmup:
        requests = warmup.token_id_inputs(SIGNATURE, config.vocab_size, config.max_position_embeddings)
        records = warmup.write_warmup_file(os.path.join(extra, warmup.WARMUP_FILE), model_name, requests)
    manifest = {
        "format": "tflite",
        "model": kind,
        "signatures": [SIGNATURE],
        "inputs": list(INPUT_NAMES),
        "outputs": check["outputs"],
        "tokenizer": os.path.basename(tokenizer_file) if tokenizer_file else None,
        "max_abs_difference_to_keras": check["max_abs_difference"],
        "min_cosine_to_keras": check["min_cosine"],
        "warmup_records": records,
        "num_labels": getattr(model, "num_labels", None) if kind == "classifier" else None,
        "precision": precision,
        "tensorflow": tf.__version__,
        **(extra_manifest or {}),
    }
    with open(os.path.join(extra, "albert_export.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
    return manifest
