"""ALBERT models: the functional backbone and the tasks built on it."""

from albert_tf.models.backbone import AlbertBackbone
from albert_tf.models.classifier import AlbertClassifier
from albert_tf.models.pretrainer import AlbertPretrainer
from albert_tf.models.span_extractor import AlbertSpanExtractor

__all__ = ["AlbertBackbone", "AlbertClassifier", "AlbertPretrainer", "AlbertSpanExtractor"]
