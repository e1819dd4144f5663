"""albert-export: SavedModels for TF Serving, checked against the in-process Keras models."""

import json
import os
import subprocess
import sys
import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from albert_tf import cpu_features
from albert_tf.checkpoints import build_model
from albert_tf.config import AlbertConfig
from albert_tf.export import layout, signatures, warmup
from albert_tf.export.exporter import (
    ExportError,
    ExportOptions,
    check_serving_ops,
    export_saved_model,
    graph_op_types,
)
from albert_tf.serving.client import AlbertClient
from albert_tf.serving.manager import ModelManager, single_model_config
from albert_tf.serving.process import ModelServerProcess
from albert_tf.serving.servables import LoadedVersion
from albert_tf.serving.tensors import ServingError
from albert_tf.text import SentencePieceTokenizer, WordPieceTokenizer, pack_pair
from albert_tf.text.layers import AlbertPacker
from tests.conftest import HARD_CASES, random_inputs

TEXTS = ["Hello world.", "ALBERT shares parameters across its layers, 1,000 times over!", "a", "Café Müller",
         "東京 and Paris"]
PAIRS = ["What is shared?", "", "Nothing at all.", "b", "x y z"]


def small_config(vocab_size):
    """G=2, inner=2, L=4 over the fixture vocabulary."""
    return AlbertConfig(vocab_size=vocab_size, embedding_size=16, hidden_size=32, num_hidden_layers=4,
                        num_hidden_groups=2, inner_group_num=2, num_attention_heads=4, intermediate_size=64,
                        max_position_embeddings=64)


def save_checkpoint(model, directory):
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(directory), 1, checkpoint_name="ckpt")
    return manager.save()


