"""What every command-line tool shares: quiet TensorFlow start-up, progress to stderr, and
an absl entry point whose --help lists the tool's flags."""

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


def run_main(main, tool_module, argv=None):
    """Runs an absl `main(argv)` for the tool module `tool_module` (its `__name__`).

    absl's `--help` prints the `__main__` module's docstring and the flags defined there.
    A console script's `__main__` is pip's generated wrapper, which has neither, so
    `albert-export --help` would show no flag at all. This makes every albert_tf flag the
    tool has loaded a key flag of the main module, and the tool's docstring its help text,
    then calls `absl.app.run`.
    """
    from absl import app, flags

    main_module = sys.argv[0]
    for module_name, module_flags in flags.FLAGS.flags_by_module_dict().items():
        if module_name.startswith("albert_tf") and module_name != main_module:
            for flag in module_flags:
                flags.FLAGS.register_key_flag_for_module(main_module, flag)
    wrapper = sys.modules["__main__"]
    if not wrapper.__doc__:
        wrapper.__doc__ = sys.modules[tool_module].__doc__
    app.run(main, argv=argv)
