"""albert-serve's model lifecycle and batching over the network: versions, config files, load failures,
platform and TLS configs, concurrency limits, the batcher and deadlines (embedded server only)."""

import concurrent.futures
import json
import os
import re
import shutil
import threading
import time
import types

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import model_management_pb2, predict_pb2, prediction_service_pb2_grpc
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.config import model_server_config_pb2

from albert_tf.export import warmup
from albert_tf.export.exporter import set_method_names
from albert_tf.serving.batching import Batcher, BatchingConfigError, BatchingParameters
from albert_tf.serving.client import AlbertClient, ServingClientError, TlsCredentials
from albert_tf.serving import batching as batching_module
from albert_tf.serving import deadlines, servables
from albert_tf.serving.manager import State
from albert_tf.serving.monitoring import RUNTIME_LABEL
from albert_tf.serving.manager import ModelConfigError, ModelManager, parse_model_config_file, single_model_config
from albert_tf.serving.process import free_port
from albert_tf.serving.server import ModelServer, ServerOptions, parse_grpc_channel_arguments
from albert_tf.serving.tensors import ServingError
from tests.model_server import ServerProcess
from tests.certificates import ssl_text_proto
from tests.test_platform_config import platform_config_text
from tests.test_export import keras_text_inputs
from tests.serving_helpers import (
    MAX_SEQ,
    Code,
    ids_inputs,
    predict_at_once_then_stop,
    predict_request,
    rest,
    rpc_error,
    stubs,
    write_config,
)


# ----------------------------------------------------------------- model management (embedded)
def test_hot_swap_under_load_drops_no_request(models, tmp_path):
    base = tmp_path / "albert"
    shutil.copytree(models["base"] / "albert" / "1", base / "1")
    process = ServerProcess("embedded", [f"--model_base_path={base}", "--model_name=albert",
                                         "--file_system_poll_wait_seconds=0.5", "--num_unload_threads=0",
                                         "--flush_filesystem_caches=true"])  # TF Serving flags albert-serve ignores
    predict, _, channel = stubs(process.address)
    seen, failures, stop = [], [], threading.Event()
    request = predict_request({"text": np.array([b"hot swap"], object)}, output_filter=["pooled_output"])

    def load():
        while not stop.is_set():
            try:
                seen.append(predict.Predict(request, timeout=30).model_spec.version.value)
            except grpc.RpcError as e:
                failures.append((e.code(), e.details()))
            time.sleep(0.02)  # three callers, always one in flight, without starving the loads (51 s, not 71)

    def wait_for(version, seconds=60):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and (not seen or seen[-1] != version):
            time.sleep(0.1)
        assert seen and seen[-1] == version, (version, seen[-5:])

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        wait_for(1)
        staging = base / ".incoming"
        shutil.copytree(models["base"] / "albert" / "1", staging)
        os.rename(staging, base / "2")  # atomic, as albert-export publishes
        wait_for(2)
        shutil.rmtree(base / "2")  # v2 disappears: v1 comes back
        wait_for(1)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        channel.close()
        _, stderr = process.stop()
    assert failures == []
    assert seen.count(2) > 0 and len(seen) > 20
    assert "version 2 available" in stderr and "unloaded version 1" in stderr
    assert "--num_unload_threads=0 is a tensorflow_model_server flag albert-serve ignores" in stderr
    assert "--flush_filesystem_caches=true is a tensorflow_model_server flag" in stderr


def test_model_config_file_is_polled(models, tmp_path):
    config_path = tmp_path / "models.config"
    write_config(config_path, models["base"], names=("albert",))
    socket_path = tmp_path / "serving.sock"
    process = ServerProcess("embedded", [f"--model_config_file={config_path}",
                                         "--model_config_file_poll_wait_seconds=1", f"--grpc_socket_path={socket_path}",
                                         "--grpc_channel_arguments=grpc.max_receive_message_length=4096"])
    predict, _, channel = stubs(process.address)
    unix_predict, _, unix_channel = stubs(f"unix:{socket_path}")  # TF Serving's testPredictUDS
    response = unix_predict.Predict(predict_request({"text": np.array([b"x"], object)}, output_filter=["input_mask"]),
                                    timeout=30)
    assert response.model_spec.name == "albert"
    too_big = predict_request({"text": np.array([b"x" * 5000], object)})  # over the server's 4096-byte limit
    assert rpc_error(unix_predict.Predict, too_big, timeout=30)[0] == Code.RESOURCE_EXHAUSTED
    health_check = health_pb2_grpc.HealthStub(unix_channel).Check
    assert rpc_error(health_check, health_pb2.HealthCheckRequest(), timeout=30)[0] == Code.UNIMPLEMENTED  # flag off
    unix_channel.close()
    request = predict_request({"text": np.array([b"x"], object)}, model="cls", output_filter=["label_id"])
    try:
        code, _ = rpc_error(predict.Predict, request, timeout=30)
        assert code == Code.NOT_FOUND
        write_config(tmp_path / "staged.config", models["base"], names=("albert", "cls"))
        os.replace(tmp_path / "staged.config", config_path)
        deadline = time.monotonic() + 60
        while True:
            try:
                response = predict.Predict(request, timeout=30)
                break
            except grpc.RpcError:
                assert time.monotonic() < deadline, "the new config was not picked up"
                time.sleep(0.3)
        assert response.model_spec.name == "cls"
    finally:
        channel.close()
        _, stderr = process.stop()
    assert "reloaded" in stderr


