"""TF Serving's BatchingParameters (`--batching_parameters_file`, per-model
`batching_params.pbtxt`, a platform config's `batching_parameters`): the values and their
checks. No TensorFlow import, so albert-serve can check its config files before
TensorFlow loads.
"""

import re

from albert_tf.serving.text_proto import read_config_text

_WRAPPED_INT = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
                "max_execution_batch_size")
_WRAPPED_OTHER = {"thread_pool_name": str, "enable_large_batch_splitting": bool}
_PLAIN = {"allowed_batch_sizes": int, "pad_variable_length_inputs": bool}


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
    def from_text(cls, text, source="--batching_parameters_file"):
        """Parses the text-format proto (`field { value: N }`, `field: N`); strict."""
        values, allowed = {}, []
        body = re.sub(r"#[^\n]*", "", text)
        pattern = re.compile(r"\s*(\w+)\s*(?:\{\s*value\s*:\s*([^\s}]+)\s*\}|:\s*([^\s]+))")
        position = 0
        body = body.strip()
        while position < len(body):
            match = pattern.match(body, position)
            if not match:
                raise BatchingConfigError(f"{source}: cannot parse near {body[position:position + 40]!r}")
            field, wrapped, plain = match.group(1), match.group(2), match.group(3)
            raw = (wrapped if wrapped is not None else plain).strip('"')
            known = (field in _WRAPPED_INT or field in _WRAPPED_OTHER) if wrapped is not None else field in _PLAIN
            if not known:
                raise BatchingConfigError(f"{source}: unknown or malformed field {field!r}")
            try:
                if field in _WRAPPED_INT and wrapped is not None:
                    values[field] = int(raw)
                elif field in _WRAPPED_OTHER and wrapped is not None:
                    values[field] = raw.lower() == "true" if _WRAPPED_OTHER[field] is bool else raw
                elif field == "allowed_batch_sizes":
                    allowed.append(int(raw))
                else:
                    values[field] = raw.lower() == "true"
            except ValueError:
                raise BatchingConfigError(f"{source}: field {field}: bad value {raw!r}") from None
            position = match.end()
            while position < len(body) and body[position].isspace():
                position += 1
        return cls(allowed_batch_sizes=allowed, **values)

    @classmethod
    def from_file(cls, path):
        """Parses a TF Serving batching_parameters text proto file; errors name the file."""
        flag = "--batching_parameters_file"
        return cls.from_text(read_config_text(path, flag, BatchingConfigError), source=f"{flag} {path}")
