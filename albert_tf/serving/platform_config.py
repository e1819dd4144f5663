"""`--platform_config_file`: TF Serving's PlatformConfigMap, read as tensorflow_model_server
reads it.

With that flag, TF Serving takes its session settings from the file's
`SavedModelBundleSourceAdapterConfig.legacy_config` (a SessionBundleConfig) and ignores
the flags that would otherwise make one: `--enable_batching`,
`--batching_parameters_file`, `--enable_per_model_batching_parameters`, the
`--tensorflow_*_parallelism` flags, `--saved_model_tags`, `--enable_model_warmup` and
`--num_request_iterations_for_warmup`. So does albert-serve. Note that a file without
`enable_model_warmup: true` turns warmup off, as in TF Serving.

A file for the "tensorflow" platform looks like:

    platform_configs {
      key: "tensorflow"
      value {
        source_adapter_config {
          [type.googleapis.com/tensorflow.serving.SavedModelBundleSourceAdapterConfig] {
            legacy_config {
              session_config { intra_op_parallelism_threads: 2 inter_op_parallelism_threads: 2 }
              batching_parameters { max_batch_size { value: 32 } batch_timeout_micros { value: 2000 } }
              enable_model_warmup: true
            }
          }
        }
      }
    }

Only the fields in `_SCHEMA` are read; any other field is an error that names it, its
line, and the fields albert-serve applies. No TensorFlow import.
"""

import dataclasses

from google.protobuf import text_format
from tensorflow_serving.config import platform_config_pb2

from albert_tf.serving.batching_config import BATCHING_SCHEMA, WRAPPER_SCHEMA, BatchingConfigError, BatchingParameters
from albert_tf.serving.text_proto import proto3_message_classes, read_config_text

FLAG = "--platform_config_file"
PLATFORM = "tensorflow"
ADAPTER = "tensorflow.serving.SavedModelBundleSourceAdapterConfig"

# session_bundle_config.proto, saved_model_bundle_source_adapter.proto and ConfigProto:
# the fields albert-serve applies. Text format goes by field names; the numbers are TF
# Serving's where its published protos show them.
_SCHEMA = {
    "SavedModelBundleSourceAdapterConfig": [("legacy_config", 1000, "SessionBundleConfig")],
    "SessionBundleConfig": [("session_config", 2, "ConfigProto"), ("batching_parameters", 3, "BatchingParameters"),
                            ("saved_model_tags", 6, "repeated string"), ("enable_model_warmup", 779, "bool"),
                            ("model_warmup_options", 780, "ModelWarmupOptions"),
                            ("enable_per_model_batching_params", 787, "bool")],
    "ConfigProto": [("intra_op_parallelism_threads", 2, "int32"), ("inter_op_parallelism_threads", 5, "int32")],
    "ModelWarmupOptions": [("num_request_iterations", 1, "Int32Value")],
    **BATCHING_SCHEMA,
}


class PlatformConfigError(ValueError):
    """A platform config file that albert-serve cannot apply; names the file, line or field."""


@dataclasses.dataclass(frozen=True)
class SessionSettings:
    """The settings TF Serving takes from a SessionBundleConfig.

    batching: a BatchingParameters, or None for no batching.
    intra_op_threads, inter_op_threads: TensorFlow thread pools (0 = TensorFlow's choice).
    """

    batching: object = None
    enable_per_model_batching_parameters: bool = False
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    saved_model_tags: tuple = ("serve",)
    enable_model_warmup: bool = False
    num_request_iterations_for_warmup: int = 1


def applied_fields():
    """The legacy_config fields albert-serve applies, as dotted paths (list of str)."""
    def walk(message, prefix):
        for name, _, kind in _SCHEMA[message]:
            kind = kind.removeprefix("repeated ")
            if kind in _SCHEMA and kind not in WRAPPER_SCHEMA:
                yield from walk(kind, f"{prefix}{name}.")
            else:
                yield prefix + name
    return list(walk("SessionBundleConfig", ""))


def read_platform_config(path):
    """The SessionSettings (above) of the platform config file `path`.
    Raises PlatformConfigError naming the file and, for parse errors, the line."""
    pool_classes = proto3_message_classes("albert_tf/platform_config.proto", "tensorflow.serving", _SCHEMA)
    text = read_config_text(path, FLAG, PlatformConfigError)
    where = f"{FLAG} {path}"
    config = platform_config_pb2.PlatformConfigMap()
    try:
        text_format.Parse(text, config, descriptor_pool=next(iter(pool_classes.values())).DESCRIPTOR.file.pool)
    except text_format.ParseError as e:
        message = str(e)
        hint = ""
        if "has no field named" in message:
            hint = f" (albert-serve applies these legacy_config fields: {', '.join(applied_fields())})"
        elif "not found in descriptor pool" in message:
            hint = f" (source_adapter_config must be a {ADAPTER})"
        separator = ":" if message[:1].isdigit() else ": "  # "line:column : what" follows the path directly
        raise PlatformConfigError(f"{where}{separator}{message}{hint}") from None
    platforms = sorted(config.platform_configs)
    if platforms != [PLATFORM]:
        raise PlatformConfigError(f"{where}: platform_configs must hold the one platform {PLATFORM!r}, "
                                  f"not {platforms}: albert-serve serves TensorFlow SavedModels")
    adapter = config.platform_configs[PLATFORM].source_adapter_config
    if adapter.type_url.rsplit("/", 1)[-1] != ADAPTER:
        raise PlatformConfigError(f"{where}: source_adapter_config must be a {ADAPTER}, not {adapter.type_url!r}")
    legacy = pool_classes["SavedModelBundleSourceAdapterConfig"].FromString(adapter.value).legacy_config
    threads = legacy.session_config
    if threads.intra_op_parallelism_threads < 0 or threads.inter_op_parallelism_threads < 0:
        raise PlatformConfigError(f"{where}: session_config thread counts must be at least 0 (0 = auto)")
    iterations = legacy.model_warmup_options.num_request_iterations.value
    if iterations < 0:
        raise PlatformConfigError(f"{where}: model_warmup_options.num_request_iterations must be at least 0")
    return SessionSettings(
        batching=_batching_parameters(legacy, where),
        enable_per_model_batching_parameters=legacy.enable_per_model_batching_params,
        intra_op_threads=threads.intra_op_parallelism_threads,
        inter_op_threads=threads.inter_op_parallelism_threads,
        saved_model_tags=tuple(legacy.saved_model_tags) or ("serve",),
        enable_model_warmup=legacy.enable_model_warmup,
        num_request_iterations_for_warmup=iterations or 1,
    )


def _batching_parameters(legacy, where):
    """BatchingParameters from legacy_config.batching_parameters, or None when it is absent."""
    if not legacy.HasField("batching_parameters"):
        return None
    try:
        return BatchingParameters.from_message(legacy.batching_parameters)
    except BatchingConfigError as e:
        raise PlatformConfigError(f"{where}: batching_parameters: {e}") from None
