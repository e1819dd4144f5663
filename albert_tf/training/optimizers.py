"""ALBERT's optimizers and learning-rate schedule, as in the original optimization.py and
lamb_optimizer.py.

Both optimizers use Adam moments without bias correction and decoupled weight decay
0.01, with variables whose path matches "LayerNorm", "layer_norm" or "bias" excluded.
LAMB also scales each update by the trust ratio ‖w‖ / ‖update‖ (1 when either norm is
0), with the same exclusions. Gradients are clipped to global norm 1.0 before the
update. Keras clips each replica's share before the all-reduce, as the original's
CrossShardOptimizer did on TPU.

Keras 3's own `keras.optimizers.Lamb` is not ALBERT's LAMB: it applies weight decay
outside the trust ratio, has no exclusions, and uses epsilon 1e-7.
"""

import re

import keras
from keras import ops

EXCLUDE_FROM_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")


@keras.saving.register_keras_serializable(package="albert_tf")
class AlbertLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then polynomial decay to 0, as the original `create_optimizer`.

    The decay is lr · (1 - min(step, T) / T)^poly_power. During warm-up, the rate is
    lr · (step - start_warmup_step) / num_warmup_steps. Steps before `start_warmup_step`
    get 0: the original gave them a negative rate. Takes an int step and returns a
    float32 scalar.
    """

    def __init__(self, learning_rate, num_train_steps, num_warmup_steps=0, start_warmup_step=0, poly_power=1.0):
        self.learning_rate = float(learning_rate)
        self.num_train_steps = int(num_train_steps)
        self.num_warmup_steps = int(num_warmup_steps)
        self.start_warmup_step = int(start_warmup_step)
        self.poly_power = float(poly_power)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        done = ops.minimum(step, float(self.num_train_steps)) / float(max(self.num_train_steps, 1))
        decayed = self.learning_rate * ops.power(1.0 - done, self.poly_power)
        if not self.num_warmup_steps:
            return decayed
        warm_step = step - float(self.start_warmup_step)
        warmup = self.learning_rate * ops.maximum(warm_step, 0.0) / float(self.num_warmup_steps)
        return ops.where(warm_step < float(self.num_warmup_steps), warmup, decayed)

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "num_train_steps": self.num_train_steps,
            "num_warmup_steps": self.num_warmup_steps,
            "start_warmup_step": self.start_warmup_step,
            "poly_power": self.poly_power,
        }


class _AlbertAdamBase(keras.optimizers.Optimizer):
    """Adam moments without bias correction, and decoupled weight decay with exclusions."""

    layer_adaptation = False

    def __init__(
        self,
        learning_rate,
        weight_decay_rate=0.01,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-6,
        exclude_from_weight_decay=EXCLUDE_FROM_WEIGHT_DECAY,
        global_clipnorm=1.0,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, global_clipnorm=global_clipnorm, name=name, **kwargs)
        self.weight_decay_rate = weight_decay_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.exclude_from_weight_decay = tuple(exclude_from_weight_decay or ())

    def _excluded(self, variable):
        return any(re.search(pattern, variable.path) for pattern in self.exclude_from_weight_decay)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m = [self.add_variable_from_reference(v, "m") for v in var_list]
        self._v = [self.add_variable_from_reference(v, "v") for v in var_list]
        # Decided here, where variables still carry their Keras path.
        self._exclusions = [self._excluded(v) for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        m, v = self._m[index], self._v[index]
        gradient = ops.cast(gradient, variable.dtype)
        learning_rate = ops.cast(learning_rate, variable.dtype)
        self.assign(m, self.beta_1 * m + (1.0 - self.beta_1) * gradient)
        self.assign(v, self.beta_2 * v + (1.0 - self.beta_2) * ops.square(gradient))
        update = m / (ops.sqrt(v) + self.epsilon)
        excluded = self._exclusions[index]
        if self.weight_decay_rate and not excluded:
            update = update + self.weight_decay_rate * variable
        if self.layer_adaptation and not excluded:
            w_norm = ops.sqrt(ops.sum(ops.square(variable)))
            u_norm = ops.sqrt(ops.sum(ops.square(update)))
            ratio = ops.where(w_norm > 0, ops.where(u_norm > 0, w_norm / ops.maximum(u_norm, 1e-30), 1.0), 1.0)
            update = ratio * update
        self.assign_sub(variable, learning_rate * update)

    def get_config(self):
        config = super().get_config()
        config.update(
            weight_decay_rate=self.weight_decay_rate,
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            epsilon=self.epsilon,
            exclude_from_weight_decay=list(self.exclude_from_weight_decay),
        )
        return config


@keras.saving.register_keras_serializable(package="albert_tf")
class AlbertAdamW(_AlbertAdamBase):
    """The original AdamWeightDecayOptimizer: Adam without bias correction, plus
    decoupled weight decay."""

    def __init__(self, learning_rate, name="albert_adamw", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)


@keras.saving.register_keras_serializable(package="albert_tf")
class AlbertLamb(_AlbertAdamBase):
    """The original LAMBOptimizer: AlbertAdamW's update scaled by ‖w‖ / ‖update‖."""

    layer_adaptation = True

    def __init__(self, learning_rate, name="albert_lamb", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)


OPTIMIZERS = {"lamb": AlbertLamb, "adamw": AlbertAdamW}


def create_optimizer(name, learning_rate, num_train_steps, num_warmup_steps=0, start_warmup_step=0, poly_power=1.0):
    """`name` "lamb" or "adamw" with the original schedule.

    Returns (optimizer, schedule).
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"--optimizer: unknown optimizer {name!r}; expected lamb or adamw")
    schedule = AlbertLearningRate(learning_rate, num_train_steps, num_warmup_steps, start_warmup_step, poly_power)
    return OPTIMIZERS[name](schedule), schedule
