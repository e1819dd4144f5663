"""TF Serving's REST API (`--rest_api_port`) over the same models as the gRPC server.

Routes, as `tensorflow_model_server` serves them:

    GET  /v1/models/<name>[/versions/<n>|/labels/<l>]            model status
    GET  /v1/models/<name>[/versions/<n>|/labels/<l>]/metadata   signature defs
    POST /v1/models/<name>[/versions/<n>|/labels/<l>]:predict    {"instances": [...]} or {"inputs": ...}
    POST /v1/models/<name>[/versions/<n>|/labels/<l>]:classify   {"examples": [{feature: value}]}
    POST /v1/models/<name>[/versions/<n>|/labels/<l>]:regress    the same

Each request becomes the gRPC request proto and goes through the gRPC server's code
(`servables.predict`, `classify`, `regress`, the manager's status and resolution), so the
checks, status codes and messages are the gRPC ones. This module only maps JSON to protos
and back, and gRPC status codes to HTTP ones. Errors answer `{"error": "<message>"}`.
Strings travel as JSON strings; binary values as `{"b64": "..."}`, and outputs whose alias
ends in `_bytes` are returned that way.
"""

import base64
import concurrent.futures
import http.server
import json
import re
import threading
import time

import grpc
import numpy as np
import orjson
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from albert_tf.serving import servables
from albert_tf.serving.tensors import STOPPING_MESSAGE, ServingError, invalid_argument, to_tensor_proto

_ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)"
                    r"(?:/versions/(?P<version>-?\d+)|/labels/(?P<label>[a-zA-Z0-9_]+))?"
                    r"(?:(?P<metadata>/metadata)|:(?P<method>predict|classify|regress))?$")

# tensorflow_serving/model_servers/http_server.cc, ToHTTPStatusCode.
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.DEADLINE_EXCEEDED: 504, grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.CANCELLED: 499,
}


def http_status(code):
    """The HTTP status (int) TF Serving's REST API gives for a gRPC status code (500 if unlisted)."""
    return _HTTP_STATUS.get(code, 500)


def _model_spec(match):
    spec = model_pb2.ModelSpec(name=match["name"])
    if match["version"] is not None:
        spec.version.value = int(match["version"])
    elif match["label"] is not None:
        spec.version_label = match["label"]
    return spec


# ----------------------------------------------------------------- JSON → numpy / tf.Example
def _decode_strings(value, alias):
    """Nested lists of str / {"b64": str} → the same nesting of bytes."""
    if isinstance(value, list):
        return [_decode_strings(v, alias) for v in value]
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise invalid_argument(f"JSON object for input {alias}: only {{\"b64\": \"...\"}} is accepted")
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError:
            raise invalid_argument(f"input {alias}: invalid base64 in {{\"b64\": ...}}") from None
    if isinstance(value, str):
        return value.encode("utf-8")
    raise invalid_argument(f"input {alias} is a string tensor; got a JSON {type(value).__name__}")


def _array(value, alias, dtype_enum):
    """A JSON value → numpy array of the signature input's dtype (INVALID_ARGUMENT if it cannot be).

    `dtype_enum` None (an alias the signature does not have) keeps the JSON's own type, so
    that the Predict checks answer with TF Serving's "alias not found" message.
    """
    try:
        raw = np.array(value)  # what JSON sent: ints, floats, bools, or str / b64 objects
    except ValueError:
        raise invalid_argument(f"input {alias}: the JSON value is not a rectangular array") from None
    is_text = raw.dtype.kind in "UO"
    dtype = tf.dtypes.as_dtype(dtype_enum) if dtype_enum is not None else tf.string if is_text else tf.as_dtype(raw.dtype)
    if dtype == tf.string:
        array = np.array(_decode_strings(value, alias), dtype=object)
        if array.shape != raw.shape or any(not isinstance(v, bytes) for v in array.reshape(-1)):
            raise invalid_argument(f"input {alias}: the JSON value is not a rectangular array of strings")
        return array
    target = np.dtype(dtype.as_numpy_dtype)
    allowed = {"b": "b", "i": "iu", "u": "iu"}.get(target.kind, "iuf")  # no silent float → int or str → number
    if raw.size and raw.dtype.kind not in allowed:
        raise invalid_argument(f"input {alias}: the JSON value is not a rectangular array of {dtype.name}")
    return raw.astype(target)


def _is_named_row(row):
    return isinstance(row, dict) and set(row) != {"b64"}


