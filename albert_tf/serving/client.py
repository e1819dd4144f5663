"""A Python client for TF Serving's gRPC API (albert-serve or tensorflow_model_server).

    client = AlbertClient("localhost:8500", model_name="albert")
    outputs = client.predict(["ALBERT shares its layers."])   # {"pooled_output": ndarray, ...}
    client.metadata(); client.status()

It uses only the `tensorflow_serving.apis` stubs. Calls have a deadline (`timeout`), are
retried with exponential backoff when the server is UNAVAILABLE, and failures raise
ServingClientError carrying the server's status code and message.
"""

import dataclasses
import time

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from albert_tf.serving.tensors import to_tensor_proto


class ServingClientError(Exception):
    """An RPC failed: `code` (grpc.StatusCode) and `details` (the server's message)."""

    def __init__(self, code, details, method):
        super().__init__(f"{method}: {code.name}: {details}")
        self.code, self.details = code, details


@dataclasses.dataclass(frozen=True)
class TlsCredentials:
    """What a client needs to reach a TLS server: PEM bytes of the CA that signed the
    server's certificate (None = the system's roots), and for servers that verify clients
    (client_verify) the client's key and certificate chain. `server_name` overrides the
    name checked against the server certificate (when the address is not that name)."""

    root_certificates: bytes = None
    private_key: bytes = None
    certificate_chain: bytes = None
    server_name: str = None

    def __post_init__(self):
        if (self.private_key is None) != (self.certificate_chain is None):
            raise ValueError("a client certificate needs both private_key and certificate_chain")

    def channel_credentials(self):
        """grpc.ChannelCredentials for grpc.secure_channel."""
        return grpc.ssl_channel_credentials(self.root_certificates, self.private_key, self.certificate_chain)

    @classmethod
    def from_files(cls, ca_file=None, key_file=None, cert_file=None, server_name=None):
        """Reads the PEM files (paths or None); OSError names the file that cannot be read."""
        def read(path):
            if not path:
                return None
            with open(path, "rb") as f:
                return f.read()
        return cls(read(ca_file), read(key_file), read(cert_file), server_name or None)


class AlbertClient:
    """Calls a model server over gRPC and returns numpy arrays.

    Args:
      address: "host:port" of the server.
      model_name: the model to call; `version` or `version_label` pin a version.
      timeout: deadline of each call in seconds.
      retries: extra attempts when the server answers UNAVAILABLE (e.g. while starting).
      backoff: first wait between attempts in seconds; doubles each time, up to
        `max_backoff`. The channel's own reconnection backoff follows the same bounds, so
        a client waiting for a starting server connects within `max_backoff` of it binding.
      tls: None for plaintext, or a TlsCredentials to connect over TLS (a server started
        with --ssl_config_file).
    """

    def __init__(self, address="localhost:8500", model_name="albert", version=None, version_label=None,
                 timeout=30.0, retries=3, backoff=0.2, max_backoff=5.0, tls=None):
        if not 0 < backoff <= max_backoff:
            raise ValueError(f"backoff={backoff} and max_backoff={max_backoff}: need 0 < backoff <= max_backoff")
        self.address, self.model_name = address, model_name
        self.version, self.version_label = version, version_label
        self.timeout, self.retries, self.backoff, self.max_backoff = timeout, retries, backoff, max_backoff
        # TF Serving replies can exceed gRPC's 4 MiB default (sequence outputs of large batches).
        options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1),
                   # gRPC's defaults (1 s, growing 1.6× to 120 s) would leave a retry arriving
                   # while the channel still waits to reconnect, failing UNAVAILABLE again.
                   ("grpc.initial_reconnect_backoff_ms", int(backoff * 1000)),
                   ("grpc.max_reconnect_backoff_ms", int(max_backoff * 1000))]
        if tls is None:
            self._channel = grpc.insecure_channel(address, options=options)
        else:
            if tls.server_name:
                options.append(("grpc.ssl_target_name_override", tls.server_name))
            self._channel = grpc.secure_channel(address, tls.channel_credentials(), options=options)
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self):
        """Closes the gRPC channel; the client cannot be used afterwards."""
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _model_spec(self, spec, signature_name=None):
        spec.name = self.model_name
        if self.version is not None:
            spec.version.value = int(self.version)
        elif self.version_label:
            spec.version_label = self.version_label
        if signature_name is not None:
            spec.signature_name = signature_name

    def _call(self, name, method, request):
        wait = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.UNAVAILABLE and attempt < self.retries:
                    time.sleep(wait)
                    wait = min(2 * wait, self.max_backoff)
                    continue
                raise ServingClientError(e.code(), e.details(), name) from None

    def predict_inputs(self, inputs, signature_name="serving_default", output_filter=()):
        """Predict with {alias: array}; returns {alias: numpy array}."""
        request = predict_pb2.PredictRequest()
        self._model_spec(request.model_spec, signature_name)
        for alias, value in inputs.items():
            request.inputs[alias].CopyFrom(to_tensor_proto(np.asarray(value)))
        request.output_filter.extend(output_filter)
        response = self._call("Predict", self._predict.Predict, request)
        self.last_model_spec = response.model_spec
        return {alias: tf.make_ndarray(tensor) for alias, tensor in response.outputs.items()}

    def predict(self, texts, text_b=None, output_filter=()):
        """Raw text through `serving_default`.

        texts: list of str; text_b: optional list of str (one per text, "" = none).
        Returns {output: numpy array}, e.g. pooled_output float32 [B, H].
        """
        texts = [t.encode("utf-8") if isinstance(t, str) else t for t in texts]
        inputs = {"text": np.array(texts, dtype=object)}
        pairs = text_b if text_b is not None else [""] * len(texts)  # one per text: batching needs equal dim 0
        if len(pairs) != len(texts):
            raise ValueError(f"text_b has {len(pairs)} entries for {len(texts)} texts")
        inputs["text_b"] = np.array([p.encode("utf-8") if isinstance(p, str) else p for p in pairs], dtype=object)
        return self.predict_inputs(inputs, "serving_default", output_filter)

    def metadata(self):
        """{signature: {"method": str, "inputs": {alias: (dtype, shape)}, "outputs": {...}}}."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._model_spec(request.model_spec)
        response = self._call("GetModelMetadata", self._predict.GetModelMetadata, request)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)

        def describe(infos):
            return {alias: (tf.as_dtype(info.dtype).name, [d.size for d in info.tensor_shape.dim])
                    for alias, info in infos.items()}

        return {name: {"method": sig.method_name, "inputs": describe(sig.inputs), "outputs": describe(sig.outputs)}
                for name, sig in signatures.signature_def.items() if not name.startswith("__")}

    def status(self):
        """[{"version", "state", "error_code", "error_message"}] of the model's versions."""
        request = get_model_status_pb2.GetModelStatusRequest()
        self._model_spec(request.model_spec)
        response = self._call("GetModelStatus", self._models.GetModelStatus, request)
        names = get_model_status_pb2.ModelVersionStatus.State
        return [{"version": s.version, "state": names.Name(s.state), "error_code": int(s.status.error_code),
                 "error_message": s.status.error_message} for s in response.model_version_status]

    def wait_until_available(self, max_seconds=60.0):
        """Polls GetModelStatus until a version is AVAILABLE; returns the status list."""
        deadline = time.monotonic() + max_seconds
        while True:
            try:
                statuses = self.status()
                if any(s["state"] == "AVAILABLE" for s in statuses):
                    return statuses
            except ServingClientError as e:
                if e.code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND):
                    raise
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.model_name} at {self.address} not available after {max_seconds} s")
            time.sleep(0.2)
