"""albert-convert-checkpoint: TF1 names ↔ albert_tf, numerically exact and strict."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from albert_tf.convert.tf1_checkpoint import (
    ConversionError,
    convert_tf1_to_model,
    model_to_tf1_arrays,
    read_tf1_checkpoint,
    write_tf1_checkpoint,
)
from albert_tf.config import AlbertConfig, AlbertConfigError
from albert_tf.convert.tf1_names import is_skipped, name_table
from albert_tf.params import count_parameters
from tests import numpy_albert
from tests.conftest import random_inputs


def random_tf1_arrays(config, kind, rng, with_optimizer_state=True):
    """Random values under the original names (the table is checked against the original
    list in official-albert.md by the spot checks below)."""
    arrays = {}
    shapes = {v.path: tuple(v.shape) for v in _model(config, kind).weights}
    for tf1, ours in name_table(config, kind):
        shape = shapes[ours]
        scale = 0.7 / np.sqrt(shape[0]) if len(shape) == 2 and "embeddings" not in tf1 else 0.3
        value = rng.standard_normal(shape) * scale
        if tf1.endswith("gamma"):
            value = 1.0 + 0.2 * rng.standard_normal(shape)
        arrays[tf1] = value.astype("float32")
        if with_optimizer_state:
            arrays[tf1 + "/adam_m"] = np.zeros(shape, "float32")
            arrays[tf1 + "/adam_v"] = np.zeros(shape, "float32")
    if with_optimizer_state:
        arrays["global_step"] = np.array(1000, "int64")
    return arrays


def _model(config, kind):
    from albert_tf.checkpoints import build_model

    return build_model(config, kind)


def test_table_uses_the_original_names(grouped_config):
    names = [tf1 for tf1, _ in name_table(grouped_config, "pretrainer")]
    for expected in (
        "bert/embeddings/word_embeddings",
        "bert/encoder/embedding_hidden_mapping_in/kernel",
        "bert/encoder/transformer/group_1/inner_group_1/attention_1/self/query/kernel",
        "bert/encoder/transformer/group_0/inner_group_0/ffn_1/intermediate/output/dense/kernel",
        "bert/encoder/transformer/group_1/inner_group_0/LayerNorm_1/gamma",
        "bert/pooler/dense/kernel",
        "cls/predictions/output_bias",
        "cls/seq_relationship/output_weights",
    ):
        assert expected in names
    assert len(names) == len(set(names)) == len(_model(grouped_config, "pretrainer").weights)


def test_converted_model_matches_numpy_on_the_raw_tf1_arrays(grouped_config, tmp_path):
    rng = np.random.default_rng(11)
    arrays = random_tf1_arrays(grouped_config, "pretrainer", rng)
    path = write_tf1_checkpoint(arrays, str(tmp_path / "tf1" / "model.ckpt"))
    read, hub = read_tf1_checkpoint(path)
    assert not hub and set(read) == set(arrays)
    model, summary = convert_tf1_to_model(read, grouped_config, "pretrainer")
    assert summary["mapped"] == len(name_table(grouped_config, "pretrainer"))
    assert summary["skipped"] == 2 * summary["mapped"] + 1
    inputs = random_inputs(rng, grouped_config, batch=2, seq=9)
    positions = np.array([[1, 4, 8], [0, 2, 3]], "int32")
    ours = model.predict_on_batch(dict(inputs, masked_lm_positions=positions))
    encoded = model.backbone.predict_on_batch(inputs)
    reference = numpy_albert.forward(
        {k: v.astype(np.float64) for k, v in read.items()}, grouped_config,
        inputs["input_word_ids"], inputs["input_mask"], inputs["input_type_ids"], positions,
    )
    for key, ours_value in (("sequence_output", encoded["sequence_output"]), ("pooled_output", encoded["pooled_output"]),
                            ("mlm_logits", ours["mlm_logits"]), ("sop_logits", ours["sop_logits"])):
        np.testing.assert_allclose(ours_value, reference[key], atol=1e-5, rtol=0, err_msg=key)


def run_cli(args):
    return subprocess.run([sys.executable, "-m", "albert_tf.convert_checkpoint", *args], capture_output=True, timeout=300)


def test_cli_round_trip_tf1_to_ours_to_tf1_is_identical(grouped_config, tmp_path):
    rng = np.random.default_rng(5)
    arrays = random_tf1_arrays(grouped_config, "pretrainer", rng)
    tf1 = write_tf1_checkpoint(arrays, str(tmp_path / "tf1" / "model.ckpt"))
    config_file = tmp_path / "albert_config.json"
    grouped_config.to_json_file(str(config_file))
    forward = run_cli([f"--tf1_checkpoint={tf1}", f"--albert_config_file={config_file}", "--model=pretrainer",
                       f"--output_dir={tmp_path / 'ours'}"])
    assert forward.returncode == 0, forward.stderr.decode()[-2000:]
    summary = json.loads(forward.stderr.decode().splitlines()[-2])
    assert summary["mapped"] == len(name_table(grouped_config, "pretrainer")) and summary["skipped"] > 0
    back = run_cli(["--to_tf1", f"--checkpoint={tmp_path / 'ours'}", f"--albert_config_file={config_file}",
                    "--model=pretrainer", f"--output_dir={tmp_path / 'back'}"])
    assert back.returncode == 0, back.stderr.decode()[-2000:]
    again, _ = read_tf1_checkpoint(str(tmp_path / "back" / "model.ckpt"))
    expected = {k: v for k, v in arrays.items() if k in dict(name_table(grouped_config, "pretrainer"))}
    assert set(again) == set(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(again[name], value, err_msg=name)
    assert json.loads((tmp_path / "back" / "albert_config.json").read_text())["num_hidden_groups"] == 2


def test_tf_hub_prefix_is_removed(grouped_config, tmp_path):
    arrays = random_tf1_arrays(grouped_config, "backbone", np.random.default_rng(1), with_optimizer_state=False)
    path = write_tf1_checkpoint({"module/" + k: v for k, v in arrays.items()}, str(tmp_path / "hub" / "variables"))
    read, hub = read_tf1_checkpoint(path)
    assert hub and set(read) == set(arrays)
    model, summary = convert_tf1_to_model(read, grouped_config, "backbone")
    np.testing.assert_array_equal(model.embeddings.word_embeddings.numpy(), arrays["bert/embeddings/word_embeddings"])
    assert model_to_tf1_arrays(model, grouped_config, "backbone").keys() == arrays.keys()


def test_strict_errors_list_the_names(grouped_config):
    rng = np.random.default_rng(2)
    arrays = random_tf1_arrays(grouped_config, "pretrainer", rng, with_optimizer_state=False)
    extra = dict(arrays, **{"bert/encoder/unexpected/kernel": np.zeros((2, 2), "float32")})
    with pytest.raises(ConversionError, match=r"no place in a pretrainer \(1\): \['bert/encoder/unexpected/kernel'\]"):
        convert_tf1_to_model(extra, grouped_config, "pretrainer")
    no_heads = {k: v for k, v in arrays.items() if not k.startswith("cls/")}
    with pytest.raises(ConversionError, match=r"checkpoint lacks \(7\): \['cls/predictions/transform/dense/kernel'"):
        convert_tf1_to_model(no_heads, grouped_config, "pretrainer")
    model, summary = convert_tf1_to_model(no_heads, grouped_config, "pretrainer", allow_missing=("cls/",))
    assert summary["left_initialized"] == 7
    with pytest.raises(ConversionError, match="no place in a backbone"):
        convert_tf1_to_model(arrays, grouped_config, "backbone")  # heads have no place in a backbone
    wide = grouped_config.replace(intermediate_size=48)
    with pytest.raises(ConversionError, match=r"shape mismatches \(12\): \['bert/encoder/transformer/group_0/inner_group_0/ffn_1/intermediate/dense/kernel \(24, 40\) vs"):
        convert_tf1_to_model(arrays, wide, "pretrainer")


def test_converted_checkpoints_feed_init_checkpoint(grouped_config, tmp_path):
    from albert_tf.training.pretraining import PretrainingOptions, PretrainingRun

    arrays = random_tf1_arrays(grouped_config, "backbone", np.random.default_rng(3), with_optimizer_state=False)
    model, _ = convert_tf1_to_model(arrays, grouped_config, "backbone")
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "conv" / "ckpt-0"))
    data = tmp_path / "data.tfrecord"
    from albert_tf.data.schema import encode_example

    with tf.io.TFRecordWriter(str(data)) as writer:
        writer.write(encode_example({"input_ids": [2, 7, 3, 8, 3, 0, 0, 0], "input_mask": [1] * 5 + [0] * 3,
                                     "segment_ids": [0, 0, 0, 1, 1, 0, 0, 0], "token_boundary": [1] * 5 + [0] * 3,
                                     "masked_lm_positions": [1, 0], "masked_lm_ids": [7, 0],
                                     "masked_lm_weights": [1.0, 0.0], "next_sentence_labels": [0]}))
    run = PretrainingRun(PretrainingOptions(input_file=str(data), output_dir=str(tmp_path / "out"),
                                            albert_config=grouped_config, init_checkpoint=path, max_seq_length=8,
                                            max_predictions_per_seq=2, train_batch_size=1, num_train_steps=1))
    assert "fresh MLM/SOP heads" in run.restore_or_initialize()
    np.testing.assert_array_equal(run.model.backbone.encoder.block(1, 1).attention.query.kernel.numpy(),
                                  arrays["bert/encoder/transformer/group_1/inner_group_1/attention_1/self/query/kernel"])


def test_fine_tuned_classifier_converts_and_matches_numpy(grouped_config, tmp_path):
    rng = np.random.default_rng(8)
    arrays = random_tf1_arrays(grouped_config, "backbone", rng)
    arrays["output_weights"] = (rng.standard_normal((3, 24)) * 0.5).astype("float32")  # [num_labels, H] as run_classifier
    arrays["output_bias"] = (rng.standard_normal(3) * 0.1).astype("float32")
    path = write_tf1_checkpoint(arrays, str(tmp_path / "cls" / "model.ckpt"))
    read, _ = read_tf1_checkpoint(path)
    model, summary = convert_tf1_to_model(read, grouped_config, "classifier")  # num_labels read off the bias
    assert model.num_labels == 3 and summary["mapped"] == len(name_table(grouped_config, "classifier"))
    inputs = random_inputs(rng, grouped_config, batch=3, seq=7)
    logits = model.predict_on_batch(inputs)["logits"]
    reference = numpy_albert.forward({k: v.astype(np.float64) for k, v in read.items()}, grouped_config,
                                     inputs["input_word_ids"], inputs["input_mask"], inputs["input_type_ids"])
    expected = reference["pooled_output"] @ read["output_weights"].T + read["output_bias"]
    np.testing.assert_allclose(logits, expected, atol=1e-5, rtol=0)
    with pytest.raises(ConversionError, match="shape mismatches"):
        convert_tf1_to_model(read, grouped_config, "classifier", num_labels=2)
    with pytest.raises(ConversionError, match="needs --num_labels"):
        convert_tf1_to_model({k: v for k, v in read.items() if k != "output_bias"}, grouped_config, "classifier")
    back = model_to_tf1_arrays(model, grouped_config, "classifier")
    np.testing.assert_array_equal(back["output_weights"], arrays["output_weights"])


def test_fine_tuned_squad_v1_converts_and_matches_numpy(grouped_config, tmp_path):
    rng = np.random.default_rng(9)
    arrays = random_tf1_arrays(grouped_config, "backbone", rng)
    arrays["cls/squad/output_weights"] = (rng.standard_normal((2, 24)) * 0.5).astype("float32")  # run_squad_v1
    arrays["cls/squad/output_bias"] = (rng.standard_normal(2) * 0.1).astype("float32")
    read, _ = read_tf1_checkpoint(write_tf1_checkpoint(arrays, str(tmp_path / "squad" / "model.ckpt")))
    model, _ = convert_tf1_to_model(read, grouped_config, "squad")
    inputs = random_inputs(rng, grouped_config, batch=3, seq=7)
    outputs = model.predict_on_batch(inputs)
    reference = numpy_albert.forward({k: v.astype(np.float64) for k, v in read.items()}, grouped_config,
                                     inputs["input_word_ids"], inputs["input_mask"], inputs["input_type_ids"])
    expected = reference["sequence_output"] @ read["cls/squad/output_weights"].T + read["cls/squad/output_bias"]
    np.testing.assert_allclose(outputs["start_logits"], expected[..., 0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(outputs["end_logits"], expected[..., 1], atol=1e-5, rtol=0)
    back = model_to_tf1_arrays(model, grouped_config, "squad")
    np.testing.assert_array_equal(back["cls/squad/output_weights"], arrays["cls/squad/output_weights"])
    with pytest.raises(ConversionError, match="lacks"):
        convert_tf1_to_model({k: v for k, v in read.items() if not k.startswith("cls/")}, grouped_config, "squad")


def test_classifier_and_squad_models_serialize(grouped_config, tmp_path):
    import keras

    from albert_tf.models import AlbertBackbone, AlbertClassifier, AlbertSpanExtractor

    model = AlbertClassifier(AlbertBackbone(grouped_config), num_labels=4)
    inputs = random_inputs(np.random.default_rng(0), grouped_config, batch=2, seq=5)
    expected = model.predict_on_batch(inputs)["logits"]
    assert expected.shape == (2, 4)
    assert AlbertClassifier.from_config(model.get_config()).get_config() == model.get_config()
    model.save(str(tmp_path / "classifier.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "classifier.keras"))
    np.testing.assert_array_equal(loaded.predict_on_batch(inputs)["logits"], expected)
    squad_model = AlbertSpanExtractor(AlbertBackbone(grouped_config))
    expected = squad_model.predict_on_batch(inputs)
    assert expected["start_logits"].shape == (2, 5)
    squad_model.save(str(tmp_path / "squad.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "squad.keras")).predict_on_batch(inputs)
    np.testing.assert_array_equal(loaded["end_logits"], expected["end_logits"])


def brightmart_config(**changes):
    """brightmart/albert_zh layout: one shared layer, E→H on the word vectors."""
    return AlbertConfig(vocab_size=97, embedding_size=16, hidden_size=24, num_hidden_layers=3, num_attention_heads=3,
                        intermediate_size=40, max_position_embeddings=32,
                        embedding_projection_position="word_embeddings", **changes)


def test_brightmart_albert_zh_checkpoint_converts_exactly(grouped_config, tmp_path):
    config = brightmart_config()
    rng = np.random.default_rng(21)
    arrays = random_tf1_arrays(config, "pretrainer", rng)
    shapes = {k: v.shape for k, v in arrays.items()}
    # brightmart's names and shapes (official-albert.md §7)
    assert shapes["bert/embeddings/word_embeddings"] == (97, 16)
    assert shapes["bert/embeddings/word_embeddings_2"] == (16, 24)  # no bias
    assert shapes["bert/embeddings/position_embeddings"] == (32, 24) and shapes["bert/embeddings/LayerNorm/gamma"] == (24,)
    assert shapes["bert/encoder/layer_shared/attention/self/query/kernel"] == (24, 24)
    assert shapes["bert/encoder/layer_shared/output/LayerNorm/beta"] == (24,)
    assert shapes["cls/predictions/transform/dense/kernel"] == (24, 24)
    assert not any("embedding_hidden_mapping_in" in k or "group_0" in k for k in arrays)
    path = write_tf1_checkpoint(arrays, str(tmp_path / "zh" / "model.ckpt"))
    read, _ = read_tf1_checkpoint(path)
    official = AlbertConfig.from_dict({k: v for k, v in config.to_dict().items()
                                       if k != "embedding_projection_position"})
    model, summary = convert_tf1_to_model(read, official, "pretrainer")  # the layout is recognised
    assert summary["layout"] == "brightmart" and model.backbone.config.projects_word_embeddings
    assert summary["mapped"] == len(name_table(config, "pretrainer")) == 5 + 1 + 16 + 2 + 7
    assert model.count_params() == count_parameters(config).pretrainer
    inputs = random_inputs(rng, config, batch=2, seq=9)
    positions = np.array([[1, 4, 8], [0, 2, 3]], "int32")
    ours = model.predict_on_batch(dict(inputs, masked_lm_positions=positions))
    encoded = model.backbone.predict_on_batch(inputs)
    reference = numpy_albert.forward({k: v.astype(np.float64) for k, v in read.items()}, config,
                                     inputs["input_word_ids"], inputs["input_mask"], inputs["input_type_ids"], positions)
    for key, value in (("sequence_output", encoded["sequence_output"]), ("pooled_output", encoded["pooled_output"]),
                       ("mlm_logits", ours["mlm_logits"]), ("sop_logits", ours["sop_logits"])):
        np.testing.assert_allclose(value, reference[key], atol=1e-5, rtol=0, err_msg=key)
    back = model_to_tf1_arrays(model, config, "pretrainer")
    assert set(back) == {k for k in arrays if not is_skipped(k)}
    for name, value in back.items():
        np.testing.assert_array_equal(value, arrays[name], err_msg=name)


def test_brightmart_config_round_trip_and_errors(tmp_path):
    config = brightmart_config()
    config.to_json_file(str(tmp_path / "zh.json"))
    assert json.loads((tmp_path / "zh.json").read_text())["embedding_projection_position"] == "word_embeddings"
    assert AlbertConfig.from_json_file(str(tmp_path / "zh.json")) == config
    assert "embedding_projection_position" not in AlbertConfig(vocab_size=10).to_dict()  # official files unchanged
    with pytest.raises(AlbertConfigError, match="embedding_projection_position"):
        AlbertConfig(vocab_size=10, embedding_projection_position="before")
    with pytest.raises(ConversionError, match="has one shared layer; num_hidden_groups=2"):
        convert_tf1_to_model({"bert/embeddings/word_embeddings_2": np.zeros((16, 24), "float32")},
                             brightmart_config(num_hidden_groups=2), "backbone")
