"""Server metrics with TF Serving's names, and their Prometheus page (`--monitoring_config_file`).

`tensorflow_model_server` keeps its metrics in TensorFlow's monitoring registry and, when
the monitoring config enables Prometheus, prints them on the REST port at
`/monitoring/prometheus/metrics` (util/prometheus_exporter.cc). albert-serve keeps the
serving metrics of that registry here, with the same names, labels, units (microseconds)
and bucket limits, and prints them the same way:

    # TYPE :tensorflow:serving:request_count counter
    :tensorflow:serving:request_count{model_name="albert",status="OK"} 12
    # TYPE :tensorflow:serving:request_latency histogram
    :tensorflow:serving:request_latency_bucket{model_name="albert",API="Predict",entrypoint="GRPC",status="OK",le="10"} 0
    ...

A metric's name is its TensorFlow path with every character outside `[A-Za-z0-9_]`
replaced by `:`. Histogram buckets count the values below their limit (TensorFlow's
`Histogram::Add`, upper_bound) and are printed cumulatively; the last is `+Inf`.
TensorFlow's own `:tensorflow:core:*` metrics are not available from Python and are not
printed.
"""

import bisect
import dataclasses
import re
import threading
import time

from albert_tf.serving.text_proto import proto3_message_class, read_text_proto

DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"  # PrometheusExporter::kPrometheusPath


def exponential_buckets(scale, growth_factor, count):
    """TensorFlow's `Buckets::Exponential`: `count` limits scale, scale·g, scale·g², ... (floats)."""
    limits, bound = [], float(scale)
    for _ in range(count):
        limits.append(bound)
        bound *= growth_factor
    return tuple(limits)


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """One metric: TensorFlow path, "counter" or "histogram", help text, label names, and
    for histograms the bucket limits (a final +Inf bucket is implied)."""

    path: str
    kind: str
    description: str
    labels: tuple
    buckets: tuple = ()

    @property
    def prometheus_name(self):
        return re.sub(r"[^A-Za-z0-9_]", ":", self.path)


_LATENCY_BUCKETS = exponential_buckets(10, 1.8, 33)  # about 20 minutes, as in TF Serving

# The metrics albert-serve records; paths, labels and buckets as TF Serving defines them
# (servables/tensorflow/util.cc, saved_model_warmup_util.cc, batching/batching_session.cc).
METRICS = {spec.path: spec for spec in (
    MetricSpec("/tensorflow/serving/request_count", "counter", "The total number of requests.",
               ("model_name", "status")),
    MetricSpec("/tensorflow/serving/request_latency", "histogram",
               "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
               ("model_name", "API", "entrypoint", "status"), _LATENCY_BUCKETS),
    MetricSpec("/tensorflow/serving/runtime_latency", "histogram",
               "Distribution of wall time (in microseconds) for Tensorflow runtime.",
               ("model_name", "API", "runtime"), _LATENCY_BUCKETS),
    MetricSpec("/tensorflow/serving/model_warmup_latency", "histogram",
               "Distribution of wall time (in microseconds) for warming up the model.",
               ("model_path", "status"), _LATENCY_BUCKETS),
    MetricSpec("/tensorflow/serving/batching_session/queuing_latency", "histogram",
               "Distribution of wall time spent (in microseconds) in queuing",
               ("thread_pool_name",), exponential_buckets(100, 1.2, 52)),
    MetricSpec("/tensorflow/serving/batching_session/wrapped_run_count", "counter",
               "Total count of run calls on the wrapped session", ()),
)}

RUNTIME_LABEL = "TF2"  # TF Serving says "TF1" (Session::Run) or "TFRT"; albert-serve calls TF2 signatures


def micros_since(started):
    """Whole microseconds (int) since `started`, a time.monotonic() value."""
    return int((time.monotonic() - started) * 1e6)


def _number(value):
    """absl::StrCat's rendering of a double: six significant digits."""
    return "%.6g" % value


