"""Loaded versions (servables) and the Predict / Classify / Regress logic.

`LoadedVersion` is one `<base_path>/<version>` directory loaded with TF2's loader. Its
SignatureDefs are read from `saved_model.pb`, so metadata and checks see exactly what TF
Serving sees. `LoadedTfLiteVersion` is a version's `model.tflite`, served as TF Serving
serves it with `--prefer_tflite_model`: one `serving_default` signature, named after the
TFLite model's SignatureDef. `predict` performs TF Serving's checks in TF Serving's order
(predict_impl.cc → server_core.cc → predict_util.cc) and returns a PredictResponse.
"""

import json
import os
import queue

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import classification_pb2, get_model_metadata_pb2, predict_pb2, regression_pb2

from albert_tf.export.tflite import SIGNATURE, TFLITE_FILE, TfLiteConversionError, signature_runner
from albert_tf.serving.tensors import (
    ServingError,
    from_tensor_proto,
    from_tf_error,
    invalid_argument,
    to_tensor_proto,
    type_name,
)

DEFAULT_SIGNATURE = "serving_default"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


def _braces(names):
    return "{" + ", ".join(sorted(names)) + "}"


class LoadedVersion:
    """One loaded model version.

    Attributes: `name`, `version` (int), `path`, `signature_defs` ({name: SignatureDef}),
    `manifest` (albert_export.json as a dict, or {} for other SavedModels).
    `run(signature, inputs)` takes {alias: numpy} and returns {alias: numpy}.
    With `allow_xla=False` (tensorflow_model_server's default, `--xla_cpu_compilation_enabled`
    unset) a SavedModel with XLA-compiled functions fails to load with FAILED_PRECONDITION.
    """

    def __init__(self, name, version, path, tags=("serve",), allow_xla=True):
        self.name, self.version, self.path = name, version, path
        self.batching_parameters = None  # per-model BatchingParameters (batching_params.pbtxt), set by the manager
        if not os.path.exists(os.path.join(path, "saved_model.pb")):
            hint = (f"; it holds {TFLITE_FILE}: start the server with --prefer_tflite_model=true"
                    if os.path.exists(os.path.join(path, TFLITE_FILE)) else "")
            raise ServingError(grpc.StatusCode.NOT_FOUND, "Could not find SavedModel .pb or .pbtxt at supplied export "
                                                          f"directory path: {path}{hint}")
        proto = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            proto.ParseFromString(f.read())
        meta_graph = next((m for m in proto.meta_graphs if set(m.meta_info_def.tags) == set(tags)), None)
        if meta_graph is None:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find meta graph def matching supplied tags: "
                                                          f"{{ {' '.join(tags)} }}. in {path}")
        compiled = [f.signature.name for f in meta_graph.graph_def.library.function
                    if "_XlaMustCompile" in f.attr and f.attr["_XlaMustCompile"].b]
        if compiled and not allow_xla:
            # TF Serving would fail the first compilation, which is the warmup of albert-tf's XLA exports.
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                               f"{path} has {len(compiled)} XLA-compiled function(s) (as albert-export --xla and "
                               "--xla_short_lengths exports do); start the server with "
                               "--xla_cpu_compilation_enabled=true, which tensorflow_model_server needs for it too")
        self.all_signature_defs = dict(meta_graph.signature_def)
        self.signature_defs = {k: v for k, v in self.all_signature_defs.items() if not k.startswith("__")}
        self._loaded = tf.saved_model.load(path, tags=list(tags))
        self._functions = {k: self._loaded.signatures[k] for k in self.signature_defs}
        self.manifest = read_manifest(path)

    def run(self, signature_name, inputs):
        """Calls a signature; TF and binding errors become ServingErrors (TF's codes)."""
        function = self._functions[signature_name]
        try:
            outputs = function(**{k: tf.constant(v) for k, v in inputs.items()})
        except tf.errors.OpError as e:
            raise from_tf_error(e) from None
        except (TypeError, ValueError) as e:  # Python-side binding checks (rank, missing kwarg)
            raise invalid_argument(str(e)) from None
        return {k: v.numpy() for k, v in outputs.items()}


