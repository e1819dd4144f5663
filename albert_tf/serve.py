"""albert-serve: a TF-Serving-compatible gRPC model server for albert-tf exports.

    albert-serve --port=8500 --model_name=albert --model_base_path=out/export/albert
    albert-serve --model_config_file=serving/models.config --enable_batching \\
        --batching_parameters_file=serving/batching_parameters.txt

The flags are tensorflow_model_server's, so one command line works for both servers.
TF Serving flags that albert-serve does not implement are accepted with a warning.
Models load (and warm up) before the port is bound. SIGTERM or Ctrl-C stop the server
cleanly, after in-flight requests finish.
"""

import faulthandler
import os
import signal
import sys
import threading
import time

from albert_tf.cli_support import log, quiet_absl_info, quiet_tensorflow, run_main

quiet_tensorflow()

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("port", 8500, "gRPC port (0 picks a free one, printed on start).")
flags.DEFINE_string("host", "127.0.0.1", "Interface to bind; 0.0.0.0 serves every interface (an explicit choice).")
flags.DEFINE_integer("rest_api_port", 0, "Port of TF Serving's REST API (/v1/models/...); 0 = off.")
flags.DEFINE_integer("rest_api_num_threads", 4 * (os.cpu_count() or 1), "REST requests run at once (4 x CPUs).")
flags.DEFINE_integer("rest_api_timeout_in_ms", 30000, "A REST request with no answer by then gets 504.")
flags.DEFINE_string("monitoring_config_file", None,
                    "MonitoringConfig text proto; prometheus_config { enable: true } serves TF Serving's metrics on "
                    "the REST port at /monitoring/prometheus/metrics (or its path).")
flags.DEFINE_string("model_name", "default", "Name of the single model (with --model_base_path).")
flags.DEFINE_string("model_base_path", None, "Directory holding the model's integer version directories.")
flags.DEFINE_string("model_config_file", None, "ModelServerConfig text proto (overrides --model_name/base_path).")
flags.DEFINE_integer("model_config_file_poll_wait_seconds", 0, "Re-read --model_config_file this often (0 = once).")
flags.DEFINE_float("file_system_poll_wait_seconds", 1, "Scan base paths for new versions this often (0 = once).")
flags.DEFINE_bool("enable_batching", False, "Merge concurrent requests into batches (server-side batching).")
flags.DEFINE_string("batching_parameters_file", None, "BatchingParameters text proto (needs --enable_batching).")
flags.DEFINE_bool("enable_per_model_batching_parameters", False,
                  "With --enable_batching: batch each model version with the batching_params.pbtxt in its "
                  "directory; versions without one are not batched (as TF Serving).")
flags.DEFINE_bool("enable_model_warmup", True, "Replay assets.extra/tf_serving_warmup_requests before serving.")
flags.DEFINE_integer("num_request_iterations_for_warmup", 1, "Times each warmup record is replayed.")
flags.DEFINE_integer("grpc_max_threads", max(64, 4 * (os.cpu_count() or 1)),
                     "Concurrent RPCs; more get RESOURCE_EXHAUSTED (TF Serving's default is 4 x CPUs).")
flags.DEFINE_integer("num_load_threads", 0,
                     "Models loaded at once by polling and config reloads (0 = one after another); "
                     "the models of the first config always load at once.")
flags.DEFINE_integer("max_num_load_retries", 5, "Retries of a version that fails to load.")
flags.DEFINE_integer("load_retry_interval_micros", 60_000_000, "Wait between load retries.")
flags.DEFINE_bool("allow_version_labels_for_unavailable_models", False, "Let labels point at unloaded versions.")
flags.DEFINE_bool("enable_serialization_as_tensor_content", False, "Encode outputs as tensor_content.")
flags.DEFINE_bool("enforce_session_run_timeout", True,
                  "Cancel a model call when its request's gRPC deadline or REST timeout passes, as TF Serving "
                  "runs it with that timeout; false lets every call run to the end.")
flags.DEFINE_integer("tensorflow_intra_op_parallelism", 0, "TF intra-op threads (0 = auto).")
flags.DEFINE_integer("tensorflow_inter_op_parallelism", 0, "TF inter-op threads (0 = auto).")
flags.DEFINE_integer("tensorflow_session_parallelism", 0,
                     "TF intra-op and inter-op threads both (0 = auto); used when neither of the two flags above "
                     "is set, as in TF Serving.")
flags.DEFINE_bool("xla_cpu_compilation_enabled", False,
                  "Allow SavedModels with XLA-compiled functions (albert-export --xla or --xla_short_lengths). "
                  "Off by default, as in TF Serving, where such a model then fails at its first compilation.")
flags.DEFINE_bool("enable_signature_method_name_check", False,
                  "Predict only on signatures whose method_name is predict, classify or regress (others: INTERNAL).")