def test_reload_config_labels_and_failures(models, tmp_path):
    config_path = write_config(tmp_path / "one.config", models["base"], names=("albert",))
    process = ServerProcess("embedded", [f"--model_config_file={config_path}", "--max_num_load_retries=0"])
    predict, models_stub, channel = stubs(process.address)
    try:
        def reload(text):
            config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
            return models_stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=config),
                                                         timeout=120)

        both = f"""model_config_list {{
          config {{ name: 'albert' base_path: '{models["base"] / "albert"}' model_platform: 'tensorflow' }}
          config {{ name: 'second' base_path: '{models["base"] / "albert"}' model_platform: 'tensorflow'
                   version_labels {{ key: 'stable' value: 1 }} }} }}"""
        assert reload(both).status.error_code == 0
        response = predict.Predict(predict_request({"text": np.array([b"x"], object)}, model="second",
                                                   label="stable", output_filter=["pooled_output"]), timeout=30)
        assert response.model_spec.name == "second"
        only = f"model_config_list {{ config {{ name: 'second' base_path: '{models['base'] / 'albert'}' }} }}"
        assert reload(only).status.error_code == 0
        code, details = rpc_error(predict.Predict, predict_request({"text": np.array([b"x"], object)}), timeout=30)
        assert code == Code.NOT_FOUND and "Latest(albert)" in details
        code, details = rpc_error(reload, "")  # not a model_config_list
        assert code == Code.INVALID_ARGUMENT
        unavailable_label = f"""model_config_list {{ config {{ name: 'second' base_path: '{models['base'] / 'albert'}'
            version_labels {{ key: 'canary' value: 7 }} }} }}"""
        code, details = rpc_error(reload, unavailable_label)
        assert code == Code.FAILED_PRECONDITION and "assign label to version 7 of model second" in details
        broken = tmp_path / "broken"
        (broken / "1").mkdir(parents=True)
        (broken / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
        code, details = rpc_error(reload, f"model_config_list {{ config {{ name: 'broken' base_path: '{broken}' }} }}")
        assert code == Code.UNKNOWN and "1 model(s) did not become available" in details
    finally:
        channel.close()
        process.stop()


def _copy_with_warmup(models, base, records):
    """A copy of albert/1 as `base`/1 whose warmup file holds `records`, written record
    by record (write_warmup_file itself refuses more than 1000)."""
    shutil.copytree(models["base"] / "albert" / "1", base / "1")
    with tf.io.TFRecordWriter(str(base / "1" / "assets.extra" / warmup.WARMUP_FILE)) as writer:
        for signature, values in records:
            writer.write(warmup.prediction_log("albert", signature, values).SerializeToString())
    return base


def test_failed_loads_fail_the_start(models, tmp_path):
    """A model whose warmup fails (a record of the wrong dtype; more than 1000 records)
    does not load, and a server whose models do not all load exits 1 with TF Serving's
    "Failed to start server" and every model's error. One server start checks both."""
    inputs = ids_inputs(models["config"])
    _copy_with_warmup(models, tmp_path / "wrong_dtype",
                      [("encode", dict(inputs, input_mask=inputs["input_mask"].astype(np.float32)))])
    _copy_with_warmup(models, tmp_path / "too_many", [("encode", inputs)] * (warmup.MAX_WARMUP_RECORDS + 1))
    config = write_config(tmp_path / "models.config", tmp_path, names=("wrong_dtype", "too_many"))
    process = ServerProcess("embedded", [f"--model_config_file={config}", "--max_num_load_retries=0"],
                            expect_ready=False)
    returncode = process.wait_exit()
    _, stderr = process.stop()
    failure = next((line for line in stderr.splitlines() if "Failed to start server" in line), "")
    assert returncode == 1 and "2 model(s) did not become available" in failure, stderr[-3000:]
    # The models' errors in name order, each after its name.
    order = ["{too_many, ", "Number of warmup records exceeds the maximum (1000)", "{wrong_dtype, ", "Expects arg["]
    assert all(part in failure for part in order), failure
    assert [failure.index(part) for part in order] == sorted(failure.index(part) for part in order), failure


def test_saved_model_tags_choose_the_meta_graph(models):
    """--saved_model_tags names the MetaGraph to load; an export has only {serve}, so
    serve,gpu fails the load with TF Serving's message."""
    process = ServerProcess("embedded", [f"--model_base_path={models['base'] / 'albert'}", "--model_name=albert",
                                         "--saved_model_tags=serve,gpu", "--max_num_load_retries=0"],
                            expect_ready=False)
    returncode = process.wait_exit()
    _, stderr = process.stop()
    assert returncode == 1 and "Could not find meta graph def matching supplied tags: { serve gpu }" in stderr, \
        stderr[-2000:]


def test_platform_config_file_replaces_the_session_flags(models, tmp_path):
    """--platform_config_file: threads, batching and warmup come from its legacy_config, and
    the session flags given beside it are ignored with a warning, as in TF Serving."""
    config = tmp_path / "platform.config"
    config.write_text(platform_config_text("""
          session_config { intra_op_parallelism_threads: 1 inter_op_parallelism_threads: 1 }
          batching_parameters { max_batch_size { value: 8 } batch_timeout_micros { value: 1000 }
                                num_batch_threads { value: 1 } pad_variable_length_inputs: true }
          enable_model_warmup: true"""))
    process = ServerProcess("embedded", [f"--model_base_path={models['base'] / 'albert'}", "--model_name=albert",
                                         f"--platform_config_file={config}", "--enable_model_warmup=false",
                                         "--tensorflow_session_parallelism=2"])
    try:
        prediction, _, channel = stubs(process.address)
        inputs = ids_inputs(models["config"], batch=1, seq=12)
        got = prediction.Predict(predict_request(inputs, signature="encode", output_filter=["pooled_output"]),
                                 timeout=60)
        channel.close()
    finally:
        _, stderr = process.stop()
    expected = models["albert"].backbone.predict_on_batch(inputs)["pooled_output"]
    np.testing.assert_allclose(tf.make_ndarray(got.outputs["pooled_output"]), expected, atol=1e-5, rtol=0)
    assert ("--platform_config_file sets the session, so --tensorflow_session_parallelism, --enable_model_warmup "
            "are ignored") in stderr
    assert "TensorFlow threads: intra-op 1, inter-op 1" in stderr
    warmed = re.search(r"version 1 available \((\d+) warmup records", stderr)
    assert warmed and int(warmed.group(1)) > 0, stderr[-2000:]
    assert re.search(r"batching: [1-9]\d* batches for", stderr), stderr[-2000:]


def test_signature_method_name_check(models, tmp_path):
    """--enable_signature_method_name_check: Predict on a signature whose method_name is not
    predict/classify/regress fails with TF Serving's INTERNAL message, over gRPC and REST;
    without the check it runs."""
    shutil.copytree(models["base"] / "albert" / "1", tmp_path / "albert" / "1")
    set_method_names(str(tmp_path / "albert" / "1"), {"serving_default": "custom/method"})
    rest_port = free_port()
    server = ModelServer(ServerOptions(model_config=single_model_config("albert", str(tmp_path / "albert")), port=0,
                                       enable_model_warmup=False, rest_api_port=rest_port,
                                       enable_signature_method_name_check=True), log=lambda _: None).start()
    message = ("Expected prediction signature method_name to be one of {tensorflow/serving/predict, "
               "tensorflow/serving/classify, tensorflow/serving/regress}. Was: custom/method")
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "albert"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(np.array([b"Hello."], object)))
    request.output_filter.append("pooled_output")
    body = json.dumps({"instances": [{"text": "Hello."}]}).encode()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.Predict(request, timeout=30)
            assert (caught.value.code(), caught.value.details()) == (grpc.StatusCode.INTERNAL, message)
            server.rest_url = f"http://127.0.0.1:{server.rest_port}/v1/models"
            assert rest(server, "/albert:predict", body) == (500, {"error": message})
            server.options.enable_signature_method_name_check = False  # read per request
            assert tf.make_ndarray(stub.Predict(request, timeout=30).outputs["pooled_output"]).shape == (1, 32)
            assert rest(server, "/albert:predict", body)[0] == 200
    finally:
        server.stop(grace=1)


