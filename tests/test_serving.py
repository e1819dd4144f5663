"""albert-serve and the client, over the network with the unmodified TF Serving stubs.

Every protocol test talks to a server process through `tensorflow_serving.apis` stubs.
The `server` fixture runs each test against the embedded server and against the real
`tensorflow_model_server` when one is installed. Tests of a single backend say so.
Model lifecycle, batching and deadline tests (embedded only) are in test_serving_lifecycle.py.
"""

import concurrent.futures
import base64
import http.client
import json
import signal
import threading
import time
import urllib.error
import urllib.request
import types

import grpc
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from albert_tf.export import warmup
from albert_tf.serving.client import AlbertClient, ServingClientError
from albert_tf.serving import profiler
from albert_tf.serving import rest as rest_api
from albert_tf.serving.process import free_port
from albert_tf.serving.tensors import ServingError
from tests.model_server import BACKENDS, ServerProcess
from tests.test_export import PAIRS, TEXTS, keras_text_inputs
from tests.serving_helpers import MAX_SEQ, Code, ids_inputs, predict_request, rest, rpc_error, stubs, write_config


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, models):
    config = write_config(models["root"] / f"models-{request.param}.config", models["base"],
                          labels={"albert": {"stable": 1}})
    rest_port = free_port()
    monitoring = models["root"] / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }\n')
    process = ServerProcess(request.param, [f"--model_config_file={config}", "--file_system_poll_wait_seconds=1",
                                            f"--rest_api_port={rest_port}", f"--monitoring_config_file={monitoring}",
                                            "--enable_grpc_healthcheck_service", "--rest_api_enable_cors_support"])
    process.rest_url = f"http://127.0.0.1:{rest_port}/v1/models"
    process.metrics_url = f"http://127.0.0.1:{rest_port}/monitoring/prometheus/metrics"
    yield process
    process.stop()


# ----------------------------------------------------------------- happy paths
def test_predict_every_signature_equals_keras(server, models):
    predict, _, channel = stubs(server.address)
    model, config = models["albert"], models["config"]
    texts = np.array(TEXTS, object)
    response = predict.Predict(predict_request({"text": texts, "text_b": np.array(PAIRS, object)}), timeout=30)
    assert (response.model_spec.name, response.model_spec.signature_name, response.model_spec.version.value) == \
        ("albert", "serving_default", 1)
    pooled = response.outputs["pooled_output"]
    assert pooled.dtype == types_pb2.DT_FLOAT and len(pooled.float_val) == len(TEXTS) * config.hidden_size
    assert not pooled.tensor_content  # typed fields, as TF Serving answers
    reference = model.backbone.predict_on_batch(
        keras_text_inputs(models["tokenizer"], TEXTS, [b or None for b in PAIRS], MAX_SEQ))
    np.testing.assert_allclose(tf.make_ndarray(pooled), reference["pooled_output"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["sequence_output"]), reference["sequence_output"],
                               atol=1e-5, rtol=0)
    # text alone: TF Serving fills text_b from the SignatureDef default
    alone = predict.Predict(predict_request({"text": texts[:1]}, output_filter=["pooled_output"]), timeout=30)
    single = model.backbone.predict_on_batch(keras_text_inputs(models["tokenizer"], TEXTS[:1], [None], MAX_SEQ))
    np.testing.assert_allclose(tf.make_ndarray(alone.outputs["pooled_output"]), single["pooled_output"], atol=1e-5)
    assert list(alone.outputs) == ["pooled_output"]

    inputs = ids_inputs(config, batch=3, seq=11)
    positions = np.array([[1, 2], [3, 4], [0, 5]], np.int32)
    expected = model.predict_on_batch(dict(inputs, masked_lm_positions=positions))
    encoded = model.backbone.predict_on_batch(inputs)
    got = predict.Predict(predict_request(inputs, signature="encode"), timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(got.outputs["sequence_output"]), encoded["sequence_output"], atol=1e-5)
    got = predict.Predict(predict_request(dict(inputs, masked_lm_positions=positions), signature="mlm"), timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(got.outputs["mlm_logits"]), expected["mlm_logits"], atol=1e-5)
    got = predict.Predict(predict_request(inputs, signature="sop"), timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(got.outputs["sop_logits"]), expected["sop_logits"], atol=1e-5)
    examples = warmup._serialized_examples(inputs)
    got = predict.Predict(predict_request({"examples": examples}, signature="serve_examples"), timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(got.outputs["pooled_output"]), encoded["pooled_output"], atol=1e-5)
    got = predict.Predict(predict_request({"text": texts[:1]}, label="stable", output_filter=["input_mask"]),
                          timeout=30)
    assert got.model_spec.version.value == 1
    channel.close()


