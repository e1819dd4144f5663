"""AlbertBackbone: the ALBERT encoder as a functional Keras model with dict inputs/outputs."""

import keras
from keras import ops

from albert_tf.config import LAYER_NORM_EPSILON, AlbertConfig
from albert_tf.layers.dense import AlbertDense
from albert_tf.layers.embeddings import AlbertEmbedding
from albert_tf.layers.encoder import AlbertSharedEncoder

INPUT_NAMES = ("input_word_ids", "input_mask", "input_type_ids")


def _as_config(config):
    if isinstance(config, AlbertConfig):
        return config
    if isinstance(config, dict):
        return AlbertConfig.from_dict(config)
    raise TypeError(f"config must be an AlbertConfig or a dict, got {type(config).__name__}")


def _deserialize_dtype(config):
    if isinstance(config.get("dtype"), dict):
        config = dict(config, dtype=keras.dtype_policies.deserialize(config["dtype"]))
    return config


class BackboneTask(keras.Model):
    """Base of the functional models built on an AlbertBackbone (pretrainer, classifier).

    It serializes the backbone as a nested object plus the subclass's own arguments,
    named in `task_config()`, and rebuilds through the constructor.
    """

    def task_config(self):
        """The subclass's constructor arguments other than backbone/dtype/name (a dict)."""
        return {}

    def get_config(self):
        return {
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            **self.task_config(),
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        config = _deserialize_dtype(config)
        backbone = keras.saving.deserialize_keras_object(config.pop("backbone"))
        return cls(backbone=backbone, **config)


@keras.saving.register_keras_serializable(package="albert_tf")
class AlbertBackbone(keras.Model):
    """The ALBERT encoder: factorized embedding, E→H projection, shared blocks, pooler.

    Args:
      config: an AlbertConfig (or its dict form).
      return_all_layers: also output `embedding_output` [B, T, H] (the encoder input)
        and `encoder_outputs`, a list of L × inner_group_num tensors [B, T, H] (the
        output of every block application, as the original's `all_encoder_layers`).
      dtype: a dtype policy ("float32", "mixed_bfloat16", "mixed_float16"); default
        the global policy.

    Inputs (dict, int32 [batch, seq], any seq <= max_position_embeddings):
      `input_word_ids`, `input_mask` (1 = real token, 0 = padding), `input_type_ids`.
    Outputs (dict, float32 whatever the policy): `sequence_output` [B, T, H],
      `pooled_output` [B, H] (tanh dense on the first token).

    Sublayers: `embeddings` (AlbertEmbedding), `embedding_projection` (Dense E→H, only
    when E != H, as the original), `encoder` (AlbertSharedEncoder), `pooler` (Dense, tanh).
    """

    def __init__(self, config, return_all_layers=False, dtype=None, **kwargs):
        config = _as_config(config)
        init = keras.initializers.TruncatedNormal(stddev=config.initializer_range)
        # === Layers ===
        self.embeddings = AlbertEmbedding(
            vocab_size=config.vocab_size,
            embedding_size=config.embedding_size,
            max_position_embeddings=config.max_position_embeddings,
            type_vocab_size=config.type_vocab_size,
            initializer_range=config.initializer_range,
            dropout_rate=config.hidden_dropout_prob,
            layer_norm_epsilon=LAYER_NORM_EPSILON,
            word_projection_size=config.hidden_size if config.projects_word_embeddings else None,
            dtype=dtype,
            name="embeddings",
        )
        self.embedding_projection = None
        if config.embedding_size != config.hidden_size and not config.projects_word_embeddings:
            self.embedding_projection = AlbertDense(
                config.hidden_size, kernel_initializer=init, dtype=dtype, name="embedding_projection"
            )
        self.encoder = AlbertSharedEncoder(
            num_layers=config.num_hidden_layers,
            num_groups=config.num_hidden_groups,
            inner_group_num=config.inner_group_num,
            hidden_size=config.hidden_size,
            num_heads=config.num_attention_heads,
            intermediate_size=config.intermediate_size,
            hidden_act=config.hidden_act,
            initializer_range=config.initializer_range,
            hidden_dropout_rate=config.hidden_dropout_prob,
            attention_dropout_rate=config.attention_probs_dropout_prob,
            layer_norm_epsilon=LAYER_NORM_EPSILON,
            return_all_layers=return_all_layers,
            dtype=dtype,
            name="encoder",
        )
        self.pooler = AlbertDense(
            config.hidden_size, activation="tanh", kernel_initializer=init, dtype=dtype, name="pooler"
        )

        # === Functional model ===
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in INPUT_NAMES}
        x = self.embeddings(inputs["input_word_ids"], inputs["input_type_ids"])
        if self.embedding_projection is not None:
            x = self.embedding_projection(x)
        encoded = self.encoder(x, inputs["input_mask"])
        sequence_output = encoded[-1] if return_all_layers else encoded
        sequence_output = ops.cast(sequence_output, "float32")
        pooled_output = ops.cast(self.pooler(sequence_output[:, 0, :]), "float32")
        outputs = {"sequence_output": sequence_output, "pooled_output": pooled_output}
        if return_all_layers:
            outputs["embedding_output"] = ops.cast(x, "float32")
            outputs["encoder_outputs"] = [ops.cast(t, "float32") for t in encoded]
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self.config = config
        self.return_all_layers = return_all_layers

    @property
    def word_embeddings(self):
        """The word-embedding variable [V, E] (shared with the MLM head)."""
        return self.embeddings.word_embeddings

    def get_config(self):
        return {
            "config": self.config.to_dict(),
            "return_all_layers": self.return_all_layers,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**_deserialize_dtype(config))
