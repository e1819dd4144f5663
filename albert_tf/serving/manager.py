"""Model management as TF Serving does it: versions, policies, labels, polling, warmup.

A `ModelManager` serves the models of a ModelServerConfig. For each model it scans
`base_path` for integer version directories, picks the aspired versions by the version
policy (latest N, all, specific), loads and warms each new version completely before it
takes traffic, and only then unloads versions that are no longer aspired. A model never
drops to zero loaded versions because a newer one failed to load
(TF Serving's AvailabilityPreservingPolicy). Requests hold a reference to the
LoadedVersion they resolved, so unloading never interrupts them.
"""

import concurrent.futures
import os
import threading
import time

import grpc
from tensorflow_serving.apis import get_model_status_pb2, status_pb2
from tensorflow_serving.config import model_server_config_pb2

from albert_tf.cpu_features import bfloat16_warning
from albert_tf.export import layout
from albert_tf.export.warmup import MAX_WARMUP_RECORDS, WARMUP_FILE, read_warmup_file
from albert_tf.serving import servables
from albert_tf.serving.batching import read_model_batching_parameters
from albert_tf.serving.monitoring import micros_since
from albert_tf.serving.tensors import ServingError, invalid_argument, not_found
from albert_tf.serving.text_proto import read_text_proto

State = get_model_status_pb2.ModelVersionStatus.State


class ModelConfigError(ValueError):
    """A ModelServerConfig that cannot be served (message names the file or field)."""


def parse_model_config_file(path):
    """Reads a text-format ModelServerConfig; errors name the file (and line)."""
    return read_text_proto(path, model_server_config_pb2.ModelServerConfig(), "--model_config_file", ModelConfigError)


def single_model_config(name, base_path):
    """The config that --model_name/--model_base_path stand for."""
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name=name, base_path=base_path, model_platform="tensorflow")
    return config


def aspired_versions(model_config, on_disk):
    """The versions the policy wants, from the sorted versions present."""
    policy = model_config.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return set(on_disk)
    if choice == "specific":
        return set(on_disk) & set(policy.specific.versions)
    count = policy.latest.num_versions if choice == "latest" and policy.latest.num_versions > 0 else 1
    return set(on_disk[-count:])


class _ModelState:
    """What the manager knows about one model."""

    def __init__(self, config):
        self.config = config
        self.available = {}  # version -> LoadedVersion
        self.status = {}  # version -> (State, grpc code or None, message)
        self.failures = {}  # version -> failed load attempts
        self.labels = {}
        self.sync_lock = threading.Lock()  # one scan-and-load of this model at a time