flags.DEFINE_list("saved_model_tags", ["serve"], "Tags of the MetaGraph to load from each SavedModel, comma-separated.")
flags.DEFINE_string("ssl_config_file", None,
                    "SSLConfig text proto (server_key, server_cert: PEM text; custom_ca, client_verify): serve gRPC "
                    "over TLS, on --port and --grpc_socket_path. The REST port stays plain HTTP.")
flags.DEFINE_bool("rest_api_enable_cors_support", False,
                  "Add CORS headers (Access-Control-Allow-Origin: *) to REST answers and answer OPTIONS "
                  "preflights, so browser pages on other origins can call the REST API.")
flags.DEFINE_bool("enable_grpc_healthcheck_service", False,
                  "Serve grpc.health.v1.Health (SERVING until the server stops), for gRPC health probes.")
flags.DEFINE_string("grpc_channel_arguments", "",
                    "gRPC server arguments, key=value,... (e.g. grpc.max_connection_age_ms=30000); integer values "
                    "are passed as integers, others as strings.")
flags.DEFINE_bool("enable_profiler", True,
                  "Serve TensorFlow's ProfilerService on the gRPC port (TensorBoard's Capture profile).")
flags.DEFINE_string("platform_config_file", None,
                    "PlatformConfigMap text proto; its legacy_config replaces the batching, thread, tag and warmup "
                    "flags, as in TF Serving.")
flags.DEFINE_string("grpc_socket_path", None, "Also serve gRPC on this UNIX socket (clients use unix:<path>).")
flags.DEFINE_list("custom_op_modules", ["tensorflow_text"], "Python modules imported before loading (op libraries).")
flags.DEFINE_bool("prefer_tflite_model", False,
                  "Serve a version's model.tflite (albert-export --format=tflite) instead of its SavedModel when it "
                  "has one, as TF Serving: one serving_default signature on token ids, TFLite's XNNPACK kernels.")
flags.DEFINE_bool("use_tflite_model", False, "Deprecated name of --prefer_tflite_model (as in TF Serving).")
flags.DEFINE_integer("num_tflite_pools", 1,
                     "With --prefer_tflite_model: TFLite interpreters per version, i.e. requests it runs at once, "
                     "each on --tensorflow_intra_op_parallelism threads (0 = one per CPU). TF Serving's default is "
                     "one per CPU; here 1, since one interpreter already uses every core (serving/README.md).")

# tensorflow_model_server flags that albert-serve accepts and ignores, with a warning.
IGNORED_TF_SERVING_FLAGS = (
    "per_process_gpu_memory_fraction", "num_unload_threads",
    "use_alts_credentials", "flush_filesystem_caches", "num_tflite_interpreters_per_pool",
    "remove_unused_fields_from_bundle_metagraph", "response_tensor_as_tensor_content",
    "thread_pool_factory_config_file", "mixed_precision", "skip_initialize_tpu",
)


def strip_ignored_flags(argv):
    """Removes tensorflow_model_server flags albert-serve ignores; returns (argv, ignored)."""
    kept, ignored = [], []
    for arg in argv:
        name = arg.lstrip("-").split("=", 1)[0]
        if arg.startswith("--") and (name in IGNORED_TF_SERVING_FLAGS or name.removeprefix("no") in IGNORED_TF_SERVING_FLAGS):
            ignored.append(arg)
        else:
            kept.append(arg)
    return kept, ignored


def thread_counts(intra, inter, session):
    """(intra-op, inter-op) TensorFlow threads (ints, 0 = auto) from the values of
    --tensorflow_intra_op_parallelism, --tensorflow_inter_op_parallelism and
    --tensorflow_session_parallelism, decided as TF Serving's server.cc does: the first two
    when either is set, else the third for both. ValueError if all three are set or one is
    negative."""
    if min(intra, inter, session) < 0:
        raise ValueError("--tensorflow_*_parallelism flags must be at least 0 (0 = auto)")
    if intra and inter and session:
        raise ValueError("give --tensorflow_session_parallelism or --tensorflow_intra_op_parallelism and "
                         "--tensorflow_inter_op_parallelism, not all three")
    if intra or inter:
        return intra, inter
    return session, session


# Flags TF Serving folds into a SessionBundleConfig, and ignores when --platform_config_file gives one.
SESSION_FLAGS = ("enable_batching", "batching_parameters_file", "enable_per_model_batching_parameters",
                 "tensorflow_intra_op_parallelism", "tensorflow_inter_op_parallelism",
                 "tensorflow_session_parallelism", "saved_model_tags", "enable_model_warmup",
                 "num_request_iterations_for_warmup")


