"""albert-run-pretraining: learning, resuming, distribution and bad input."""

import collections
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from albert_tf.config import AlbertConfig
from albert_tf.data.pipeline import create_pretraining_data
from albert_tf.data.synthetic_corpus import write_corpus
from albert_tf.data.worker import DataOptions, TokenizerSpec
from albert_tf.training.pretraining import PretrainingError, PretrainingOptions, PretrainingRun

SEQ, PRED = 32, 5


@pytest.fixture(scope="module")
def records(tmp_path_factory, spm_model_file):
    """Two shards of seq-32 MLM+SOP examples from the generated corpus, and a config."""
    work = tmp_path_factory.mktemp("pretrain-data")
    corpus = write_corpus(str(work / "corpus.txt"), num_documents=400, seed=3)
    shards = [str(work / f"train-{i}.tfrecord") for i in range(2)]
    options = DataOptions(max_seq_length=SEQ, max_predictions_per_seq=PRED, dupe_factor=3)
    create_pretraining_data([corpus], shards, TokenizerSpec(spm_model_file=spm_model_file), options)
    config_file = str(work / "albert_config.json")
    AlbertConfig.preset("tiny", vocab_size=2000, max_position_embeddings=64).to_json_file(config_file)
    return str(work / "train-*.tfrecord"), config_file


def cli_args(records, output_dir, **flags):
    pattern, config_file = records
    args = {
        "input_file": pattern, "output_dir": output_dir, "albert_config_file": config_file,
        "max_seq_length": SEQ, "max_predictions_per_seq": PRED, "train_batch_size": 16,
        "num_train_steps": 40, "num_warmup_steps": 5, "learning_rate": 0.005, "log_steps": 10,
        "save_checkpoints_steps": 20,
    }
    args.update(flags)
    return [f"--{k}={v}" for k, v in args.items()]


def run_cli(args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "albert_tf.run_pretraining", *args], capture_output=True,
                          timeout=timeout, env=env)


def logged_steps(stderr):
    """{step: {metric: value}} from the progress lines."""
    steps = {}
    for line in stderr.splitlines():
        match = re.match(r"step (\d+)/\d+\s+(.*)", line)
        if match:
            values = dict(re.findall(r"\b([a-z_]+) (-?\d[\d.e+-]*)", match.group(2)))
            steps[int(match.group(1))] = {k: float(v) for k, v in values.items()}
    return steps


def options(records, output_dir, **changes):
    pattern, config_file = records
    base = PretrainingOptions(
        input_file=pattern, output_dir=str(output_dir), albert_config=AlbertConfig.from_json_file(config_file),
        max_seq_length=SEQ, max_predictions_per_seq=PRED, train_batch_size=16, num_train_steps=40,
        num_warmup_steps=5, learning_rate=0.005, log_steps=10, save_checkpoints_steps=20,
    )
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def test_loss_falls_and_eval_results_are_written(records, tmp_path):
    logs = []
    run = PretrainingRun(options(records, tmp_path, num_train_steps=120, log_steps=20, eval_input_file=records[0]),
                         log=logs.append)
    assert run.restore_or_initialize() == "initialized from scratch"
    run.train()
    steps = logged_steps("\n".join(logs))
    assert sorted(steps) == [20, 40, 60, 80, 100, 120]
    assert steps[120]["mlm_loss"] < steps[20]["mlm_loss"] - 1.0, steps
    results = run.evaluate()
    saved = json.loads((tmp_path / "eval_results.json").read_text())
    assert saved["global_step"] == 120 and saved["masked_lm_accuracy"] == pytest.approx(results["masked_lm_accuracy"])
    assert "masked_lm_loss = " in (tmp_path / "eval_results.txt").read_text()
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-120")
    assert list((tmp_path / "train").iterdir()), "TensorBoard events are written"


