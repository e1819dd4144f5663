"""Scratch directories for benchmark runs, removed when the run's process exits."""

import atexit
import os
import shutil
import sys
import tempfile

KEEP_ENV = "ALBERT_BENCH_KEEP_WORK"


def scratch_dir(prefix):
    """Makes a new directory in the system temp directory (`tempfile.gettempdir()`) for one
    run's corpora, checkpoints and exports, and returns its path (str).

    The directory is removed when the process exits, also after an error or Ctrl-C: one
    `peers.py` run writes about 3 GB there. With ALBERT_BENCH_KEEP_WORK=1 in the
    environment it stays, and its path goes to stderr.
    """
    path = tempfile.mkdtemp(prefix=prefix)
    if os.environ.get(KEEP_ENV) == "1":
        print(f"keeping the scratch directory {path} ({KEEP_ENV}=1)", file=sys.stderr, flush=True)
    else:
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