def _session_settings():
    """platform_config.SessionSettings from --platform_config_file, else from the flags
    TF Serving builds one from. Raises PlatformConfigError / BatchingConfigError for a bad
    file, app.UsageError for flags that do not go together."""
    from albert_tf.serving.batching_config import BatchingParameters
    from albert_tf.serving.platform_config import SessionSettings, read_platform_config

    if FLAGS.platform_config_file:
        given = [f"--{name}" for name in SESSION_FLAGS if FLAGS[name].present]
        if given:
            log(f"albert-serve: warning: --platform_config_file sets the session, so {', '.join(given)} "
                f"{'is' if len(given) == 1 else 'are'} ignored, as in TF Serving")
        return read_platform_config(FLAGS.platform_config_file)
    if FLAGS.batching_parameters_file and not FLAGS.enable_batching:
        raise app.UsageError("--batching_parameters_file needs --enable_batching")
    if FLAGS.enable_per_model_batching_parameters and not FLAGS.enable_batching:
        raise app.UsageError("--enable_per_model_batching_parameters needs --enable_batching")
    try:
        intra_op, inter_op = thread_counts(FLAGS.tensorflow_intra_op_parallelism,
                                           FLAGS.tensorflow_inter_op_parallelism, FLAGS.tensorflow_session_parallelism)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    batching = None
    if FLAGS.enable_batching:
        batching = (BatchingParameters.from_file(FLAGS.batching_parameters_file) if FLAGS.batching_parameters_file
                    else BatchingParameters())
    return SessionSettings(batching=batching,
                           enable_per_model_batching_parameters=FLAGS.enable_per_model_batching_parameters,
                           intra_op_threads=intra_op, inter_op_threads=inter_op,
                           saved_model_tags=tuple(FLAGS.saved_model_tags), enable_model_warmup=FLAGS.enable_model_warmup,
                           num_request_iterations_for_warmup=FLAGS.num_request_iterations_for_warmup)


def _model_config():
    from albert_tf.serving.manager import parse_model_config_file, single_model_config

    if FLAGS.model_config_file:
        return parse_model_config_file(FLAGS.model_config_file)
    if not FLAGS.model_base_path:
        raise app.UsageError("give --model_base_path (with --model_name) or --model_config_file")
    return single_model_config(FLAGS.model_name, os.path.abspath(FLAGS.model_base_path))