def _predict_inputs(body, signature):
    """{alias: numpy} from a :predict body in row ("instances") or columnar ("inputs") format,
    and whether it was row format."""
    if ("instances" in body) == ("inputs" in body):
        raise invalid_argument('The request must have exactly one of "instances" (row format) or "inputs" '
                               "(columnar format)")
    dtypes = {alias: info.dtype for alias, info in signature.inputs.items()}
    if "inputs" in body:
        columns = body["inputs"]
        if not _is_named_row(columns):
            if len(dtypes) != 1:
                raise invalid_argument(f'"inputs" holds a bare value, so the signature must have one input; it has '
                                       f"{sorted(dtypes)}: send an object {{alias: value}}")
            columns = {next(iter(dtypes)): columns}
        return {alias: _array(value, alias, dtypes.get(alias)) for alias, value in columns.items()}, False
    rows = body["instances"]
    if not isinstance(rows, list) or not rows:
        raise invalid_argument('"instances" must be a non-empty list')
    named = [_is_named_row(row) for row in rows]
    if not any(named):
        if len(dtypes) != 1:
            raise invalid_argument('"instances" holds bare values, so the signature must have one input; it has '
                                   f"{sorted(dtypes)}: send objects {{alias: value}}")
        alias = next(iter(dtypes))
        return {alias: _array(rows, alias, dtypes[alias])}, True
    aliases = set(rows[0]) if all(named) else None
    if aliases is None or any(set(row) != aliases for row in rows):
        raise invalid_argument('every row of "instances" must be an object with the same inputs')
    return {alias: _array([row[alias] for row in rows], alias, dtypes.get(alias)) for alias in sorted(aliases)}, True


def _feature(value, name):
    """A JSON feature value (scalar or list of str / {"b64"} / int / float) → tf.train.Feature."""
    values = value if isinstance(value, list) else [value]
    if all(isinstance(v, (str, dict)) for v in values):
        return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=_decode_strings(values, name)))
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=values))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return feature_pb2.Feature(float_list=feature_pb2.FloatList(value=values))
    raise invalid_argument(f"feature {name}: values must all be strings, all integers or all numbers")


def _example(features):
    if not isinstance(features, dict):
        raise invalid_argument("each of \"examples\" (and \"context\") must be an object {feature: value}")
    return example_pb2.Example(features=feature_pb2.Features(
        feature={name: _feature(value, name) for name, value in features.items()}))


def _example_request(request, body):
    examples = body.get("examples")
    if not isinstance(examples, list):
        raise invalid_argument('The request must have "examples", a list of objects {feature: value}')
    if "context" in body:
        request.input.example_list_with_context.context.CopyFrom(_example(body["context"]))
        request.input.example_list_with_context.examples.extend(_example(e) for e in examples)
    else:
        request.input.example_list.examples.extend(_example(e) for e in examples)
    return request


def _json_object(body):
    try:
        parsed = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError) as e:
        raise invalid_argument(f"JSON Parse error: {e}") from None
    if not isinstance(parsed, dict):
        raise invalid_argument("The request body must be a JSON object")
    return parsed


def _signature_name(body):
    name = body.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid_argument('"signature_name" must be a string')
    return name


# ----------------------------------------------------------------- numpy → JSON
class _NonFinite:
    """A float array holding NaN or ±inf, which orjson would write as null."""

    def __init__(self, array):
        self.array = array


class _NeedsStdlibJson(Exception):
    pass


def _orjson_default(value):
    """What orjson cannot write natively: numpy arrays and scalars of other dtypes (bfloat16)."""
    if isinstance(value, _NonFinite):
        raise _NeedsStdlibJson
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _stdlib_default(value):
    if isinstance(value, _NonFinite):
        return value.array.tolist()
    return _orjson_default(value)


def dumps(payload):
    """A response dict → JSON bytes. Numeric numpy arrays are written by orjson directly, and
    float32 values with the fewest digits that read back to the same float32 (TF Serving
    writes 0.2 for a float32 0.2, not 0.20000000298023224). An answer holding NaN or ±inf
    goes through the stdlib `json` instead, which writes NaN, Infinity and -Infinity as TF
    Serving does (its float32 values then carry float64 digits)."""
    try:
        return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY, default=_orjson_default)
    except orjson.JSONEncodeError as e:
        if not isinstance(e.__cause__, _NeedsStdlibJson):
            raise TypeError(str(e)) from None
    return json.dumps(payload, default=_stdlib_default, separators=(",", ":")).encode("utf-8")


def _json_value(array, alias):
    """numpy → a JSON-writable value: numeric arrays as they are (`dumps` writes them),
    strings as str, `_bytes` outputs and non-UTF-8 strings as {"b64"}."""
    if array.dtype != object and array.dtype.kind != "S":
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            return _NonFinite(array)
        return np.ascontiguousarray(array)

    def convert(value):
        if isinstance(value, list):
            return [convert(v) for v in value]
        if not alias.endswith("_bytes"):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(value).decode("ascii")}

    return convert(array.tolist())


