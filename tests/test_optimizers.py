"""ALBERT's LAMB and AdamW, and the learning-rate schedule, against NumPy."""

import re

import keras
import numpy as np
import pytest

from albert_tf.training.optimizers import AlbertAdamW, AlbertLamb, AlbertLearningRate, create_optimizer


def numpy_optimizer(params, grads_per_step, lrs, lamb, wd=0.01, b1=0.9, b2=0.999, eps=1e-6, clip=1.0):
    """The original update rules, written out in NumPy. `params`: {path: array}."""
    params = {k: v.astype(np.float64).copy() for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v_ = {k: np.zeros_like(v) for k, v in params.items()}
    for grads, lr in zip(grads_per_step, lrs):
        norm = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads.values()))
        scale = clip / max(norm, clip)
        for k in params:
            g = grads[k] * scale
            m[k] = b1 * m[k] + (1 - b1) * g
            v_[k] = b2 * v_[k] + (1 - b2) * g * g
            update = m[k] / (np.sqrt(v_[k]) + eps)
            excluded = any(re.search(p, k) for p in ("LayerNorm", "layer_norm", "bias"))
            if not excluded:
                update = update + wd * params[k]
            if lamb and not excluded:
                w_norm, u_norm = np.linalg.norm(params[k]), np.linalg.norm(update)
                update = update * (w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0)
            params[k] = params[k] - lr * update
    return params


@pytest.mark.parametrize("optimizer_class, lamb", [(AlbertLamb, True), (AlbertAdamW, False)])
def test_several_steps_match_numpy(optimizer_class, lamb):
    rng = np.random.default_rng(0)
    shapes = {"dense/kernel": (4, 3), "dense/bias": (3,), "layer_norm/gamma": (3,), "zero/kernel": (2, 2)}
    initial = {k: rng.standard_normal(s).astype("float32") for k, s in shapes.items()}
    initial["zero/kernel"][:] = 0.0  # ‖w‖ = 0 → trust ratio 1
    variables = []
    for path in shapes:
        scope, name = path.split("/")
        with keras.name_scope(scope):
            variables.append(keras.Variable(initial[path], name=name))
    paths = list(shapes)
    assert [v.path for v in variables] == paths
    schedule = AlbertLearningRate(0.05, num_train_steps=10, num_warmup_steps=2)
    optimizer = optimizer_class(schedule)
    steps = []
    for step in range(5):
        # Large gradients in the first steps exercise the global-norm clipping.
        grads = {k: (rng.standard_normal(shapes[k]) * (3.0 if step < 2 else 0.1)).astype("float32") for k in paths}
        steps.append(grads)
        optimizer.apply([keras.ops.convert_to_tensor(grads[k]) for k in paths], variables)
    lrs = [float(schedule(s)) for s in range(5)]
    expected = numpy_optimizer(initial, steps, lrs, lamb)
    for path, variable in zip(paths, variables):
        np.testing.assert_allclose(variable.numpy(), expected[path], rtol=2e-5, atol=1e-6, err_msg=path)
    assert int(optimizer.iterations.numpy()) == 5


def test_variable_paths_decide_exclusions():
    optimizer = AlbertLamb(0.1)
    assert optimizer._excluded(keras.Variable(np.zeros(2), name="bias"))
    layer = keras.layers.LayerNormalization(name="attention_layer_norm")
    layer.build((None, 4))
    assert optimizer._excluded(layer.gamma) and optimizer._excluded(layer.beta)
    dense = keras.layers.Dense(2, name="ffn")
    dense.build((None, 3))
    assert not optimizer._excluded(dense.kernel) and optimizer._excluded(dense.bias)


def test_schedule_warmup_then_polynomial_decay():
    schedule = AlbertLearningRate(1e-3, num_train_steps=100, num_warmup_steps=10, poly_power=1.0)
    assert float(schedule(0)) == 0.0
    assert float(schedule(5)) == pytest.approx(5e-4)
    assert float(schedule(10)) == pytest.approx(1e-3 * 0.9)
    assert float(schedule(100)) == 0.0 and float(schedule(150)) == 0.0
    squared = AlbertLearningRate(1e-3, 100, 0, poly_power=2.0)
    assert float(squared(50)) == pytest.approx(1e-3 * 0.25)
    late = AlbertLearningRate(1e-3, 100, num_warmup_steps=10, start_warmup_step=20)
    assert float(late(5)) == 0.0  # the original gave a negative rate here
    assert float(late(25)) == pytest.approx(5e-4)
    assert float(late(30)) == pytest.approx(1e-3 * 0.7)
    with pytest.raises(ValueError, match="--optimizer"):
        create_optimizer("sgd", 1e-3, 10)