def test_albert_serve_over_tls(models, tmp_path, pki):
    """albert-serve --ssl_config_file: a TLS client gets the model's answer, a plaintext
    client gets UNAVAILABLE."""
    config = tmp_path / "ssl.config"
    config.write_text(ssl_text_proto({"server_key": pki["server_key"], "server_cert": pki["server_cert"]}))
    tls = TlsCredentials(root_certificates=pki["ca"].encode())
    process = ServerProcess("embedded", [f"--model_base_path={models['base'] / 'albert'}", "--model_name=albert",
                                         f"--ssl_config_file={config}"], tls=tls)
    try:
        with AlbertClient(process.address, "albert", retries=0, tls=tls) as client:
            pooled = client.predict(["Hello world."], output_filter=["pooled_output"])["pooled_output"]
        with AlbertClient(process.address, "albert", retries=0, timeout=5) as plain:
            with pytest.raises(ServingClientError) as caught:
                plain.status()
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        _, stderr = process.stop()
    assert "gRPC (TLS) on 127.0.0.1" in stderr
    expected = models["albert"].backbone.predict_on_batch(
        keras_text_inputs(models["tokenizer"], ["Hello world."], [None], MAX_SEQ))["pooled_output"]
    np.testing.assert_allclose(pooled, expected, atol=1e-5, rtol=0)


# ----------------------------------------------------------------- transport (embedded)
def test_grpc_channel_arguments_parse_as_tf_serving_reads_them():
    assert parse_grpc_channel_arguments("grpc.max_connection_age_ms=30000, grpc.lb_policy_name = round_robin,,"
                                        "grpc.http2.min_ping_interval_without_data_ms=-1") == {
        "grpc.max_connection_age_ms": 30000, "grpc.lb_policy_name": "round_robin",
        "grpc.http2.min_ping_interval_without_data_ms": -1}
    assert parse_grpc_channel_arguments("") == {}
    for text in ("grpc.so_reuseaddr", "=1"):
        with pytest.raises(ValueError, match="is not key=value"):
            parse_grpc_channel_arguments(text)


def test_concurrency_limit_answers_resource_exhausted(models):
    process = ServerProcess("embedded", [f"--model_base_path={models['base'] / 'albert'}", "--model_name=albert",
                                         "--grpc_max_threads=1"])
    predict, _, channel = stubs(process.address)
    heavy = predict_request(ids_inputs(models["config"], batch=1500, seq=64), signature="encode",
                            output_filter=["pooled_output"])

    def call(_):
        try:
            predict.Predict(heavy, timeout=120)
            return Code.OK
        except grpc.RpcError as e:
            return e.code()

    try:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            codes = list(pool.map(call, range(6)))
    finally:
        channel.close()
        process.stop()
    assert Code.OK in codes and Code.RESOURCE_EXHAUSTED in codes and set(codes) <= {Code.OK, Code.RESOURCE_EXHAUSTED}


