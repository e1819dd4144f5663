"""The Keras model against the independent NumPy forward pass in numpy_albert.py."""

import numpy as np
import pytest

from albert_tf.models import AlbertBackbone, AlbertPretrainer
from tests import numpy_albert
from tests.conftest import random_inputs


def tf1_weights(pretrainer, rng):
    """Gives every variable of `pretrainer` new random values (so that no weight is near
    zero or one by construction) and returns them keyed by the original TF1 names."""
    backbone = pretrainer.backbone
    config = backbone.config
    named = {
        "bert/embeddings/word_embeddings": backbone.embeddings.word_embeddings,
        "bert/embeddings/position_embeddings": backbone.embeddings.position_embeddings,
        "bert/embeddings/token_type_embeddings": backbone.embeddings.token_type_embeddings,
        "bert/embeddings/LayerNorm/gamma": backbone.embeddings.layer_norm.gamma,
        "bert/embeddings/LayerNorm/beta": backbone.embeddings.layer_norm.beta,
        "bert/encoder/embedding_hidden_mapping_in/kernel": backbone.embedding_projection.kernel,
        "bert/encoder/embedding_hidden_mapping_in/bias": backbone.embedding_projection.bias,
        "bert/pooler/dense/kernel": backbone.pooler.kernel,
        "bert/pooler/dense/bias": backbone.pooler.bias,
        "cls/predictions/transform/dense/kernel": pretrainer.mlm_head.transform_dense.kernel,
        "cls/predictions/transform/dense/bias": pretrainer.mlm_head.transform_dense.bias,
        "cls/predictions/transform/LayerNorm/gamma": pretrainer.mlm_head.transform_layer_norm.gamma,
        "cls/predictions/transform/LayerNorm/beta": pretrainer.mlm_head.transform_layer_norm.beta,
        "cls/predictions/output_bias": pretrainer.mlm_head.output_bias,
        "cls/seq_relationship/output_weights": pretrainer.sop_head.output_weights,
        "cls/seq_relationship/output_bias": pretrainer.sop_head.output_bias,
    }
    for group in config.used_groups:
        for inner in range(config.inner_group_num):
            block = backbone.encoder.block(group, inner)
            prefix = f"bert/encoder/transformer/group_{group}/inner_group_{inner}"
            for tf1, layer in [
                ("attention_1/self/query", block.attention.query),
                ("attention_1/self/key", block.attention.key),
                ("attention_1/self/value", block.attention.value),
                ("attention_1/output/dense", block.attention.output_dense),
                ("ffn_1/intermediate/dense", block.ffn_intermediate),
                ("ffn_1/intermediate/output/dense", block.ffn_output),
            ]:
                named[f"{prefix}/{tf1}/kernel"] = layer.kernel
                named[f"{prefix}/{tf1}/bias"] = layer.bias
            for tf1, layer in [("LayerNorm", block.attention_layer_norm), ("LayerNorm_1", block.output_layer_norm)]:
                named[f"{prefix}/{tf1}/gamma"] = layer.gamma
                named[f"{prefix}/{tf1}/beta"] = layer.beta
    assert len({id(v) for v in named.values()}) == len(pretrainer.weights), "every variable is named once"
    values = {}
    for name, variable in named.items():
        shape = tuple(variable.shape)
        if name.endswith("gamma"):
            value = 1.0 + 0.2 * rng.standard_normal(shape)
        elif name.endswith(("bias", "beta")):
            value = 0.1 * rng.standard_normal(shape)
        else:
            value = rng.standard_normal(shape) / np.sqrt(shape[0] if "embeddings" not in name else 1.0) * 0.7
        variable.assign(value.astype("float32"))
        values[name] = value.astype("float32").astype(np.float64)
    return values


@pytest.mark.parametrize("hidden_act", ["gelu", "gelu_exact", "relu"])
def test_pretrainer_matches_numpy_reference(grouped_config, hidden_act):
    config = grouped_config.replace(hidden_act=hidden_act)
    rng = np.random.default_rng(7)
    pretrainer = AlbertPretrainer(AlbertBackbone(config, return_all_layers=True))
    weights = tf1_weights(pretrainer, rng)
    inputs = random_inputs(rng, config, batch=3, seq=11)
    positions = rng.integers(0, 11, size=(3, 4)).astype("int32")

    ours = pretrainer.predict_on_batch(dict(inputs, masked_lm_positions=positions))
    encoded = pretrainer.backbone.predict_on_batch(inputs)
    ref = numpy_albert.forward(
        weights, config, inputs["input_word_ids"], inputs["input_mask"], inputs["input_type_ids"], positions
    )

    assert len(encoded["encoder_outputs"]) == len(ref["all_layers"]) == 12  # L × inner_group_num
    for ours_layer, ref_layer in zip(encoded["encoder_outputs"], ref["all_layers"]):
        np.testing.assert_allclose(ours_layer, ref_layer, atol=1e-5, rtol=0)
    np.testing.assert_allclose(encoded["sequence_output"], ref["sequence_output"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(encoded["pooled_output"], ref["pooled_output"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(ours["mlm_logits"], ref["mlm_logits"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(ours["sop_logits"], ref["sop_logits"], atol=1e-5, rtol=0)
    # The comparison is meaningful: outputs vary across positions and are not saturated.
    assert np.std(ref["mlm_logits"]) > 0.5 and np.std(ref["sequence_output"]) > 0.5