def test_metadata_and_status(server):
    predict, models_stub, channel = stubs(server.address)
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "albert"
    response = predict.GetModelMetadata(request, timeout=30)
    assert (response.model_spec.name, response.model_spec.version.value) == ("albert", 1)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    default = signatures.signature_def["serving_default"]
    assert set(default.inputs) == {"text", "text_b"} and "text_b" in default.defaults
    assert set(default.outputs) == {"pooled_output", "sequence_output", "input_mask"}
    assert {"encode", "serve_examples", "mlm", "sop"} <= set(signatures.signature_def)
    status = models_stub.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(
        model_spec={"name": "albert"}), timeout=30)
    (version,) = status.model_version_status
    assert (version.version, version.state, version.status.error_code) == (
        1, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0)
    channel.close()


def test_classify_and_regress(server, models):
    predict, _, channel = stubs(server.address)
    inputs = ids_inputs(models["config"], batch=3, seq=8, seed=3)
    examples = [tf.train.Example.FromString(e) for e in warmup._serialized_examples(inputs)]
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name, request.model_spec.signature_name = "cls", "classify"
    request.input.example_list.examples.extend(examples)
    response = predict.Classify(request, timeout=30)
    probabilities = tf.nn.softmax(models["cls"].predict_on_batch(inputs)["logits"]).numpy()
    assert response.model_spec.version.value == 1 and len(response.result.classifications) == 3
    for row, classification in enumerate(response.result.classifications):
        assert [c.label for c in classification.classes] == ["0", "1", "2"]
        np.testing.assert_allclose([c.score for c in classification.classes], probabilities[row], atol=1e-5)
    request = regression_pb2.RegressionRequest()
    request.model_spec.name, request.model_spec.signature_name = "reg", "regress"
    request.input.example_list.examples.extend(examples)
    response = predict.Regress(request, timeout=30)
    np.testing.assert_allclose([r.value for r in response.result.regressions],
                               models["reg"].predict_on_batch(inputs)["logits"][:, 0], atol=1e-5)
    bad = classification_pb2.ClassificationRequest()
    bad.model_spec.name, bad.model_spec.signature_name = "cls", "nope"
    bad.input.example_list.examples.extend(examples)
    code, details = rpc_error(predict.Classify, bad, timeout=30)
    assert code == Code.INVALID_ARGUMENT and "No signature was found with the name: nope" in details
    channel.close()


def test_rest_cors_headers_on_predict(server):
    """--rest_api_enable_cors_support: a cross-origin :predict gets its answer with TF
    Serving's CORS headers, and so does an error."""
    for path, expected in (("/albert:predict", 200), ("/nope:predict", 404)):
        request = urllib.request.Request(server.rest_url + path, method="POST", headers={"Origin": "http://app.example"},
                                         data=json.dumps({"instances": [{"text": "Hello."}]}).encode())
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, headers = response.status, response.headers
        except urllib.error.HTTPError as e:
            status, headers = e.code, e.headers
        assert status == expected
        assert (headers["Access-Control-Allow-Origin"], headers["Access-Control-Allow-Methods"],
                headers["Access-Control-Allow-Headers"]) == ("*", "POST, GET", "Content-Type")


