"""Starts a model server for the protocol tests: albert-serve, or the real binary.

Both backends get the same tensorflow_model_server command line
(`albert_tf.serving.process`). The embedded server is the default. The binary is
`$TFS_MODEL_SERVER_BIN` or `tensorflow_model_server` on PATH; tests that need it are
skipped only when it is absent.
"""

import pytest

from albert_tf.serving.process import BACKENDS, ModelServerProcess, model_server_binary

__all__ = ["BACKENDS", "ServerProcess"]


def ServerProcess(backend, flags, **kwargs):
    """A started ModelServerProcess; skips the test for the "binary" backend without a binary."""
    if backend == "binary" and not model_server_binary():
        pytest.skip("no tensorflow_model_server binary (set TFS_MODEL_SERVER_BIN)")
    return ModelServerProcess(backend, flags, **kwargs)
