"""albert-tf: ALBERT (A Lite BERT) in Keras 3 on TensorFlow.

Public API: the config, the models, and the parameter-count formula. Names are
imported on first use, so that `albert_tf.text` and `albert_tf.data` (used by
multi-process data workers) do not pull in TensorFlow.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "PRESETS": "albert_tf.config",
    "AlbertConfig": "albert_tf.config",
    "AlbertConfigError": "albert_tf.config",
    "AlbertBackbone": "albert_tf.models",
    "AlbertClassifier": "albert_tf.models",
    "AlbertPretrainer": "albert_tf.models",
    "AlbertSpanExtractor": "albert_tf.models",
    "count_parameters": "albert_tf.params",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'albert_tf' has no attribute {name!r}")