def test_rest_json_mapping_of_strings_and_status_codes():
    """Output strings: UTF-8 as JSON strings, `_bytes` aliases and non-UTF-8 as {"b64"};
    gRPC codes → TF Serving's HTTP statuses; a b64 input decodes to its bytes."""
    strings = np.array([["caf\u00e9".encode(), b"\xff\xfe"]], object)
    assert rest_api._json_value(strings, "tokens") == [["caf\u00e9", {"b64": "//4="}]]
    assert rest_api._json_value(np.array([b"ab"], object), "raw_bytes") == [{"b64": "YWI="}]
    scores = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    written = rest_api.dumps({"outputs": rest_api._json_value(scores, "scores")})
    assert np.array_equal(np.array(json.loads(written)["outputs"], np.float32), scores)  # exact round trip
    assert rest_api.dumps([np.float32(0.2), np.array([1.5, 2], np.float32)]) == b"[0.2,[1.5,2.0]]"  # no noise digits
    assert rest_api.dumps(np.array([1.5], tf.bfloat16.as_numpy_dtype)) == b"[1.5]"  # a dtype orjson lacks
    non_finite = rest_api._json_value(np.array([np.nan, np.inf, -np.inf], np.float32), "scores")
    assert rest_api.dumps({"outputs": non_finite}) == b'{"outputs":[NaN,Infinity,-Infinity]}'  # as TF Serving writes
    assert rest_api._array([{"b64": "//4="}, "x"], "text", tf.string.as_datatype_enum).tolist() == [b"\xff\xfe", b"x"]
    codes = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.FAILED_PRECONDITION: 400,
             grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
             grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.UNAVAILABLE: 503,
             grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.CANCELLED: 499, grpc.StatusCode.INTERNAL: 500,
             grpc.StatusCode.UNKNOWN: 500, grpc.StatusCode.DATA_LOSS: 500}
    assert {code: rest_api.http_status(code) for code in codes} == codes
    int32, string = tf.int32.as_datatype_enum, tf.string.as_datatype_enum
    for value, dtype, message in (([{"b64": "not base64!"}], string, "invalid base64"),
                                  ([1.5], int32, "not a rectangular array of int32"),  # no silent truncation
                                  (["1"], int32, "not a rectangular array of int32"),  # no parsing of strings
                                  ([[1], [1, 2]], int32, "not a rectangular array"),
                                  ([1, "a"], string, "is a string tensor; got a JSON int")):
        with pytest.raises(ServingError, match=message):
            rest_api._array(value, "text", dtype)