def _label_value(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"')


class Metrics:
    """A thread-safe registry of the METRICS table.

    `increment(path, labels, by)` adds to a counter and `observe(path, labels, value)` adds
    one value to a histogram; `labels` is a tuple of label values in the spec's order.
    An unknown path, the wrong kind or the wrong number of labels is a ValueError.
    `prometheus_page()` returns the text exposition (str).
    """

    def __init__(self, specs=None):
        self.specs = dict(METRICS if specs is None else specs)
        self._cells = {path: {} for path in self.specs}
        self._lock = threading.Lock()

    def _spec(self, path, kind, labels):
        spec = self.specs.get(path)
        if spec is None:
            raise ValueError(f"unknown metric {path!r}; known: {sorted(self.specs)}")
        if spec.kind != kind:
            raise ValueError(f"metric {path} is a {spec.kind}, not a {kind}")
        if len(labels) != len(spec.labels):
            raise ValueError(f"metric {path} takes labels {spec.labels}; got {labels!r}")
        return spec

    def increment(self, path, labels=(), by=1):
        """Adds `by` (int) to the counter `path` at `labels`."""
        self._spec(path, "counter", labels)
        key = tuple(str(v) for v in labels)
        with self._lock:
            cells = self._cells[path]
            cells[key] = cells.get(key, 0) + int(by)

    def observe(self, path, labels, value):
        """Adds `value` (a number, microseconds for the latencies) to the histogram `path`."""
        spec = self._spec(path, "histogram", labels)
        key = tuple(str(v) for v in labels)
        bucket = bisect.bisect_right(spec.buckets, value)  # the first limit above the value
        with self._lock:
            cell = self._cells[path].get(key)
            if cell is None:
                cell = self._cells[path][key] = [[0] * (len(spec.buckets) + 1), 0.0]
            cell[0][bucket] += 1
            cell[1] += value

    def value(self, path, labels=()):
        """A counter's value, or a histogram's (count, sum); 0 / (0, 0.0) if never recorded."""
        key = tuple(str(v) for v in labels)
        with self._lock:
            cell = self._cells[path].get(key)
            if self.specs[path].kind == "counter":
                return cell or 0
            return (sum(cell[0]), cell[1]) if cell else (0, 0.0)

    def prometheus_page(self):
        """Every metric (sorted by path), a `# TYPE` line each, then one line per label set."""
        with self._lock:
            snapshot = {path: {k: (v if isinstance(v, int) else (list(v[0]), v[1])) for k, v in cells.items()}
                        for path, cells in self._cells.items()}
        lines = []
        for path in sorted(self.specs):
            spec = self.specs[path]
            name = spec.prometheus_name
            lines.append(f"# TYPE {name} {spec.kind}")
            for key in sorted(snapshot[path]):
                labels = [f'{label}="{_label_value(v)}"' for label, v in zip(spec.labels, key)]
                if spec.kind == "counter":
                    lines.append(f"{name}{{{','.join(labels)}}} {snapshot[path][key]}")
                    continue
                counts, total = snapshot[path][key]
                cumulative = 0
                limits = [_number(limit) for limit in spec.buckets] + ["+Inf"]
                for limit, count in zip(limits, counts):
                    cumulative += count
                    bucket_labels = ",".join(labels + [f'le="{limit}"'])
                    lines.append(f"{name}_bucket{{{bucket_labels}}} {cumulative}")
                lines.append(f"{name}_sum{{{','.join(labels)}}} {_number(total)}")
                lines.append(f"{name}_count{{{','.join(labels)}}} {cumulative}")
        return "\n".join(lines) + "\n"


# ----------------------------------------------------------------- --monitoring_config_file
class MonitoringConfigError(ValueError):
    """A monitoring config file that cannot be used; the message names the file and line."""


def _monitoring_config_class():
    """tensorflow.serving.MonitoringConfig (config/monitoring_config.proto), which the
    tensorflow-serving-api wheel does not ship."""
    return proto3_message_class("albert_tf/monitoring_config.proto", "tensorflow.serving", {
        "PrometheusConfig": [("enable", 1, "bool"), ("path", 2, "string")],
        "MonitoringConfig": [("prometheus_config", 1, "PrometheusConfig")],
    }, "MonitoringConfig")


def read_monitoring_config(path):
    """Reads a MonitoringConfig text proto; returns the Prometheus path to serve (str), or
    None when `prometheus_config { enable: true }` is not set. MonitoringConfigError names
    the file and line of a parse error or a path that does not start with '/'."""
    config = read_text_proto(path, _monitoring_config_class()(), "--monitoring_config_file", MonitoringConfigError)
    prometheus = config.prometheus_config
    if not prometheus.enable:
        return None
    served = prometheus.path or DEFAULT_PROMETHEUS_PATH
    if not served.startswith("/"):
        raise MonitoringConfigError(f"--monitoring_config_file {path}: prometheus_config.path {served!r} must start "
                                    "with '/'")
    return served