# ----------------------------------------------------------------- batching (embedded)
def test_batching_parameters_parse_strictly(tmp_path):
    params = BatchingParameters.from_text(open(os.path.join(os.path.dirname(__file__), os.pardir, "serving",
                                                            "batching_parameters.txt")).read())
    assert (params.max_batch_size, params.batch_timeout_micros, params.num_batch_threads) == (32, 2000, 1)
    params = BatchingParameters.from_text("max_batch_size { value: 8 }\nallowed_batch_sizes: 4\nallowed_batch_sizes: 8"
                                          "\npad_variable_length_inputs: true")
    assert params.allowed_batch_sizes == [4, 8] and params.pad_variable_length_inputs
    with pytest.raises(BatchingConfigError) as caught:
        BatchingParameters.from_text("# a comment\nmax_batch_size { value: 8 }\n  max_batch { value: 8 }")
    assert str(caught.value) == ('--batching_parameters_file:3:3 : Message type "tensorflow.serving.BatchingParameters" '
                                 'has no field named "max_batch".')
    with pytest.raises(BatchingConfigError, match=r"--batching_parameters_file:1:\d+ : .*max_batch_size"):
        BatchingParameters.from_text("max_batch_size: 8")  # a wrapper field needs { value: ... }
    with pytest.raises(BatchingConfigError, match="^--batching_parameters_file: the last entry in allowed_batch_sizes "
                                                  "must equal max_batch_size"):
        BatchingParameters.from_text("max_batch_size { value: 8 }\nallowed_batch_sizes: 4")
    with pytest.raises(BatchingConfigError, match="--batching_parameters_file .*missing.txt: No such file"):
        BatchingParameters.from_file(str(tmp_path / "missing.txt"))


def test_model_config_file_errors_name_the_file_and_line(tmp_path):
    config = tmp_path / "models.config"
    config.write_text("model_config_list {\n  config { nme: 'albert' }\n}\n")
    with pytest.raises(ModelConfigError, match=rf"--model_config_file {config}:2:12 : .* has no field named \"nme\""):
        parse_model_config_file(str(config))
    with pytest.raises(ModelConfigError, match="missing.config: No such file"):
        parse_model_config_file(str(tmp_path / "missing.config"))


def test_batched_results_equal_unbatched_under_16_clients(models, tmp_path):
    params = tmp_path / "batching.txt"
    params.write_text("max_batch_size { value: 64 }\nbatch_timeout_micros { value: 20000 }\n"
                      "num_batch_threads { value: 2 }\nmax_enqueued_batches { value: 16 }\n"
                      "pad_variable_length_inputs: true\n")
    process = ServerProcess("embedded", [f"--model_base_path={models['base'] / 'albert'}", "--model_name=albert",
                                         "--enable_batching", f"--batching_parameters_file={params}"])
    backbone, tokenizer, config = models["albert"].backbone, models["tokenizer"], models["config"]
    rng = np.random.default_rng(0)
    words = "the model shares every layer and so it stays small while the text grows longer".split()
    jobs = []
    for i in range(64):
        if i % 2:
            texts = [" ".join(rng.choice(words, size=rng.integers(1, 30))) for _ in range(rng.integers(1, 4))]
            jobs.append(("serving_default", {"text": np.array(texts, object),
                                             "text_b": np.array([""] * len(texts), object)}, texts))
        else:
            jobs.append(("encode", ids_inputs(config, batch=int(rng.integers(1, 4)), seq=int(rng.integers(3, 40)),
                                              seed=i), None))

    results, (batches, requests) = predict_at_once_then_stop(
        process, [predict_request(inputs, signature=signature) for signature, inputs, _ in jobs])
    for (signature, inputs, texts), got in zip(jobs, results):
        if signature == "encode":
            expected = backbone.predict_on_batch(inputs)
        else:
            expected = backbone.predict_on_batch(keras_text_inputs(tokenizer, texts, [None] * len(texts), MAX_SEQ))
        assert got["sequence_output"].shape == expected["sequence_output"].shape  # padding cut back off
        for key in ("pooled_output", "sequence_output"):
            np.testing.assert_allclose(got[key], expected[key], atol=2e-5, rtol=0, err_msg=f"{signature} {key}")
    assert requests == len(jobs) + 10  # the 64 requests and the export's 10 warmup records
    assert batches <= requests - 16, (batches, requests)  # requests were merged, not run one by one


def test_manager_stopped_while_waiting_for_a_first_version_gives_up(tmp_path):
    """stop() during start() (no version on disk yet) ends the wait with an error, not a busy loop."""
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name, model.base_path, model.model_platform = "albert", str(tmp_path), "tensorflow"
    manager = ModelManager(config, poll_wait_seconds=0.2, log=lambda _: None)
    errors = []

    def start():
        try:
            manager.start()
        except ServingError as e:
            errors.append(e)

    thread = threading.Thread(target=start, daemon=True)
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive()  # still waiting for a version
    manager.stop()
    thread.join(10)
    assert not thread.is_alive() and len(errors) == 1
    assert "{albert, the server was stopped before a version became available}" in errors[0].message


class BarrierVersion:
    """A LoadedVersion stand-in whose load waits until `parties` loads are running at once."""

    barrier = None
    name = version = path = None
    batching_parameters = None
    manifest = {}  # not an albert-tf export

    def __init__(self, name, version, path, **_):
        self.name, self.version, self.path = name, version, path
        BarrierVersion.barrier.wait(timeout=20)  # BrokenBarrierError fails the load if loads are serial


