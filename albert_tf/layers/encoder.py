"""The ALBERT shared encoder: L layers that reuse G groups of `inner_group_num` blocks."""

import keras

from albert_tf.config import LAYER_NORM_EPSILON, group_of_layer
from albert_tf.layers.transformer_block import AlbertTransformerBlock


@keras.saving.register_keras_serializable(package="albert_tf")
class AlbertSharedEncoder(keras.layers.Layer):
    """Runs `num_layers` layers; layer l applies the `inner_group_num` blocks of group
    `int(l / L * G)` in sequence, with weights shared by every layer of the group.

    Blocks are created only for groups some layer runs (the original creates variables
    lazily, so an unused group has none); they are named `group_{g}_inner_group_{i}`.
    Distinct weights: (used groups) × inner_group_num blocks, whatever the depth.

    Call with `x` [batch, seq, H] and `attention_mask` [batch, seq]. Returns the last
    block's output, float32 [batch, seq, H]; with `return_all_layers=True` a list of
    the output of every block application (L × inner_group_num entries, the original's
    `all_encoder_layers`).
    """

    def __init__(
        self,
        num_layers,
        num_groups,
        inner_group_num,
        hidden_size,
        num_heads,
        intermediate_size,
        hidden_act="gelu",
        initializer_range=0.02,
        hidden_dropout_rate=0.0,
        attention_dropout_rate=0.0,
        layer_norm_epsilon=LAYER_NORM_EPSILON,
        return_all_layers=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 1 <= num_groups <= num_layers:
            raise ValueError(f"num_groups={num_groups} must be in [1, num_layers={num_layers}]")
        self.num_layers = num_layers
        self.num_groups = num_groups
        self.inner_group_num = inner_group_num
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.initializer_range = initializer_range
        self.hidden_dropout_rate = hidden_dropout_rate
        self.attention_dropout_rate = attention_dropout_rate
        self.layer_norm_epsilon = layer_norm_epsilon
        self.return_all_layers = return_all_layers

        self.layer_groups = [group_of_layer(l, num_layers, num_groups) for l in range(num_layers)]
        # Each block is a named attribute, not a list entry: tf.train.Checkpoint tracks
        # attributes, and Keras's list wrapper is invisible to it.
        self._block_names = []
        for group in sorted(set(self.layer_groups)):
            for inner in range(inner_group_num):
                name = f"group_{group}_inner_group_{inner}"
                self._block_names.append(name)
                setattr(
                    self,
                    name,
                    AlbertTransformerBlock(
                        hidden_size,
                        num_heads,
                        intermediate_size,
                        hidden_act=hidden_act,
                        initializer_range=initializer_range,
                        hidden_dropout_rate=hidden_dropout_rate,
                        attention_dropout_rate=attention_dropout_rate,
                        layer_norm_epsilon=layer_norm_epsilon,
                        dtype=self.dtype_policy,
                        name=name,
                    ),
                )

    @property
    def blocks(self):
        """The distinct blocks, ordered by (group, inner)."""
        return [getattr(self, name) for name in self._block_names]

    def block(self, group, inner):
        """The block `inner_group_{inner}` of group `group`."""
        return getattr(self, f"group_{group}_inner_group_{inner}")

    def build(self, x_shape, attention_mask_shape=None):
        for block in self.blocks:
            block.build((None, None, self.hidden_size))
        self.built = True

    def call(self, x, attention_mask, training=None):
        outputs = []
        for group in self.layer_groups:
            for inner in range(self.inner_group_num):
                x = self.block(group, inner)(x, attention_mask, training=training)
                outputs.append(x)
        return outputs if self.return_all_layers else x


    def get_config(self):
        config = super().get_config()
        config.update(
            num_layers=self.num_layers,
            num_groups=self.num_groups,
            inner_group_num=self.inner_group_num,
            hidden_size=self.hidden_size,
            num_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            hidden_act=self.hidden_act,
            initializer_range=self.initializer_range,
            hidden_dropout_rate=self.hidden_dropout_rate,
            attention_dropout_rate=self.attention_dropout_rate,
            layer_norm_epsilon=self.layer_norm_epsilon,
            return_all_layers=self.return_all_layers,
        )
        return config