def test_killed_run_resumes_with_step_optimizer_state_and_learning_rate(records, tmp_path):
    args = cli_args(records, str(tmp_path), num_train_steps=3000, save_checkpoints_steps=50, log_steps=50)
    process = subprocess.Popen([sys.executable, "-m", "albert_tf.run_pretraining", *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and not (tmp_path / "checkpoint").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = int(tf.train.latest_checkpoint(str(tmp_path)).rsplit("-", 1)[1])
    assert 0 < killed_at < 3000

    run = PretrainingRun(options(records, tmp_path, num_train_steps=3000))
    message = run.restore_or_initialize()
    assert message.endswith(f"at step {killed_at}")
    assert run.step == killed_at
    moments = [v for v in run.optimizer.variables if v.path.endswith("_m")]
    assert len(moments) == len(run.model.trainable_variables)
    assert all(np.abs(v.numpy()).sum() > 0 for v in moments), "Adam moments come back, not zeros"
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path)))
    stored = [reader.get_tensor(k) for k, _ in tf.train.list_variables(str(tmp_path)) if "optimizer" in k and "iter" in k]
    assert stored and int(stored[0]) == killed_at

    resumed = run_cli(cli_args(records, str(tmp_path), num_train_steps=killed_at + 100, save_checkpoints_steps=50,
                               log_steps=50))
    assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
    stderr = resumed.stderr.decode()
    assert f"resumed from {tmp_path}/ckpt-{killed_at} at step {killed_at}" in stderr
    steps = logged_steps(stderr)
    assert min(steps) == killed_at + 50
    from albert_tf.training.optimizers import AlbertLearningRate

    schedule = AlbertLearningRate(0.005, killed_at + 100, 5)
    for step, values in steps.items():
        assert values["lr"] == pytest.approx(float(schedule(step - 1)), rel=1e-3)


def test_bad_input_is_reported_before_training(records, tmp_path):
    pattern, config_file = records
    result = run_cli(cli_args(records, str(tmp_path / "a"), input_file=str(tmp_path / "none-*.tfrecord")))
    assert result.returncode == 1 and b"--input_file: no file matches" in result.stderr
    result = run_cli(cli_args(records, str(tmp_path / "b"), max_seq_length=64))
    assert result.returncode == 1
    assert b"feature 'input_ids' has length 32, but --max_seq_length asks for 64" in result.stderr
    result = run_cli(cli_args(records, str(tmp_path / "c"), max_predictions_per_seq=20))
    assert b"feature 'masked_lm_positions' has length 5, but --max_predictions_per_seq asks for 20" in result.stderr
    bad_config = tmp_path / "bad_config.json"
    bad_config.write_text(json.dumps({"vocab_size": 100, "hidden_size": 30, "num_attention_heads": 4}))
    result = run_cli(cli_args(records, str(tmp_path / "d"), albert_config_file=str(bad_config)))
    assert result.returncode == 1 and b"'hidden_size'" in result.stderr and b"bad_config.json" in result.stderr
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    result = run_cli(cli_args(records, str(blocker / "out")))
    assert result.returncode == 1 and b"--output_dir" in result.stderr and b"not writable" in result.stderr
    empty = tmp_path / "held-out.tfrecord"
    empty.write_bytes(b"")  # a held-out file's errors name --eval_input_file, not --input_file
    with pytest.raises(PretrainingError, match=rf"^--eval_input_file {re.escape(str(empty))}: the file holds no records"):
        PretrainingRun(options(records, tmp_path / "e", do_eval=True, eval_input_file=str(empty)))


def test_tf1_init_checkpoint_asks_for_conversion(records, tmp_path):
    with tf.Graph().as_default():
        tf.compat.v1.get_variable("bert/embeddings/word_embeddings", shape=[4, 2])
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            path = saver.save(session, str(tmp_path / "tf1" / "model.ckpt"))
    run = PretrainingRun(options(records, tmp_path / "out", init_checkpoint=path))
    with pytest.raises(PretrainingError, match="original TF1 ALBERT checkpoint; convert it first with albert-convert-checkpoint"):
        run.restore_or_initialize()