def randomize(model, seed):
    """Non-trivial weights everywhere (fresh biases and LayerNorms are 0 and 1)."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(rng.normal(0, 0.2, size=variable.shape).astype("float32") + (1.0 if "gamma" in variable.path else 0.0))


@pytest.fixture(scope="module")
def spm_setup(tmp_path_factory, spm_model_file):
    """A pretrainer checkpoint over the SentencePiece fixture, and its export (version 1)."""
    root = tmp_path_factory.mktemp("export_spm")
    config = small_config(SentencePieceTokenizer(spm_model_file).vocab_size)
    model = build_model(config, "pretrainer")
    randomize(model, 0)
    prefix = save_checkpoint(model, root / "ckpt")
    path = export_saved_model(ExportOptions(checkpoint=str(root / "ckpt"), albert_config=config,
                                            export_base=str(root / "export"), model="pretrainer",
                                            spm_model_file=spm_model_file, max_seq_length=48), log=lambda _: None)
    return {"root": root, "config": config, "model": model, "prefix": prefix, "path": path,
            "tokenizer": SentencePieceTokenizer(spm_model_file), "spm_model_file": spm_model_file}


def keras_text_inputs(tokenizer, texts, texts_b, max_seq_length):
    """The Python tokenizer + packing, padded to the longest row: the independent reference."""
    rows = [pack_pair(tokenizer.encode(a), tokenizer.encode(b) if b is not None else None, max_seq_length,
                      tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id, pad=False)
            for a, b in zip(texts, texts_b)]
    longest = max(len(r["input_word_ids"]) for r in rows)
    return {key: np.array([r[key] + [0] * (longest - len(r[key])) for r in rows], "int32")
            for key in ("input_word_ids", "input_mask", "input_type_ids")}


def run_signature(loaded, name, **inputs):
    return {k: v.numpy() for k, v in loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def test_export_layout_and_manifest(spm_setup):
    path = spm_setup["path"]
    assert path == str(spm_setup["root"] / "export" / "albert" / "1")
    for relative in ("saved_model.pb", "variables/variables.index", "assets.extra/tf_serving_warmup_requests", "assets.extra/albert_config.json",
                     "assets.extra/albert_export.json"):
        assert os.path.exists(os.path.join(path, relative)), relative
    assert os.listdir(os.path.join(path, "assets")) == ["wiki.model"]
    assert AlbertConfig.from_json_file(os.path.join(path, "assets.extra", "albert_config.json")) == spm_setup["config"]
    assert os.listdir(os.path.dirname(path)) == ["1"]  # no staging directory left behind


def test_saving_traces_each_signature_and_each_model_head_once(spm_setup, tmp_path):
    """tf.saved_model.save retraces functions traced outside its save context, and lists
    tf.function attributes as functions of their own; neither may cost a second trace."""
    from albert_tf.export.signatures import AlbertServingModule
    from albert_tf.text.layers import SentencePieceTokenizerLayer

    tokenizer = SentencePieceTokenizerLayer.from_file(spm_setup["spm_model_file"])
    packer = AlbertPacker(48, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id, pad_to_sequence_length=False)
    module = AlbertServingModule(spm_setup["model"], "pretrainer", tokenizer, packer, xla_short_lengths=(8,))
    options = tf.saved_model.SaveOptions()
    functions = module.signatures(options)
    tf.saved_model.save(module, str(tmp_path / "saved"), signatures=functions, options=options)
    assert {name: f.experimental_get_tracing_count() for name, f in functions.items()} == dict.fromkeys(functions, 1)
    # The graph model once per head (encoder, mlm, sop); its XLA copy for encoder and sop.
    assert module._inner.run_model.experimental_get_tracing_count() == 3
    assert module._inner.run_short.experimental_get_tracing_count() == 2


def test_raw_text_signature_equals_keras_on_the_python_tokenization(spm_setup):
    loaded = tf.saved_model.load(spm_setup["path"])
    backbone = spm_setup["model"].backbone
    tokenizer = spm_setup["tokenizer"]
    cases = [
        (TEXTS[:1], [""]),  # batch 1, text_b's default value
        (TEXTS, [""]),  # one text_b broadcast to the batch
        (TEXTS, PAIRS),  # pairs; an empty text_b packs a single segment
        (HARD_CASES[:7], HARD_CASES[7:14]),
        (["word " * 80], [""]),  # truncated to --max_seq_length=48
    ]
    with pytest.raises(tf.errors.InvalidArgumentError, match="text_b must hold 1 string or as many as text"):
        run_signature(loaded, "serving_default", text=np.array(TEXTS, object), text_b=np.array(PAIRS[:2], object))
    for texts, texts_b in cases:
        got = run_signature(loaded, "serving_default", text=np.array(texts, object), text_b=np.array(texts_b, object))
        pairs = texts_b if len(texts_b) == len(texts) else texts_b * len(texts)
        inputs = keras_text_inputs(tokenizer, texts, [b or None for b in pairs], 48)
        expected = backbone.predict_on_batch(inputs)
        np.testing.assert_array_equal(got["input_mask"], inputs["input_mask"])
        assert got["sequence_output"].shape[1] == inputs["input_word_ids"].shape[1] <= 48  # the longest row, no more
        for key in ("pooled_output", "sequence_output"):
            np.testing.assert_allclose(got[key], expected[key], atol=1e-5, rtol=0, err_msg=key)


@pytest.mark.parametrize("batch,seq", [(1, 3), (4, 17), (2, 64)])
def test_tokenized_signatures_equal_keras(spm_setup, batch, seq):
    loaded = tf.saved_model.load(spm_setup["path"])
    model, config = spm_setup["model"], spm_setup["config"]
    inputs = random_inputs(np.random.default_rng(seq), config, batch=batch, seq=seq)
    positions = np.random.default_rng(1).integers(0, seq, size=(batch, 3)).astype("int32")
    expected = model.predict_on_batch(dict(inputs, masked_lm_positions=positions))
    encoded = model.backbone.predict_on_batch(inputs)
    got = run_signature(loaded, "encode", **inputs)
    for key in ("pooled_output", "sequence_output"):
        np.testing.assert_allclose(got[key], encoded[key], atol=1e-5, rtol=0, err_msg=key)
    mlm = run_signature(loaded, "mlm", **inputs, masked_lm_positions=positions)["mlm_logits"]
    np.testing.assert_allclose(mlm, expected["mlm_logits"], atol=1e-5, rtol=0)
    sop = run_signature(loaded, "sop", **inputs)["sop_logits"]
    np.testing.assert_allclose(sop, expected["sop_logits"], atol=1e-5, rtol=0)
    examples = warmup._serialized_examples(inputs)
    from_examples = run_signature(loaded, "serve_examples", examples=examples)
    np.testing.assert_allclose(from_examples["pooled_output"], encoded["pooled_output"], atol=1e-5, rtol=0)


class TF1Session:
    """A SavedModel in the TF1 session loader, run as TF Serving runs it (defaults applied)."""

    def __init__(self, path):
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            self.meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], path)

    def run(self, signature_name, inputs):
        signature = self.meta_graph.signature_def[signature_name]
        feed = {signature.inputs[k].name: v for k, v in inputs.items()}
        for key, default in signature.defaults.items():
            feed.setdefault(signature.inputs[key].name, tf.make_ndarray(default))
        return self.session.run({k: v.name for k, v in signature.outputs.items()}, feed)


def test_tf1_session_loader_runs_every_warmup_record_like_tf_serving(spm_setup):
    path = spm_setup["path"]
    logs = warmup.read_warmup_file(os.path.join(path, "assets.extra", warmup.WARMUP_FILE))
    assert 0 < len(logs) <= warmup.MAX_WARMUP_RECORDS
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(open(os.path.join(path, "saved_model.pb"), "rb").read())
    signature_defs = proto.meta_graphs[0].signature_def
    loaded = tf.saved_model.load(path)
    tf1_session = TF1Session(path)
    seen = set()
    for log in logs:
        assert log.WhichOneof("log_type") == "predict_log"
        request = log.predict_log.request
        name = request.model_spec.signature_name
        seen.add(name)
        assert request.model_spec.name == "albert"
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        for key, tensor in request.inputs.items():  # TF Serving rejects a dtype mismatch
            assert tensor.dtype == signature_defs[name].inputs[key].dtype, (name, key)
        tf1 = tf1_session.run(name, inputs)
        tf2 = run_signature(loaded, name, **inputs)
        assert set(tf1) == set(tf2) == set(signature_defs[name].outputs)
        for key in tf1:
            np.testing.assert_allclose(tf1[key], tf2[key], atol=1e-5, rtol=0, err_msg=f"{name}/{key}")
    assert seen == {"serving_default", "encode", "serve_examples", "mlm", "sop"}
    # text_b has a SignatureDef default, so TF Serving accepts requests with `text` alone.
    only_text = tf1_session.run("serving_default", {"text": np.array([b"Hello world."])})
    with_b = run_signature(loaded, "serving_default", text=np.array(["Hello world."], object),
                           text_b=np.array([""], object))
    np.testing.assert_allclose(only_text["pooled_output"], with_b["pooled_output"], atol=1e-6)


def test_graph_holds_only_ops_tf_serving_contains(spm_setup, tmp_path):
    ops = graph_op_types(spm_setup["path"])
    assert {"SentencepieceTokenizeOp", "NormalizeUTF8"} <= ops
    check_serving_ops(spm_setup["path"])
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(open(os.path.join(spm_setup["path"], "saved_model.pb"), "rb").read())
    proto.meta_graphs[0].graph_def.node.add(name="custom", op="MyUnlinkedOp")
    (tmp_path / "saved_model.pb").write_bytes(proto.SerializeToString())
    with pytest.raises(ExportError, match=r"does not contain: \['MyUnlinkedOp'\]"):
        check_serving_ops(str(tmp_path))


@pytest.mark.parametrize("num_labels", [3, 1])
def test_classifier_export(tmp_path, spm_model_file, num_labels):
    config = small_config(SentencePieceTokenizer(spm_model_file).vocab_size)
    model = build_model(config, "classifier", num_labels=num_labels)
    randomize(model, 1)
    save_checkpoint(model, tmp_path / "ckpt")
    path = export_saved_model(ExportOptions(checkpoint=str(tmp_path / "ckpt"), albert_config=config,
                                            export_base=str(tmp_path / "export"), model="classifier",
                                            spm_model_file=spm_model_file), log=lambda _: None)
    loaded = tf.saved_model.load(path)
    got = run_signature(loaded, "serving_default", text=np.array(TEXTS, object), text_b=np.array(PAIRS, object))
    inputs = keras_text_inputs(SentencePieceTokenizer(spm_model_file), TEXTS, [b or None for b in PAIRS], 64)
    logits = model.predict_on_batch(inputs)["logits"]
    examples = warmup._serialized_examples(inputs)
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(open(os.path.join(path, "saved_model.pb"), "rb").read())
    signature_defs = proto.meta_graphs[0].signature_def
    tf1_session = TF1Session(path)
    if num_labels > 1:
        assert set(got) == {"logits", "probabilities", "label_id"}
        np.testing.assert_allclose(got["logits"], logits, atol=1e-5, rtol=0)
        np.testing.assert_allclose(got["probabilities"], tf.nn.softmax(logits).numpy(), atol=1e-6)
        np.testing.assert_array_equal(got["label_id"], logits.argmax(-1))
        from_examples = run_signature(loaded, "serve_examples", examples=examples)
        np.testing.assert_array_equal(from_examples["predictions"], logits.argmax(-1))
        assert signature_defs["classify"].method_name == "tensorflow/serving/classify"
        classified = tf1_session.run("classify", {"inputs": examples})
        np.testing.assert_allclose(classified["scores"], tf.nn.softmax(logits).numpy(), atol=1e-6)
        assert classified["classes"][0].tolist() == [b"0", b"1", b"2"]
    else:
        assert set(got) == {"logits", "predictions"}
        np.testing.assert_allclose(got["predictions"], logits[:, 0], atol=1e-5, rtol=0)
        assert "classify" not in signature_defs and signature_defs["regress"].method_name == "tensorflow/serving/regress"
        regressed = tf1_session.run("regress", {"inputs": examples})
        np.testing.assert_allclose(regressed["outputs"], logits[:, 0], atol=1e-5, rtol=0)
    kinds = {log.WhichOneof("log_type") for log in warmup.read_warmup_file(
        os.path.join(path, "assets.extra", warmup.WARMUP_FILE))}
    assert kinds == {"predict_log", "classify_log" if num_labels > 1 else "regress_log"}


def test_wordpiece_backbone_export_from_a_pretrainer_checkpoint(tmp_path, wordpiece_vocab_file):
    tokenizer = WordPieceTokenizer(wordpiece_vocab_file)
    config = small_config(tokenizer.vocab_size)
    model = build_model(config, "pretrainer")
    randomize(model, 2)
    save_checkpoint(model, tmp_path / "ckpt")
    path = export_saved_model(ExportOptions(checkpoint=str(tmp_path / "ckpt"), albert_config=config,
                                            export_base=str(tmp_path / "export"), model="backbone",
                                            vocab_file=wordpiece_vocab_file, version=7), log=lambda _: None)
    assert path.endswith(os.path.join("albert", "7"))
    loaded = tf.saved_model.load(path)
    assert set(loaded.signatures) == {"serving_default", "encode", "serve_examples"}
    texts = ["東京は日本の首都です。", "Hello, World!", "naïve café"]
    got = run_signature(loaded, "serving_default", text=np.array(texts, object), text_b=np.array([""], object))
    expected = model.backbone.predict_on_batch(keras_text_inputs(tokenizer, texts, [None] * 3, 64))
    np.testing.assert_allclose(got["pooled_output"], expected["pooled_output"], atol=1e-5, rtol=0)


@pytest.mark.slow
def test_xla_and_bfloat16_exports(spm_setup, monkeypatch):
    root, config = spm_setup["root"], spm_setup["config"]
    inputs = random_inputs(np.random.default_rng(3), config, batch=3, seq=20)
    reference = spm_setup["model"].backbone.predict_on_batch(inputs)["pooled_output"]
    monkeypatch.setattr(cpu_features, "native_bfloat16", lambda: False)  # as on an AVX2-only CPU
    for xla, precision, tolerance in ((True, "float32", 1e-5), (False, "bfloat16", None)):
        logs = []
        path = export_saved_model(ExportOptions(checkpoint=str(root / "ckpt"), albert_config=config,
                                                export_base=str(root / "export_variants"), model="backbone",
                                                spm_model_file=spm_setup["spm_model_file"], xla=xla,
                                                precision=precision), log=logs.append)
        warned = [line for line in logs if "neither AVX512-BF16 nor AMX" in line]
        assert len(warned) == (precision == "bfloat16"), logs
        loaded = tf.saved_model.load(path)
        pooled = run_signature(loaded, "encode", **inputs)["pooled_output"]
        assert pooled.dtype == np.float32
        kernel_dtypes = {v.dtype for v in loaded.captured_variables if "kernel" in v.name}
        manifest = json.load(open(os.path.join(path, "assets.extra", "albert_export.json")))
        assert manifest["xla_constant_kernels"] == xla
        if tolerance:
            np.testing.assert_allclose(pooled, reference, atol=tolerance, rtol=0)
            assert kernel_dtypes == set()  # under XLA the kernels are constants in the graph
            tf1 = TF1Session(path).run("encode", inputs)["pooled_output"]  # TF Serving's loader path
            np.testing.assert_allclose(tf1, reference, atol=tolerance, rtol=0)
        else:
            cosine = (pooled * reference).sum(-1) / np.linalg.norm(pooled, axis=-1) / np.linalg.norm(reference, axis=-1)
            assert cosine.min() > 0.999 and np.abs(pooled - reference).max() > 1e-6  # close, and really bfloat16
            assert kernel_dtypes == {tf.bfloat16}  # rounded once at export; the float32 kernels are not needed
            tf1 = TF1Session(path).run("encode", inputs)["pooled_output"]  # TF Serving's loader path
            np.testing.assert_allclose(tf1, pooled, atol=1e-5, rtol=0)
            # albert-serve warns too when it loads the version (the serving CPU may differ).
            served_logs = []
            manager = ModelManager(single_model_config("variants", os.path.dirname(path)), log=served_logs.append)
            manager.start()
            manager.stop()
            assert any(f"model variants version {os.path.basename(path)} uses bfloat16 matmuls" in line
                       and "neither AVX512-BF16 nor AMX" in line and "float32 with --xla" in line
                       and "--format=tflite" in line
                       for line in served_logs), served_logs
            monkeypatch.setattr(cpu_features, "native_bfloat16", lambda: True)
            assert cpu_features.bfloat16_warning("this export") is None


def xla_compiled_functions(path):
    """Names of the saved functions marked for XLA compilation (_XlaMustCompile)."""
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(open(os.path.join(path, "saved_model.pb"), "rb").read())
    return [f.signature.name for f in proto.meta_graphs[0].graph_def.library.function
            if f.attr["_XlaMustCompile"].b]


@pytest.fixture(scope="module")
def xla_short_export(spm_setup):
    """spm_setup's pretrainer exported in bfloat16 with float32 XLA copies for 4 and 8
    tokens (`--xla_short_lengths=4,8`); the version's path."""
    return export_saved_model(ExportOptions(checkpoint=str(spm_setup["root"] / "ckpt"), albert_config=spm_setup["config"],
                                            export_base=str(spm_setup["root"] / "export_short"), model="pretrainer",
                                            spm_model_file=spm_setup["spm_model_file"], max_seq_length=48,
                                            precision="bfloat16", xla_short_lengths=(4, 8)), log=lambda _: None)


