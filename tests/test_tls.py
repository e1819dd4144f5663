"""albert-serve's --ssl_config_file (gRPC over TLS, optionally mutual) and the clients' TLS options.

Certificates come from the `pki` fixture (tests/certificates.py, made at run time): a CA, a
server certificate for localhost / 127.0.0.1 and a client certificate, all signed by the CA,
plus a second CA and a client of its own that the server does not trust. The servers are
in-process with no models: a GetModelStatus that comes back NOT_FOUND ("Could not find any
versions of model ...") proves the call crossed TLS.
"""

import os
import subprocess
import sys

import grpc
import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from albert_tf.serving.client import AlbertClient, ServingClientError, TlsCredentials
from albert_tf.serving.server import ModelServer, ServerOptions
from albert_tf.serving.ssl_config import SslConfigError, read_ssl_config
from tests.certificates import ssl_text_proto

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write_config(tmp_path, fields, name="ssl.config"):
    path = tmp_path / name
    path.write_text(ssl_text_proto(fields))
    return str(path)


def _empty_model_config():
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.SetInParent()
    return config


def _start(ssl_config, socket_path=None):
    return ModelServer(ServerOptions(model_config=_empty_model_config(), port=0, ssl_config=ssl_config,
                                     grpc_socket_path=socket_path), log=lambda line: None).start()


def _model_status(channel):
    """The status code of a GetModelStatus for a model the server does not have."""
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "albert"
    try:
        stub.GetModelStatus(request, timeout=10)
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def test_tls_server_answers_tls_clients_only(tmp_path, pki):
    config = read_ssl_config(_write_config(tmp_path, {"server_key": pki["server_key"],
                                                      "server_cert": pki["server_cert"]}))
    assert not config.client_verify and config.custom_ca == ""
    socket_path = str(tmp_path / "grpc.sock")
    server = _start(config, socket_path)
    try:
        trusted = grpc.ssl_channel_credentials(pki["ca"].encode())
        with grpc.secure_channel(f"127.0.0.1:{server.port}", trusted) as channel:
            assert _model_status(channel) == grpc.StatusCode.NOT_FOUND
        # The UNIX socket gets the same credentials, as in TF Serving.
        with grpc.secure_channel(f"unix:{socket_path}", trusted,
                                 options=[("grpc.ssl_target_name_override", "localhost")]) as channel:
            assert _model_status(channel) == grpc.StatusCode.NOT_FOUND
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            assert _model_status(channel) == grpc.StatusCode.UNAVAILABLE
        # A client that does not trust the server's CA refuses the handshake.
        with grpc.secure_channel(f"127.0.0.1:{server.port}",
                                 grpc.ssl_channel_credentials(pki["other_ca"].encode())) as channel:
            assert _model_status(channel) == grpc.StatusCode.UNAVAILABLE
        # The library client, with the CA as TlsCredentials.
        with AlbertClient(f"127.0.0.1:{server.port}", "albert", retries=0,
                          tls=TlsCredentials(root_certificates=pki["ca"].encode())) as client:
            with pytest.raises(ServingClientError) as caught:
                client.status()
        assert caught.value.code == grpc.StatusCode.NOT_FOUND
        assert "Could not find any versions of model albert" in caught.value.details
    finally:
        server.stop(grace=1)


def test_client_verify_requires_a_client_certificate_signed_by_custom_ca(tmp_path, pki):
    config = read_ssl_config(_write_config(tmp_path, {
        "server_key": pki["server_key"], "server_cert": pki["server_cert"], "custom_ca": pki["ca"],
        "client_verify": True}))
    server = _start(config)
    address = f"127.0.0.1:{server.port}"
    try:
        def status_with(key, cert):
            credentials = grpc.ssl_channel_credentials(pki["ca"].encode(), key and key.encode(),
                                                       cert and cert.encode())
            with grpc.secure_channel(address, credentials) as channel:
                return _model_status(channel)

        assert status_with(pki["client_key"], pki["client_cert"]) == grpc.StatusCode.NOT_FOUND
        assert status_with(None, None) == grpc.StatusCode.UNAVAILABLE
        assert status_with(pki["other_client_key"], pki["other_client_cert"]) == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(grace=1)


