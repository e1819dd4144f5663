"""AlbertClassifier: backbone + dropout + a linear layer on the pooled output, as the
original run_classifier (`output_weights` [num_labels, H], `output_bias`)."""

import keras

from albert_tf.layers.heads import AlbertSentenceOrderHead
from albert_tf.models.backbone import INPUT_NAMES, AlbertBackbone, BackboneTask


@keras.saving.register_keras_serializable(package="albert_tf")
class AlbertClassifier(BackboneTask):
    """Sequence classification (or regression with num_labels=1) on ALBERT.

    Args:
      backbone: an AlbertBackbone.
      num_labels: number of classes.
      dropout_rate: dropout on the pooled output (the original hard-codes 0.1).

    Inputs: the backbone inputs. Outputs (dict): `logits` float32 [B, num_labels].
    Sublayers: `backbone`, `classifier_head` (weights stored [num_labels, H] like the
    original `output_weights`).
    """

    def __init__(self, backbone, num_labels, dropout_rate=0.1, dtype=None, **kwargs):
        if not isinstance(backbone, AlbertBackbone):
            raise TypeError(f"backbone must be an AlbertBackbone, got {type(backbone).__name__}")
        if num_labels < 1:
            raise ValueError(f"num_labels must be >= 1, got {num_labels}")
        dtype = dtype if dtype is not None else backbone.dtype_policy
        config = backbone.config
        # === Layers ===
        self.backbone = backbone
        self.dropout = keras.layers.Dropout(dropout_rate, name="classifier_dropout")
        self.classifier_head = AlbertSentenceOrderHead(
            config.hidden_size, initializer_range=config.initializer_range, num_classes=num_labels, dtype=dtype,
            name="classifier_head",
        )
        # === Functional model ===
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in INPUT_NAMES}
        pooled = backbone(inputs)["pooled_output"]
        outputs = {"logits": self.classifier_head(self.dropout(pooled))}
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)
        self.num_labels = num_labels
        self.dropout_rate = dropout_rate

    def task_config(self):
        """The head's own settings (dict) that `get_config` adds beside the backbone's."""
        return {"num_labels": self.num_labels, "dropout_rate": self.dropout_rate}
