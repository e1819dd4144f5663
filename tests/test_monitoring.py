"""albert-serve's metrics page, monitoring config, and REST port (threads, timeout, stop).

The metrics and the REST server are tested here without a model: the Prometheus text is
compared with pages written out by hand from TensorFlow's rules, and the REST server runs
over a stand-in API whose calls block until the test releases them. The metrics of real
requests are tested in test_serving.py (`test_prometheus_metrics_count_requests`).
"""

import json
import os
import subprocess
import sys
import threading
import time
import types
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from albert_tf.serving.batching import Batcher, BatchingParameters
from albert_tf.serving.monitoring import (
    DEFAULT_PROMETHEUS_PATH,
    METRICS,
    Metrics,
    MetricSpec,
    MonitoringConfigError,
    exponential_buckets,
    read_monitoring_config,
)
from albert_tf.serving.rest import RestServer
from albert_tf.serving.server import ModelServer, ServerOptions


def test_prometheus_page_matches_tensorflows_format():
    specs = {"/demo/requests": MetricSpec("/demo/requests", "counter", "d", ("model", "status")),
             "/demo/latency-us": MetricSpec("/demo/latency-us", "histogram", "d", ("model",), (1.0, 2.0, 4.5)),
             "/demo/empty": MetricSpec("/demo/empty", "counter", "d", ())}
    metrics = Metrics(specs)
    metrics.increment("/demo/requests", ("b", "OK"), by=2)
    metrics.increment("/demo/requests", ('a"\\', "NOT_FOUND"))
    for value in (0.5, 1.0, 3, 100):  # 1.0 goes above the limit 1 (TensorFlow: upper_bound)
        metrics.observe("/demo/latency-us", ("m",), value)
    assert metrics.prometheus_page() == "\n".join([
        "# TYPE :demo:empty counter",
        "# TYPE :demo:latency:us histogram",
        ':demo:latency:us_bucket{model="m",le="1"} 1',
        ':demo:latency:us_bucket{model="m",le="2"} 2',
        ':demo:latency:us_bucket{model="m",le="4.5"} 3',
        ':demo:latency:us_bucket{model="m",le="+Inf"} 4',
        ':demo:latency:us_sum{model="m"} 104.5',
        ':demo:latency:us_count{model="m"} 4',
        "# TYPE :demo:requests counter",
        ':demo:requests{model="a\\"\\\\",status="NOT_FOUND"} 1',
        ':demo:requests{model="b",status="OK"} 2',
    ]) + "\n"
    assert metrics.value("/demo/requests", ("b", "OK")) == 2 and metrics.value("/demo/latency-us", ("m",)) == (4, 104.5)
    for call, message in ((lambda: metrics.increment("/demo/nope"), "unknown metric '/demo/nope'"),
                          (lambda: metrics.increment("/demo/requests", ("b",)), r"takes labels \('model', 'status'\)"),
                          (lambda: metrics.observe("/demo/requests", ("b", "OK"), 1), "is a counter, not a histogram")):
        with pytest.raises(ValueError, match=message):
            call()


def test_serving_metrics_have_tf_servings_names_and_buckets():
    limits = exponential_buckets(10, 1.8, 33)
    assert len(limits) == 33 and limits[:4] == (10.0, 18.0, 32.4, 58.32)
    assert limits[-1] == pytest.approx(10 * 1.8 ** 32)  # about 20 minutes in microseconds
    latency = METRICS["/tensorflow/serving/request_latency"]
    assert latency.prometheus_name == ":tensorflow:serving:request_latency"
    assert latency.labels == ("model_name", "API", "entrypoint", "status") and latency.buckets == limits
    queuing = METRICS["/tensorflow/serving/batching_session/queuing_latency"]
    assert queuing.buckets == exponential_buckets(100, 1.2, 52) and queuing.labels == ("thread_pool_name",)
    page = Metrics().prometheus_page()
    assert "# TYPE :tensorflow:serving:request_count counter\n" in page
    assert "# TYPE :tensorflow:serving:batching_session:queuing_latency histogram\n" in page


def test_monitoring_config_file(tmp_path):
    config = tmp_path / "monitoring.config"
    config.write_text('prometheus_config {\n  enable: true,\n  path: "/metrics"\n}\n')
    assert read_monitoring_config(str(config)) == "/metrics"
    config.write_text("prometheus_config { enable: true }")
    assert read_monitoring_config(str(config)) == DEFAULT_PROMETHEUS_PATH == "/monitoring/prometheus/metrics"
    config.write_text('prometheus_config { path: "/metrics" }')
    assert read_monitoring_config(str(config)) is None  # not enabled
    config.write_text("prometheus_config {\n  enable: true\n  pth: '/m'\n}")
    with pytest.raises(MonitoringConfigError, match=rf"{config}:3:3 : .* has no field named \"pth\""):
        read_monitoring_config(str(config))
    config.write_text("prometheus_config { enable: true path: 'metrics' }")
    with pytest.raises(MonitoringConfigError, match="'metrics' must start with '/'"):
        read_monitoring_config(str(config))
    with pytest.raises(MonitoringConfigError, match="missing.config: No such file"):
        read_monitoring_config(str(tmp_path / "missing.config"))
    shipped = os.path.join(os.path.dirname(__file__), os.pardir, "serving", "monitoring.config")
    assert read_monitoring_config(shipped) == "/monitoring/prometheus/metrics"


