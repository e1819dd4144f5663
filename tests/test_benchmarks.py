"""Benchmark helpers: scratch directories go away when the run exits; peers.py's repeat summary;
tflite_split.py's batch split and table."""

import os
import pathlib
import subprocess
import sys

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"

# Makes a scratch directory, writes a file into it, prints its path, then fails or exits
# as argv[1] says.
_RUN = """
import pathlib, sys
from scratch import scratch_dir
work = pathlib.Path(scratch_dir("albert-test-scratch-"))
(work / "export.bin").write_bytes(b"x" * 1000)
print(work, flush=True)
if sys.argv[1] == "fail":
    raise RuntimeError("benchmark failed")
"""


def _run(tmp_path, mode, keep=None):
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(BENCHMARKS)}
    env.pop("ALBERT_BENCH_KEEP_WORK", None)
    if keep is not None:
        env["ALBERT_BENCH_KEEP_WORK"] = keep
    done = subprocess.run([sys.executable, "-c", _RUN, mode], env=env, capture_output=True, text=True)
    work = pathlib.Path(done.stdout.strip())
    assert work.parent == tmp_path and work.name.startswith("albert-test-scratch-"), done.stdout
    return done, work


def test_removed_after_a_normal_exit(tmp_path):
    done, work = _run(tmp_path, "ok")
    assert done.returncode == 0, done.stderr
    assert not work.exists()


def test_removed_after_an_error(tmp_path):
    done, work = _run(tmp_path, "fail")
    assert done.returncode == 1 and "benchmark failed" in done.stderr
    assert not work.exists()


def test_kept_and_named_when_asked(tmp_path):
    done, work = _run(tmp_path, "fail", keep="1")
    assert (work / "export.bin").stat().st_size == 1000
    assert f"keeping the scratch directory {work}" in done.stderr


