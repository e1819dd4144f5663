"""TF Serving's BatchingParameters (`--batching_parameters_file`, per-model
`batching_params.pbtxt`, a platform config's `batching_parameters`): the values and their
checks. No TensorFlow import, so albert-serve can check its config files before
TensorFlow loads.
"""

import functools

from google.protobuf import text_format

from albert_tf.serving.text_proto import proto3_message_classes, read_config_text

# TF Serving's BatchingParameters (session_bundle_config.proto) with its wrapper messages.
# Text format goes by field names; the numbers are TF Serving's where its protos show them.
WRAPPER_SCHEMA = {"Int32Value": [("value", 1, "int32")], "Int64Value": [("value", 1, "int64")],
                  "StringValue": [("value", 1, "string")], "BoolValue": [("value", 1, "bool")]}
BATCHING_SCHEMA = {
    "BatchingParameters": [("max_batch_size", 1, "Int64Value"), ("batch_timeout_micros", 2, "Int64Value"),
                           ("max_enqueued_batches", 3, "Int64Value"), ("num_batch_threads", 4, "Int64Value"),
                           ("thread_pool_name", 5, "StringValue"), ("allowed_batch_sizes", 6, "repeated int64"),
                           ("pad_variable_length_inputs", 7, "bool"), ("enable_large_batch_splitting", 8, "BoolValue"),
                           ("max_execution_batch_size", 9, "Int64Value")],
    **WRAPPER_SCHEMA,
}
# Fields held in a wrapper message: copied only when present, so the defaults below apply.
_WRAPPED_FIELDS = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
                   "thread_pool_name", "enable_large_batch_splitting", "max_execution_batch_size")


@functools.cache
def _batching_parameters_class():
    """The BatchingParameters message class of BATCHING_SCHEMA, built once."""
    return proto3_message_classes("albert_tf/batching_parameters.proto", "tensorflow.serving",
                                  BATCHING_SCHEMA)["BatchingParameters"]


class BatchingConfigError(ValueError):
    """A batching parameters file that cannot be used; names the file and field."""


class BatchingParameters:
    """The fields of TF Serving's BatchingParameters proto, with its defaults."""

    def __init__(self, max_batch_size=1000, batch_timeout_micros=0, max_enqueued_batches=10, num_batch_threads=2,
                 allowed_batch_sizes=(), pad_variable_length_inputs=False, thread_pool_name="model_server_batch_threads",
                 enable_large_batch_splitting=False, max_execution_batch_size=None):
        self.max_batch_size = max_batch_size
        self.batch_timeout_micros = batch_timeout_micros
        self.max_enqueued_batches = max_enqueued_batches
        self.num_batch_threads = num_batch_threads
        self.allowed_batch_sizes = list(allowed_batch_sizes)
        self.pad_variable_length_inputs = pad_variable_length_inputs
        self.thread_pool_name = thread_pool_name
        self.enable_large_batch_splitting = enable_large_batch_splitting
        self.max_execution_batch_size = max_execution_batch_size
        if self.allowed_batch_sizes:
            if self.allowed_batch_sizes != sorted(set(self.allowed_batch_sizes)):
                raise BatchingConfigError("allowed_batch_sizes must be strictly increasing")
            if self.allowed_batch_sizes[-1] != self.max_batch_size:
                raise BatchingConfigError("the last entry in allowed_batch_sizes must equal max_batch_size")

    @classmethod
    def from_message(cls, message):
        """From a BatchingParameters message (this module's schema): the fields it sets,
        TF Serving's defaults for the others. Raises BatchingConfigError."""
        values = {name: getattr(message, name).value for name in _WRAPPED_FIELDS if message.HasField(name)}
        return cls(allowed_batch_sizes=list(message.allowed_batch_sizes),
                   pad_variable_length_inputs=message.pad_variable_length_inputs, **values)

    @classmethod
    def from_text(cls, text, source="--batching_parameters_file"):
        """Parses the text-format proto. Errors raise BatchingConfigError as
        "<source>:<line>:<column> : <what>", or "<source>: <what>" for a value check."""
        message = _batching_parameters_class()()
        try:
            text_format.Parse(text, message)
        except text_format.ParseError as e:
            raise BatchingConfigError(f"{source}:{e}") from None
        try:
            return cls.from_message(message)
        except BatchingConfigError as e:
            raise BatchingConfigError(f"{source}: {e}") from None

    @classmethod
    def from_file(cls, path):
        """Parses a TF Serving batching_parameters text proto file; errors name the file."""
        flag = "--batching_parameters_file"
        return cls.from_text(read_config_text(path, flag, BatchingConfigError), source=f"{flag} {path}")
