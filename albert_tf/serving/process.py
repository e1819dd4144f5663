"""A TF-Serving-compatible model server in a child process: albert-serve or the real binary.

Both backends take the same `tensorflow_model_server` command line, so the main job,
the benchmarks and the protocol tests start either one the same way:

    with ModelServerProcess("embedded", ["--model_name=albert", "--model_base_path=/abs/albert"]) as server:
        AlbertClient(server.address, "albert").predict(["Hello."])

"embedded" runs `python -m albert_tf.serve` with this interpreter; "binary" runs
`tensorflow_model_server` ($TFS_MODEL_SERVER_BIN, else the one on PATH).
"""

import os
import signal
import shutil
import socket
import subprocess
import sys
import tempfile
import time

BACKENDS = ("embedded", "binary")


class ModelServerError(RuntimeError):
    """The server could not be started, exited, or did not become ready; the message
    holds the end of its stderr."""


def model_server_binary():
    """The tensorflow_model_server to run: $TFS_MODEL_SERVER_BIN, else the one on PATH,
    else None."""
    return os.environ.get("TFS_MODEL_SERVER_BIN") or shutil.which("tensorflow_model_server")


def free_port(host="127.0.0.1"):
    """A TCP port that was free on `host` a moment ago (int)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ModelServerProcess:
    """A running model server on 127.0.0.1 and a free port.

    Args:
      backend: "embedded" (albert-serve) or "binary" (tensorflow_model_server).
      flags: tensorflow_model_server flags other than --port (a list of str).
      binary: path of the binary for backend "binary" (default: `model_server_binary()`).
      ready_timeout: seconds to wait for readiness when `expect_ready`.
      expect_ready: wait until the server answers before returning.
      log_path: where its stderr goes; by default a temporary file, deleted by `stop()`.
      tls: a client.TlsCredentials for the readiness check of a server started with
        --ssl_config_file (None: plaintext).

    `.address` is "127.0.0.1:<port>". `stop()` returns (exit code, stderr text). Usable
    as a context manager, which stops the server on exit.
    """

    def __init__(self, backend, flags, binary=None, ready_timeout=180.0, expect_ready=True, log_path=None, tls=None):
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r}: expected one of {BACKENDS}")
        if backend == "embedded":
            command = [sys.executable, "-m", "albert_tf.serve", "--host=127.0.0.1"]
        else:
            binary = binary or model_server_binary()
            if not binary:
                raise ModelServerError("no tensorflow_model_server binary: set TFS_MODEL_SERVER_BIN or put it on PATH")
            command = [binary]
        self.backend, self.tls = backend, tls
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._keep_log = log_path is not None
        if log_path is None:
            handle, log_path = tempfile.mkstemp(prefix=f"model-server-{self.port}-", suffix=".err")
            self._log = os.fdopen(handle, "wb")
        else:
            self._log = open(log_path, "wb")
        self.log_path = log_path
        self._final = None
        self.process = subprocess.Popen(command + [f"--port={self.port}", *flags],
                                        stdout=subprocess.DEVNULL, stderr=self._log)
        if expect_ready:
            try:
                self.wait_ready(ready_timeout)
            except BaseException:
                self.stop()
                raise

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def wait_ready(self, timeout):
        """Waits until a Predict for a missing model answers NOT_FOUND (TF Serving's own
        readiness idiom: the server is up and has loaded its models). Raises
        ModelServerError if the process exits or `timeout` seconds pass."""
        import grpc
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        channel = (grpc.insecure_channel(self.address) if self.tls is None else
                   grpc.secure_channel(self.address, self.tls.channel_credentials()))
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "intentionally_missing_model"
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise ModelServerError(f"{self.backend} model server exited with {self.process.returncode}: "
                                           f"{self.stderr()[-3000:]}")
                try:
                    stub.Predict(request, timeout=1.0)
                except grpc.RpcError as e:
                    if "Servable" in (e.details() or ""):
                        return
                time.sleep(0.2)
            raise ModelServerError(f"{self.backend} model server not ready after {timeout} s: "
                                   f"{self.stderr()[-3000:]}")
        finally:
            channel.close()

    def stderr(self):
        """Everything the server wrote to stderr so far (str)."""
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_exit(self, timeout=120.0):
        """Waits for the process to exit by itself; its exit code."""
        return self.process.wait(timeout=timeout)

    def stop(self):
        """SIGTERM (SIGKILL after 30 s); returns (exit code, stderr). Idempotent. An
        albert-serve that has not stopped by then first gets SIGUSR1, which writes every
        thread's stack to its stderr, so the log shows where it hung."""
        if self._final is not None:
            return self._final
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                if self.backend == "embedded":
                    self.process.send_signal(signal.SIGUSR1)
                    time.sleep(1.0)
                self.process.kill()
                self.process.wait()
        self._log.close()
        text = self.stderr()
        if not self._keep_log:
            os.remove(self.log_path)
        self._final = (self.process.returncode, text)
        return self._final
