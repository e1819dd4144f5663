"""TF Serving warmup records: `assets.extra/tf_serving_warmup_requests`.

The file is a TFRecord of serialized `tensorflow.serving.PredictionLog`. TF Serving
replays each record against its signature while loading a version, before the version
takes traffic, so the first real requests do not pay for graph optimisation. A failing
record fails the load, so every record here is checked by the tests against its
signature.
"""

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    input_pb2,
    model_pb2,
    predict_pb2,
    prediction_log_pb2,
    regression_pb2,
)

from albert_tf.export.signatures import EXAMPLE_FEATURES

WARMUP_FILE = "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving's WarmupConsts::kMaxNumRecords

_WARMUP_TEXTS = [
    "ALBERT shares its transformer blocks across layers.",
    "A short query",
    "The quick brown fox jumps over the lazy dog, twice: 1,000 times in 2024!",
    "東京は日本の首都です。",
]


def _example_ids(batch, length, vocab_size, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab_size, size=(batch, length)).astype(np.int32)
    ids[:, 0], ids[:, -1] = 2, 3
    return {
        "input_word_ids": ids,
        "input_mask": np.ones((batch, length), np.int32),
        "input_type_ids": np.zeros((batch, length), np.int32),
    }


def _serialized_examples(ids):
    examples = []
    for row in range(ids["input_word_ids"].shape[0]):
        features = {
            theirs: tf.train.Feature(int64_list=tf.train.Int64List(value=ids[ours][row].tolist()))
            for theirs, ours in EXAMPLE_FEATURES.items()
        }
        examples.append(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    return np.array(examples, dtype=object)


def warmup_inputs(signature_names, vocab_size, max_seq_length, short_lengths=()):
    """[(signature, {input: numpy array})]: requests that exercise each signature.

    Raw-text requests use a batch of 1 and a pair batch of 4. Tokenized ones use a
    batch of 1 at min(16, max_seq_length) tokens, or at each of `short_lengths` (the
    export's XLA short-input lengths, so that the warmup is what compiles them), and a
    batch of 4 at min(128, max_seq_length): small and common shapes are warm.
    """
    requests = []
    shapes = [(1, length) for length in short_lengths or [min(16, max_seq_length)]]
    shapes.append((4, min(128, max_seq_length)))
    for name in signature_names:
        if name == "serving_default":
            # text_b is always sent: servers older than SignatureDef defaults need it.
            requests.append((name, {"text": np.array(_WARMUP_TEXTS[:1], dtype=object),
                                    "text_b": np.array([""], dtype=object)}))
            requests.append((name, {"text": np.array(_WARMUP_TEXTS, dtype=object),
                                    "text_b": np.array(_WARMUP_TEXTS[::-1], dtype=object)}))
            continue
        for i, (batch, length) in enumerate(shapes):
            ids = _example_ids(batch, length, vocab_size, seed=i)
            if name == "serve_examples":
                requests.append((name, {"examples": _serialized_examples(ids)}))
            elif name in ("classify", "regress"):
                requests.append((name, {"inputs": _serialized_examples(ids)}))
            elif name == "mlm":
                positions = np.tile(np.arange(1, min(4, length)), (ids["input_word_ids"].shape[0], 1)).astype(np.int32)
                requests.append((name, dict(ids, masked_lm_positions=positions)))
            else:
                requests.append((name, ids))
    return requests


def token_id_inputs(signature_name, vocab_size, max_seq_length):
    """[(signature, {input: int32 numpy})]: one row of min(16, max_seq_length) tokens and a
    batch of 4 × min(128, max_seq_length), for a signature that takes input_word_ids,
    input_mask and input_type_ids (a TFLite version's serving_default)."""
    shapes = [(1, min(16, max_seq_length)), (4, min(128, max_seq_length))]
    return [(signature_name, _example_ids(batch, length, vocab_size, seed=i)) for i, (batch, length) in enumerate(shapes)]


def predict_request(model_name, signature_name, inputs):
    """A PredictRequest holding numpy `inputs` (typed tensor protos)."""
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name))
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def prediction_log(model_name, signature_name, inputs):
    """A PredictionLog for one warmup request: a classify_log or regress_log for the
    classify/regress signatures (tf.Examples in `inputs["inputs"]`), else a predict_log."""
    if signature_name in ("classify", "regress"):
        examples = input_pb2.ExampleList(examples=[tf.train.Example.FromString(e) for e in inputs["inputs"]])
        spec = model_pb2.ModelSpec(name=model_name, signature_name=signature_name)
        if signature_name == "classify":
            request = classification_pb2.ClassificationRequest(model_spec=spec, input=input_pb2.Input(example_list=examples))
            return prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(request=request))
        request = regression_pb2.RegressionRequest(model_spec=spec, input=input_pb2.Input(example_list=examples))
        return prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(request=request))
    request = predict_request(model_name, signature_name, inputs)
    return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))


def write_warmup_file(path, model_name, requests):
    """Writes [(signature, inputs)] as PredictionLog records; returns the record count."""
    if len(requests) > MAX_WARMUP_RECORDS:
        raise ValueError(f"{len(requests)} warmup records exceed TF Serving's maximum of {MAX_WARMUP_RECORDS}")
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in requests:
            writer.write(prediction_log(model_name, signature, inputs).SerializeToString())
    return len(requests)


def read_warmup_file(path):
    """The PredictionLog records of a warmup file (a list)."""
    logs = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record)
        logs.append(log)
    return logs