@pytest.fixture
def peers_module(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import peers

    return peers


def _peer_rows(ratios):
    """peers.run-shaped rows: ONNX Runtime at 10 ms and "ours xla" at 10 × ratio, one per repeat."""
    rows = []
    for repeat, ratio in enumerate(ratios, start=1):
        for runtime, ms in (("ours (SavedModel)", 20.0), ("ours xla", 10.0 * ratio), ("ONNX Runtime", 10.0)):
            rows.append(dict(model="albert-base", batch=1, tokens=12, repeat=repeat, runtime=runtime, p50_ms=ms,
                             ours_over_onnxruntime=2.0))
            if runtime.startswith("ours"):
                rows[-1]["over_onnxruntime"] = round(ms / 10.0, 3)
    return rows


def test_peers_summarizes_repeats(tmp_path, peers_module):
    peers_module.write_results(_peer_rows([1.02, 0.96, 1.10, 0.99]), tmp_path, "cmd", {"tensorflow": "x"}, 2)
    text = (tmp_path / "peers.md").read_text()
    assert "| albert-base | 1 × 12, repeat 3 | 20.0 | 11.0 | 10.0 | 2.0 | 1.1 (ours xla) |" in text
    assert "| albert-base | 1 × 12 | ours xla | 1.02, 0.96, 1.10, 0.99 | 1.00 | 2 of 4 |" in text
    assert "| albert-base | 1 × 12 | ours (SavedModel) | 2.00, 2.00, 2.00, 2.00 | 2.00 | 0 of 4 |" in text


def test_peers_single_run_has_no_repeat_summary(tmp_path, peers_module):
    peers_module.write_results(_peer_rows([0.9]), tmp_path, "cmd", {"tensorflow": "x"}, 2)
    text = (tmp_path / "peers.md").read_text()
    assert "| albert-base | 1 × 12 | 20.0 | 9.0 | 10.0 | 2.0 | 0.9 (ours xla) |" in text
    assert "repeat" not in text


def test_peers_reports_int8_against_both_onnx_runtimes(tmp_path, peers_module):
    """Rows with an int8 runtime get the reduced-precision table: cosine to float32, and
    ours over ONNX Runtime float32 and over ONNX Runtime int8; the other runtimes do not."""
    rows = _peer_rows([0.9])
    rows.append(dict(model="albert-base", batch=1, tokens=12, repeat=1, runtime="ours tflite_int8", p50_ms=7.0,
                     ours_over_onnxruntime=2.0, over_onnxruntime=0.7, over_onnxruntime_int8=1.4,
                     pooled_cosine_to_float32=0.9997))
    rows.append(dict(model="albert-base", batch=1, tokens=12, repeat=1, runtime="ONNX Runtime int8", p50_ms=5.0,
                     ours_over_onnxruntime=2.0, pooled_cosine_to_float32=0.9992))
    peers_module.write_results(rows, tmp_path, "cmd", {"tensorflow": "x"}, 2)
    text = (tmp_path / "peers.md").read_text()
    assert "| albert-base | 1 × 12 | 20.0 | 9.0 | 10.0 | 7.0 | 5.0 | 2.0 | 0.7 (ours tflite_int8) |" in text
    assert "| albert-base | 1 × 12 | ours tflite_int8 | 7.0 | 0.9997 | 0.7 | 1.4 |" in text
    assert "| albert-base | 1 × 12 | ONNX Runtime int8 | 5.0 | 0.9992 |  |  |" in text
    assert "| ours xla | 9.0 |" not in text and "| ONNX Runtime | 10.0 |" not in text


@pytest.fixture
def split_module(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import tflite_split

    return tflite_split


def test_split_batch_keeps_rows_in_order(split_module):
    import numpy as np

    ids = np.arange(10).reshape(5, 2)
    parts = split_module.split_batch({"input_word_ids": ids, "input_mask": ids + 100}, 2)
    assert [part["input_word_ids"].shape for part in parts] == [(3, 2), (2, 2)]
    np.testing.assert_array_equal(np.concatenate([part["input_mask"] for part in parts]), ids + 100)
    with pytest.raises(ValueError, match="cannot split a batch of 5 into 6 parts"):
        split_module.split_batch({"input_word_ids": ids}, 6)


def test_run_split_runs_parts_on_their_own_runners_at_once(split_module):
    """Each runner gets one part, all parts run at the same time (each waits at a barrier
    that only opens when every part has arrived), and the outputs come back in batch order."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    barrier = threading.Barrier(3, timeout=10)
    seen = []

    def runner(input_word_ids, input_mask):
        seen.append(input_word_ids.shape[0])
        barrier.wait()
        return {"pooled_output": (input_word_ids * input_mask).sum(axis=1, keepdims=True).astype(np.float32)}

    ids = np.arange(14).reshape(7, 2)
    mask = np.ones_like(ids)
    with ThreadPoolExecutor(3) as executor:
        got = split_module.run_split([runner] * 3, executor, {"input_word_ids": ids, "input_mask": mask})
    np.testing.assert_array_equal(got, ids.sum(axis=1, keepdims=True))
    assert sorted(seen) == [2, 2, 3]


def test_split_results_table(tmp_path, split_module):
    row = {"variant": "tflite_int8", "batch": 16, "tokens": 12, "threads": 2, "calls": 10,
           "one_interpreter_ms": 160.3, "split_ms": 157.2, "split_over_one": 0.981, "max_abs_difference": 0.0}
    split_module.write_results([row], tmp_path, "cmd")
    assert "| tflite_int8 | 16 × 12 | 160.3 (2) | 157.2 | 0.981 | 0.0e+00 |" in (tmp_path / "tflite_split.md").read_text()


def test_split_refuses_shapes_it_cannot_split():
    done = subprocess.run([sys.executable, str(BENCHMARKS / "tflite_split.py"), "--shapes=1x12,16x12", "--threads=2"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "--shapes ['1x12'] have fewer rows than --threads=2" in done.stderr