def test_rest_api_answers_like_grpc(server, models):
    """TF Serving's REST routes: status, metadata, :predict in row and columnar format
    (strings and b64), :classify, :regress, and errors as {"error"} with TF Serving's
    HTTP codes; every number equal to the gRPC answer."""
    assert rest(server, "/albert") == (200, {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})
    status, metadata = rest(server, "/albert/labels/stable/metadata")
    assert status == 200 and metadata["model_spec"]["version"] == "1"
    assert {"serving_default", "encode", "mlm", "sop"} <= set(metadata["metadata"]["signature_def"]["signature_def"])

    predict, _, channel = stubs(server.address)
    texts = ["Hello world.", "ALBERT shares parameters."]
    expected = predict.Predict(predict_request({"text": np.array(texts, object)}), timeout=30)
    pooled = tf.make_ndarray(expected.outputs["pooled_output"])
    status, rows = rest(server, "/albert:predict", {"instances": [{"text": t} for t in texts]})
    assert status == 200 and len(rows["predictions"]) == 2
    np.testing.assert_allclose([row["pooled_output"] for row in rows["predictions"]], pooled, atol=1e-6)
    assert [len(row["input_mask"]) for row in rows["predictions"]] == \
        [len(row) for row in tf.make_ndarray(expected.outputs["input_mask"])]
    b64 = [{"text": {"b64": base64.b64encode(t.encode()).decode()}} for t in texts]
    status, from_b64 = rest(server, "/albert/versions/1:predict", {"instances": b64})
    np.testing.assert_allclose([row["pooled_output"] for row in from_b64["predictions"]], pooled, atol=1e-6)

    inputs = ids_inputs(models["config"], batch=2, seq=7, seed=4)
    expected = predict.Predict(predict_request(inputs, signature="encode"), timeout=30)
    status, columns = rest(server, "/albert:predict",
                           {"signature_name": "encode", "inputs": {k: v.tolist() for k, v in inputs.items()}})
    assert status == 200 and set(columns["outputs"]) == set(expected.outputs)
    np.testing.assert_allclose(columns["outputs"]["sequence_output"],
                               tf.make_ndarray(expected.outputs["sequence_output"]), atol=1e-6)
    channel.close()

    examples = [tf.train.Example.FromString(e) for e in warmup._serialized_examples(inputs)]
    json_examples = [{name: list(feature.int64_list.value) for name, feature in e.features.feature.items()}
                     for e in examples]
    status, classified = rest(server, "/cls:classify", {"signature_name": "classify", "examples": json_examples})
    probabilities = tf.nn.softmax(models["cls"].predict_on_batch(inputs)["logits"]).numpy()
    assert status == 200 and [[label for label, _ in row] for row in classified["results"]] == [["0", "1", "2"]] * 2
    np.testing.assert_allclose([[score for _, score in row] for row in classified["results"]], probabilities, atol=1e-5)
    status, regressed = rest(server, "/reg:regress", {"signature_name": "regress", "examples": json_examples})
    np.testing.assert_allclose(regressed["results"], models["reg"].predict_on_batch(inputs)["logits"][:, 0], atol=1e-5)

    connection = http.client.HTTPConnection("127.0.0.1", int(server.rest_url.split(":")[2].split("/")[0]), timeout=30)
    body = json.dumps({"instances": [{"text": t} for t in texts]}).encode()  # the batch `pooled` came from
    connection.request("POST", "/v1/models/albert:predict", body=iter([body[:20], body[20:]]),
                       encode_chunked=True)  # a body without Content-Length, as streaming clients send it
    chunked = connection.getresponse()
    assert chunked.status == 200
    np.testing.assert_allclose([row["pooled_output"] for row in json.loads(chunked.read())["predictions"]], pooled,
                               atol=1e-6)
    connection.close()

    assert rest(server, "/nope") == (404, {"error": "Could not find any versions of model nope"})  # GetModelStatus
    assert rest(server, "/nope:predict", {"instances": ["x"]}) == \
        (404, {"error": "Servable not found for request: Latest(nope)"})
    status, error = rest(server, "/albert/versions/9:predict", {"instances": ["x"]})
    assert status == 404 and "Specific(albert, 9)" in error["error"]
    for body, message in (
            (b"{not json", "JSON Parse error"),
            ({"instances": ["x"], "inputs": ["x"]}, 'exactly one of "instances" (row format) or "inputs"'),
            ({"signature_name": "nope", "instances": ["x"]}, 'Serving signature key "nope" not found.'),
            ({"instances": [{"txet": "x"}]}, "Sent extra: {txet}. Missing but required: {text}."),
            ({"signature_name": "encode", "instances": [1, 2]}, '"instances" holds bare values'),
            ({"signature_name": "encode", "inputs": {"input_word_ids": [[1, "a"]]}}, "not a rectangular array of int32")):
        status, error = rest(server, "/albert:predict", body)
        assert status == 400 and message in error["error"], (body, status, error)


