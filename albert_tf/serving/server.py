"""The gRPC server: TF Serving's PredictionService and ModelService over a ModelManager.

Clients built on the unmodified `tensorflow_serving.apis` stubs talk to it as they talk
to `tensorflow_model_server`: the same RPCs, status codes, message texts and typed-field
tensors. The checklist followed is in ../shared/reference/tf-serving.md §9, and
WORKSPACE_NOTES.md lists what differs.
"""

import concurrent.futures
import dataclasses
import os
import threading
import time

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.apis import status_pb2

from albert_tf.serving import servables
from albert_tf.serving.batching import Batcher
from albert_tf.serving.deadlines import cancel_at
from albert_tf.serving.manager import ModelManager
from albert_tf.serving.monitoring import RUNTIME_LABEL, Metrics, micros_since
from albert_tf.serving.profiler import ProfilerServicer
from albert_tf.serving.rest import RestApi, RestServer
from albert_tf.serving.tensors import ServingError, invalid_argument

MAX_MESSAGE_BYTES = 2**31 - 1  # TF Serving: builder.SetMaxMessageSize(INT32_MAX)


@dataclasses.dataclass
class ServerOptions:
    """What albert-serve's flags set; names follow tensorflow_model_server."""

    model_config: object  # a ModelServerConfig
    host: str = "127.0.0.1"
    port: int = 8500
    file_system_poll_wait_seconds: float = 1.0
    enable_model_warmup: bool = True
    num_request_iterations_for_warmup: int = 1
    batching: object = None  # BatchingParameters when --enable_batching
    grpc_max_threads: int = max(64, 4 * (os.cpu_count() or 1))
    max_num_load_retries: int = 5
    load_retry_interval_seconds: float = 60.0
    allow_version_labels_for_unavailable_models: bool = False
    enable_serialization_as_tensor_content: bool = False
    enforce_session_run_timeout: bool = True  # cancel a model call at its request's deadline; False = run to the end
    grpc_socket_path: str = None  # also serve on this UNIX socket
    rest_api_port: int = 0  # TF Serving's REST API on this port; 0 = off
    rest_api_num_threads: int = 4 * (os.cpu_count() or 1)  # REST requests run at once
    rest_api_timeout_in_ms: int = 30000  # a REST request with no answer by then gets 504
    prometheus_path: str = None  # serve the metrics page at this REST path; None = off
    enable_grpc_healthcheck_service: bool = False  # grpc.health.v1.Health: "" is SERVING until stop
    grpc_channel_arguments: dict = dataclasses.field(default_factory=dict)  # e.g. {"grpc.max_connection_age_ms": 30000}
    rest_api_enable_cors_support: bool = False  # CORS headers on REST answers, 204 to OPTIONS preflights
    saved_model_tags: tuple = ("serve",)  # the MetaGraph to load, by its tag set
    xla_cpu_compilation_enabled: bool = False  # as TF Serving: exports with XLA functions need it
    enable_signature_method_name_check: bool = False  # Predict only on predict/classify/regress signatures
    enable_per_model_batching_parameters: bool = False  # with batching: a version's batching_params.pbtxt, or none
    ssl_config: object = None  # ssl_config.SslConfig: TLS on the gRPC port and socket; None = plaintext
    enable_profiler: bool = True  # TensorFlow's ProfilerService on the gRPC port, as TF Serving
    num_load_threads: int = 0  # models loaded at once after start (0 = one after another); start loads all at once
    prefer_tflite_model: bool = False  # serve a version's model.tflite when it has one (albert-export --format=tflite)
    tflite_interpreters: int = 1  # TFLite interpreters per version (--num_tflite_pools)
    tflite_threads: int = 0  # threads per TFLite interpreter (--tensorflow_intra_op_parallelism; 0 = one per CPU)


def parse_grpc_channel_arguments(text):
    """`--grpc_channel_arguments` ("key=value,key=value") → {key: int or str}, as TF Serving
    reads it: a value that is an integer is passed as one, anything else as a string.
    ValueError names an item without "=" or with an empty key."""
    arguments = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, equals, value = (part.strip() for part in item.partition("="))
        if not equals or not key:
            raise ValueError(f"--grpc_channel_arguments: {item!r} is not key=value")
        try:
            arguments[key] = int(value)
        except ValueError:
            arguments[key] = value
    return arguments