def _predict_json(response, row_format):
    outputs = {alias: tf.make_ndarray(proto) for alias, proto in response.outputs.items()}
    if not row_format:
        if len(outputs) == 1:
            ((alias, value),) = outputs.items()
            return {"outputs": _json_value(value, alias)}
        return {"outputs": {alias: _json_value(value, alias) for alias, value in outputs.items()}}
    rows = {value.shape[0] if value.ndim else None for value in outputs.values()}
    if len(rows) != 1 or None in rows:
        raise invalid_argument("the outputs do not share their 0th dimension, so they cannot be returned as rows; "
                               'send "inputs" (columnar format) instead')
    if len(outputs) == 1:
        ((alias, value),) = outputs.items()
        return {"predictions": _json_value(value, alias)}
    columns = {alias: _json_value(value, alias) for alias, value in outputs.items()}
    return {"predictions": [{alias: column[i] for alias, column in columns.items()} for i in range(rows.pop())]}


class RestApi:
    """The REST routes over a ModelServer (its manager, and its run for batching).

    `handle(method, path, body)` takes the HTTP method ("GET"/"POST"), the path and the
    body (bytes) and returns (HTTP status int, JSON-able dict); RestServer binds it to a port.
    `:predict`, `:classify` and `:regress` calls are counted in the server's metrics with
    entrypoint "REST".
    """

    def __init__(self, model_server):
        self.model_server = model_server

    def handle(self, method, path, body, deadline=None):
        """Serves one REST request; returns (status, response dict). Never raises.
        `deadline` (time.monotonic()) is when the client gets its 504 (see Batcher.run)."""
        try:
            return 200, self._route(method, path, body, deadline)
        except ServingError as e:
            return http_status(e.code), {"error": e.message}
        except Exception as e:  # noqa: BLE001 - an unexpected failure must not kill the server
            return 500, {"error": f"{type(e).__name__}: {e}"}

    def _route(self, method, path, body, deadline=None):
        match = _ROUTE.match(path.split("?", 1)[0])
        if match is None:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: {method} {path}")
        spec = _model_spec(match)
        if method == "GET" and match["method"] is None:
            return self._metadata(spec) if match["metadata"] else self._status(spec)
        if method == "POST" and match["method"] is not None:
            started, code, api = time.monotonic(), grpc.StatusCode.OK, match["method"].capitalize()
            try:
                return getattr(self, f"_{match['method']}")(spec, _json_object(body),
                                                            self.model_server.runner(api, deadline))
            except ServingError as e:
                code = e.code
                raise
            except Exception:
                code = grpc.StatusCode.INTERNAL
                raise
            finally:
                self.model_server.record_request(spec.name, api, "REST", code, started)
        raise ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: {method} {path}")

    def _status(self, spec):
        response = get_model_status_pb2.GetModelStatusResponse(
            model_version_status=self.model_server.manager.status(spec))
        return json_format.MessageToDict(response, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)

    def _metadata(self, spec):
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.CopyFrom(spec)
        response = servables.model_metadata(self.model_server.manager.resolve, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return {"model_spec": {"name": spec.name, "signature_name": "", "version": str(response.model_spec.version.value)},
                "metadata": {"signature_def": json_format.MessageToDict(signature_map,
                                                                        preserving_proto_field_name=True)}}

    def _predict(self, spec, body, run):
        version = self.model_server.manager.resolve(spec)
        signature_name = _signature_name(body)
        _, signature = servables.signature_for(version, signature_name)
        inputs, row_format = _predict_inputs(body, signature)
        request = predict_pb2.PredictRequest()
        request.model_spec.CopyFrom(spec)
        request.model_spec.signature_name = signature_name
        for alias, value in inputs.items():
            request.inputs[alias].CopyFrom(to_tensor_proto(value))
        response = servables.predict(lambda _: version, request, run=run,
                                     check_method_name=self.model_server.options.enable_signature_method_name_check)
        return _predict_json(response, row_format)

    def _with_examples(self, request, spec, body):
        request.model_spec.CopyFrom(spec)
        request.model_spec.signature_name = _signature_name(body)
        return _example_request(request, body)

    def _classify(self, spec, body, run):
        request = self._with_examples(classification_pb2.ClassificationRequest(), spec, body)
        response = servables.classify(self.model_server.manager.resolve, request, run=run)
        return {"results": [[[c.label, np.float32(c.score)] for c in row.classes]
                            for row in response.result.classifications]}

    def _regress(self, spec, body, run):
        request = self._with_examples(regression_pb2.RegressionRequest(), spec, body)
        response = servables.regress(self.model_server.manager.resolve, request, run=run)
        return {"results": [np.float32(r.value) for r in response.result.regressions]}


# http_rest_api_util.cc AddCORSHeaders: sent on every answer with --rest_api_enable_cors_support.
CORS_HEADERS = (("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Methods", "POST, GET"),
                ("Access-Control-Allow-Headers", "Content-Type"))


class RestServer:
    """TF Serving's REST port: HTTP/1.1 in front of a RestApi.

    Requests run on `num_threads` workers (`--rest_api_num_threads`); one that has no
    answer after `timeout_seconds` (`--rest_api_timeout_in_ms`) gets 504, and if it had
    not started it never runs. With `prometheus_path`, a request to that path gets
    `metrics_page()` as text/plain (`--monitoring_config_file`). With `cors`
    (`--rest_api_enable_cors_support`) every answer carries TF Serving's CORS headers
    (CORS_HEADERS) and an OPTIONS request (a browser's preflight) gets 204 with them.
    `stop(grace)` refuses new requests (503) and waits up to `grace` seconds for the ones
    in flight. `port` is the bound port.
    """

    def __init__(self, api, host, port, num_threads, timeout_seconds, prometheus_path=None, metrics_page=None,
                 cors=False):
        self.api, self.timeout_seconds, self.cors = api, timeout_seconds, cors
        self.prometheus_path, self.metrics_page = prometheus_path, metrics_page
        self._workers = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, num_threads),
                                                              thread_name_prefix="albert-serve-rest")
        self._in_flight, self._stopping = 0, False
        self._idle = threading.Condition()
        self._http = http.server.ThreadingHTTPServer((host, port), _handler_class(self))
        self._http.daemon_threads = True
        self.port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, name="albert-serve-rest-accept", daemon=True).start()

    def admit(self):
        """Counts a request in flight; False (and not counted) once `stop` has begun."""
        with self._idle:
            if self._stopping:
                return False
            self._in_flight += 1
            return True

    def release(self):
        """Ends a request `admit` counted, after its answer is written."""
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    @property
    def stopping(self):
        return self._stopping

    def answer(self, method, path, body):
        """One admitted HTTP request → (status int, content type, body bytes). Never raises."""
        if self.prometheus_path is not None and path.split("?", 1)[0] == self.prometheus_path:
            return 200, "text/plain", self.metrics_page().encode("utf-8")
        deadline = time.monotonic() + self.timeout_seconds
        future = self._workers.submit(self.api.handle, method, path, body, deadline)
        try:
            status, payload = future.result(timeout=self.timeout_seconds)
        except concurrent.futures.TimeoutError:
            future.cancel()  # a request still waiting for a worker is dropped
            status, payload = 504, {"error": f"Deadline Exceeded: no answer within {self.timeout_seconds * 1000:g} ms "
                                             "(--rest_api_timeout_in_ms)"}
        try:
            return status, "application/json", dumps(payload)
        except TypeError as e:  # an output JSON cannot hold; never leave the client without an answer
            return 500, "application/json", dumps({"error": f"cannot write the answer as JSON: {e}"})

    def stop(self, grace):
        """Refuses new requests, waits up to `grace` s for those in flight, closes the port.
        Returns the number of requests still running when it gave up (0 normally)."""
        with self._idle:
            self._stopping = True
        self._http.shutdown()
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=grace)
            left = self._in_flight
        self._http.server_close()
        self._workers.shutdown(wait=False, cancel_futures=True)
        return left


