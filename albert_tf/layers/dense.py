"""AlbertDense: Keras Dense with an optional bfloat16 matmul (the rest stays float32)."""

import contextlib
import contextvars
import types

import keras
import tensorflow as tf
from keras import ops

MATMUL_DTYPES = ("float32", "bfloat16")
# Set by `float32_matmuls()` while a function is traced: AlbertDense then ignores its
# `matmul_dtype`, so one export can hold a float32 copy of a bfloat16 model (the XLA
# short-input path, which runs bfloat16 matmuls slower than float32 ones).
_FLOAT32_OVERRIDE = contextvars.ContextVar("albert_tf_float32_matmuls", default=False)
# Set by `constant_kernels()` while a function is traced: AlbertDense then multiplies by a
# graph constant holding its kernel's value instead of reading the variable (the
# export's XLA functions). The value is that context's cache of constants made so far.
_CONSTANT_KERNELS = contextvars.ContextVar("albert_tf_constant_kernels", default=None)


def _graph_constant(variable, cache):
    """A graph constant holding `variable`'s current value, in its dtype. Call while
    tracing a tf.function; the value is read eagerly, so later changes to the variable
    do not reach it. One constant per variable and graph: ALBERT calls its shared
    layer's Dense layers L times in one graph, and a constant each time would hold L
    copies of the kernels. Returns a tf.Tensor of the variable's shape."""
    key = (id(variable), id(tf.compat.v1.get_default_graph()))
    if key not in cache:
        with tf.init_scope():
            value = ops.convert_to_numpy(variable)
        cache[key] = tf.constant(value)
    return cache[key]


@keras.saving.register_keras_serializable(package="albert_tf")
class AlbertDense(keras.layers.Dense):
    """`keras.layers.Dense` (same variables, config and results by default).

    `matmul_dtype` (an attribute, not part of the config; see `set_matmul_dtype`) set to
    "bfloat16" makes a float32 layer compute x·W in bfloat16 (both operands rounded,
    product returned as float32) and add the bias and apply the activation in float32.
    On CPUs with AVX512-BF16 / AMX, oneDNN runs that matmul about 2× faster than
    float32 from about a hundred rows on (little faster at a dozen; WORKSPACE_NOTES),
    while the LayerNorms, softmax and GELU keep float32, unlike Keras's
    mixed_bfloat16 policy, whose bfloat16 elementwise ops are slow on CPU.
    Call with x [..., in]; returns [..., units] in the layer's compute dtype.
    """

    matmul_dtype = "float32"
    _rounded = None  # untracked holder of the bfloat16 copy of the kernel

    def call(self, inputs, training=None):
        float32 = self.matmul_dtype == "float32" or _FLOAT32_OVERRIDE.get()
        constants = _CONSTANT_KERNELS.get()
        if self.compute_dtype != "float32" or (float32 and constants is None):
            return super().call(inputs, training=training)
        kernel = self.kernel if float32 else self._rounded.kernel
        if constants is not None:
            kernel = _graph_constant(kernel, constants)
        product = ops.matmul(inputs if float32 else ops.cast(inputs, self.matmul_dtype), kernel)
        outputs = ops.cast(product, "float32")
        if self.use_bias:
            outputs = outputs + self.bias
        return self.activation(outputs) if self.activation is not None else outputs


def dense_layers(model):
    """Every built AlbertDense inside `model` (a Keras layer or model), as a list."""
    return [layer for layer in model._flatten_layers(include_self=True, recursive=True)
            if isinstance(layer, AlbertDense) and layer.built]


def set_matmul_dtype(model, matmul_dtype):
    """Sets `matmul_dtype` ("float32" or "bfloat16") on every built AlbertDense inside
    `model` (a Keras layer or model); takes effect the next time the model is traced.

    For "bfloat16" each layer gets a bfloat16 copy of its kernel, made now: rounding
    the kernel once, rather than on every call (12 times per call in a shared ALBERT
    encoder), is what makes short inputs fast too. The copy is not a Keras weight (it is
    not in checkpoints or `model.weights`), but a function that uses it captures it, so
    a SavedModel export holds it. Use it for inference and export once the weights are
    final: later changes to the kernels do not reach the copies. Returns the number of
    layers changed.
    """
    if matmul_dtype not in MATMUL_DTYPES:
        raise ValueError(f"matmul dtype {matmul_dtype!r}: expected one of {MATMUL_DTYPES}")
    layers = dense_layers(model)
    for layer in layers:
        layer.matmul_dtype = matmul_dtype
        if matmul_dtype == "bfloat16":
            kernel = keras.Variable(ops.cast(layer.kernel, "bfloat16"), dtype="bfloat16", trainable=False,
                                    name=f"{layer.name}_kernel_bfloat16")
            object.__setattr__(layer, "_rounded", types.SimpleNamespace(kernel=kernel))
    return len(layers)


@contextlib.contextmanager
def float32_matmuls():
    """While active, every AlbertDense traced or called multiplies in float32, whatever
    `set_matmul_dtype` chose for it. Takes and returns nothing; affects tracing only in
    the thread (context) that enters it."""
    token = _FLOAT32_OVERRIDE.set(True)
    try:
        yield
    finally:
        _FLOAT32_OVERRIDE.reset(token)


@contextlib.contextmanager
def constant_kernels():
    """While active, every AlbertDense traced with a float32 compute dtype multiplies by a
    graph constant holding its kernel's value at trace time (the bias stays a variable
    read) instead of reading the kernel variable. XLA compiles a dot with a constant
    operand faster: ALBERT-base at 1 × 12 under XLA took 0.93-0.97× the time it takes
    with variables (`benchmarks/matmul_kernels.py --tokens=12`; WORKSPACE_NOTES, "Short
    single inputs"). Use it only for functions traced once the weights are final, such as an
    export's XLA functions; each trace holds its own copy of the kernels. Takes and
    returns nothing; affects tracing only in the thread (context) that enters it."""
    token = _CONSTANT_KERNELS.set({})
    try:
        yield
    finally:
        _CONSTANT_KERNELS.reset(token)
