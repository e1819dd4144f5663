"""Pretraining losses against NumPy, and the TFRecord reader feeding the pretrainer."""

import math
import subprocess
import sys

import numpy as np
import pytest

from albert_tf.config import AlbertConfig
from albert_tf.data.dataset import pretraining_dataset
from albert_tf.data.synthetic_corpus import write_corpus
from albert_tf.models import AlbertBackbone, AlbertPretrainer
from albert_tf.models.pretrainer import PRETRAINER_INPUT_NAMES
from albert_tf.training.losses import masked_lm_loss, sentence_order_loss


def test_losses_match_numpy():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((3, 4, 11)).astype("float32") * 3
    ids = rng.integers(0, 11, size=(3, 4))
    weights = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], "float32")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, ids[..., None], -1)[..., 0]
    expected = (weights * nll).sum() / (weights.sum() + 1e-5)
    assert float(masked_lm_loss(logits, ids, weights)) == pytest.approx(expected, rel=1e-5)
    sop_logits = rng.standard_normal((5, 2)).astype("float32")
    labels = np.array([0, 1, 1, 0, 1])
    sop_lp = sop_logits - np.log(np.exp(sop_logits).sum(-1, keepdims=True))
    assert float(sentence_order_loss(sop_logits, labels)) == pytest.approx(-sop_lp[np.arange(5), labels].mean(), rel=1e-5)


def test_reader_feeds_the_pretrainer(tmp_path, spm_model_file):
    corpus = write_corpus(str(tmp_path / "corpus.txt"), num_documents=60)
    out = tmp_path / "train.tfrecord"
    result = subprocess.run([sys.executable, "-m", "albert_tf.create_pretraining_data", f"--input_file={corpus}",
                             f"--output_file={out}", f"--spm_model_file={spm_model_file}", "--max_seq_length=64",
                             "--max_predictions_per_seq=10", "--dupe_factor=2", "--num_workers=1"], capture_output=True)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    batch = next(iter(pretraining_dataset(str(out), 64, 10, batch_size=8, seed=1)))
    assert batch["input_word_ids"].shape == (8, 64) and batch["input_word_ids"].dtype.name == "int32"
    assert batch["masked_lm_weights"].dtype.name == "float32" and batch["next_sentence_labels"].shape == (8,)
    config = AlbertConfig.preset("tiny", vocab_size=2000, max_position_embeddings=64)
    outputs = AlbertPretrainer(AlbertBackbone(config))({k: batch[k] for k in PRETRAINER_INPUT_NAMES})
    mlm = float(masked_lm_loss(outputs["mlm_logits"], batch["masked_lm_ids"], batch["masked_lm_weights"]))
    assert abs(mlm - math.log(2000)) < 0.5  # an untrained model is at chance level
    again = next(iter(pretraining_dataset(str(out), 64, 10, batch_size=8, seed=1)))
    np.testing.assert_array_equal(again["input_word_ids"], batch["input_word_ids"])  # seeded shuffling


@pytest.mark.slow
def test_pipeline_main_job_runs_end_to_end(tmp_path):
    result = subprocess.run([sys.executable, "-m", "albert_tf.run_pipeline", f"--output_dir={tmp_path}",
                             "--num_documents=400", "--vocab_size=500", "--train_steps=20", "--latency_requests=5"], capture_output=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    stdout = result.stdout.decode()
    assert "[7/7] albert-serve over gRPC" in stdout and "initial MLM loss" in stdout and "done" in stdout
    assert "raw text → pooled_output (2, 64)" in stdout and "mlm over gRPC: " in stdout
    assert "single-text requests over gRPC: median" in stdout and "server stopped cleanly" in stdout
    for name in ("corpus.txt", "spm.model", "spm.vocab", "albert_config.json", "data/train-0.tfrecord",
                 "pretrain/ckpt-20.index", "pretrain/eval_results.txt", "pretrain/albert_config.json",
                 "export/albert/1/saved_model.pb", "export/albert/1/assets.extra/tf_serving_warmup_requests"):
        assert (tmp_path / name).exists(), name