@pytest.mark.slow
def test_xla_short_input_path_is_float32_and_exact_while_the_rest_runs_bfloat16(spm_setup, xla_short_export):
    root, config, model, path = spm_setup["root"], spm_setup["config"], spm_setup["model"], xla_short_export
    assert xla_compiled_functions(path)
    manifest = json.load(open(os.path.join(path, "assets.extra", "albert_export.json")))
    assert manifest["xla_short_lengths"] == [4, 8] and manifest["precision"] == "bfloat16"
    assert manifest["xla_constant_kernels"]  # the XLA copy holds the kernels as constants
    loaded = tf.saved_model.load(path)
    tf1_session = TF1Session(path)
    rng = np.random.default_rng(5)

    def cosine(a, b):
        return float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))

    # One row of at most 8 tokens: the float32 XLA copy, padded to 4 or 8, cut back: Keras float32 exactly.
    for seq in (3, 8):
        inputs = random_inputs(rng, config, batch=1, seq=seq)
        inputs["input_mask"][0, -1] = 0  # a padded row stays padded, whatever the short path adds
        expected = model.backbone.predict_on_batch(inputs)
        got = run_signature(loaded, "encode", **inputs)
        assert got["sequence_output"].shape == (1, seq, config.hidden_size)
        np.testing.assert_allclose(got["sequence_output"], expected["sequence_output"], atol=1e-5, rtol=0)
        np.testing.assert_allclose(got["pooled_output"], expected["pooled_output"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(tf1_session.run("encode", inputs)["pooled_output"], expected["pooled_output"],
                               atol=1e-5, rtol=0)  # TF Serving's loader runs the XLA function too
    sop = run_signature(loaded, "sop", **inputs)["sop_logits"]
    np.testing.assert_allclose(sop, model.predict_on_batch(dict(
        inputs, masked_lm_positions=np.zeros((1, 1), "int32")))["sop_logits"], atol=1e-5, rtol=0)
    # Longer rows and batches run the bfloat16 graph: close to float32, not equal.
    for batch, seq in ((1, 9), (2, 5)):
        inputs = random_inputs(rng, config, batch=batch, seq=seq)
        expected = model.backbone.predict_on_batch(inputs)["pooled_output"]
        got = run_signature(loaded, "encode", **inputs)["pooled_output"]
        assert np.abs(got - expected).max() > 1e-6 and cosine(got, expected) > 0.999, (batch, seq)
    # Raw text of one short row takes the short path; the warmup holds such a request.
    tokenizer = spm_setup["tokenizer"]
    text = np.array(["a b"], object)
    reference = model.backbone.predict_on_batch(keras_text_inputs(tokenizer, ["a b"], [None], 48))["pooled_output"]
    got = run_signature(loaded, "serving_default", text=text, text_b=np.array([""], object))["pooled_output"]
    np.testing.assert_allclose(got, reference, atol=1e-5, rtol=0)
    logs = warmup.read_warmup_file(os.path.join(path, "assets.extra", warmup.WARMUP_FILE))
    batch_one = {tf.make_ndarray(log.predict_log.request.inputs["input_word_ids"]).shape for log in logs
                 if log.predict_log.request.model_spec.signature_name == "encode"}
    assert batch_one == {(1, 4), (1, 8), (4, 48)}  # the warmup compiles both short lengths
    common = dict(checkpoint=str(root / "ckpt"), albert_config=config, export_base=str(root / "export_short"),
                  model="pretrainer", spm_model_file=spm_setup["spm_model_file"], max_seq_length=48)
    for bad, message in (({"xla": True, "xla_short_lengths": (8,)}, "--xla compiles every input shape"),
                         ({"xla_short_lengths": (8, 4)}, r"--xla_short_lengths=8,4: expected increasing"),
                         ({"xla_short_lengths": (0, 8)}, r"in \[1, --max_seq_length=48\]"),
                         ({"xla_short_lengths": (64,)}, r"in \[1, --max_seq_length=48\]")):
        with pytest.raises(ExportError, match=message):
            export_saved_model(ExportOptions(**dict(common, **bad)), log=lambda _: None)


@pytest.mark.slow
def test_xla_exports_serve_only_with_xla_cpu_compilation_enabled(spm_setup, xla_short_export):
    """As tensorflow_model_server: a version with XLA functions does not load unless
    --xla_cpu_compilation_enabled (albert-serve says why; a failed load's exit code is
    test_serving_lifecycle's test_failed_loads_fail_the_start), and with it a short raw-text request
    takes the float32 XLA path through albert-serve and answers like the Keras model."""
    with pytest.raises(ServingError, match=r"XLA-compiled function\(s\).*start the server with "
                                           r"--xla_cpu_compilation_enabled=true") as refused:
        LoadedVersion("albert", 1, xla_short_export, allow_xla=False)
    assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
    text = ["Hello world."]
    inputs = keras_text_inputs(spm_setup["tokenizer"], text, [None], 48)
    assert inputs["input_word_ids"].shape[1] <= 8  # the short path's length
    # Without warmup: it would XLA-compile every signature at both short lengths; one request needs one.
    with ModelServerProcess("embedded", [f"--model_base_path={os.path.dirname(xla_short_export)}",
                                         "--model_name=albert", "--xla_cpu_compilation_enabled=true",
                                         "--enable_model_warmup=false"]) as process:
        with AlbertClient(process.address, "albert", retries=0) as client:
            pooled = client.predict(text, output_filter=["pooled_output"])["pooled_output"]
    expected = spm_setup["model"].backbone.predict_on_batch(inputs)["pooled_output"]
    np.testing.assert_allclose(pooled, expected, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_kernels_over_the_constant_limit_stay_variables_in_the_xla_functions(spm_setup, monkeypatch):
    root, config, model = spm_setup["root"], spm_setup["config"], spm_setup["model"]
    monkeypatch.setattr(signatures, "CONSTANT_KERNELS_MAX_BYTES", 1024)
    logged = []
    path = export_saved_model(ExportOptions(checkpoint=str(root / "ckpt"), albert_config=config,
                                            export_base=str(root / "export_limit"), model="backbone",
                                            spm_model_file=spm_setup["spm_model_file"], xla_short_lengths=(8,),
                                            warmup=False), log=logged.append)
    assert any("over 0 MiB: the XLA functions read them as variables" in line for line in logged), logged
    assert not json.load(open(os.path.join(path, "assets.extra", "albert_export.json")))["xla_constant_kernels"]
    loaded = tf.saved_model.load(path)
    assert {v.dtype for v in loaded.captured_variables if "kernel" in v.name} == {tf.float32}
    inputs = random_inputs(np.random.default_rng(9), config, batch=1, seq=6)
    np.testing.assert_allclose(run_signature(loaded, "encode", **inputs)["pooled_output"],
                               model.backbone.predict_on_batch(inputs)["pooled_output"], atol=1e-5, rtol=0)


def test_publish_is_atomic_under_concurrent_scans(spm_setup):
    """A scanner polling like TF Serving never sees a version without all its files."""
    root, config = spm_setup["root"], spm_setup["config"]
    model_dir = root / "export_scan" / "albert"
    stop, incomplete, seen, scans = threading.Event(), [], set(), [0]

    def scan():
        while not stop.is_set():
            scans[0] += 1
            for version in layout.list_versions(str(model_dir)):
                seen.add(version)
                version_dir = model_dir / str(version)
                for name in ("saved_model.pb", "variables/variables.index", "assets.extra/tf_serving_warmup_requests"):
                    if not (version_dir / name).exists():
                        incomplete.append((version, name))

    scanner = threading.Thread(target=scan)
    scanner.start()
    try:
        for _ in range(2):
            export_saved_model(ExportOptions(checkpoint=spm_setup["prefix"], albert_config=config,
                                             export_base=str(root / "export_scan"), model="backbone",
                                             spm_model_file=spm_setup["spm_model_file"]), log=lambda _: None)
        done_at = scans[0]
        while scans[0] < done_at + 2:  # let the scanner see the last version
            threading.Event().wait(0.01)
    finally:
        stop.set()
        scanner.join()
    assert incomplete == [] and seen == {1, 2}
    assert sorted(os.listdir(model_dir)) == ["1", "2"]


def test_version_numbering_and_clashes(tmp_path):
    model_dir = tmp_path / "m"
    for name in ("3", "0010", "v4", "5.1", ".tmp-export-x"):
        (model_dir / name).mkdir(parents=True)
    assert layout.list_versions(str(model_dir)) == [3, 10]
    assert layout.next_version(str(model_dir)) == 11
    first, second = layout.make_staging_dir(str(model_dir)), layout.make_staging_dir(str(model_dir))
    (tmp_path / "marker").write_text("x")
    assert layout.publish_version(first, str(model_dir)).endswith("11")
    assert layout.publish_version(second, str(model_dir)).endswith("12")  # the next free one, not 11
    third = layout.make_staging_dir(str(model_dir))
    with pytest.raises(layout.ExportLayoutError, match="--version=3: .* already exists"):
        layout.publish_version(third, str(model_dir), version=3)
    assert not os.path.exists(third)


def test_errors_name_the_flag_and_leave_nothing_behind(spm_setup, tmp_path, spm_model_file):
    config = spm_setup["config"]
    base = dict(checkpoint=spm_setup["prefix"], albert_config=config, export_base=str(tmp_path / "export"),
                spm_model_file=spm_model_file)
    cases = [
        (dict(checkpoint=str(tmp_path / "nowhere")), r"--checkpoint .*nowhere: not a readable checkpoint"),
        (dict(checkpoint=str(tmp_path)), r"--checkpoint .*: the directory holds no checkpoint"),
        (dict(albert_config=config.replace(num_hidden_groups=1)),
         r"holds a backbone of 73 variables but --albert_config_file builds one of 41"),
        (dict(albert_config=config.replace(intermediate_size=48)), r"does not match --albert_config_file"),
        (dict(spm_model_file=str(tmp_path / "missing.model")), r"--spm_model_file .*missing.model: no such file"),
        (dict(spm_model_file=None), r"give --spm_model_file \(SentencePiece\) or --vocab_file"),
        (dict(albert_config=config.replace(vocab_size=100)), r"the tokenizer has 2000 tokens but .* vocab_size=100"),
        (dict(model="classifier"), r"holds a pretrainer, which has no classifier heads; use --model=backbone or --model=pretrainer"),
        (dict(max_seq_length=65), r"--max_seq_length=65: must be in \[3, max_position_embeddings=64\]"),
    ]
    for changes, message in cases:
        with pytest.raises(ExportError, match=message):
            export_saved_model(ExportOptions(**dict(base, **changes)), log=lambda _: None)
    assert not os.path.exists(tmp_path / "export" / "albert") or os.listdir(tmp_path / "export" / "albert") == []
    tf1 = tmp_path / "tf1"
    from albert_tf.convert.tf1_checkpoint import write_tf1_checkpoint
    write_tf1_checkpoint({"bert/embeddings/word_embeddings": np.zeros((4, 2), "float32")}, str(tf1 / "model.ckpt"))
    with pytest.raises(ExportError, match="original TF1 ALBERT checkpoint; convert it first"):
        export_saved_model(ExportOptions(**dict(base, checkpoint=str(tf1 / "model.ckpt"))), log=lambda _: None)


@pytest.mark.slow
def test_cli_exports_next_version_and_reports_errors(spm_setup, spm_model_file, tmp_path):
    ckpt = spm_setup["root"] / "ckpt"
    spm_setup["config"].to_json_file(str(ckpt / "albert_config.json"))  # found beside the checkpoint
    command = [sys.executable, "-m", "albert_tf.export_savedmodel", f"--checkpoint={ckpt}",
               f"--spm_model_file={spm_model_file}", f"--export_base={tmp_path}", "--model_name=cli",
               "--model=pretrainer", "--bucket_lengths=16,32", "--xla_short_lengths=16", "--nowarmup"]
    (tmp_path / "cli" / "4").mkdir(parents=True)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(tmp_path / "cli" / "5")
    assert "restored pretrainer from" in done.stderr and "signatures serving_default, encode" in done.stderr
    assert not os.path.exists(tmp_path / "cli" / "5" / "assets.extra" / warmup.WARMUP_FILE)
    loaded = tf.saved_model.load(str(tmp_path / "cli" / "5"))
    mask = run_signature(loaded, "serving_default", text=np.array(["a b"], object),
                         text_b=np.array([""], object))["input_mask"]
    assert mask.shape[1] == 16  # padded up to the first bucket
    manifest = json.load(open(tmp_path / "cli" / "5" / "assets.extra" / "albert_export.json"))
    assert manifest["xla_short_lengths"] == [16] and xla_compiled_functions(str(tmp_path / "cli" / "5"))
    # TF Serving's loading path through its CLI twin (with the tf-text ops registered, as
    # tensorflow_model_server links them).
    cli = subprocess.run([sys.executable, "-c", "import sys, tensorflow_text\n"
                          "from tensorflow.python.tools import saved_model_cli\n"
                          "sys.argv[0] = 'saved_model_cli'\nsaved_model_cli.main()",
                          "run", "--dir", str(tmp_path / "cli" / "5"), "--tag_set", "serve",
                          "--signature_def", "serving_default", "--input_exprs", 'text=["Hello world."];text_b=[""]'],
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "Result for output key pooled_output" in cli.stdout and "input_mask" in cli.stdout
    bad = subprocess.run(command[:3] + [f"--checkpoint={tmp_path / 'none'}", f"--export_base={tmp_path}",
                                        f"--spm_model_file={spm_model_file}",
                                        f"--albert_config_file={ckpt / 'albert_config.json'}"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "albert-export: --checkpoint" in bad.stderr and "Traceback" not in bad.stderr
    bad = subprocess.run(command[:-2] + ["--xla_short_lengths=8,x"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "--xla_short_lengths: expected integers, got ['8', 'x']" in bad.stderr


def test_restore_from_a_training_checkpoint_whose_keys_go_through_the_optimizer(grouped_config, tmp_path):
    """Training checkpoints store most variables under optimizer/_trainable_variables/N."""
    import keras

    from albert_tf.checkpoints import describe_checkpoint, restore_model

    model = build_model(grouped_config, "pretrainer")
    randomize(model, 4)
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    prefix = tf.train.Checkpoint(model=model, optimizer=optimizer).write(str(tmp_path / "ckpt"))
    keys = [name for name, _ in tf.train.list_variables(prefix)]
    assert any(k.startswith("optimizer/_trainable_variables/") for k in keys)  # the case this guards
    assert describe_checkpoint(prefix) == ("pretrainer", None)
    for kind in ("pretrainer", "backbone"):
        restored, _ = restore_model(prefix, grouped_config, kind)
        source = model if kind == "pretrainer" else model.backbone
        for ours, theirs in zip(restored.weights, source.weights):
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=ours.path)


def test_serving_models_config_parses_as_model_server_config():
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = os.path.join(os.path.dirname(__file__), os.pardir, "serving", "models.config")
    config = text_format.Parse(open(path).read(), model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == ("albert", "/models/albert", "tensorflow")
    assert model.model_version_policy.latest.num_versions == 2


def test_original_tf1_checkpoint_converts_then_exports_and_serves_numpy_exact(tmp_path):
    """The released-tarball path: TF1 names → albert-convert-checkpoint → albert-export."""
    import subprocess
    import sys

    from albert_tf.convert.tf1_checkpoint import write_tf1_checkpoint
    from tests import numpy_albert
    from tests.test_convert import brightmart_config, random_tf1_arrays

    config = brightmart_config()  # the albert_zh layout, the least common path
    arrays = random_tf1_arrays(config, "pretrainer", np.random.default_rng(9))
    tf1 = write_tf1_checkpoint(arrays, str(tmp_path / "tf1" / "model.ckpt"))
    official = {k: v for k, v in config.to_dict().items() if k != "embedding_projection_position"}
    (tmp_path / "albert_config.json").write_text(__import__("json").dumps(official))
    done = subprocess.run([sys.executable, "-m", "albert_tf.convert_checkpoint", f"--tf1_checkpoint={tf1}",
                           f"--albert_config_file={tmp_path / 'albert_config.json'}", "--model=pretrainer",
                           f"--output_dir={tmp_path / 'converted'}"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "brightmart/albert_zh layout" in done.stderr
    converted = AlbertConfig.from_json_file(str(tmp_path / "converted" / "albert_config.json"))
    assert converted == config
    vocab = tmp_path / "vocab.txt"  # a WordPiece vocabulary of the config's size, as albert_zh ships
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"t{i}" for i in range(92)]) + "\n")
    path = export_saved_model(ExportOptions(checkpoint=str(tmp_path / "converted"), albert_config=converted,
                                            export_base=str(tmp_path / "export"), model="pretrainer",
                                            vocab_file=str(vocab)), log=lambda _: None)
    loaded = tf.saved_model.load(path)
    inputs = random_inputs(np.random.default_rng(4), config, batch=2, seq=7)
    positions = np.array([[1, 2], [3, 0]], np.int32)
    reference = numpy_albert.forward({k: v.astype(np.float64) for k, v in arrays.items()}, config,
                                     inputs["input_word_ids"], inputs["input_mask"], inputs["input_type_ids"], positions)
    np.testing.assert_allclose(run_signature(loaded, "encode", **inputs)["pooled_output"], reference["pooled_output"],
                               atol=1e-5, rtol=0)
    mlm = run_signature(loaded, "mlm", **inputs, masked_lm_positions=positions)["mlm_logits"]
    np.testing.assert_allclose(mlm, reference["mlm_logits"], atol=1e-5, rtol=0)


def test_cli_choices_are_the_exporters_tables():
    """albert-export's --precision and --format choices are literals (the CLI module
    imports no TensorFlow before parsing); they must stay the exporter's tables."""
    from albert_tf.export import exporter

    listed = subprocess.run([sys.executable, "-c", "from absl import flags; import albert_tf.export_savedmodel; "
                             "print(flags.FLAGS['precision'].parser.enum_values); "
                             "print(flags.FLAGS['format'].parser.enum_values)"],
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert listed.stdout.split("\n")[:2] == [str(list(exporter.PRECISIONS)), str(list(exporter.FORMATS))]