@pytest.mark.parametrize("load_threads", [0, 2])
def test_models_load_at_once_at_start_and_by_num_load_threads_after(tmp_path, monkeypatch, load_threads):
    """The first config's models load at once (TF Serving's num_initial_load_threads); after
    start, a version found by polling loads alone unless --num_load_threads allows more."""
    monkeypatch.setattr(servables, "LoadedVersion", BarrierVersion)
    config = model_server_config_pb2.ModelServerConfig()
    for name in ("a", "b", "c"):
        (tmp_path / name / "1").mkdir(parents=True)
        model = config.model_config_list.config.add()
        model.name, model.base_path, model.model_platform = name, str(tmp_path / name), "tensorflow"
    BarrierVersion.barrier = threading.Barrier(3)
    manager = ModelManager(config, poll_wait_seconds=0.2, enable_warmup=False, load_threads=load_threads,
                           max_load_retries=0, log=lambda _: None)
    manager.start()
    try:
        assert {manager.resolve(model_spec_of(name)).name for name in ("a", "b")} == {"a", "b"}
        BarrierVersion.barrier = threading.Barrier(2, timeout=2)
        for name in ("a", "b"):
            (tmp_path / name / "2").mkdir()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(
                2 in manager._models[name].status and manager._models[name].status[2][0] == State.END
                or manager.resolve(model_spec_of(name)).version == 2 for name in ("a", "b")):
            time.sleep(0.1)
        versions = {name: manager.resolve(model_spec_of(name)).version for name in ("a", "b")}
    finally:
        manager.stop()
    # Two loads at once pass the two-party barrier; one at a time each waits out its timeout and fails.
    assert versions == ({"a": 2, "b": 2} if load_threads == 2 else {"a": 1, "b": 1})


def model_spec_of(name):
    return model_pb2.ModelSpec(name=name)


class FakeVersion:
    """A model version for batcher tests: not an albert-tf export (outputs are not trimmed),
    and weakly referenceable like LoadedVersion (Batcher.retire keeps weak references)."""

    manifest = None


def batch_request(batcher, results, name, version, value, deadline=None):
    """Runs batcher.run(version, "encode", {"x": [value]}, deadline=deadline) in a daemon
    thread (so a request left waiting cannot hang the test run); results[name] gets the
    outputs or the ServingError. Returns the started thread."""
    def call():
        try:
            results[name] = batcher.run(version, "encode", {"x": np.array([value])}, deadline=deadline)
        except ServingError as e:
            results[name] = e
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