def read_manifest(path):
    """assets.extra/albert_export.json of a version directory as a dict ({} when absent)."""
    manifest_path = os.path.join(path, "assets.extra", "albert_export.json")
    if not os.path.exists(manifest_path):
        return {}
    with open(manifest_path, encoding="utf-8") as f:
        return json.load(f)


class LoadedTfLiteVersion:
    """One version's `model.tflite`, loaded into a pool of TFLite interpreters.

    The same attributes and `run` as LoadedVersion. `signature_defs` holds one predict
    SignatureDef, `serving_default`, whose inputs and outputs are the TFLite model's
    signature keys (TensorInfo names are the TFLite tensor names; dynamic dimensions -1).
    A request takes a free interpreter from the pool (`interpreters` of them, TF Serving's
    --num_tflite_pools, each running on `threads` threads) and resizes its inputs when the
    shape changed since that interpreter's last request.
    A TFLite call cannot be cancelled: it runs to its end past a request's deadline.
    """

    def __init__(self, name, version, path, interpreters=1, threads=0):
        self.name, self.version, self.path = name, version, path
        self.batching_parameters = None
        file = os.path.join(path, TFLITE_FILE)
        try:
            with open(file, "rb") as f:
                model_bytes = f.read()
            runners = [signature_runner(model_bytes, threads or os.cpu_count() or 1) for _ in range(max(1, interpreters))]
        except (TfLiteConversionError, ValueError, RuntimeError) as e:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid TfLite model {file}: {e}") from None
        self._pool = queue.SimpleQueue()
        for runner in runners:
            self._pool.put(runner)
        self._ranks = {alias: len(detail["shape_signature"]) for alias, detail in runners[0].get_input_details().items()}
        signature = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
        for target, details in ((signature.inputs, runners[0].get_input_details()),
                                (signature.outputs, runners[0].get_output_details())):
            for alias, detail in details.items():
                target[alias].name = detail["name"]
                target[alias].dtype = tf.as_dtype(detail["dtype"]).as_datatype_enum
                for size in detail["shape_signature"]:
                    target[alias].tensor_shape.dim.add(size=int(size))
        self.signature_defs = {SIGNATURE: signature}
        self.all_signature_defs = dict(self.signature_defs)
        self.manifest = read_manifest(path)

    def run(self, signature_name, inputs):
        """Runs the TFLite model on {alias: numpy}; returns {alias: numpy}. A wrong rank is
        INVALID_ARGUMENT, as TensorFlow reports it; so is an interpreter failure, since the
        only input-dependent one is a token id outside the vocabulary."""
        for alias, value in inputs.items():
            if np.ndim(value) != self._ranks[alias]:
                raise invalid_argument(f"{alias} must have rank {self._ranks[alias]}, got shape {list(np.shape(value))}")
        runner = self._pool.get()
        try:
            return runner(**inputs)
        except (ValueError, RuntimeError) as e:
            raise invalid_argument(f"TFLite interpreter: {str(e).strip()}") from None
        finally:
            self._pool.put(runner)


def signature_for(version, signature_name, for_method=None):
    """The SignatureDef named (empty = serving_default), with TF Serving's lookup errors."""
    name = signature_name or DEFAULT_SIGNATURE
    signature = version.signature_defs.get(name)
    if signature is None:
        if for_method is None:
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{name}" not found.')
        raise invalid_argument(f"No signature was found with the name: {name}")
    if for_method is not None and signature.method_name != for_method:
        kind = "classification" if for_method == CLASSIFY_METHOD else "regression"
        raise invalid_argument(f"Expected {kind} signature method_name to be {for_method}. "
                               f"Was: {signature.method_name}")
    return name, signature


