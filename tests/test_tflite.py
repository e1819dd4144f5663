"""albert-export --format=tflite and serving model.tflite with --prefer_tflite_model."""

import concurrent.futures
import json
import os
import subprocess
import sys
import warnings

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2

from albert_tf.checkpoints import build_model
from albert_tf.export import tflite, warmup
from albert_tf.export.exporter import ExportError, ExportOptions, export_saved_model
from albert_tf.serving.client import AlbertClient
from albert_tf.serving.manager import ModelManager, single_model_config
from albert_tf.serving.servables import LoadedTfLiteVersion
from albert_tf.serving.tensors import ServingError
from albert_tf.text import SentencePieceTokenizer
from tests.conftest import random_inputs
from tests.model_server import BACKENDS, ServerProcess
from tests.serving_helpers import Code, predict_at_once_then_stop, predict_request, rpc_error, stubs, write_config
from tests.test_export import randomize, save_checkpoint, small_config


@pytest.fixture(scope="module")
def lite(tmp_path_factory, spm_model_file):
    """TFLite exports of a backbone (with the tokenizer file), a 3-label classifier
    (without) and the backbone with --precision=dynamic_int8 ("lite_int8"), and a
    SavedModel export of the backbone, under one base directory."""
    root = tmp_path_factory.mktemp("tflite")
    config = small_config(SentencePieceTokenizer(spm_model_file).vocab_size)
    made = {"root": root, "base": root / "models", "config": config, "config_path": root / "albert_config.json"}
    config.to_json_file(str(made["config_path"]))
    for seed, (name, kind, labels) in enumerate((("lite", "backbone", None), ("lite_cls", "classifier", 3))):
        model = build_model(config, kind, num_labels=labels)
        randomize(model, seed)
        save_checkpoint(model, root / "ckpt" / name)
        made[name] = model
        made[f"{name}_path"] = export_saved_model(ExportOptions(
            checkpoint=str(root / "ckpt" / name), albert_config=config, export_base=str(made["base"]), model_name=name,
            model=kind, format="tflite", spm_model_file=spm_model_file if kind == "backbone" else None),
            log=lambda _: None)
    made["lite_int8_path"] = export_saved_model(ExportOptions(
        checkpoint=str(root / "ckpt" / "lite"), albert_config=config, export_base=str(made["base"]),
        model_name="lite_int8", model="backbone", format="tflite", precision="dynamic_int8"), log=lambda _: None)
    export_saved_model(ExportOptions(checkpoint=str(root / "ckpt" / "lite"), albert_config=config,
                                     export_base=str(made["base"]), model_name="saved", model="backbone",
                                     spm_model_file=spm_model_file), log=lambda _: None)
    return made