def prometheus_samples(server):
    """{metric line's name and labels: value} from the server's Prometheus page, and the page."""
    with urllib.request.urlopen(server.metrics_url, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        page = response.read().decode("utf-8")
    samples = {}
    for line in page.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples, page


def test_prometheus_metrics_count_requests(server, models):
    """--monitoring_config_file: the REST port serves TF Serving's metrics; each gRPC and
    REST request adds to request_count and request_latency under its model, API,
    entrypoint and status, and the latency histogram's buckets are cumulative."""
    before, page = prometheus_samples(server)
    assert "# TYPE :tensorflow:serving:request_count counter" in page
    assert "# TYPE :tensorflow:serving:request_latency histogram" in page
    predict, _, channel = stubs(server.address)
    text = {"text": np.array([b"metrics"], object)}
    for _ in range(3):
        predict.Predict(predict_request(text), timeout=30)
    assert rpc_error(predict.Predict, predict_request(text, signature="nope"), timeout=30)[0] == Code.FAILED_PRECONDITION
    channel.close()
    for _ in range(2):
        assert rest(server, "/albert:predict", {"instances": [{"text": "metrics"}]})[0] == 200
    after, page = prometheus_samples(server)

    def added(name):
        return after.get(name, 0) - before.get(name, 0)

    count = ":tensorflow:serving:request_count"
    assert added(count + '{model_name="albert",status="OK"}') >= 3
    assert added(count + '{model_name="albert",status="FAILED_PRECONDITION"}') == 1
    if server.backend != "embedded":
        return  # what TF Serving counts for REST, and its latency labels, differ between its versions
    assert added(count + '{model_name="albert",status="OK"}') == 5
    latency = ':tensorflow:serving:request_latency_{}{{model_name="albert",API="Predict",entrypoint="{}",status="OK"{}}}'
    assert added(latency.format("count", "GRPC", "")) == 3 and added(latency.format("count", "REST", "")) == 2
    buckets = [after[latency.format("bucket", "GRPC", f',le="{limit}"')]
               for limit in [f"{10 * 1.8 ** i:.6g}" for i in range(33)] + ["+Inf"]]
    assert buckets == sorted(buckets) and buckets[-1] == after[latency.format("count", "GRPC", "")]
    assert buckets[0] == 0  # nothing answers within 10 µs
    assert added(':tensorflow:serving:runtime_latency_count{model_name="albert",API="Predict",runtime="TF2"}') == 5
    warmup_path = str(models["base"] / "albert" / "1")
    assert after[f':tensorflow:serving:model_warmup_latency_count{{model_path="{warmup_path}",status="OK"}}'] == 1


def test_grpc_health_check_service(server):
    """--enable_grpc_healthcheck_service: grpc.health.v1 says the server ("") is SERVING and
    answers NOT_FOUND for a service name it was not told about."""
    channel = grpc.insecure_channel(server.address)
    health_stub = health_pb2_grpc.HealthStub(channel)
    answer = health_stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=30)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    assert rpc_error(health_stub.Check, health_pb2.HealthCheckRequest(service="nope"), timeout=30)[0] == Code.NOT_FOUND
    channel.close()


def profiler_call(channel, method, request, response_class, **kwargs):
    """Calls tensorflow.ProfilerService/<method> with albert-serve's own message classes."""
    call = channel.unary_unary(f"/{profiler.SERVICE}/{method}", request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=response_class.FromString)
    return call(request, **kwargs)