def validated_inputs(signature, request_inputs, broadcast_defaults=True):
    """Decodes and checks a Predict request's inputs against a SignatureDef.

    The checks and messages follow TF Serving: the input count (defaults may fill in),
    missing aliases, unknown aliases, tensor parsing, then the dtype of each input.
    Returns {alias: numpy}. With broadcast_defaults, a [1]-shaped default (text_b) is
    repeated to the batch size of the inputs sent, so such requests can be batched.
    """
    sent, expected = set(request_inputs), set(signature.inputs)
    defaults = set(signature.defaults)
    if len(sent) != len(expected) and not (sent <= expected and expected - sent <= defaults):
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(expected)} len({_braces(sent)}) != "
            f"len({_braces(expected)}). Sent extra: {_braces(sent - expected)}. "
            f"Missing but required: {_braces(expected - sent - defaults)}.")
    for alias in sorted(expected - sent - defaults):
        raise invalid_argument(f"Signature input alias: {alias}(feed name: {signature.inputs[alias].name}) not found "
                               "in request and no default value provided. Inputs expected to be in the set "
                               f"{_braces(expected)}.")
    for alias in sorted(sent - expected):
        raise invalid_argument(f"input tensor alias not found in signature: {alias}. Inputs expected to be in the "
                               f"set {_braces(expected)}.")
    values = {alias: from_tensor_proto(request_inputs[alias], alias) for alias in sorted(sent)}
    order = sorted(expected)
    for alias in sorted(sent):
        want, got = signature.inputs[alias].dtype, request_inputs[alias].dtype
        if want != got:
            raise invalid_argument(f"Expects arg[{order.index(alias)}] to be {type_name(want)} but "
                                   f"{type_name(got)} is provided")
    batch = next((v.shape[0] for v in values.values() if v.ndim >= 1), None)
    for alias in sorted(expected - sent):
        default = tf.make_ndarray(signature.defaults[alias])
        if broadcast_defaults and batch is not None and default.ndim >= 1 and default.shape[0] == 1 and batch != 1:
            default = np.repeat(default, batch, axis=0)
        values[alias] = default
    return values


def checked_output_filter(signature, output_filter):
    """The output aliases to return (all when the filter is empty), checked as TF Serving."""
    if not output_filter:
        return sorted(signature.outputs)
    seen = set()
    for alias in output_filter:
        if alias not in signature.outputs:
            raise invalid_argument(f"output tensor alias not found in signature: {alias} Outputs expected to be in "
                                   f"the set {_braces(signature.outputs)}.")
        if alias in seen:
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    return list(output_filter)


def response_model_spec(target, request_spec, version, signature_name):
    """Fills a response ModelSpec: request name, effective signature, served version."""
    target.name = request_spec.name
    target.version.value = version.version
    if signature_name is not None:
        target.signature_name = signature_name


PREDICT_METHODS = ("tensorflow/serving/predict", CLASSIFY_METHOD, REGRESS_METHOD)


def predict(resolve, request, run=None, tensor_content=False, check_method_name=False):
    """Serves one PredictRequest.

    Args:
      resolve: ModelSpec → LoadedVersion (raising TF Serving's NOT_FOUND etc.).
      request: a PredictRequest.
      run: optional (version, signature_name, inputs) → outputs, e.g. the batcher;
        default `version.run`.
      tensor_content: encode outputs as tensor_content instead of typed fields.
      check_method_name: `--enable_signature_method_name_check`: refuse (INTERNAL, TF
        Serving's message) a signature whose method_name is not predict, classify or regress.
    Returns a PredictResponse. Raises ServingError.
    """
    if not request.HasField("model_spec"):
        raise invalid_argument("Missing ModelSpec")
    version = resolve(request.model_spec)
    name, signature = signature_for(version, request.model_spec.signature_name)
    if check_method_name and signature.method_name not in PREDICT_METHODS:
        raise ServingError(grpc.StatusCode.INTERNAL, "Expected prediction signature method_name to be one of "
                                                     f"{{{', '.join(PREDICT_METHODS)}}}. Was: {signature.method_name}")
    inputs = validated_inputs(signature, request.inputs)
    aliases = checked_output_filter(signature, list(request.output_filter))
    outputs = (run or (lambda v, s, i: v.run(s, i)))(version, name, inputs)
    response = predict_pb2.PredictResponse()
    for alias in aliases:
        response.outputs[alias].CopyFrom(to_tensor_proto(outputs[alias], tensor_content))
    response_model_spec(response.model_spec, request.model_spec, version, name)
    return response


