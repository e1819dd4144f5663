"""AlbertSpanExtractor: backbone + start/end logits on every token, as the original
run_squad_v1 (`cls/squad/output_weights` [2, H], `cls/squad/output_bias` [2])."""

import keras

from albert_tf.layers.heads import AlbertSpanHead
from albert_tf.models.backbone import INPUT_NAMES, AlbertBackbone, BackboneTask


@keras.saving.register_keras_serializable(package="albert_tf")
class AlbertSpanExtractor(BackboneTask):
    """Extractive question answering (SQuAD v1.1 / v2.0) on ALBERT.

    Args:
      backbone: an AlbertBackbone.

    Inputs: the backbone inputs (question in segment 0, context window in segment 1).
    Outputs (dict): `start_logits` and `end_logits`, float32 [B, T]. For SQuAD v2.0 the
    logits at position 0 ([CLS]) score "no answer". Sublayers: `backbone`, `squad_head`.
    """

    def __init__(self, backbone, dtype=None, **kwargs):
        if not isinstance(backbone, AlbertBackbone):
            raise TypeError(f"backbone must be an AlbertBackbone, got {type(backbone).__name__}")
        dtype = dtype if dtype is not None else backbone.dtype_policy
        config = backbone.config
        # === Layers ===
        self.backbone = backbone
        self.squad_head = AlbertSpanHead(config.hidden_size, initializer_range=config.initializer_range, dtype=dtype,
                                         name="squad_head")
        # === Functional model ===
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in INPUT_NAMES}
        start_logits, end_logits = self.squad_head(backbone(inputs)["sequence_output"])
        outputs = {"start_logits": start_logits, "end_logits": end_logits}
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)