def _handler_class(rest_server):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _body(self):
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline().strip():  # trailer lines, then the blank line
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()  # the CRLF after each chunk
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _answer(self, method):
            if not rest_server.admit():
                self.close_connection = True
                self._write(503, "application/json", dumps({"error": STOPPING_MESSAGE}))
                return
            try:
                try:
                    body = self._body()
                except ValueError:
                    self.close_connection = True
                    status, content_type = 400, "application/json"
                    data = dumps({"error": "Malformed HTTP body (bad Content-Length or chunk size)"})
                else:
                    status, content_type, data = rest_server.answer(method, self.path, body)
                if rest_server.stopping:
                    self.close_connection = True
                self._write(status, content_type, data)
            finally:
                rest_server.release()

        def _write(self, status, content_type, data):
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            if rest_server.cors:
                for name, value in CORS_HEADERS:
                    self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 - http.server's method name
            self._answer("GET")

        def do_POST(self):  # noqa: N802
            self._answer("POST")

        def do_OPTIONS(self):  # noqa: N802 - a CORS preflight; http.server answers 501 when CORS is off
            if not rest_server.cors:
                self.send_error(501, f"Unsupported method ('{self.command}')")
                return
            self._body()  # a preflight has no body, but a stray one must not be read as the next request
            self._write(204, None, b"")

        def log_message(self, *args):  # no access log on stderr
            pass

    return Handler