def _serialized_examples(request_input):
    """Serialized tf.Examples of an `Input` (example_list or example_list_with_context)."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        return [e.SerializeToString() for e in request_input.example_list.examples]
    if kind == "example_list_with_context":
        context = request_input.example_list_with_context.context
        merged = []
        for example in request_input.example_list_with_context.examples:
            full = type(example)()
            full.CopyFrom(context)
            full.MergeFrom(example)
            merged.append(full.SerializeToString())
        return merged
    raise invalid_argument("Input is empty")


def _run_example_signature(resolve, request, method, run):
    if not request.HasField("model_spec"):
        raise invalid_argument("Missing ModelSpec")
    version = resolve(request.model_spec)
    name, signature = signature_for(version, request.model_spec.signature_name, for_method=method)
    examples = _serialized_examples(request.input)
    if not examples:
        raise invalid_argument("Input is empty")
    (alias,) = signature.inputs
    inputs = {alias: np.array(examples, dtype=object)}
    outputs = (run or (lambda v, s, i: v.run(s, i)))(version, name, inputs)
    return version, name, outputs


def classify(resolve, request, run=None):
    """Serves a ClassificationRequest against a classify-method signature."""
    version, name, outputs = _run_example_signature(resolve, request, CLASSIFY_METHOD, run)
    scores, classes = outputs.get("scores"), outputs.get("classes")
    response = classification_pb2.ClassificationResponse()
    rows = len(scores if scores is not None else classes)
    for row in range(rows):
        result = response.result.classifications.add()
        width = (scores if scores is not None else classes).shape[1]
        for column in range(width):
            entry = result.classes.add()
            if classes is not None:
                entry.label = classes[row, column].decode("utf-8") if isinstance(classes[row, column], bytes) \
                    else str(classes[row, column])
            if scores is not None:
                entry.score = float(scores[row, column])
    response_model_spec(response.model_spec, request.model_spec, version, name)
    return response


def regress(resolve, request, run=None):
    """Serves a RegressionRequest against a regress-method signature."""
    version, name, outputs = _run_example_signature(resolve, request, REGRESS_METHOD, run)
    response = regression_pb2.RegressionResponse()
    for value in np.asarray(outputs["outputs"]).reshape(-1):
        response.result.regressions.add(value=float(value))
    response_model_spec(response.model_spec, request.model_spec, version, name)
    return response


def model_metadata(resolve, request):
    """Serves a GetModelMetadataRequest (only the "signature_def" field, as TF Serving).

    Returns a GetModelMetadataResponse whose metadata["signature_def"] packs a
    SignatureDefMap of every signature of the resolved version. Raises ServingError.
    """
    if not request.HasField("model_spec"):
        raise invalid_argument("Missing ModelSpec")
    if not request.metadata_field:
        raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != "signature_def":
            raise invalid_argument(f"Metadata field {field} is not supported")
    version = resolve(request.model_spec)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = request.model_spec.name
    response.model_spec.version.value = version.version
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in version.all_signature_defs.items():
        signature_map.signature_def[name].CopyFrom(signature)
    response.metadata["signature_def"].Pack(signature_map)
    return response
