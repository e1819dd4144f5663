"""albert-tf: ALBERT (A Lite BERT) in Keras 3 on TensorFlow.

Public API: the config, the models, and the parameter-count formula.
"""

from albert_tf.config import PRESETS, AlbertConfig, AlbertConfigError
from albert_tf.models import AlbertBackbone, AlbertPretrainer
from albert_tf.params import count_parameters

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "AlbertBackbone",
    "AlbertConfig",
    "AlbertConfigError",
    "AlbertPretrainer",
    "count_parameters",
]
