"""albert-run-classifier: GLUE formats, metrics, and fine-tuning that learns."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from albert_tf.checkpoints import build_model
from albert_tf.export import tflite
from albert_tf.export.exporter import ExportOptions, export_saved_model
from albert_tf.finetune import glue
from albert_tf.finetune.metrics import accuracy, f1, matthews_corrcoef, pearson, spearman, task_metrics
from albert_tf.text import SentencePieceTokenizer, pack_pair
from tests.test_export import save_checkpoint, small_config


def test_metrics_against_hand_computed_values():
    assert accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5
    assert f1([1, 1, 0, 0, 1], [1, 0, 0, 1, 1]) == pytest.approx(2 / 3)  # TP 2, FP 1, FN 1
    assert f1([0, 0], [0, 0]) == 0.0
    assert matthews_corrcoef([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(2 / np.sqrt(12))  # TP1 TN2 FP0 FN1
    assert matthews_corrcoef([1, 1], [1, 1]) == 0.0  # undefined → 0, as sklearn
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(5 / np.sqrt(2 * 114 / 9))
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / np.sqrt(4.5 * 5))  # ties: ranks 2.5, 2.5
    results = task_metrics(glue.TASKS["mrpc"], [1, 0, 1], [1, 1, 1])
    assert results == {"accuracy": pytest.approx(2 / 3), "f1": pytest.approx(0.8)}
    assert set(task_metrics(glue.TASKS["sts-b"], [1.0, 2.0, 3.0], [1.1, 1.9, 3.2])) == {"pearson", "spearman", "mse"}


def write_tsv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(map(str, row)) + "\n" for row in rows), encoding="utf-8")


def test_glue_formats_are_read_as_distributed(tmp_path):
    write_tsv(tmp_path / "mrpc" / "train.tsv", [["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                                                [1, 11, 12, "He said so.", "So he said."]])
    write_tsv(tmp_path / "mrpc" / "test.tsv", [["index", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                                               [0, 1, 2, "A", "B"], [1, 3, 4, "C", "D"]])
    (example,) = glue.read_examples(glue.TASKS["mrpc"], str(tmp_path / "mrpc"), "train")
    assert (example.text_a, example.text_b, example.label) == ("He said so.", "So he said.", "1")
    assert [e.label for e in glue.read_examples(glue.TASKS["mrpc"], str(tmp_path / "mrpc"), "test")] == [None, None]
    assert glue.test_ids(glue.TASKS["mrpc"], str(tmp_path / "mrpc")) == ["0", "1"]
    write_tsv(tmp_path / "cola" / "train.tsv", [["gj04", 1, "", "The sailor dog barked."]])  # no header
    (example,) = glue.read_examples(glue.TASKS["cola"], str(tmp_path / "cola"), "train")
    assert (example.text_a, example.label) == ("The sailor dog barked.", "1")
    header = [f"c{i}" for i in range(16)]
    row = ["0"] * 8 + ["Premise.", "Hypothesis."] + ["x"] * 5 + ["neutral"]
    write_tsv(tmp_path / "mnli" / "dev_matched.tsv", [header, row])
    (example,) = glue.read_examples(glue.TASKS["mnli"], str(tmp_path / "mnli"), "dev")
    assert (example.text_a, example.text_b, example.label) == ("Premise.", "Hypothesis.", "neutral")


def test_bad_data_names_file_and_line(tmp_path):
    write_tsv(tmp_path / "train.tsv", [["sentence", "label"], ["fine", "1"], ["too", "many", "columns"]])
    task = glue.generic_tsv_task(0, None, 1, ["0", "1"], header=True)
    with pytest.raises(glue.TaskDataError, match=r"train.tsv:3: expected 2 tab-separated columns, found 3"):
        glue.read_examples(task, str(tmp_path), "train")
    write_tsv(tmp_path / "train.tsv", [["sentence", "label"], ["fine", "1"], ["odd", "maybe"]])
    with pytest.raises(glue.TaskDataError, match=r"train.tsv:3: unknown label 'maybe'; the labels of tsv are"):
        glue.read_examples(task, str(tmp_path), "train")
    write_tsv(tmp_path / "train.tsv", [["sentence", "score"], ["fine", "high"]])
    with pytest.raises(glue.TaskDataError, match=r"train.tsv:2: label 'high' is not a number"):
        glue.read_examples(glue.generic_tsv_task(0, None, 1, [], header=True), str(tmp_path), "train")
    with pytest.raises(glue.TaskDataError, match=r"dev.tsv: no such file"):
        glue.read_examples(task, str(tmp_path), "dev")


WORDS = ("the river city music history team station album song film church road".split())


def synthetic_task(directory, rng, regression=False):
    """A rule a tiny model can learn: does the text contain 'good' (count for regression)?"""
    def rows(n, with_label=True):
        out = [["sentence", "label"] if with_label else ["sentence"]]
        for _ in range(n):
            words = list(rng.choice(WORDS, size=rng.integers(4, 12)))
            count = int(rng.integers(0, 3)) if regression else int(rng.integers(0, 2))
            for _ in range(count):
                words.insert(int(rng.integers(0, len(words) + 1)), "good")
            label = f"{float(count)}" if regression else str(min(count, 1))
            out.append([" ".join(words), label] if with_label else [" ".join(words)])
        return out

    write_tsv(directory / "train.tsv", rows(600))
    write_tsv(directory / "dev.tsv", rows(120))
    write_tsv(directory / "test.tsv", rows(40, with_label=False))


def run_classifier(args):
    return subprocess.run([sys.executable, "-m", "albert_tf.run_classifier", *args], capture_output=True, text=True,
                          timeout=900)


@pytest.mark.parametrize("regression", [False, True])
def test_fine_tuning_learns_a_rule_and_exports(tmp_path, spm_model_file, regression):
    rng = np.random.default_rng(1)
    synthetic_task(tmp_path / "data", rng, regression)
    config = small_config(SentencePieceTokenizer(spm_model_file).vocab_size)
    config_file = tmp_path / "albert_config.json"
    config.to_json_file(str(config_file))
    pretrained = build_model(config, "pretrainer")  # fresh (initializer_range) weights stand in for pretrained ones
    save_checkpoint(pretrained, tmp_path / "pretrained")
    labels = [] if regression else ["0", "1"]
    done = run_classifier([
        "--task_name=tsv", f"--data_dir={tmp_path / 'data'}", f"--albert_config_file={config_file}",
        f"--init_checkpoint={tmp_path / 'pretrained'}", f"--spm_model_file={spm_model_file}", "--do_train",
        "--do_eval", "--do_predict", "--max_seq_length=32", "--train_batch_size=32", "--learning_rate=5e-4",
        "--train_step=240", "--warmup_step=24", "--save_checkpoints_steps=120", f"--output_dir={tmp_path / 'out'}",
        f"--export_dir={tmp_path / 'export'}", f"--labels={','.join(labels)}"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "initialized the encoder from" in done.stderr
    results = json.loads((tmp_path / "out" / "eval_results.json").read_text())
    best = json.loads((tmp_path / "out" / "best" / "best_results.json").read_text())
    if regression:
        assert best["pearson"] > 0.9, best
    else:
        assert best["accuracy"] > 0.9, best
    assert results["global_step"] == 240
    submission = (tmp_path / "out" / "submission" / "predictions.tsv").read_text().splitlines()
    assert submission[0] == "index\tprediction" and len(submission) == 41
    assert submission[1].startswith("0\t")
    # the export serves the same predictions from raw text
    loaded = tf.saved_model.load(str(tmp_path / "export" / "tsv" / "1"))
    texts = ["the good river", "the river city"]
    outputs = loaded.signatures["serving_default"](text=tf.constant(texts), text_b=tf.constant([""]))
    if regression:
        assert outputs["predictions"].numpy()[0] > outputs["predictions"].numpy()[1] + 0.5
    else:
        assert outputs["label_id"].numpy().tolist() == [1, 0]
        check_int8_export_keeps_dev_accuracy(tmp_path, config, spm_model_file, best["accuracy"])


def check_int8_export_keeps_dev_accuracy(tmp_path, config, spm_model_file, best_accuracy):
    """The fine-tuned best checkpoint as TFLite versions, float32 and dynamic_int8, on the
    dev set: float32 scores what albert-run-classifier scored; int8 stays within 2 points
    of it and agrees with float32 on at least 97% of the rows."""
    tokenizer = SentencePieceTokenizer(spm_model_file)
    rows = [line.split("\t") for line in (tmp_path / "data" / "dev.tsv").read_text().splitlines()[1:]]
    packed = [pack_pair(tokenizer.encode(text), None, 32, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
              for text, _ in rows]
    inputs = {key: np.array([p[key] for p in packed], np.int32) for key in packed[0]}
    labels = np.array([int(label) for _, label in rows])
    predicted = {}
    for precision in ("float32", "dynamic_int8"):
        path = export_saved_model(ExportOptions(
            checkpoint=str(tmp_path / "out" / "best"), albert_config=config, export_base=str(tmp_path / "lite"),
            model_name=precision, model="classifier", format="tflite", precision=precision), log=lambda _: None)
        predicted[precision] = tflite.version_runner(path, num_threads=2)(**inputs)["label_id"]
    accuracies = {k: float(np.mean(v == labels)) for k, v in predicted.items()}
    assert accuracies["float32"] == pytest.approx(best_accuracy, abs=1.5 / len(labels)), accuracies
    assert accuracies["dynamic_int8"] >= accuracies["float32"] - 0.02, accuracies
    assert np.mean(predicted["dynamic_int8"] == predicted["float32"]) >= 0.97


def test_random_start_is_announced_and_bad_flags_fail(tmp_path, spm_model_file):
    synthetic_task(tmp_path / "data", np.random.default_rng(2))
    config = small_config(SentencePieceTokenizer(spm_model_file).vocab_size)
    config.to_json_file(str(tmp_path / "albert_config.json"))
    common = ["--task_name=tsv", f"--data_dir={tmp_path / 'data'}", f"--albert_config_file={tmp_path / 'albert_config.json'}",
              f"--spm_model_file={spm_model_file}", "--labels=0,1", "--max_seq_length=32"]
    done = run_classifier(common + ["--do_eval", f"--output_dir={tmp_path / 'out'}"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "WARNING: no --init_checkpoint: the model starts from random weights" in done.stderr
    bad = run_classifier(common + ["--do_eval", f"--output_dir={tmp_path / 'out2'}", "--max_seq_length=65"])
    assert bad.returncode == 1 and "--max_seq_length=65 exceeds max_position_embeddings=64" in bad.stderr
    missing = run_classifier(common + ["--do_train", f"--output_dir={tmp_path / 'out3'}",
                                       f"--init_checkpoint={tmp_path / 'nowhere'}"])
    assert missing.returncode == 1 and "--init_checkpoint" in missing.stderr and "Traceback" not in missing.stderr
    os.remove(tmp_path / "data" / "dev.tsv")
    no_dev = run_classifier(common + ["--do_eval", f"--output_dir={tmp_path / 'out4'}"])
    assert no_dev.returncode == 1 and "dev.tsv: no such file" in no_dev.stderr