def padded_inputs(config, batch, seq, seed):
    """Random ids whose last row is padded from position seq // 2 on (batch > 1)."""
    inputs = random_inputs(np.random.default_rng(seed), config, batch, seq)
    if batch > 1:
        inputs["input_mask"][-1, seq // 2:] = 0
        inputs["input_word_ids"][-1, seq // 2:] = 0
    return {k: np.asarray(v, np.int32) for k, v in inputs.items()}


def test_tflite_version_layout_and_manifest(lite, spm_model_file):
    path = lite["lite_path"]
    assert path == str(lite["base"] / "lite" / "1")
    assert sorted(os.listdir(path)) == ["assets.extra", "model.tflite"]  # no SavedModel: TF Serving's TFLite layout
    extra = sorted(os.listdir(os.path.join(path, "assets.extra")))
    assert extra == sorted(["albert_config.json", "albert_export.json", os.path.basename(spm_model_file),
                            warmup.WARMUP_FILE])
    manifest = json.load(open(os.path.join(path, "assets.extra", "albert_export.json")))
    assert manifest["format"] == "tflite" and manifest["signatures"] == ["serving_default"]
    assert manifest["outputs"] == ["pooled_output", "sequence_output"]
    assert manifest["max_abs_difference_to_keras"] < 1e-4
    classifier = json.load(open(os.path.join(lite["lite_cls_path"], "assets.extra", "albert_export.json")))
    assert classifier["outputs"] == ["label_id", "logits", "probabilities"] and classifier["tokenizer"] is None
    # Warmup records are token-id requests to serving_default, the only signature TF Serving gives a TFLite model.
    logs = warmup.read_warmup_file(os.path.join(path, "assets.extra", warmup.WARMUP_FILE))
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == ["serving_default"] * 2
    assert sorted(logs[0].predict_log.request.inputs) == ["input_mask", "input_type_ids", "input_word_ids"]


@pytest.mark.parametrize("batch,seq", [(1, 3), (4, 17), (2, 64)])
def test_tflite_outputs_equal_keras_at_any_shape(lite, batch, seq):
    """One interpreter, resized from shape to shape, against the Keras models."""
    config = lite["config"]
    runners = {name: tflite.version_runner(lite[f"{name}_path"], 2) for name in ("lite", "lite_cls")}
    for seed in range(2):  # the second call at the same shape reuses the allocation
        inputs = padded_inputs(config, batch, seq, seed)
        got = runners["lite"](**inputs)
        expected = lite["lite"].predict_on_batch(inputs)
        for key in ("pooled_output", "sequence_output"):
            np.testing.assert_allclose(got[key], expected[key], atol=1e-5, rtol=0, err_msg=key)
        got = runners["lite_cls"](**inputs)
        logits = lite["lite_cls"].predict_on_batch(inputs)["logits"]
        np.testing.assert_allclose(got["logits"], logits, atol=1e-5, rtol=0)
        np.testing.assert_array_equal(got["label_id"], np.argmax(logits, axis=-1))
        np.testing.assert_allclose(got["probabilities"].sum(axis=-1), 1.0, atol=1e-5)


def test_dynamic_int8_version_has_int8_weights_and_stays_within_cosine_of_keras(lite):
    """--precision=dynamic_int8: the weight matrices are int8 (the file is smaller), the
    outputs differ from float32 (so it is not float32 under another name) but every row
    keeps a cosine similarity of at least 0.999 to the float32 Keras model, at any shape."""
    manifest = json.load(open(os.path.join(lite["lite_int8_path"], "assets.extra", "albert_export.json")))
    assert manifest["precision"] == "dynamic_int8" and manifest["min_cosine_to_keras"] >= tflite.MIN_COSINE
    sizes = {name: os.path.getsize(os.path.join(lite[f"{name}_path"], tflite.TFLITE_FILE))
             for name in ("lite", "lite_int8")}
    assert sizes["lite_int8"] < 0.75 * sizes["lite"], sizes
    with open(os.path.join(lite["lite_int8_path"], tflite.TFLITE_FILE), "rb") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tf.lite.Interpreter's deprecation notice
        details = tf.lite.Interpreter(model_content=f.read()).get_tensor_details()
    int8_weights = [t for t in details if t["dtype"] == np.int8 and len(t["shape"]) == 2]
    assert len(int8_weights) >= 6, [t["name"] for t in int8_weights]  # the shared layers' 6 matrices at least
    runner = tflite.version_runner(lite["lite_int8_path"], 2)
    for batch, seq in ((1, 3), (4, 17), (2, 64)):
        inputs = padded_inputs(lite["config"], batch, seq, 7)
        got = runner(**inputs)
        expected = lite["lite"].predict_on_batch(inputs)
        assert np.max(np.abs(got["pooled_output"] - expected["pooled_output"])) > 1e-4
        assert np.min(tflite.row_cosines(got["pooled_output"], expected["pooled_output"])) >= 0.999
        tokens = inputs["input_mask"].astype(bool)  # each real token's vector
        assert np.min(tflite.row_cosines(got["sequence_output"][tokens], expected["sequence_output"][tokens])) >= 0.99


def test_row_cosines_against_a_hand_computed_value():
    got = np.array([[1.0, 0.0], [3.0, 4.0]])
    expected = np.array([[1.0, 1.0], [3.0, 4.0]])
    np.testing.assert_allclose(tflite.row_cosines(got, expected), [1 / np.sqrt(2), 1.0])


def test_tflite_export_refuses_saved_model_only_flags_and_leaves_nothing(lite):
    common = dict(checkpoint=str(lite["root"] / "ckpt" / "lite"), albert_config=lite["config"],
                  export_base=str(lite["root"] / "refused"), format="tflite")
    for overrides, named in (({"xla": True}, "--xla"), ({"precision": "bfloat16"}, "--precision=bfloat16"),
                             ({"xla_short_lengths": (8,)}, "--xla_short_lengths"),
                             ({"bucket_lengths": (16,)}, "--bucket_lengths"), ({"max_seq_length": 32}, "--max_seq_length")):
        with pytest.raises(ExportError, match=f"--format=tflite takes token ids.*{named}"):
            export_saved_model(ExportOptions(**common, **overrides), log=lambda _: None)
    with pytest.raises(ExportError, match="--format=onnx: expected one of"):
        export_saved_model(ExportOptions(**dict(common, format="onnx")), log=lambda _: None)
    with pytest.raises(ExportError, match="--precision=dynamic_int8 is a TensorFlow Lite quantization: it needs "
                                          "--format=tflite"):
        export_saved_model(ExportOptions(**dict(common, format="saved_model", precision="dynamic_int8")),
                           log=lambda _: None)
    with pytest.raises(ExportError, match="--precision=int4: expected one of"):
        export_saved_model(ExportOptions(**common, precision="int4"), log=lambda _: None)
    assert not os.path.exists(lite["root"] / "refused" / "albert")


def test_a_tflite_model_that_disagrees_with_keras_is_not_published(lite, tmp_path, monkeypatch):
    """The export's check against Keras fails (its tolerance made impossible): ExportError
    naming the difference, and no version or staging directory is left."""
    monkeypatch.setattr(tflite, "MAX_ABS_DIFFERENCE", -1.0)
    options = ExportOptions(checkpoint=str(lite["root"] / "ckpt" / "lite"), albert_config=lite["config"],
                            export_base=str(tmp_path), format="tflite")
    with pytest.raises(ExportError, match="outputs differ from the Keras model's by .* \\(allowed -1.0\\)"):
        export_saved_model(options, log=lambda _: None)
    assert os.listdir(tmp_path / "albert") == []


def test_a_dynamic_int8_model_below_the_cosine_bound_is_not_published(lite, tmp_path, monkeypatch):
    """The int8 check (its bound made impossible) names the output, the similarity and
    the fallback; nothing is left behind."""
    monkeypatch.setattr(tflite, "MIN_COSINE", 1.01)
    options = ExportOptions(checkpoint=str(lite["root"] / "ckpt" / "lite_cls"), albert_config=lite["config"],
                            export_base=str(tmp_path), model="classifier", format="tflite", precision="dynamic_int8")
    with pytest.raises(ExportError, match="dynamic_int8 TFLite model's (logits|probabilities) has cosine similarity "
                                          "0\.9.* \(required at least 1.01\); export with --precision=float32"):
        export_saved_model(options, log=lambda _: None)
    assert os.listdir(tmp_path / "albert") == []


def test_cli_exports_a_tflite_version_and_names_refused_flags(lite, tmp_path):
    base = tmp_path / "export"
    command = [sys.executable, "-c", "from albert_tf.export_savedmodel import run; run()",
               f"--checkpoint={lite['root'] / 'ckpt' / 'lite_cls'}", f"--albert_config_file={lite['config_path']}",
               f"--export_base={base}", "--model=classifier", "--format=tflite"]
    done = subprocess.run(command + ["--xla"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "albert-export: --format=tflite takes token ids" in done.stderr, done.stderr[-2000:]
    done = subprocess.run(command + ["--precision=dynamic_int8"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(base / "albert" / "1")
    assert "exported classifier as dynamic_int8 TensorFlow Lite" in done.stderr
    assert "serve it with --prefer_tflite_model=true" in done.stderr
    manifest = json.load(open(base / "albert" / "1" / "assets.extra" / "albert_export.json"))
    assert manifest["precision"] == "dynamic_int8" and manifest["checkpoint"].endswith("ckpt-1")


def test_tflite_version_needs_prefer_tflite_model(lite):
    """Without the flag the version is a directory with no SavedModel: the load fails
    with TF Serving's NOT_FOUND message and the flag to give."""
    manager = ModelManager(single_model_config("lite", str(lite["base"] / "lite")), max_load_retries=0,
                           log=lambda _: None)
    with pytest.raises(ServingError, match="Could not find SavedModel .pb.*start the server with --prefer_tflite_model"):
        manager.start()
    manager.stop()


def test_manager_logs_a_tflite_versions_precision(lite):
    logs = []
    manager = ModelManager(single_model_config("lite_int8", str(lite["base"] / "lite_int8")), max_load_retries=0,
                           prefer_tflite_model=True, log=logs.append)
    try:
        manager.start()
    finally:
        manager.stop()
    assert any("model lite_int8: version 1 available (TFLite dynamic_int8, 2 warmup records" in line for line in logs), logs


def test_tflite_servable_checks_rank_and_ids_and_serves_concurrent_requests(lite):
    version = LoadedTfLiteVersion("lite", 1, lite["lite_path"], interpreters=2, threads=1)
    signature = version.signature_defs["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    assert [d.size for d in signature.inputs["input_word_ids"].tensor_shape.dim] == [-1, -1]
    inputs = padded_inputs(lite["config"], 2, 9, 0)
    with pytest.raises(ServingError, match="input_word_ids must have rank 2") as caught:
        version.run("serving_default", dict(inputs, input_word_ids=inputs["input_word_ids"][0]))
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(ServingError, match="TFLite interpreter") as caught:
        version.run("serving_default", dict(inputs, input_word_ids=inputs["input_word_ids"] + 10_000))
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    shapes = [(1, 5), (3, 11), (2, 9), (1, 30)] * 3
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda s: version.run("serving_default", padded_inputs(lite["config"], *s, 1)), shapes))
    for (batch, seq), got in zip(shapes, results):
        expected = lite["lite"].predict_on_batch(padded_inputs(lite["config"], batch, seq, 1))
        np.testing.assert_allclose(got["pooled_output"], expected["pooled_output"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_prefer_tflite_model_serves_the_tflite_versions_and_saved_models_beside_them(lite, backend):
    """--prefer_tflite_model (both servers): versions with model.tflite answer on
    serving_default with token ids (after replaying their warmup), through the batcher
    too; a SavedModel beside them keeps all its signatures."""
    config = write_config(lite["root"] / f"models-{backend}.config", lite["base"],
                          names=("lite", "lite_cls", "lite_int8", "saved"))
    process = ServerProcess(backend, [f"--model_config_file={config}", "--prefer_tflite_model=true",
                                      "--max_num_load_retries=0", "--enable_batching"])
    predict, _, channel = stubs(process.address)
    try:
        for batch, seq in ((1, 12), (3, 20), (1, 12)):  # a resize, and back
            inputs = padded_inputs(lite["config"], batch, seq, seq)
            response = predict.Predict(predict_request(inputs, model="lite"), timeout=60)
            assert response.model_spec.signature_name == "serving_default" and response.model_spec.version.value == 1
            expected = lite["lite"].predict_on_batch(inputs)
            pooled = np.array(response.outputs["pooled_output"].float_val).reshape(batch, -1)
            np.testing.assert_allclose(pooled, expected["pooled_output"], atol=1e-5, rtol=0)
            response = predict.Predict(predict_request(inputs, model="lite_cls", output_filter=["label_id"]), timeout=60)
            assert list(response.outputs) == ["label_id"]
            np.testing.assert_array_equal(response.outputs["label_id"].int_val,
                                          np.argmax(lite["lite_cls"].predict_on_batch(inputs)["logits"], axis=-1))
        # The int8 version answers as its own interpreter does (not as float32).
        response = predict.Predict(predict_request(inputs, model="lite_int8"), timeout=60)
        pooled = np.array(response.outputs["pooled_output"].float_val).reshape(batch, -1)
        own = tflite.version_runner(lite["lite_int8_path"], 2)(**inputs)["pooled_output"]
        np.testing.assert_allclose(pooled, own, atol=1e-5)
        with AlbertClient(process.address, model_name="lite") as client:  # the Python client's token-id call
            got = client.predict_inputs(inputs, output_filter=["sequence_output"])
        np.testing.assert_allclose(got["sequence_output"], expected["sequence_output"], atol=1e-5, rtol=0)
        texts = {"text": np.array(["hello"], object)}
        assert rpc_error(predict.Predict, predict_request(texts, model="lite"), timeout=60)[0] == Code.INVALID_ARGUMENT
        assert rpc_error(predict.Predict, predict_request(inputs, model="lite", signature="encode"),
                         timeout=60)[0] == Code.FAILED_PRECONDITION
        saved = predict.Predict(predict_request(texts, model="saved"), timeout=60)  # raw text: the SavedModel
        assert saved.outputs["pooled_output"].tensor_shape.dim[0].size == 1
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = "lite"
        signatures = get_model_metadata_pb2.SignatureDefMap()
        predict.GetModelMetadata(request, timeout=60).metadata["signature_def"].Unpack(signatures)
        assert list(signatures.signature_def) == ["serving_default"]
        assert sorted(signatures.signature_def["serving_default"].inputs) == \
            ["input_mask", "input_type_ids", "input_word_ids"]
    finally:
        channel.close()
        process.stop()


def test_tflite_version_batches_padded_token_ids_under_16_clients(lite, tmp_path):
    """albert-serve with pad_variable_length_inputs (embedded only: TF Serving pads
    input_mask with 1): token-id requests of different lengths and batch sizes merge into
    batches, and every answer equals the Keras model on the request alone."""
    params = tmp_path / "batching.txt"
    params.write_text("max_batch_size { value: 64 }\nbatch_timeout_micros { value: 20000 }\n"
                      "num_batch_threads { value: 1 }\nmax_enqueued_batches { value: 16 }\n"
                      "pad_variable_length_inputs: true\n")
    process = ServerProcess("embedded", [f"--model_base_path={lite['base'] / 'lite'}", "--model_name=lite",
                                         "--prefer_tflite_model=true", "--enable_batching",
                                         f"--batching_parameters_file={params}"])
    rng = np.random.default_rng(0)
    jobs = [padded_inputs(lite["config"], int(rng.integers(1, 4)), int(rng.integers(3, 40)), i) for i in range(48)]
    results, (batches, requests) = predict_at_once_then_stop(process, [predict_request(j, model="lite") for j in jobs])
    for inputs, got in zip(jobs, results):
        expected = lite["lite"].predict_on_batch(inputs)
        assert got["sequence_output"].shape == expected["sequence_output"].shape  # the padding cut back off
        for key in ("pooled_output", "sequence_output"):
            np.testing.assert_allclose(got[key], expected[key], atol=2e-5, rtol=0, err_msg=key)
    assert requests == len(jobs) + 2  # and the 2 warmup records
    assert batches <= requests - 16, (batches, requests)  # requests were merged