def test_batcher_stop_answers_queued_and_late_requests_unavailable():
    """A request queued behind a running batch when the batcher stops, and one that comes
    after, get UNAVAILABLE instead of waiting forever; the running batch still finishes."""
    started, release = threading.Event(), threading.Event()

    def run(version, signature, inputs):
        started.set()
        release.wait(10)
        return {"doubled": inputs["x"] * 2}

    batcher = Batcher(BatchingParameters(max_batch_size=1, num_batch_threads=1), run)
    version = types.SimpleNamespace(manifest=None)  # not an albert-tf export: outputs are not trimmed
    results = {}

    def request(name, value):
        return batch_request(batcher, results, name, version, value)

    running = request("running", 1)
    assert started.wait(10)
    queued = request("queued", 2)
    deadline = time.monotonic() + 10
    while not any(queue.tasks for queue in batcher._queues.values()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert any(queue.tasks for queue in batcher._queues.values()), "the second request never queued"
    batcher.stop()
    release.set()
    running.join(10)
    queued.join(10)
    assert results["running"]["doubled"].tolist() == [2]
    assert isinstance(results.get("queued"), ServingError), "the queued request is still waiting"
    assert results["queued"].code == grpc.StatusCode.UNAVAILABLE and "stopping" in results["queued"].message
    request("late", 3).join(10)
    assert isinstance(results.get("late"), ServingError) and results["late"].code == grpc.StatusCode.UNAVAILABLE
    assert batcher.tasks_run == 1


def test_batcher_threads_survive_waiting_for_the_same_batch():
    """Two batch threads of one queue both wait out the batch timeout; the one that finds
    the batch taken goes back to waiting instead of failing (it used to die on an empty
    queue, and with every thread dead, requests waited forever)."""
    def run(version, signature, inputs):
        return {"doubled": inputs["x"] * 2}

    batcher = Batcher(BatchingParameters(max_batch_size=64, batch_timeout_micros=50_000, num_batch_threads=2), run)
    version = types.SimpleNamespace(manifest=None)
    errors = []
    threading.excepthook, previous_hook = (lambda args: errors.append(args.exc_value)), threading.excepthook
    try:
        for round_ in range(5):
            with concurrent.futures.ThreadPoolExecutor(6) as pool:
                doubled = list(pool.map(lambda i: batcher.run(version, "encode", {"x": np.array([i])})["doubled"].item(),
                                        range(6)))
            assert doubled == [0, 2, 4, 6, 8, 10]
            time.sleep(0.1)  # both threads wait again
        assert errors == [] and batcher.thread_count() == 2
    finally:
        threading.excepthook = previous_hook
        batcher.stop()


def test_batcher_drops_a_batch_whose_requests_all_timed_out():
    """As TF Serving's batching session: a batch leaves the queue, and if every request in
    it is past its deadline it is not run (RESOURCE_EXHAUSTED "Run() timeout exceeded while
    waiting in batching queue"); a batch with one live request runs for all."""
    release, calls = threading.Event(), []

    def run(version, signature, inputs):
        calls.append(inputs["x"].tolist())
        release.wait(10)
        return {"doubled": inputs["x"] * 2}

    batcher = Batcher(BatchingParameters(max_batch_size=4, num_batch_threads=1), run)
    version, results = types.SimpleNamespace(manifest=None), {}

    def request(name, value, deadline):
        return batch_request(batcher, results, name, version, value, deadline)

    def queued(count):
        deadline = time.monotonic() + 10
        while sum(len(q.tasks) for q in batcher._queues.values()) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    threads = [request("blocker", 1, None)]
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    soon = time.monotonic() + 0.2
    threads += [request("expired 1", 2, soon), request("expired 2", 3, soon)]
    queued(2)
    time.sleep(0.4)  # both pass their deadline while the only batch thread is busy
    release.set()
    for thread in threads:
        thread.join(10)
    assert calls == [[1]]  # the expired batch never ran
    for name in ("expired 1", "expired 2"):
        assert results[name].code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert results[name].message == "Run() timeout exceeded while waiting in batching queue"
    # One request past its deadline and one without: the batch runs for both.
    release.clear()
    threads = [request("blocker 2", 4, None)]
    while len(calls) < 2 and time.monotonic() < deadline + 10:
        time.sleep(0.01)
    threads += [request("late", 5, time.monotonic() + 0.1), request("patient", 6, None)]
    queued(2)
    time.sleep(0.3)
    release.set()
    for thread in threads:
        thread.join(10)
    assert calls[2] == [5, 6] and results["late"]["doubled"].item() == 10 and results["patient"]["doubled"].item() == 12
    batcher.stop()


def test_server_passes_grpc_and_rest_deadlines_to_the_batcher(models, tmp_path):
    """A batched request whose gRPC deadline or REST timeout passes while it waits in the
    queue is answered DEADLINE_EXCEEDED / 504 and its model call is never made."""
    rest_port = free_port()
    server = ModelServer(ServerOptions(model_config=single_model_config("albert", str(models["base"] / "albert")),
                                       port=0, enable_model_warmup=False, rest_api_port=rest_port,
                                       rest_api_timeout_in_ms=300,
                                       batching=BatchingParameters(max_batch_size=1, num_batch_threads=1)),
                         log=lambda _: None).start()
    release, rows_run = threading.Event(), []
    unbatched = server.batcher._run

    def blocking_run(version, signature, inputs):
        rows_run.append(len(next(iter(inputs.values()))))
        release.wait(30)
        return unbatched(version, signature, inputs)

    server.batcher._run = blocking_run
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "albert"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(np.array([b"Hello."], object)))
    request.output_filter.append("pooled_output")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            blocker = stub.Predict.future(request, timeout=60)
            deadline = time.monotonic() + 10
            while not rows_run and time.monotonic() < deadline:
                time.sleep(0.01)
            with pytest.raises(grpc.RpcError) as caught:
                stub.Predict(request, timeout=0.3)  # queued behind the blocker until its deadline
            assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            server.rest_url = f"http://127.0.0.1:{rest_port}/v1/models"
            status, answer = rest(server, "/albert:predict", {"instances": [{"text": "Hello."}]})
            assert status == 504, answer
            release.set()
            assert blocker.result(timeout=60).outputs["pooled_output"].tensor_shape.dim[0].size == 1
            time.sleep(0.5)  # the queue has been worked off by now
        assert rows_run == [1]  # neither timed-out request reached the model
    finally:
        release.set()
        server.stop(grace=1)


