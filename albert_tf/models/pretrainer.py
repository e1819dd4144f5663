"""AlbertPretrainer: backbone + masked-LM head + sentence-order head."""

import keras

from albert_tf.layers.heads import AlbertMaskedLMHead, AlbertSentenceOrderHead
from albert_tf.models.backbone import INPUT_NAMES, AlbertBackbone, BackboneTask

PRETRAINER_INPUT_NAMES = INPUT_NAMES + ("masked_lm_positions",)


@keras.saving.register_keras_serializable(package="albert_tf")
class AlbertPretrainer(BackboneTask):
    """ALBERT with its pretraining heads, as `cls/predictions` and `cls/seq_relationship`.

    Args:
      backbone: an AlbertBackbone; its word embeddings are tied to the MLM output.

    Inputs (dict): the backbone inputs plus `masked_lm_positions` int32 [B, P].
    Outputs (dict, float32): `mlm_logits` [B, P, V], `sop_logits` [B, 2].
    Sublayers: `backbone`, `mlm_head` (AlbertMaskedLMHead), `sop_head`
    (AlbertSentenceOrderHead).
    """

    def __init__(self, backbone, dtype=None, **kwargs):
        if not isinstance(backbone, AlbertBackbone):
            raise TypeError(f"backbone must be an AlbertBackbone, got {type(backbone).__name__}")
        config = backbone.config
        dtype = dtype if dtype is not None else backbone.dtype_policy
        # === Layers ===
        self.backbone = backbone
        self.mlm_head = AlbertMaskedLMHead(
            backbone.embeddings,
            hidden_act=config.hidden_act,
            initializer_range=config.initializer_range,
            dtype=dtype,
            name="mlm_head",
        )
        self.sop_head = AlbertSentenceOrderHead(
            config.hidden_size, initializer_range=config.initializer_range, dtype=dtype, name="sop_head"
        )
        # === Functional model ===
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in PRETRAINER_INPUT_NAMES}
        encoded = backbone({name: inputs[name] for name in INPUT_NAMES})
        outputs = {
            "mlm_logits": self.mlm_head(encoded["sequence_output"], inputs["masked_lm_positions"]),
            "sop_logits": self.sop_head(encoded["pooled_output"]),
        }
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)
