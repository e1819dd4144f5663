"""Behaviour of the backbone and pretrainer: shapes, masking, sharing, serialization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from albert_tf.config import AlbertConfig
from albert_tf.layers.dense import AlbertDense, constant_kernels, set_matmul_dtype
from albert_tf.models import AlbertBackbone, AlbertPretrainer
from tests.conftest import random_inputs


@pytest.mark.parametrize("seq", [1, 7, 32])
def test_backbone_shapes_and_dtypes(grouped_config, seq):
    backbone = AlbertBackbone(grouped_config)
    out = backbone(random_inputs(np.random.default_rng(0), grouped_config, batch=2, seq=seq))
    assert set(out) == {"sequence_output", "pooled_output"}
    assert tuple(out["sequence_output"].shape) == (2, seq, 24)
    assert tuple(out["pooled_output"].shape) == (2, 24)
    assert out["sequence_output"].dtype.name == out["pooled_output"].dtype.name == "float32"
    assert {i.name: (tuple(i.shape), i.dtype) for i in backbone.inputs} == {
        name: ((None, None), "int32") for name in ("input_word_ids", "input_mask", "input_type_ids")
    }


def test_pretrainer_shapes(grouped_config):
    pretrainer = AlbertPretrainer(AlbertBackbone(grouped_config))
    inputs = random_inputs(np.random.default_rng(0), grouped_config, batch=3, seq=9)
    out = pretrainer(dict(inputs, masked_lm_positions=np.zeros((3, 5), "int32")))
    assert tuple(out["mlm_logits"].shape) == (3, 5, 97) and out["mlm_logits"].dtype.name == "float32"
    assert tuple(out["sop_logits"].shape) == (3, 2) and out["sop_logits"].dtype.name == "float32"


def test_sequence_longer_than_position_table_fails(grouped_config):
    backbone = AlbertBackbone(grouped_config)
    with pytest.raises(Exception):
        backbone(random_inputs(np.random.default_rng(0), grouped_config, batch=1, seq=33))


def test_padding_does_not_change_real_positions(grouped_config):
    rng = np.random.default_rng(3)
    backbone = AlbertBackbone(grouped_config)
    short = random_inputs(rng, grouped_config, batch=1, seq=6)
    padded = {k: np.pad(v, ((0, 0), (0, 10))) for k, v in short.items()}
    # Garbage ids in the padding must not matter either: only the mask does.
    padded["input_word_ids"][:, 6:] = rng.integers(5, 97, size=10)
    a = backbone.predict_on_batch(short)
    b = backbone.predict_on_batch(padded)
    np.testing.assert_allclose(b["sequence_output"][:, :6], a["sequence_output"], atol=1e-5)
    np.testing.assert_allclose(b["pooled_output"], a["pooled_output"], atol=1e-5)
    unmasked = dict(padded, input_mask=np.ones_like(padded["input_mask"]))
    c = backbone.predict_on_batch(unmasked)
    assert np.abs(c["sequence_output"][:, :6] - a["sequence_output"]).max() > 1e-2  # the mask is what hides them


def test_groups_and_inner_groups_share_exactly_four_blocks(grouped_config):
    backbone = AlbertBackbone(grouped_config)
    names = sorted(block.name for block in backbone.encoder.blocks)
    assert names == ["group_0_inner_group_0", "group_0_inner_group_1", "group_1_inner_group_0", "group_1_inner_group_1"]
    assert backbone.encoder.layer_groups == [0, 0, 0, 1, 1, 1]
    # Perturbing group 1 changes only the outputs of layers 3-5 (entries 6-11: 2 blocks a layer).
    rng = np.random.default_rng(5)
    inputs = random_inputs(rng, grouped_config, batch=2, seq=8)
    probe = AlbertBackbone(grouped_config, return_all_layers=True)
    probe.set_weights(backbone.get_weights())
    before = probe.predict_on_batch(inputs)["encoder_outputs"]
    kernel = probe.encoder.block(1, 0).ffn_intermediate.kernel
    # A random perturbation: a constant shift would vanish, since LayerNorm outputs sum to zero.
    kernel.assign(kernel.numpy() + rng.standard_normal(kernel.shape).astype("float32"))
    after = probe.predict_on_batch(inputs)["encoder_outputs"]
    changed = [not np.allclose(x, y, atol=1e-6) for x, y in zip(before, after)]
    assert changed == [False] * 6 + [True] * 6


def test_depth_does_not_change_parameter_count():
    counts = {
        layers: AlbertBackbone(AlbertConfig.preset("tiny", num_hidden_layers=layers)).count_params()
        for layers in (1, 4, 12)
    }
    assert len(set(counts.values())) == 1, counts


def test_return_all_layers_ends_with_sequence_output(grouped_config):
    backbone = AlbertBackbone(grouped_config, return_all_layers=True)
    out = backbone.predict_on_batch(random_inputs(np.random.default_rng(1), grouped_config, batch=2, seq=5))
    assert len(out["encoder_outputs"]) == 12
    assert out["embedding_output"].shape == (2, 5, 24)
    np.testing.assert_array_equal(out["encoder_outputs"][-1], out["sequence_output"])


def test_get_config_round_trip(grouped_config):
    backbone = AlbertBackbone(grouped_config, return_all_layers=True, name="my_backbone")
    restored = AlbertBackbone.from_config(backbone.get_config())
    assert restored.config == grouped_config and restored.return_all_layers and restored.name == "my_backbone"
    assert restored.get_config() == backbone.get_config()
    pretrainer = AlbertPretrainer(backbone)
    again = AlbertPretrainer.from_config(pretrainer.get_config())
    assert again.get_config() == pretrainer.get_config()
    assert again.count_params() == pretrainer.count_params()
    for layer in backbone.encoder.blocks + [backbone.embeddings, backbone.encoder, pretrainer.sop_head]:
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()


def test_keras_file_round_trip_gives_identical_outputs(grouped_config, tmp_path):
    rng = np.random.default_rng(2)
    pretrainer = AlbertPretrainer(AlbertBackbone(grouped_config))
    inputs = dict(random_inputs(rng, grouped_config, batch=2, seq=10), masked_lm_positions=np.array([[1, 2], [3, 0]], "int32"))
    expected = pretrainer.predict_on_batch(inputs)
    path = str(tmp_path / "pretrainer.keras")
    pretrainer.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, AlbertPretrainer) and isinstance(loaded.backbone, AlbertBackbone)
    got = loaded.predict_on_batch(inputs)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])
    # The tie survives loading: the MLM head reads the backbone's own embedding variable.
    assert loaded.mlm_head.embedding_layer is loaded.backbone.embeddings


def test_fixed_seed_gives_identical_models_and_other_seed_differs(grouped_config):
    inputs = random_inputs(np.random.default_rng(4), grouped_config, batch=2, seq=6)
    config = grouped_config.replace(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)

    def run(seed):
        keras.utils.set_random_seed(seed)
        backbone = AlbertBackbone(config)
        return backbone(inputs, training=False)["sequence_output"].numpy(), backbone(inputs, training=True)["sequence_output"].numpy()

    first, second, other = run(11), run(11), run(12)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])  # dropout masks are seeded too
    assert not np.allclose(first[0], other[0])
    assert not np.allclose(first[0], first[1])  # dropout is active in training


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_layer_norm_and_outputs_in_float32(grouped_config, policy):
    rng = np.random.default_rng(6)
    inputs = dict(random_inputs(rng, grouped_config, batch=2, seq=12), masked_lm_positions=np.array([[1, 2], [3, 0]], "int32"))
    reference = AlbertPretrainer(AlbertBackbone(grouped_config))
    mixed = AlbertPretrainer(AlbertBackbone(grouped_config, dtype=policy))
    mixed.set_weights(reference.get_weights())

    block = mixed.backbone.encoder.blocks[0]
    assert block.ffn_intermediate.compute_dtype == policy.split("_")[1]
    assert block.output_layer_norm.compute_dtype == "float32"
    assert all(w.dtype == "float32" for w in mixed.weights)  # variables stay float32
    expected = reference.predict_on_batch(inputs)
    got = mixed.predict_on_batch(inputs)
    for key in expected:
        assert got[key].dtype == np.float32
        assert np.isfinite(got[key]).all()
        tolerance = 0.1 if policy == "mixed_bfloat16" else 0.02
        assert np.abs(got[key] - expected[key]).max() < tolerance * max(1.0, np.abs(expected[key]).max())


def test_tf_checkpoint_round_trip_covers_every_variable(grouped_config, tmp_path):
    import tensorflow as tf

    source = AlbertPretrainer(AlbertBackbone(grouped_config))
    path = tf.train.Checkpoint(model=source).save(str(tmp_path / "ckpt"))
    stored = [name for name, _ in tf.train.list_variables(path) if name.startswith("model/")]
    assert len(stored) == len(source.weights)  # nothing left out (the encoder blocks were once)
    keras.utils.set_random_seed(99)
    target = AlbertPretrainer(AlbertBackbone(grouped_config))
    tf.train.Checkpoint(model=target).read(path).assert_existing_objects_matched()
    for a, b in zip(source.weights, target.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


@pytest.mark.parametrize("matmul_dtype", ["float32", "bfloat16"])
def test_constant_kernels_freeze_the_kernel_at_trace_time_and_keep_the_bias_a_variable(matmul_dtype):
    layer = AlbertDense(5, activation="tanh")
    layer.build((None, 4))
    set_matmul_dtype(layer, matmul_dtype)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype("float32")
    kernel = layer.kernel.numpy()
    expected = layer(x).numpy()

    def traced(x):
        with constant_kernels():
            return layer(x)

    function = tf.function(traced)
    np.testing.assert_allclose(function(x).numpy(), expected, atol=1e-6, rtol=0)
    concrete = function.get_concrete_function(x)
    reads = [node for node in concrete.graph.as_graph_def().node if node.op == "ReadVariableOp"]
    assert len(concrete.captured_inputs) == 1 and len(reads) == 1  # the bias only

    def traced_three_calls(x):  # as ALBERT calls its shared layers L times in one graph
        with constant_kernels():
            return layer(x) + layer(x) + layer(x)

    graph = tf.function(traced_three_calls).get_concrete_function(x).graph.as_graph_def()
    kernels = [node for node in graph.node if node.op == "Const"
               and [d.size for d in node.attr["value"].tensor.tensor_shape.dim] == [4, 5]]
    assert len(kernels) == 1  # one copy of the kernel per graph, not one per call
    # The variable the layer multiplies by: its kernel, or the bfloat16 copy of it.
    multiplied = layer.kernel if matmul_dtype == "float32" else layer._rounded.kernel
    multiplied.assign(np.zeros(kernel.shape, multiplied.dtype))
    layer.bias.assign(np.full((5,), 0.5, "float32"))
    product = x @ kernel
    if matmul_dtype == "bfloat16":  # TensorFlow's own bfloat16 matmul of the old kernel: how
        # it rounds the product depends on the CPU (AVX512-BF16 rounds to nearest, AVX2 did not)
        product = tf.matmul(tf.cast(x, tf.bfloat16), tf.cast(kernel, tf.bfloat16)).numpy()
    # The old kernel (a constant) with the new bias (still read from the variable).
    np.testing.assert_allclose(function(x).numpy(), np.tanh(product.astype("float32") + 0.5), atol=1e-6, rtol=0)
    assert not np.allclose(layer(x).numpy(), function(x).numpy())  # untraced calls see the new kernel