class SpinModel(tf.Module):
    """A SavedModel whose `spin` signature runs max(n) small matmuls in a while loop: as
    long as a test needs, and cancellable between iterations."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="n")])
    def spin(self, n):
        def body(i, x):
            return i + 1, tf.tanh(tf.matmul(x, x) * 0.01)

        _, x = tf.while_loop(lambda i, x: i < tf.reduce_max(n), body, (tf.constant(0), tf.ones([64, 64])))
        return {"y": tf.fill(tf.shape(n), tf.reduce_sum(x))}


def test_a_deadline_cancels_only_its_own_threads_call(tmp_path):
    """cancel_at is per thread: a call whose deadline passes stops, while a call with time
    left, running at the same moment on another thread, finishes."""
    spin = SpinModel()
    tf.saved_model.save(spin, str(tmp_path / "spin" / "1"), signatures={"spin": spin.spin})
    version = servables.LoadedVersion("spin", 1, str(tmp_path / "spin" / "1"))
    started = time.monotonic()
    version.run("spin", {"n": np.array([2000], np.int32)})
    iterations = int(1.5 / max(time.monotonic() - started, 1e-3) * 2000)  # about 1.5 s of loop
    results = {}

    def call(name, seconds, n):
        began = time.monotonic()
        try:
            with deadlines.cancel_at(time.monotonic() + seconds):
                version.run("spin", {"n": np.array([n], np.int32)})
            results[name] = ("finished", time.monotonic() - began)
        except ServingError as e:
            results[name] = (e.code, time.monotonic() - began)

    threads = [threading.Thread(target=call, args=("short", 0.3, 100 * iterations)),
               threading.Thread(target=call, args=("long", 120, iterations))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert results["short"][0] == grpc.StatusCode.DEADLINE_EXCEEDED and results["short"][1] < 10, results
    assert results["long"][0] == "finished", results


def test_enforce_session_run_timeout_false_lets_model_calls_run_to_the_end(tmp_path):
    """ModelServer.runner passes the request's deadline to the model call only with
    enforce_session_run_timeout on (the default, as TF Serving's flag)."""
    spin = SpinModel()
    tf.saved_model.save(spin, str(tmp_path / "spin" / "1"), signatures={"spin": spin.spin})
    version = servables.LoadedVersion("spin", 1, str(tmp_path / "spin" / "1"))
    version.run("spin", {"n": np.array([10], np.int32)})  # first-call costs out of the calibration below
    started = time.monotonic()
    version.run("spin", {"n": np.array([2000], np.int32)})
    one_second = {"n": np.array([int(2000 / max(time.monotonic() - started, 1e-3))], np.int32)}
    config = single_model_config("spin", str(tmp_path / "spin"))

    def runner(enforce):
        server = ModelServer(ServerOptions(model_config=config, port=0, enforce_session_run_timeout=enforce),
                             log=lambda _: None)
        return server.runner("Predict", deadline=time.monotonic() + 0.2)

    began = time.monotonic()
    with pytest.raises(ServingError) as caught:
        runner(True)(version, "spin", one_second)
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED and time.monotonic() - began < 0.9
    began = time.monotonic()
    outputs = runner(False)(version, "spin", one_second)
    assert outputs["y"].shape == (1,) and time.monotonic() - began > 0.4


@pytest.mark.parametrize("batching", [False, True])
def test_model_calls_stop_at_the_grpc_deadline_and_rest_timeout(tmp_path, batching):
    """As TF Serving runs a request with its deadline as the RunOptions timeout: a model
    call nobody waits for any more is cancelled, batched or not, over gRPC and REST, while
    a call with time left finishes."""
    spin = SpinModel()
    tf.saved_model.save(spin, str(tmp_path / "spin" / "1"), signatures={"spin": spin.spin})
    rest_port = free_port()
    server = ModelServer(ServerOptions(model_config=single_model_config("spin", str(tmp_path / "spin")), port=0,
                                       rest_api_port=rest_port, rest_api_timeout_in_ms=500,
                                       batching=BatchingParameters(max_batch_size=4) if batching else None),
                         log=lambda _: None).start()
    runtime = ("/tensorflow/serving/runtime_latency", ("spin", "Predict", RUNTIME_LABEL))
    long_loop = {"n": np.array([20_000_000], np.int32)}  # minutes of work if nothing stopped it

    def finished_calls(count):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (server.metrics.value(*runtime) or (0, 0))[0] < count:
            time.sleep(0.05)
        return server.metrics.value(*runtime)

    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.Predict(predict_request(long_loop, model="spin", signature="spin"), timeout=0.5)
            assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            count, micros = finished_calls(1)
            assert count == 1 and micros < 10e6  # stopped near its 0.5 s deadline
            server.rest_url = f"http://127.0.0.1:{rest_port}/v1/models"
            status, _ = rest(server, "/spin:predict", {"signature_name": "spin", "inputs": {"n": [20_000_000]}})
            assert status == 504
            count, micros = finished_calls(2)
            assert count == 2 and micros < 20e6
            short = stub.Predict(predict_request({"n": np.array([100], np.int32)}, model="spin", signature="spin"),
                                 timeout=30)
            assert tf.make_ndarray(short.outputs["y"]).shape == (1,)
    finally:
        server.stop(grace=1)


def test_batcher_retire_drains_the_queue_and_ends_its_threads():
    """retire(version) (the version was unloaded): what is queued still runs as a batch,
    the queue's threads end, and a late request to that version runs unbatched."""
    calls = []

    def run(version, signature, inputs):
        calls.append(len(inputs["x"]))
        return {"doubled": inputs["x"] * 2}

    # A 30 s timeout: without retire, the two requests below would wait for more.
    batcher = Batcher(BatchingParameters(max_batch_size=8, batch_timeout_micros=30_000_000, num_batch_threads=2), run)
    old, new = FakeVersion(), FakeVersion()
    results = {}

    def request(name, version, value):
        return batch_request(batcher, results, name, version, value)

    waiting = [request("a", old, 1), request("b", old, 2)]
    other = request("c", new, 3)
    deadline = time.monotonic() + 10
    while sum(len(q.tasks) for q in batcher._queues.values()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert batcher.thread_count() == 4  # two queues, two threads each
    batcher.retire(old)
    for thread in waiting:
        thread.join(10)
    assert {results["a"]["doubled"].item(), results["b"]["doubled"].item()} == {2, 4} and calls == [2]
    deadline = time.monotonic() + 10
    while batcher.thread_count() > 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert batcher.thread_count() == 2 and "c" not in results  # the other version's queue is untouched
    request("late", old, 5).join(10)
    assert results["late"]["doubled"].item() == 10 and calls == [2, 1] and batcher.thread_count() == 2
    # A request that found the queue just before retire() marked it (its threads may be
    # gone) runs unbatched as well, instead of waiting in a queue nobody serves.
    third = FakeVersion()
    marked = batcher._queues[(id(third), "encode")] = batching_module._Queue(batcher, third, "encode", batcher.params)
    marked.retired = True
    assert batcher.run(third, "encode", {"x": np.array([6])})["doubled"].item() == 12 and calls == [2, 1, 1]
    batcher.stop()
    other.join(10)
    assert results["c"].code == grpc.StatusCode.UNAVAILABLE  # still waiting for its batch when the batcher stopped


def test_per_model_batching_parameters_and_hot_swap_leave_no_batch_threads(models, tmp_path):
    """--enable_per_model_batching_parameters: a version with batching_params.pbtxt batches
    with its own parameters, one without is not batched; a batching_params.pbtxt that does
    not parse fails the load; and when a new version replaces the old one, the old one's
    batch threads end."""
    shutil.copytree(models["base"] / "albert" / "1", tmp_path / "albert" / "1")
    shutil.copytree(models["base"] / "cls" / "1", tmp_path / "cls" / "1")
    (tmp_path / "albert" / "1" / "batching_params.pbtxt").write_text(
        "max_batch_size { value: 4 }\nbatch_timeout_micros { value: 200000 }\nnum_batch_threads { value: 1 }\n")
    config = write_config(tmp_path / "models.config", tmp_path, names=("albert", "cls"))
    server = ModelServer(ServerOptions(model_config=parse_model_config_file(config), port=0,
                                       file_system_poll_wait_seconds=0.2, enable_model_warmup=False,
                                       batching=BatchingParameters(max_batch_size=32, batch_timeout_micros=1000),
                                       enable_per_model_batching_parameters=True), log=lambda _: None).start()
    try:
        def predict(name, text):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = name
            request.inputs["text"].CopyFrom(tf.make_tensor_proto(np.array([text.encode()], object)))
            request.output_filter.append("pooled_output" if name == "albert" else "probabilities")
            with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: predict("albert", f"text {i}"), range(8)))
        assert server.batcher.tasks_run == 8 and server.batcher.batches_run <= 4  # merged, at most 4 per batch
        assert {q.params.max_batch_size for q in server.batcher._queues.values()} == {4}
        assert server.batcher.thread_count() == 1
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: predict("cls", f"text {i}"), range(4)))
        assert server.batcher.tasks_run == 8  # cls has no batching_params.pbtxt: not batched
        # A new albert version replaces version 1; version 1's batch thread ends.
        shutil.copytree(tmp_path / "albert" / "1", tmp_path / "albert" / "2")
        deadline = time.monotonic() + 60
        while (server.manager.resolve(predict_pb2.PredictRequest(model_spec={"name": "albert"}).model_spec).version
               != 2 and time.monotonic() < deadline):
            time.sleep(0.1)
        predict("albert", "after the swap")
        deadline = time.monotonic() + 10
        while server.batcher.thread_count() > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.batcher.thread_count() == 1 and len(server.batcher._queues) == 1
        # A version whose batching_params.pbtxt does not parse does not load.
        shutil.copytree(tmp_path / "albert" / "1", tmp_path / "albert" / "3")
        (tmp_path / "albert" / "3" / "batching_params.pbtxt").write_text("max_batch_size: oops\n")
        deadline = time.monotonic() + 60
        status = {}
        while time.monotonic() < deadline:
            status = {s.version: s for s in server.manager.status(
                predict_pb2.PredictRequest(model_spec={"name": "albert"}).model_spec)}
            if 3 in status and status[3].status.error_code:
                break
            time.sleep(0.1)
        assert re.search(r"albert/3/batching_params\.pbtxt:1:\d+ : .*max_batch_size", status[3].status.error_message), \
            status.get(3)
    finally:
        server.stop(grace=1)


