"""What every command-line tool shares: quiet TensorFlow start-up and progress to stderr."""

import os
import sys


def quiet_tensorflow():
    """Hides TensorFlow's C++ INFO/WARNING start-up lines (errors still show).

    Call it before TensorFlow is imported. A value the user has set is kept.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def quiet_absl_info():
    """Drops absl INFO lines (TensorFlow logs one per checkpoint write) from progress.

    Call it inside `main`, after absl has parsed the flags.
    """
    from absl import logging

    logging.set_verbosity(logging.WARNING)


def log(line):
    """Prints one progress or error line to stderr, flushed, so stdout stays data."""
    print(line, file=sys.stderr, flush=True)