def test_profiler_service_writes_a_trace_tensorboard_reads(server, models, tmp_path):
    """--enable_profiler (on by default in both servers): TensorFlow's own profiler client
    records the server while it answers Predicts, and the trace lands where TensorBoard's
    profile plugin looks, with the served model's ops in it."""
    prediction, _, channel = stubs(server.address)
    request = predict_request(ids_inputs(models["config"], batch=1, seq=16), signature="encode",
                              output_filter=["pooled_output"])
    stop = threading.Event()

    def keep_predicting():
        while not stop.is_set():
            prediction.Predict(request, timeout=30)

    worker = threading.Thread(target=keep_predicting)
    worker.start()
    try:
        tf.profiler.experimental.client.trace(f"grpc://{server.address}", str(tmp_path), 1500)
    finally:
        stop.set()
        worker.join()
        channel.close()
    traces = list((tmp_path / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(traces) == 1, traces
    trace = traces[0].read_bytes()
    assert profiler.count_trace_events(trace) > 100
    assert b"MatMul" in trace  # the model ran while the trace was recorded


def test_profiler_terminate_monitor_and_the_sigusr1_stack_dump(server, tmp_path):
    """Terminate ends a running Profile of the same session (it still writes its trace);
    Monitor is UNIMPLEMENTED, as in TSL. SIGUSR1 writes every thread's stack to stderr
    and the server goes on serving. Embedded only: Terminate's timing, the stack dump."""
    if server.backend != "embedded":
        pytest.skip("albert-serve's Terminate timing and SIGUSR1 stack dump")
    channel = grpc.insecure_channel(server.address)
    try:
        request = profiler.ProfileRequest(repository_root=str(tmp_path), session_id="run1", host_name="localhost:1")
        request.opts.duration_ms = 60_000
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            answer = pool.submit(profiler_call, channel, "Profile", request, profiler.ProfileResponse, timeout=120)
            time.sleep(1.0)
            profiler_call(channel, "Terminate", profiler.TerminateRequest(session_id="run1"),
                          profiler.TerminateResponse, timeout=30)
            response = answer.result()
        assert time.monotonic() - started < 30
        trace = (tmp_path / "run1" / "localhost_1.xplane.pb").read_bytes()
        assert response.empty_trace == (profiler.count_trace_events(trace) == 0)
        assert rpc_error(profiler_call, channel, "Monitor", profiler.MonitorRequest(duration_ms=10),
                         profiler.MonitorResponse, timeout=30) == (Code.UNIMPLEMENTED, "unimplemented.")
        logged_before = len(server.stderr())
        server.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "Current thread" not in server.stderr()[logged_before:]:
            time.sleep(0.1)
        prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_request({"text": np.array([b"still serving"], object)}, output_filter=["pooled_output"])
        assert prediction.Predict(request, timeout=30).outputs["pooled_output"].tensor_shape.dim[0].size == 1
    finally:
        channel.close()
    dump = server.stderr()[logged_before:]
    assert server.process.poll() is None
    assert "Current thread" in dump and 'File "' in dump and "serve.py" in dump, dump[-3000:]


def test_profiler_repository_that_cannot_be_written_is_internal(tmp_path):
    """A Profile whose repository cannot be written gives INTERNAL naming the path
    (--enable_profiler=false is checked by test_client_retries_until_the_server_is_up)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    servicer = profiler.ProfilerServicer(log=lambda _: None)
    context = types.SimpleNamespace(is_active=lambda: True)

    def abort(code, details):
        raise ServingError(code, details)

    context.abort = abort
    request = profiler.ProfileRequest(repository_root=str(blocker), session_id="s", host_name="h")
    request.opts.duration_ms = 10
    with pytest.raises(ServingError) as caught:
        servicer.Profile(request, context)
    assert caught.value.code == Code.INTERNAL
    assert str(blocker / "s" / "h.xplane.pb") in caught.value.message


# ----------------------------------------------------------------- the status-code table
def test_model_resolution_errors(server):
    predict, models_stub, channel = stubs(server.address)
    text = {"text": np.array([b"x"], object)}
    cases = [
        (predict_pb2.PredictRequest(), Code.INVALID_ARGUMENT, "Missing ModelSpec"),
        (predict_request(text, model=""), Code.INVALID_ARGUMENT, "ModelSpec has no name specified"),
        (predict_request(text, model="nope"), Code.NOT_FOUND, "Servable not found for request: Latest(nope)"),
        (predict_request(text, version=99), Code.NOT_FOUND, "Servable not found for request: Specific(albert, 99)"),
        (predict_request(text, label="nope"), Code.INVALID_ARGUMENT, "Unrecognized servable version label: nope"),
    ]
    for request, code, message in cases:
        got_code, details = rpc_error(predict.Predict, request, timeout=30)
        assert got_code == code and message in details, (message, got_code, details)
    for spec, message in (({"name": "nope"}, "Could not find any versions of model nope"),
                          ({"name": "albert", "version": {"value": 99}}, "Could not find version 99 of model albert")):
        code, details = rpc_error(models_stub.GetModelStatus, get_model_status_pb2.GetModelStatusRequest(model_spec=spec),
                                  timeout=30)
        assert code == Code.NOT_FOUND and message in details
    metadata = get_model_metadata_pb2.GetModelMetadataRequest(model_spec={"name": "albert"})
    code, details = rpc_error(predict.GetModelMetadata, metadata, timeout=30)
    assert code == Code.INVALID_ARGUMENT and "must specify at least one metadata_field" in details
    metadata.metadata_field.append("other")
    code, details = rpc_error(predict.GetModelMetadata, metadata, timeout=30)
    assert code == Code.INVALID_ARGUMENT and "Metadata field other is not supported" in details
    code, details = rpc_error(predict.MultiInference, inference_pb2.MultiInferenceRequest(), timeout=30)
    assert code == Code.UNIMPLEMENTED
    channel.close()


def test_signature_input_and_output_errors(server, models):
    predict, _, channel = stubs(server.address)
    inputs = ids_inputs(models["config"])
    text = {"text": np.array([b"x"], object)}

    def check(request, code, message):
        got_code, details = rpc_error(predict.Predict, request, timeout=30)
        assert got_code == code and message in details, (got_code, details)

    check(predict_request(text, signature="nope"), Code.FAILED_PRECONDITION, 'Serving signature key "nope" not found.')
    two = {k: inputs[k] for k in ("input_word_ids", "input_mask")}
    check(predict_request(two, signature="encode"), Code.INVALID_ARGUMENT, "input size does not match signature: 2!=3")
    check(predict_request(dict(inputs, extra=inputs["input_mask"]), signature="encode"), Code.INVALID_ARGUMENT,
          "input size does not match signature: 4!=3")
    renamed = dict(two, type_ids=inputs["input_type_ids"])
    check(predict_request(renamed, signature="encode"), Code.INVALID_ARGUMENT,
          "Signature input alias: input_type_ids(feed name:")
    wrong_dtype = dict(inputs, input_mask=inputs["input_mask"].astype(np.float32))
    check(predict_request(wrong_dtype, signature="encode"), Code.INVALID_ARGUMENT, "Expects arg[")
    malformed = predict_request(inputs, signature="encode")
    malformed.inputs["input_mask"].CopyFrom(tensor_pb2.TensorProto(
        dtype=types_pb2.DT_INT32, tensor_shape={"dim": [{"size": 2}, {"size": 9}]}, tensor_content=b"\x00" * 7))
    check(malformed, Code.INVALID_ARGUMENT, "tensor parsing error: input_mask")
    check(predict_request(text, output_filter=["nope"]), Code.INVALID_ARGUMENT,
          "output tensor alias not found in signature: nope")
    check(predict_request(text, output_filter=["pooled_output", "pooled_output"]), Code.INVALID_ARGUMENT,
          "duplicate output tensor alias: pooled_output")
    channel.close()


def test_message_limits(server, models):
    """The server takes 2 GiB messages; a client's default 4 MiB receive limit trips."""
    config = models["config"]
    big = ids_inputs(config, batch=6500, seq=64, seed=5)  # 5.0 MB of int32, over gRPC's default 4 MiB
    predict, _, channel = stubs(server.address)
    request = predict_request(big, signature="encode", output_filter=["pooled_output"])
    assert request.ByteSize() > 4 * 2**20
    response = predict.Predict(request, timeout=120)
    assert tf.make_ndarray(response.outputs["pooled_output"]).shape == (6500, config.hidden_size)
    channel.close()
    default_predict, _, channel = stubs(server.address, raised=False)
    medium = ids_inputs(config, batch=600, seq=64, seed=6)  # 4.9 MB of sequence_output
    code, details = rpc_error(default_predict.Predict, predict_request(medium, signature="encode"), timeout=60)
    assert code == Code.RESOURCE_EXHAUSTED and "larger than max" in details
    channel.close()


def test_deadline_exceeded(server, models):
    predict, _, channel = stubs(server.address)
    heavy = ids_inputs(models["config"], batch=3000, seq=64, seed=7)
    code, _ = rpc_error(predict.Predict, predict_request(heavy, signature="encode", output_filter=["pooled_output"]),
                        timeout=0.005)
    assert code == Code.DEADLINE_EXCEEDED
    channel.close()


# ----------------------------------------------------------------- client
def test_python_client(server, models):
    with AlbertClient(server.address, "albert") as client:
        outputs = client.predict(TEXTS, PAIRS, output_filter=["pooled_output"])
        reference = models["albert"].backbone.predict_on_batch(
            keras_text_inputs(models["tokenizer"], TEXTS, [b or None for b in PAIRS], MAX_SEQ))
        np.testing.assert_allclose(outputs["pooled_output"], reference["pooled_output"], atol=1e-5)
        assert client.status() == [{"version": 1, "state": "AVAILABLE", "error_code": 0, "error_message": ""}]
        metadata = client.metadata()
        assert metadata["encode"]["inputs"]["input_word_ids"] == ("int32", [-1, -1])
    with AlbertClient(server.address, "nope", retries=0) as client:
        with pytest.raises(ServingClientError) as info:
            client.predict(["x"])
        assert info.value.code == Code.NOT_FOUND and "Latest(nope)" in info.value.details


def test_client_backoff_doubles_up_to_its_cap_and_other_errors_are_not_retried(monkeypatch):
    import albert_tf.serving.client as client_module

    class Unavailable(grpc.RpcError):
        def __init__(self, code=Code.UNAVAILABLE):
            self._code = code

        def code(self):
            return self._code

        def details(self):
            return "connection refused"

    waits, attempts = [], []
    monkeypatch.setattr(client_module.time, "sleep", waits.append)

    def failing(request, timeout):
        attempts.append(timeout)
        raise Unavailable()

    client = AlbertClient("127.0.0.1:1", retries=6, backoff=0.5, max_backoff=2.0, timeout=7)
    with pytest.raises(ServingClientError) as info:
        client._call("Predict", failing, None)
    assert info.value.code == Code.UNAVAILABLE and attempts == [7] * 7
    assert waits == [0.5, 1.0, 2.0, 2.0, 2.0, 2.0]
    waits.clear()

    def not_found(request, timeout):
        raise Unavailable(Code.NOT_FOUND)

    with pytest.raises(ServingClientError):
        client._call("Predict", not_found, None)
    assert waits == []
    with pytest.raises(ValueError, match="need 0 < backoff <= max_backoff"):
        AlbertClient("127.0.0.1:1", backoff=3.0, max_backoff=2.0)
    client.close()


def test_client_retries_until_the_server_is_up(models, tmp_path):
    """UNAVAILABLE (nothing listening yet) is retried with backoff until the server binds.
    The server runs with --enable_profiler=false, which leaves the profiler service out
    (UNIMPLEMENTED); it is on by default (test_profiler_service_writes_a_trace_tensorboard_reads)."""
    process = ServerProcess("embedded", [f"--model_base_path={models['base'] / 'albert'}", "--model_name=albert",
                                         "--enable_profiler=false"], expect_ready=False)
    try:
        with AlbertClient(process.address, "albert", retries=60, backoff=0.5, max_backoff=1.0, timeout=30) as client:
            assert client.predict(["hello"], output_filter=["pooled_output"])["pooled_output"].shape == (1, 32)
        with grpc.insecure_channel(process.address) as channel:
            request = profiler.ProfileRequest(repository_root=str(tmp_path), session_id="s", host_name="h")
            assert rpc_error(profiler_call, channel, "Profile", request, profiler.ProfileResponse,
                             timeout=30)[0] == Code.UNIMPLEMENTED
    finally:
        process.stop()


@pytest.mark.slow
def test_client_cli(server):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "albert_tf.client", f"--server={server.address}",
                           "--model_name=albert", "Hello world.", "Second text."], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["text"] for line in lines] == ["Hello world.", "Second text."]
    assert set(lines[0]) == {"text", "pooled_output", "input_mask"} and len(lines[0]["pooled_output"]) == 32
    assert "2 text(s) in" in done.stderr


def _rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


@pytest.mark.slow
def test_load_16_clients_no_errors_memory_stable(server):
    """16 clients for 12 s: no errors, every client served, and the server's RSS grows by
    less than 64 MiB between the 4th and the 12th second."""
    process = server
    failures, counts, stop = [], [0] * 16, threading.Event()

    def client(index):
        with AlbertClient(process.address, "albert", retries=0) as c:
            while not stop.is_set():
                try:
                    c.predict([f"request {index} number {counts[index]} " * (1 + index % 5)],
                              output_filter=["pooled_output"])
                    counts[index] += 1
                except ServingClientError as e:
                    failures.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(4)
        rss_start, done_start = _rss_bytes(process.process.pid), sum(counts)
        time.sleep(8)
        rss_end, done_end = _rss_bytes(process.process.pid), sum(counts)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert done_end - done_start > 100 and min(counts) > 0
    assert rss_end - rss_start < 64 * 2**20, (rss_start, rss_end)
