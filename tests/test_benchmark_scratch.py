"""benchmarks/scratch.py: a benchmark run's scratch directory goes away when its process exits."""

import os
import pathlib
import subprocess
import sys

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