def _serve(context, call, record=None):
    """Runs call() for an RPC: ServingErrors become the RPC status, nothing escapes.
    `record(code)`, if given, gets the RPC's final grpc.StatusCode before it returns."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        error = ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    else:
        try:
            response = call()
        except ServingError as e:
            error = e
        except Exception as e:  # noqa: BLE001 - an unexpected failure must not kill the server
            error = ServingError(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")
        else:
            if record is not None:
                record(grpc.StatusCode.OK)
            return response
    if record is not None:
        record(error.code)
    context.abort(error.code, error.message)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict, Classify, Regress and GetModelMetadata (MultiInference: UNIMPLEMENTED)."""

    def __init__(self, model_server):
        self.model_server = model_server

    def _recorder(self, request, api):
        started = time.monotonic()
        return lambda code: self.model_server.record_request(request.model_spec.name, api, "GRPC", code, started)

    def _runner(self, api, context):
        remaining = context.time_remaining()
        return self.model_server.runner(api, None if remaining is None else time.monotonic() + remaining)

    def Predict(self, request, context):  # noqa: N802 - gRPC method name
        server = self.model_server
        return _serve(context, lambda: servables.predict(
            server.manager.resolve, request, run=self._runner("Predict", context),
            tensor_content=server.options.enable_serialization_as_tensor_content,
            check_method_name=server.options.enable_signature_method_name_check), self._recorder(request, "Predict"))

    def Classify(self, request, context):  # noqa: N802
        server = self.model_server
        return _serve(context, lambda: servables.classify(server.manager.resolve, request,
                                                          run=self._runner("Classify", context)),
                      self._recorder(request, "Classify"))

    def Regress(self, request, context):  # noqa: N802
        server = self.model_server
        return _serve(context, lambda: servables.regress(server.manager.resolve, request,
                                                         run=self._runner("Regress", context)),
                      self._recorder(request, "Regress"))

    def GetModelMetadata(self, request, context):  # noqa: N802
        return _serve(context, lambda: servables.model_metadata(self.model_server.manager.resolve, request))


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus and HandleReloadConfigRequest."""

    def __init__(self, model_server):
        self.model_server = model_server

    def GetModelStatus(self, request, context):  # noqa: N802
        def status():
            if not request.HasField("model_spec"):
                raise invalid_argument("Missing ModelSpec")
            return get_model_status_pb2.GetModelStatusResponse(
                model_version_status=self.model_server.manager.status(request.model_spec))

        return _serve(context, status)

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        def reload():
            try:
                self.model_server.manager.reload_config(request.config)
            except ServingError as e:
                context.set_code(e.code)
                context.set_details(e.message)
                return model_management_pb2.ReloadConfigResponse(
                    status=status_pb2.StatusProto(error_code=e.code.value[0], error_message=e.message))
            return model_management_pb2.ReloadConfigResponse(status=status_pb2.StatusProto(error_code=0))

        return _serve(context, reload)


class ModelServer:
    """albert-serve in-process: `start()` loads the models, then binds the port.

    Attributes after start: `port` (the bound gRPC port), `rest_port` (the REST port, or
    None when REST is off), `manager`, `batcher` (or None), `metrics` (monitoring.Metrics:
    TF Serving's request, runtime, warmup and batching metrics).
    """

    def __init__(self, options, log=print):
        self.options = options
        self.log = log
        self.metrics = Metrics()
        self.manager = ModelManager(
            options.model_config,
            poll_wait_seconds=options.file_system_poll_wait_seconds,
            enable_warmup=options.enable_model_warmup,
            warmup_iterations=options.num_request_iterations_for_warmup,
            max_load_retries=options.max_num_load_retries,
            load_retry_interval=options.load_retry_interval_seconds,
            allow_labels_for_unavailable=options.allow_version_labels_for_unavailable_models,
            log=log,
            metrics=self.metrics,
            saved_model_tags=options.saved_model_tags,
            xla_cpu_compilation_enabled=options.xla_cpu_compilation_enabled,
            enable_signature_method_name_check=options.enable_signature_method_name_check,
            per_model_batching=bool(options.batching and options.enable_per_model_batching_parameters),
            load_threads=options.num_load_threads,
            prefer_tflite_model=options.prefer_tflite_model,
            tflite_interpreters=options.tflite_interpreters,
            tflite_threads=options.tflite_threads,
        )
        self.batcher = Batcher(options.batching, self._run_unbatched, metrics=self.metrics) if options.batching else None
        self.manager.run = self.run
        if self.batcher is not None:
            self.manager.on_unload = self.batcher.retire
        self._grpc = None
        self._rest = None
        self._health = None
        self.port = None
        self.rest_port = None
        self._stopped = threading.Event()

    @staticmethod
    def _run_unbatched(version, signature, inputs):
        return version.run(signature, inputs)

    def run(self, version, signature, inputs, deadline=None):
        """Runs a signature, through the batcher when batching is on. With per-model
        batching parameters, a version batches with its own batching_params.pbtxt and one
        without that file is not batched (TF Serving's rule). `deadline` (time.monotonic(),
        or None): the model call is cancelled then (deadlines.cancel_at), and see Batcher.run."""
        if self.batcher is None or (self.options.enable_per_model_batching_parameters
                                    and version.batching_parameters is None):
            with cancel_at(deadline):
                return version.run(signature, inputs)
        if not self.options.enable_per_model_batching_parameters:
            return self.batcher.run(version, signature, inputs, deadline=deadline)
        return self.batcher.run(version, signature, inputs, params=version.batching_parameters, deadline=deadline)

    def runner(self, api, deadline=None):
        """`run` for one request of one API ("Predict", "Classify", "Regress") whose caller
        waits until `deadline` (time.monotonic(), or None): it also records the call's
        time, batch queueing included, as :tensorflow:serving:runtime_latency. With
        enforce_session_run_timeout off the model call gets no deadline, as in TF Serving."""
        if not self.options.enforce_session_run_timeout:
            deadline = None

        def run(version, signature, inputs):
            started = time.monotonic()
            try:
                return self.run(version, signature, inputs, deadline)
            finally:
                self.metrics.observe("/tensorflow/serving/runtime_latency", (version.name, api, RUNTIME_LABEL),
                                     micros_since(started))
        return run

    def record_request(self, model_name, api, entrypoint, code, started):
        """Counts one finished request (`code` a grpc.StatusCode, `started` its time.monotonic())
        in :tensorflow:serving:request_count and request_latency."""
        self.metrics.increment("/tensorflow/serving/request_count", (model_name, code.name))
        self.metrics.observe("/tensorflow/serving/request_latency", (model_name, api, entrypoint, code.name),
                             micros_since(started))

    def start(self, max_wait_seconds=None):
        """Loads every model (blocking), then binds and starts gRPC. Raises on failure."""
        self.manager.start(max_wait_seconds=max_wait_seconds)
        threads = max(1, self.options.grpc_max_threads)
        self._grpc = grpc.server(
            concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="albert-serve-grpc"),
            options=list({"grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
                          "grpc.max_send_message_length": MAX_MESSAGE_BYTES, "grpc.so_reuseport": 0,
                          **self.options.grpc_channel_arguments}.items()),  # the user's arguments win
            maximum_concurrent_rpcs=threads,
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(self), self._grpc)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(self), self._grpc)
        if self.options.enable_grpc_healthcheck_service:
            self._health = health.HealthServicer()
            health_pb2_grpc.add_HealthServicer_to_server(self._health, self._grpc)
            # As gRPC C++'s default health service, which TF Serving enables: the server as a
            # whole ("") is SERVING; other service names are NOT_FOUND.
            self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        if self.options.enable_profiler:
            self._grpc.add_generic_rpc_handlers((ProfilerServicer(self.log).handler(),))
        self.port = self._bind(f"{self.options.host}:{self.options.port}")
        if self.options.grpc_socket_path:
            self._bind(f"unix:{self.options.grpc_socket_path}")
        self._grpc.start()
        ssl_config = self.options.ssl_config
        tls = "" if ssl_config is None else " (TLS, client certificates required)" if ssl_config.client_verify else " (TLS)"
        self.log(f"albert-serve: gRPC{tls} on {self.options.host}:{self.port} serving "
                 f"{', '.join(self.manager.model_names())}")
        if self.options.rest_api_port:
            self._rest = RestServer(RestApi(self), self.options.host, self.options.rest_api_port,
                                    num_threads=self.options.rest_api_num_threads,
                                    timeout_seconds=self.options.rest_api_timeout_in_ms / 1000,
                                    prometheus_path=self.options.prometheus_path,
                                    metrics_page=self.metrics.prometheus_page,
                                    cors=self.options.rest_api_enable_cors_support)
            self.rest_port = self._rest.port
            self.log(f"albert-serve: REST on http://{self.options.host}:{self.rest_port}/v1/models/<name>")
            if self.options.prometheus_path:
                self.log(f"albert-serve: Prometheus metrics on http://{self.options.host}:{self.rest_port}"
                         f"{self.options.prometheus_path}")
        return self

    def _bind(self, address):
        """Adds a gRPC listening address (TLS when options.ssl_config is set); returns the port."""
        try:
            if self.options.ssl_config is not None:
                port = self._grpc.add_secure_port(address, self.options.ssl_config.server_credentials())
            else:
                port = self._grpc.add_insecure_port(address)
        except RuntimeError:  # grpc raises "Failed to bind" rather than returning 0
            port = 0
        if not port:
            raise OSError(f"cannot bind gRPC to {address}")
        return port

    def wait(self):
        """Blocks until `stop` has finished."""
        self._stopped.wait()

    def stop(self, grace=5.0):
        """Refuses new gRPC and REST requests, lets those in flight finish (up to `grace` s),
        then stops polling and batching. Health checks answer NOT_SERVING from the start."""
        if self._health is not None:
            self._health.enter_graceful_shutdown()
        grpc_stopped = self._grpc.stop(grace) if self._grpc is not None else None
        if self._rest is not None:
            left = self._rest.stop(grace)
            if left:
                self.log(f"albert-serve: {left} REST request(s) still running after the {grace} s grace period")
        if grpc_stopped is not None:
            grpc_stopped.wait()
        self.manager.stop()
        if self.batcher is not None:
            self.batcher.stop()
            self.log(f"albert-serve: batching: {self.batcher.batches_run} batches for {self.batcher.tasks_run} requests")
        self._stopped.set()