def test_batcher_records_queueing_and_batches():
    """Two requests merged into one batch: one wrapped run and two queueing times."""
    metrics = Metrics()
    batcher = Batcher(BatchingParameters(max_batch_size=2, batch_timeout_micros=300_000, num_batch_threads=1,
                                         thread_pool_name="pool"),
                      lambda version, signature, inputs: {"y": inputs["x"] * 2}, metrics=metrics)
    version = types.SimpleNamespace(manifest=None)
    results = []
    threads = [threading.Thread(target=lambda v=v: results.append(batcher.run(version, "s", {"x": np.array([v])})))
               for v in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    batcher.stop()
    assert sorted(int(r["y"][0]) for r in results) == [2, 4] and batcher.batches_run == 1
    assert metrics.value("/tensorflow/serving/batching_session/wrapped_run_count") == 1
    count, total = metrics.value("/tensorflow/serving/batching_session/queuing_latency", ("pool",))
    assert count == 2 and total > 0


@pytest.mark.parametrize("case", ["no_rest_port", "bad_file"])
def test_serve_rejects_unusable_monitoring_flags(tmp_path, case):
    config = tmp_path / "monitoring.config"
    config.write_text("prometheus_config { enable: true }" if case == "no_rest_port" else "prometheus { }")
    done = subprocess.run([sys.executable, "-m", "albert_tf.serve", f"--model_base_path={tmp_path}",
                           f"--monitoring_config_file={config}"], capture_output=True, text=True, timeout=120)
    expected = ("served on the REST port: give --rest_api_port too" if case == "no_rest_port"
                else f'{config}:1:1 : Message type "tensorflow.serving.MonitoringConfig" has no field named "prometheus"')
    assert done.returncode == 1 and expected in done.stderr, done.stderr[-2000:]


@pytest.mark.parametrize("flags, expected", [
    (("--tensorflow_session_parallelism=1",), "TensorFlow threads: intra-op 1, inter-op 1"),
    (("--tensorflow_session_parallelism=3", "--tensorflow_intra_op_parallelism=1"),
     "TensorFlow threads: intra-op 1, inter-op 0"),
    (("--tensorflow_session_parallelism=1", "--tensorflow_intra_op_parallelism=1",
      "--tensorflow_inter_op_parallelism=1"), "not all three"),
    (("--tensorflow_session_parallelism=-1",), "must be at least 0"),
    (("--rest_api_enable_cors_support",), "--rest_api_enable_cors_support applies to the REST API: give "
                                          "--rest_api_port too"),
])
def test_serve_thread_and_cors_flags(tmp_path, flags, expected):
    """TF Serving's rule for the three parallelism flags, as TensorFlow then reports the
    thread counts (albert-serve logs them before it waits for the model, which never comes
    here); and the usage errors."""
    process = subprocess.Popen([sys.executable, "-m", "albert_tf.serve", f"--model_base_path={tmp_path / 'none'}",
                                "--port=0", *flags], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    seen = []
    try:
        for line in process.stderr:
            seen.append(line)
            if expected in line or "waiting for a version" in line:
                break
    finally:
        process.kill()
        process.wait(30)
        process.stderr.close()
    assert any(expected in line for line in seen), "".join(seen)[-2000:]


# ----------------------------------------------------------------- the REST port
class BlockingApi:
    """A RestApi stand-in: each call waits until `release` is set, and the most calls
    running at once is kept."""

    def __init__(self):
        self.release, self.lock = threading.Event(), threading.Lock()
        self.running = self.most_running = self.calls = 0

    def handle(self, method, path, body, deadline=None):
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        self.release.wait(30)
        with self.lock:
            self.running -= 1
        return 200, {"path": path}


def get(port, path, results=None):
    """(status, body text) of a GET; appended to `results` when given."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
            answer = response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        answer = e.code, e.read().decode()
    if results is not None:
        results.append(answer)
    return answer


def in_threads(port, paths, results):
    threads = [threading.Thread(target=get, args=(port, path, results)) for path in paths]
    for thread in threads:
        thread.start()
    return threads


def wait_until(condition, seconds=10):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_rest_num_threads_bounds_the_requests_running_at_once():
    api = BlockingApi()
    server = RestServer(api, "127.0.0.1", 0, num_threads=2, timeout_seconds=30)
    results = []
    threads = in_threads(server.port, [f"/v1/models/m{i}" for i in range(5)], results)
    wait_until(lambda: api.running == 2)
    time.sleep(0.3)  # the other three stay queued
    assert api.running == 2 and api.calls == 2
    api.release.set()
    for thread in threads:
        thread.join()
    assert sorted(status for status, _ in results) == [200] * 5 and api.most_running == 2
    server.stop(grace=5)


def test_rest_timeout_answers_504_and_drops_requests_not_started():
    api = BlockingApi()
    server = RestServer(api, "127.0.0.1", 0, num_threads=1, timeout_seconds=0.3)
    results = []
    threads = in_threads(server.port, ["/v1/models/first"], results)
    wait_until(lambda: api.calls == 1)
    threads += in_threads(server.port, ["/v1/models/second"], results)  # waits for the only worker
    for thread in threads:
        thread.join()
    assert [status for status, _ in results] == [504, 504]
    assert "no answer within 300 ms (--rest_api_timeout_in_ms)" in json.loads(results[0][1])["error"]
    api.release.set()
    time.sleep(0.2)
    assert api.calls == 1  # the second request never ran
    server.stop(grace=5)


def test_rest_stop_lets_requests_in_flight_finish_and_refuses_new_ones():
    api = BlockingApi()
    server = RestServer(api, "127.0.0.1", 0, num_threads=2, timeout_seconds=30,
                        prometheus_path="/metrics", metrics_page=lambda: "# TYPE x counter\n")
    assert get(server.port, "/metrics?x=1") == (200, "# TYPE x counter\n")
    results = []
    threads = in_threads(server.port, ["/v1/models/in_flight"], results)
    wait_until(lambda: api.running == 1)
    stopped = []
    stopper = threading.Thread(target=lambda: stopped.append(server.stop(grace=30)))
    stopper.start()
    wait_until(lambda: server.stopping)
    time.sleep(1.0)  # longer than serve_forever's 0.5 s poll, which shutdown() waits for
    assert stopper.is_alive() and results == []  # stop waits for the request in flight
    api.release.set()
    stopper.join(30)
    for thread in threads:
        thread.join()
    assert [(status, json.loads(body)) for status, body in results] == [(200, {"path": "/v1/models/in_flight"})]
    assert stopped == [0]
    with pytest.raises(OSError):  # the port is closed
        get(server.port, "/v1/models/late")


def test_rest_stop_gives_up_after_the_grace_period():
    api = BlockingApi()
    server = RestServer(api, "127.0.0.1", 0, num_threads=1, timeout_seconds=30)
    threads = in_threads(server.port, ["/v1/models/slow"], [])
    wait_until(lambda: api.running == 1)
    started = time.monotonic()
    assert server.stop(grace=0.3) == 1  # one request still running
    assert time.monotonic() - started < 5
    api.release.set()
    for thread in threads:
        thread.join()


def _request(port, method, path, headers=None):
    """(status, headers, body bytes) of one HTTP request, error statuses included."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_rest_cors_headers_and_preflight():
    """With cors, answers (errors included) carry TF Serving's three CORS headers and a
    browser's OPTIONS preflight gets 204; without it there are no such headers and OPTIONS
    is 501, as in http.server."""
    api = BlockingApi()
    api.release.set()
    cors = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "POST, GET",
            "Access-Control-Allow-Headers": "Content-Type"}
    preflight = {"Origin": "http://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}
    on = RestServer(api, "127.0.0.1", 0, num_threads=2, timeout_seconds=30, cors=True)
    off = RestServer(api, "127.0.0.1", 0, num_threads=2, timeout_seconds=30)
    try:
        status, headers, body = _request(on.port, "GET", "/v1/models/m", {"Origin": "http://app.example"})
        assert status == 200 and json.loads(body) == {"path": "/v1/models/m"}
        assert {name: headers.get(name) for name in cors} == cors
        status, headers, body = _request(on.port, "OPTIONS", "/v1/models/m:predict", preflight)
        assert (status, body) == (204, b"") and {name: headers.get(name) for name in cors} == cors
        status, headers, _ = _request(off.port, "GET", "/v1/models/m")
        assert status == 200 and not any(name in headers for name in cors)
        status, headers, _ = _request(off.port, "OPTIONS", "/v1/models/m:predict", preflight)
        assert status == 501 and not any(name in headers for name in cors)
        on.stop(grace=5)
        status, headers, _ = _request(off.port, "GET", "/v1/models/m")  # the other server is unaffected
        assert status == 200
    finally:
        off.stop(grace=5)


def test_health_check_turns_not_serving_when_the_server_stops():
    """A client watching grpc.health.v1 sees SERVING, then NOT_SERVING as soon as `stop`
    begins (a server with no models, in-process)."""
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.SetInParent()
    server = ModelServer(ServerOptions(model_config=config, port=0, enable_grpc_healthcheck_service=True),
                         log=lambda line: None).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    stopper = threading.Thread(target=server.stop, kwargs={"grace": 5})
    stopper.start()
    assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    stopper.join(30)
    channel.close()