def _watch_config_file(server, stop):
    """Re-reads --model_config_file every --model_config_file_poll_wait_seconds."""
    from albert_tf.serving.manager import ModelConfigError, parse_model_config_file
    from albert_tf.serving.tensors import ServingError

    last = server.options.model_config  # only a changed file triggers a reload
    while not stop.wait(FLAGS.model_config_file_poll_wait_seconds):
        try:
            config = parse_model_config_file(FLAGS.model_config_file)
            if config == last:
                continue
            last = config
            server.manager.reload_config(config)
            log(f"albert-serve: reloaded {FLAGS.model_config_file}")
        except (ModelConfigError, ServingError) as e:
            log(f"albert-serve: config reload failed: {e}")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    quiet_absl_info()
    for ignored in getattr(main, "ignored", []):
        log(f"albert-serve: warning: {ignored} is a tensorflow_model_server flag albert-serve ignores")
    if FLAGS.rest_api_port and FLAGS.rest_api_port == FLAGS.port:
        raise app.UsageError(f"--rest_api_port={FLAGS.rest_api_port} must differ from --port")
    if FLAGS.rest_api_num_threads < 1 or FLAGS.rest_api_timeout_in_ms < 1:
        raise app.UsageError("--rest_api_num_threads and --rest_api_timeout_in_ms must be at least 1")
    if FLAGS.num_load_threads < 0:
        raise app.UsageError("--num_load_threads must be at least 0")
    if FLAGS.num_tflite_pools < 1:
        raise app.UsageError("--num_tflite_pools must be at least 1")
    from albert_tf.serving.batching_config import BatchingConfigError
    from albert_tf.serving.monitoring import MonitoringConfigError, read_monitoring_config
    from albert_tf.serving.platform_config import PlatformConfigError
    from albert_tf.serving.ssl_config import SslConfigError, read_ssl_config

    try:  # the config files are read before TensorFlow loads, so a mistake fails fast
        prometheus_path = read_monitoring_config(FLAGS.monitoring_config_file) if FLAGS.monitoring_config_file else None
        ssl_config = read_ssl_config(FLAGS.ssl_config_file) if FLAGS.ssl_config_file else None
        session = _session_settings()
    except (MonitoringConfigError, SslConfigError, PlatformConfigError, BatchingConfigError) as e:
        log(f"albert-serve: {e}")
        return 1
    if prometheus_path and not FLAGS.rest_api_port:
        raise app.UsageError("--monitoring_config_file enables Prometheus metrics, which are served on the REST port: "
                             "give --rest_api_port too")
    if FLAGS.rest_api_enable_cors_support and not FLAGS.rest_api_port:
        raise app.UsageError("--rest_api_enable_cors_support applies to the REST API: give --rest_api_port too")
    intra_op, inter_op = session.intra_op_threads, session.inter_op_threads
    import importlib

    import tensorflow as tf

    for module in FLAGS.custom_op_modules:
        importlib.import_module(module)  # registers op kernels before any model loads
    if intra_op:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    if inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    if intra_op or inter_op:  # as TensorFlow now reports them (0 = auto)
        log(f"albert-serve: TensorFlow threads: intra-op {tf.config.threading.get_intra_op_parallelism_threads()}, "
            f"inter-op {tf.config.threading.get_inter_op_parallelism_threads()}")

    from albert_tf.serving.manager import ModelConfigError
    from albert_tf.serving.server import ModelServer, ServerOptions, parse_grpc_channel_arguments
    from albert_tf.serving.tensors import ServingError

    try:
        channel_arguments = parse_grpc_channel_arguments(FLAGS.grpc_channel_arguments)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    try:
        options = ServerOptions(
            model_config=_model_config(),
            host=FLAGS.host,
            port=FLAGS.port,
            file_system_poll_wait_seconds=FLAGS.file_system_poll_wait_seconds,
            enable_model_warmup=session.enable_model_warmup,
            num_request_iterations_for_warmup=session.num_request_iterations_for_warmup,
            batching=session.batching,
            grpc_max_threads=FLAGS.grpc_max_threads,
            max_num_load_retries=FLAGS.max_num_load_retries,
            load_retry_interval_seconds=FLAGS.load_retry_interval_micros / 1e6,
            allow_version_labels_for_unavailable_models=FLAGS.allow_version_labels_for_unavailable_models,
            enable_serialization_as_tensor_content=FLAGS.enable_serialization_as_tensor_content,
            enforce_session_run_timeout=FLAGS.enforce_session_run_timeout,
            grpc_socket_path=FLAGS.grpc_socket_path,
            rest_api_port=FLAGS.rest_api_port,
            rest_api_num_threads=FLAGS.rest_api_num_threads,
            rest_api_timeout_in_ms=FLAGS.rest_api_timeout_in_ms,
            prometheus_path=prometheus_path,
            enable_grpc_healthcheck_service=FLAGS.enable_grpc_healthcheck_service,
            enable_profiler=FLAGS.enable_profiler,
            num_load_threads=FLAGS.num_load_threads,
            grpc_channel_arguments=channel_arguments,
            rest_api_enable_cors_support=FLAGS.rest_api_enable_cors_support,
            ssl_config=ssl_config,
            saved_model_tags=session.saved_model_tags,
            xla_cpu_compilation_enabled=FLAGS.xla_cpu_compilation_enabled,
            enable_signature_method_name_check=FLAGS.enable_signature_method_name_check,
            enable_per_model_batching_parameters=session.enable_per_model_batching_parameters,
            prefer_tflite_model=FLAGS.prefer_tflite_model or FLAGS.use_tflite_model,
            tflite_interpreters=FLAGS.num_tflite_pools,
            tflite_threads=intra_op,
        )
        server = ModelServer(options, log=log).start()
    except ModelConfigError as e:
        log(f"albert-serve: {e}")
        return 1
    except (ServingError, OSError) as e:
        log(f"albert-serve: Failed to start server. Error: {e}")
        return 1
    stop = threading.Event()
    # The handler only appends to a list. Setting the Event from it could deadlock: a
    # handler runs between any two bytecodes of the main thread, including inside
    # Event.wait while that thread holds the Event's lock (this hung a CI run once).
    signals_received = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, _frame: signals_received.append(number))
    # `kill -USR1 <pid>` writes every thread's stack to stderr, from C, so it works even
    # when no Python thread can run (ModelServerProcess.stop sends it before a SIGKILL).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    if FLAGS.model_config_file and FLAGS.model_config_file_poll_wait_seconds > 0:
        threading.Thread(target=_watch_config_file, args=(server, stop), daemon=True).start()
    print(f"albert-serve listening on {FLAGS.host}:{server.port}", flush=True)
    while not signals_received:
        time.sleep(0.2)  # a signal ends the sleep early; the handler runs in between
    stop.set()
    log("albert-serve: stopping (finishing in-flight requests)")
    server.stop(grace=5.0)
    log("albert-serve: stopped")
    return 0


def run():
    """Console-script entry point."""
    argv, ignored = strip_ignored_flags(sys.argv)
    main.ignored = ignored
    run_main(main, __name__, argv=argv)


if __name__ == "__main__":
    run()