def test_albert_client_cli_over_mutual_tls(tmp_path, pki):
    """albert-client's --tls_* flags reach a client_verify server (NOT_FOUND: no models),
    and without the client certificate the call fails as UNAVAILABLE."""
    config = read_ssl_config(_write_config(tmp_path, {
        "server_key": pki["server_key"], "server_cert": pki["server_cert"], "custom_ca": pki["ca"],
        "client_verify": True}))
    files = {}
    for name in ("ca", "client_key", "client_cert"):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_text(pki[name])
    server = _start(config)
    try:
        base = [sys.executable, "-m", "albert_tf.client", f"--server=localhost:{server.port}",
                "--output_filter=pooled_output", "--timeout=10", "Hello."]
        with_cert = subprocess.run(base + [f"--tls_ca_file={files['ca']}", f"--tls_key_file={files['client_key']}",
                                           f"--tls_cert_file={files['client_cert']}"],
                                   capture_output=True, text=True, cwd=ROOT, timeout=120)
        without = subprocess.run(base + [f"--tls_ca_file={files['ca']}"],
                                 capture_output=True, text=True, cwd=ROOT, timeout=120)
        half = subprocess.run(base + [f"--tls_key_file={files['client_key']}"],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)
    finally:
        server.stop(grace=1)
    assert with_cert.returncode == 1 and "NOT_FOUND" in with_cert.stderr, with_cert.stderr[-2000:]
    assert without.returncode == 1 and "UNAVAILABLE" in without.stderr, without.stderr[-2000:]
    assert half.returncode != 0 and "--tls_key_file and --tls_cert_file go together" in half.stderr


@pytest.mark.parametrize("case", ["no_key", "file_names", "mismatched_key", "bad_ca", "verify_without_ca",
                                  "unknown_field"])
def test_bad_ssl_config_names_the_file_and_field(tmp_path, pki, case):
    fields = {"server_key": pki["server_key"], "server_cert": pki["server_cert"]}
    expected = {
        "no_key": "server_key is empty; it must hold the PEM text itself",
        "file_names": "server_key is not PEM text (no -----BEGIN line); it must hold the PEM text itself, not a file "
                      "name (got '/etc/tls/server.key')",
        "mismatched_key": "are not a usable PEM key and certificate chain that belong together",
        "bad_ca": "custom_ca is not PEM certificates",
        "verify_without_ca": "client_verify: true needs custom_ca",
        "unknown_field": ':1:1 : Message type "tensorflow.serving.SSLConfig" has no field named "server_certificate"',
    }[case]
    if case == "no_key":
        del fields["server_key"]
    elif case == "file_names":
        fields = {"server_key": "/etc/tls/server.key", "server_cert": "/etc/tls/server.crt"}
    elif case == "mismatched_key":
        fields["server_key"] = pki["client_key"]
    elif case == "bad_ca":
        fields["custom_ca"] = "not a certificate"
    elif case == "verify_without_ca":
        fields["client_verify"] = True
    path = _write_config(tmp_path, fields)
    if case == "unknown_field":
        with open(path, "w") as f:
            f.write('server_certificate: "x"\n')
    with pytest.raises(SslConfigError) as caught:
        read_ssl_config(path)
    assert str(caught.value).startswith(f"--ssl_config_file {path}"), caught.value
    assert expected in str(caught.value), caught.value


def test_albert_serve_refuses_a_bad_ssl_config_before_loading_models(tmp_path, pki):
    path = _write_config(tmp_path, {"server_key": pki["client_key"], "server_cert": pki["server_cert"]})
    done = subprocess.run([sys.executable, "-m", "albert_tf.serve", f"--ssl_config_file={path}",
                           f"--model_base_path={tmp_path / 'missing'}", "--port=0"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"--ssl_config_file {path}: server_key and server_cert" in done.stderr


def test_albert_ssl_config_writes_a_config_both_servers_read(tmp_path, pki):
    """albert-ssl-config turns PEM files into the SSLConfig text proto: mode 0600 (it holds
    the private key), read back field for field; a key of another certificate is refused
    and nothing is written."""
    files = {}
    for name in ("server_key", "server_cert", "ca", "client_key"):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_text(pki[name])
    output = tmp_path / "ssl.config"
    command = [sys.executable, "-m", "albert_tf.make_ssl_config", f"--server_cert={files['server_cert']}"]
    done = subprocess.run(command + [f"--server_key={files['server_key']}", f"--custom_ca={files['ca']}",
                                     "--client_verify", f"--output={output}"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert os.stat(output).st_mode & 0o777 == 0o600
    config = read_ssl_config(str(output))
    assert (config.server_key, config.server_cert, config.custom_ca, config.client_verify) == (
        pki["server_key"], pki["server_cert"], pki["ca"], True)
    printed = subprocess.run(command + [f"--server_key={files['server_key']}"],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert printed.returncode == 0 and printed.stdout.startswith('server_key: "-----BEGIN PRIVATE KEY-----\\n')
    refused = subprocess.run(command + [f"--server_key={files['client_key']}", f"--output={tmp_path / 'bad.config'}"],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert refused.returncode == 1 and "server_key and server_cert are not a usable PEM key" in refused.stderr
    assert f"--server_key {files['client_key']}" in refused.stderr and not (tmp_path / "bad.config").exists()