class ModelManager:
    """Loads, warms, swaps and resolves model versions.

    Args:
      config: a ModelServerConfig (model_config_list only).
      poll_wait_seconds: rescan base paths this often; 0 scans once (TF Serving's rule).
      enable_warmup, warmup_iterations: replay assets.extra warmup records on load.
      max_load_retries, load_retry_interval: retries of a failing version load.
      run: the function warmup requests run through (the server's batcher), default the
        version's own run.
      on_unload: called with each LoadedVersion as it is unloaded (the server retires its
        batch queues), or None.
      log: progress lines (str).
      metrics: a monitoring.Metrics that gets each completed warmup's time
        (:tensorflow:serving:model_warmup_latency), or None.
      saved_model_tags: the MetaGraph to load from each SavedModel (`--saved_model_tags`).
      xla_cpu_compilation_enabled: load SavedModels with XLA-compiled functions; when False
        (TF Serving's default) such a version fails to load.
      enable_signature_method_name_check: warmup Predicts check method names (see
        servables.predict).
      per_model_batching: read each version's `batching_params.pbtxt` into its
        `batching_parameters` (None when it has none), before warmup; a file that does not
        parse fails the load.
      load_threads: models loaded at once after start, by polling and config reloads
        (`--num_load_threads`; 0 or 1 = one after another, TF Serving's default).
      initial_load_threads: models loaded at once by `start` (TF Serving's
        num_initial_load_threads, 4 x CPUs).
    """

    def __init__(self, config, poll_wait_seconds=1.0, enable_warmup=True, warmup_iterations=1,
                 max_load_retries=5, load_retry_interval=60.0, allow_labels_for_unavailable=False, log=print,
                 metrics=None, saved_model_tags=("serve",), xla_cpu_compilation_enabled=False,
                 enable_signature_method_name_check=False, per_model_batching=False, load_threads=0,
                 initial_load_threads=4 * (os.cpu_count() or 1), prefer_tflite_model=False, tflite_interpreters=1,
                 tflite_threads=0):
        self.poll_wait_seconds = poll_wait_seconds
        self.prefer_tflite_model = prefer_tflite_model
        self.tflite_interpreters = tflite_interpreters
        self.tflite_threads = tflite_threads
        self.load_threads = load_threads
        self.initial_load_threads = initial_load_threads
        self.per_model_batching = per_model_batching
        self.enable_signature_method_name_check = enable_signature_method_name_check
        self.saved_model_tags = tuple(saved_model_tags)
        self.xla_cpu_compilation_enabled = xla_cpu_compilation_enabled
        self.enable_warmup = enable_warmup
        self.warmup_iterations = max(1, warmup_iterations)
        self.max_load_retries = max_load_retries
        self.load_retry_interval = load_retry_interval
        self.allow_labels_for_unavailable = allow_labels_for_unavailable
        self.log = log
        self.metrics = metrics
        self.run = None
        self.on_unload = None
        self._lock = threading.RLock()
        self._reload_lock = threading.Lock()
        self._models = {}
        self._stop = threading.Event()
        self._poller = None
        self._check_config(config)
        self._config = config

    # ----------------------------------------------------------------- config
    @staticmethod
    def _check_config(config):
        if config.WhichOneof("config") != "model_config_list":
            raise invalid_argument("ServerCore only supports model_config_list (not custom_model_config)")
        names = [c.name for c in config.model_config_list.config]
        if len(names) != len(set(names)):
            raise invalid_argument(f"Illegal to list model names more than once in a config list: {names}")
        for model in config.model_config_list.config:
            if not model.name:
                raise invalid_argument("ModelConfig has no name")
            if model.model_platform and model.model_platform != "tensorflow":
                raise invalid_argument(f"Model {model.name}: unsupported model_platform {model.model_platform!r}; "
                                       "albert-serve serves TensorFlow SavedModels")

    def start(self, wait_for_models=True, max_wait_seconds=None):
        """Loads the initial config (blocking until every model has a version, as
        ServerCore::Create) and starts polling. Raises ServingError on failure."""
        self._apply_config(self._config, wait_for_models, max_wait_seconds, load_threads=self.initial_load_threads)
        if self.poll_wait_seconds > 0:
            self._poller = threading.Thread(target=self._poll_loop, name="albert-serve-poll", daemon=True)
            self._poller.start()

    def stop(self):
        """Stops polling the model base paths and config file (waits up to 10 s)."""
        self._stop.set()
        if self._poller:
            self._poller.join(timeout=10)

    def reload_config(self, config):
        """HandleReloadConfigRequest: replace the config, unload dropped models, block until
        the new ones are available. Raises ServingError."""
        self._check_config(config)
        self._apply_config(config, wait_for_models=True, max_wait_seconds=None, load_threads=self.load_threads)

    def _apply_config(self, config, wait_for_models, max_wait_seconds, load_threads):
        with self._reload_lock:
            wanted = {c.name: c for c in config.model_config_list.config}
            with self._lock:
                for name in list(self._models):
                    if name not in wanted:
                        self._unload_model(name)
                for name, model_config in wanted.items():
                    if name in self._models:
                        self._models[name].config = model_config
                    else:
                        self._models[name] = _ModelState(model_config)
                self._config = config
            self._sync_models(list(wanted), load_threads)
            failed = {}
            deadline = None if max_wait_seconds is None else time.monotonic() + max_wait_seconds
            for name in wanted:
                while True:
                    self._sync_model(name)
                    state = self._models[name]
                    if state.available or not wait_for_models:
                        break
                    errors = [(v, m) for v, (s, code, m, _) in state.status.items() if s == State.END and code]
                    if errors and all(state.failures.get(v, 0) > self.max_load_retries for v, _ in errors):
                        failed[name] = errors[-1][1]
                        break
                    if deadline is not None and time.monotonic() > deadline:
                        failed[name] = "no version became available in time"
                        break
                    if not errors:
                        self.log(f"model {name}: waiting for a version under {state.config.base_path}")
                    if self._stop.wait(max(self.poll_wait_seconds, 0.2)):
                        failed[name] = "the server was stopped before a version became available"
                        break
            if failed:
                raise ServingError(grpc.StatusCode.UNKNOWN, f"{len(failed)} model(s) did not become available: "
                                   + "{" + ", ".join(f"{{{n}, {m}}}" for n, m in sorted(failed.items())) + "}")
            for name, model_config in wanted.items():
                self._set_labels(name, model_config)

    def _set_labels(self, name, model_config):
        labels = dict(model_config.version_labels)
        state = self._models[name]
        for label, version in labels.items():
            if version not in state.available and not self.allow_labels_for_unavailable:
                raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                                   f"Request to assign label to version {version} of model {name}, which is not "
                                   "currently available for inference")
        state.labels = labels

    # ----------------------------------------------------------------- versions
    def _poll_loop(self):
        while not self._stop.wait(self.poll_wait_seconds):
            self._sync_models(list(self._models), self.load_threads, on_error=self._log_poll_failure)

    def _log_poll_failure(self, name, error):
        self.log(f"model {name}: poll failed: {error}")

    def _sync_models(self, names, threads, on_error=None):
        """Runs `_sync_model` for each name, up to `threads` models at once (0 or 1: one
        after another). An exception goes to `on_error(name, exception)` and the other
        models are still synced; without `on_error` the first one is raised afterwards."""
        errors = []

        def sync(name):
            try:
                self._sync_model(name)
            except Exception as e:  # noqa: BLE001 - reported below, after every model had its turn
                errors.append((name, e))

        if threads > 1 and len(names) > 1:
            with concurrent.futures.ThreadPoolExecutor(min(threads, len(names)),
                                                       thread_name_prefix="albert-serve-load") as pool:
                list(pool.map(sync, names))
        else:
            for name in names:
                sync(name)
        for name, error in errors:
            if on_error is None:
                raise error
            on_error(name, error)

    def _sync_model(self, name):
        with self._lock:
            state = self._models.get(name)
        if state is None:
            return
        with state.sync_lock:
            self._sync_model_locked(name, state)

    def _sync_model_locked(self, name, state):
        with self._lock:
            base_path = state.config.base_path
        on_disk = layout.list_versions(base_path)
        aspired = aspired_versions(state.config, on_disk)
        for version in sorted(aspired - set(state.available), reverse=True):  # newest first, as TF Serving
            if state.failures.get(version, 0) > self.max_load_retries:
                continue
            last = state.status.get(version)
            if last and last[0] == State.END and last[1] and time.monotonic() < last[3]:
                continue  # waiting for the retry interval
            self._load(state, name, version, f"{base_path}/{version}")
        with self._lock:
            for version in sorted(set(state.available) - aspired):
                if not aspired or any(v in state.available for v in aspired):
                    self._set_status(state, version, State.UNLOADING)
                    self._unloaded(state.available.pop(version))
                    self._set_status(state, version, State.END)
                    self.log(f"model {name}: unloaded version {version}")

    def _set_status(self, state, version, value, code=None, message="", retry_at=0.0):
        state.status[version] = (value, code, message, retry_at)

    def _load(self, state, name, version, path):
        self._set_status(state, version, State.START)
        self._set_status(state, version, State.LOADING)
        started = time.perf_counter()
        loaded = None
        try:
            if self.prefer_tflite_model and os.path.exists(os.path.join(path, servables.TFLITE_FILE)):
                loaded = servables.LoadedTfLiteVersion(name, version, path, interpreters=self.tflite_interpreters,
                                                       threads=self.tflite_threads)
            else:
                loaded = servables.LoadedVersion(name, version, path, tags=self.saved_model_tags,
                                                 allow_xla=self.xla_cpu_compilation_enabled)
            if self.per_model_batching:
                loaded.batching_parameters = read_model_batching_parameters(path)
            records = self._warm(loaded) if self.enable_warmup else 0
        except Exception as e:  # noqa: BLE001 - any load failure is reported in the status
            if loaded is not None:
                self._unloaded(loaded)  # its warmup may have started batch queues
            code = e.code if isinstance(e, ServingError) else grpc.StatusCode.UNKNOWN
            message = e.message if isinstance(e, ServingError) else f"{type(e).__name__}: {e}"
            state.failures[version] = state.failures.get(version, 0) + 1
            self._set_status(state, version, State.END, code,
                             f"Loading servable: {{name: {name} version: {version}}} failed: {message}",
                             retry_at=time.monotonic() + self.load_retry_interval)
            self.log(f"model {name}: loading version {version} failed (attempt {state.failures[version]}): "
                     f"{message.splitlines()[0][:300]}")
            return
        with self._lock:
            state.available[version] = loaded
            self._set_status(state, version, State.AVAILABLE)
        kind = (f"TFLite {loaded.manifest.get('precision', 'float32')}, "
                if isinstance(loaded, servables.LoadedTfLiteVersion) else "")
        self.log(f"model {name}: version {version} available ({kind}{records} warmup records, "
                 f"{time.perf_counter() - started:.1f} s)")
        if loaded.manifest.get("precision") == "bfloat16" and (warning := bfloat16_warning(
                f"model {name} version {version}")):
            self.log(warning)

    def _warm(self, loaded):
        """Replays assets.extra/tf_serving_warmup_requests; any error fails the load."""
        path = f"{loaded.path}/assets.extra/{WARMUP_FILE}"
        try:
            logs = read_warmup_file(path)
        except Exception:  # noqa: BLE001 - no file (or unreadable): TF Serving logs and goes on
            return 0
        if len(logs) > MAX_WARMUP_RECORDS:
            raise invalid_argument(f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}")

        def resolve(_spec):
            return loaded

        started = time.monotonic()
        for log in logs:
            kind = log.WhichOneof("log_type")
            for _ in range(self.warmup_iterations):
                if kind == "predict_log":
                    servables.predict(resolve, log.predict_log.request, run=self.run,
                                      check_method_name=self.enable_signature_method_name_check)
                elif kind == "classify_log":
                    servables.classify(resolve, log.classify_log.request, run=self.run)
                elif kind == "regress_log":
                    servables.regress(resolve, log.regress_log.request, run=self.run)
                else:
                    raise ServingError(grpc.StatusCode.UNIMPLEMENTED, "Unsupported log_type for warmup: " + str(kind))
        if self.metrics is not None:  # TF Serving records a warmup that read to the end, as "OK"
            self.metrics.observe("/tensorflow/serving/model_warmup_latency", (loaded.path, "OK"), micros_since(started))
        return len(logs)

    def _unload_model(self, name):
        state = self._models.pop(name)
        for version in list(state.available):
            self._set_status(state, version, State.END)
            self._unloaded(state.available[version])
        state.available.clear()
        self.log(f"model {name}: unloaded (no longer in the config)")

    def _unloaded(self, loaded):
        """Tells `on_unload` (the server's batcher) that `loaded` takes no new requests."""
        if self.on_unload is not None:
            self.on_unload(loaded)

    # ----------------------------------------------------------------- requests
    def resolve(self, model_spec):
        """ModelSpec → LoadedVersion, with TF Serving's errors and messages."""
        name = model_spec.name
        if not name:
            raise invalid_argument("ModelSpec has no name specified.")
        choice = model_spec.WhichOneof("version_choice")
        with self._lock:
            state = self._models.get(name)
            if choice == "version_label":
                label = model_spec.version_label
                if state is None or label not in state.labels:
                    raise invalid_argument(f"Unrecognized servable version label: {label}")
                version = state.labels[label]
                loaded = state.available.get(version)
                if loaded is None:
                    raise not_found(f"Servable not found for request: Specific({name}, {version})")
                return loaded
            if choice == "version":
                version = model_spec.version.value
                loaded = state.available.get(version) if state else None
                if loaded is None:
                    raise not_found(f"Servable not found for request: Specific({name}, {version})")
                return loaded
            if state is None or not state.available:
                raise not_found(f"Servable not found for request: Latest({name})")
            return state.available[max(state.available)]

    def status(self, model_spec):
        """GetModelStatus: [ModelVersionStatus] of one version or of all versions."""
        name = model_spec.name
        if not name:
            raise invalid_argument("ModelSpec has no name specified.")
        with self._lock:
            state = self._models.get(name)
            if state is None or not state.status:
                raise not_found(f"Could not find any versions of model {name}")
            versions = sorted(state.status)
            if model_spec.WhichOneof("version_choice") == "version":
                wanted = model_spec.version.value
                if wanted not in state.status:
                    raise not_found(f"Could not find version {wanted} of model {name}")
                versions = [wanted]
            elif model_spec.WhichOneof("version_choice") == "version_label":
                label = model_spec.version_label
                if label not in state.labels:
                    raise invalid_argument(f"Unrecognized servable version label: {label}")
                versions = [state.labels[label]]
            statuses = []
            for version in versions:
                value, code, message, _ = state.status[version]
                error_code = code.value[0] if code else 0
                statuses.append(get_model_status_pb2.ModelVersionStatus(
                    version=version, state=value,
                    status=status_pb2.StatusProto(error_code=error_code, error_message=message)))
            return statuses

    def model_names(self):
        """The names (sorted list of str) of the models in the current config."""
        with self._lock:
            return sorted(self._models)