def test_init_checkpoint_and_init_from_group0(records, tmp_path):
    first = PretrainingRun(options(records, tmp_path / "one", num_train_steps=2))
    first.restore_or_initialize()
    first.train()
    source = first.model
    grouped = options(records, tmp_path / "two", init_checkpoint=str(tmp_path / "one"), init_from_group0=True)
    grouped.albert_config = grouped.albert_config.replace(num_hidden_groups=2)
    run = PretrainingRun(grouped)
    assert "group 0" in run.restore_or_initialize()
    block = source.backbone.encoder.block(0, 0).ffn_intermediate.kernel.numpy()
    for group in (0, 1):
        np.testing.assert_array_equal(run.model.backbone.encoder.block(group, 0).ffn_intermediate.kernel.numpy(), block)
    np.testing.assert_array_equal(run.model.backbone.embeddings.word_embeddings.numpy(),
                                  source.backbone.embeddings.word_embeddings.numpy())
    plain = PretrainingRun(options(records, tmp_path / "three", init_checkpoint=str(tmp_path / "one")))
    assert plain.restore_or_initialize().startswith("initialized weights from")
    np.testing.assert_array_equal(plain.model.backbone.pooler.kernel.numpy(), source.backbone.pooler.kernel.numpy())
    assert plain.step == 0  # weights only, not the optimizer state


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus_matches_one_device(records, tmp_path):
    common = dict(num_train_steps=2, log_steps=1, learning_rate=0.001)
    single = run_cli(cli_args(records, str(tmp_path / "single"), **common))
    mirrored = run_cli(cli_args(records, str(tmp_path / "mirrored"), distribution_strategy="mirrored", cpu_replicas=2,
                                **common))
    assert single.returncode == 0 and mirrored.returncode == 0, mirrored.stderr.decode()[-3000:]
    assert b"2 replica(s)" in mirrored.stderr and b"1 replica(s)" in single.stderr
    one, two = logged_steps(single.stderr.decode()), logged_steps(mirrored.stderr.decode())
    for step in (1, 2):
        # Same examples per global batch; MLM loss is averaged per replica, so equal to ~1e-2.
        assert two[step]["mlm_loss"] == pytest.approx(one[step]["mlm_loss"], abs=0.02)
        assert two[step]["sop_loss"] == pytest.approx(one[step]["sop_loss"], abs=0.01)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_mirrored_with_two_local_workers(records, tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    output_dir = str(tmp_path / "out")
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        args = cli_args(records, output_dir, distribution_strategy="multi_worker_mirrored", num_train_steps=20,
                        log_steps=10, save_checkpoints_steps=10)
        processes.append(subprocess.Popen([sys.executable, "-m", "albert_tf.run_pretraining", *args], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    outputs = [p.communicate(timeout=600)[1].decode() for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs[0][-2000:] + outputs[1][-2000:]
    chief, worker = logged_steps(outputs[0]), logged_steps(outputs[1])
    assert sorted(chief) == [10, 20] and chief[20]["loss"] == pytest.approx(worker[20]["loss"], abs=1e-5)
    assert "2 replica(s)" in outputs[0]
    assert tf.train.latest_checkpoint(output_dir).endswith("ckpt-20")
    assert sorted(os.listdir(output_dir)).count("checkpoint") == 1


@pytest.mark.parametrize("precision, jit", [("mixed_bfloat16", True), ("mixed_float16", False)])
def test_mixed_precision_and_xla_steps_train(records, tmp_path, precision, jit):
    logs = []
    run = PretrainingRun(options(records, tmp_path, num_train_steps=20, log_steps=10, mixed_precision=precision,
                                 jit_compile=jit), log=logs.append)
    run.restore_or_initialize()
    run.train()
    steps = logged_steps("\n".join(logs))
    assert all(np.isfinite(v["loss"]) for v in steps.values())
    assert steps[20]["mlm_loss"] < steps[10]["mlm_loss"] + 0.5
    assert run.model.backbone.encoder.blocks[0].ffn_intermediate.compute_dtype == precision.split("_")[1]


def test_fewer_files_than_workers_shards_records(records):
    from albert_tf.data.dataset import pretraining_dataset

    single_file = sorted(tf.io.gfile.glob(records[0]))[0]
    seen = []
    for pipeline in (0, 1):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline)
        batches = pretraining_dataset(single_file, SEQ, PRED, batch_size=64, shuffle=False, input_context=context)
        seen.append(collections.Counter(tuple(row) for b in batches for row in b["input_word_ids"].numpy().tolist()))
    everything = collections.Counter(tuple(row) for b in pretraining_dataset(single_file, SEQ, PRED, 64, shuffle=False)
                                     for row in b["input_word_ids"].numpy().tolist())
    assert seen[0] and seen[1] and seen[0] + seen[1] == everything  # disjoint halves of the records
    assert abs(sum(seen[0].values()) - sum(seen[1].values())) <= 1