def test_batching_errors(models, tmp_path):
    params = tmp_path / "batching.txt"
    params.write_text("max_batch_size { value: 4 }\nbatch_timeout_micros { value: 1000000 }\n"
                      "max_enqueued_batches { value: 1 }\nnum_batch_threads { value: 1 }\n")
    process = ServerProcess("embedded", [f"--model_base_path={models['base'] / 'albert'}", "--model_name=albert",
                                         "--enable_batching", f"--batching_parameters_file={params}",
                                         "--noenable_model_warmup"])
    predict, _, channel = stubs(process.address)
    config = models["config"]
    try:
        code, details = rpc_error(predict.Predict, predict_request(ids_inputs(config, batch=5), signature="encode"),
                                  timeout=30)
        assert code == Code.INVALID_ARGUMENT and "Task size 5 is larger than maximum input batch size 4" in details
        uneven = {"text": np.array([b"a", b"b", b"c"], object), "text_b": np.array([b"a", b"b"], object)}
        code, details = rpc_error(predict.Predict, predict_request(uneven), timeout=30)
        assert code == Code.INVALID_ARGUMENT and "must have equal 0th-dimension size" in details

        def call(request):
            try:
                predict.Predict(request, timeout=30)
                return Code.OK, ""
            except grpc.RpcError as e:
                return e.code(), e.details()

        with concurrent.futures.ThreadPoolExecutor(2) as pool:  # two lengths in one batch, padding off
            first = pool.submit(call, predict_request(ids_inputs(config, batch=1, seq=5), signature="encode"))
            time.sleep(0.1)
            second = pool.submit(call, predict_request(ids_inputs(config, batch=1, seq=9), signature="encode"))
            results = [first.result(), second.result()]
        assert all(code == Code.FAILED_PRECONDITION and "padding is turned off" in d for code, d in results), results
        with concurrent.futures.ThreadPoolExecutor(2) as pool:  # 3 rows wait; 3 more exceed the 4-row queue
            first = pool.submit(call, predict_request(ids_inputs(config, batch=3, seq=5), signature="encode"))
            time.sleep(0.2)
            second = pool.submit(call, predict_request(ids_inputs(config, batch=3, seq=5), signature="encode"))
            results = [first.result(), second.result()]
        assert results[0][0] == Code.OK
        assert results[1][0] == Code.UNAVAILABLE and "queue to which this task was submitted is full" in results[1][1]
    finally:
        channel.close()
        process.stop()


# ----------------------------------------------------------------- load (embedded)
