"""TLS for albert-serve's gRPC ports: TF Serving's `--ssl_config_file`.

The file is a tensorflow.serving.SSLConfig text proto (config/ssl_config.proto) holding
the PEM text itself, not file names:

    server_key: "-----BEGIN PRIVATE KEY-----\\n...\\n-----END PRIVATE KEY-----\\n"
    server_cert: "-----BEGIN CERTIFICATE-----\\n...\\n-----END CERTIFICATE-----\\n"
    custom_ca: "..."      # optional: the CA that signs client certificates
    client_verify: true   # optional: require and verify a client certificate (mutual TLS)

As in tensorflow_model_server, the credentials apply to the gRPC port and to
`--grpc_socket_path`; the REST port stays plain HTTP. The key, certificate and CA are
checked with Python's `ssl` module when the file is read, because gRPC reports an
unusable key only as "Failed to bind to address".
"""

import dataclasses
import os
import ssl
import tempfile

from google.protobuf import text_format

from albert_tf.serving.text_proto import proto3_message_class, read_text_proto

FLAG = "--ssl_config_file"


class SslConfigError(ValueError):
    """An SSL config file that cannot be used; the message names the flag, file and field."""


@dataclasses.dataclass(frozen=True)
class SslConfig:
    """PEM texts (str) of the server's key and certificate chain, the CA for client
    certificates ("" = none) and whether a verified client certificate is required."""

    server_key: str
    server_cert: str
    custom_ca: str = ""
    client_verify: bool = False

    def server_credentials(self):
        """grpc.ServerCredentials for `grpc.Server.add_secure_port`."""
        import grpc

        return grpc.ssl_server_credentials(
            [(self.server_key.encode(), self.server_cert.encode())],
            root_certificates=self.custom_ca.encode() if self.custom_ca else None,
            require_client_auth=self.client_verify)


def _ssl_config_class():
    """tensorflow.serving.SSLConfig, which the tensorflow-serving-api wheel does not ship."""
    return proto3_message_class("albert_tf/ssl_config.proto", "tensorflow.serving", {
        "SSLConfig": [("server_key", 1, "string"), ("server_cert", 2, "string"), ("custom_ca", 3, "string"),
                      ("client_verify", 4, "bool")],
    }, "SSLConfig")


def _check_key_and_certificate(config, where):
    """Raises SslConfigError unless the key and certificate parse and belong together."""
    with tempfile.TemporaryDirectory(prefix="albert-serve-tls-") as scratch:
        cert_path, key_path = os.path.join(scratch, "cert.pem"), os.path.join(scratch, "key.pem")
        with open(cert_path, "w", encoding="utf-8") as f:
            f.write(config.server_cert)
        with open(os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600), "w", encoding="utf-8") as f:
            f.write(config.server_key)
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path, key_path)
        except ssl.SSLError as e:
            raise SslConfigError(f"{where}: server_key and server_cert are not a usable PEM key and certificate "
                                 f"chain that belong together ({e.reason or e})") from None


def read_ssl_config(path):
    """Reads and checks an SSLConfig text proto; returns an SslConfig.

    SslConfigError names the file and, for parse errors, the line and column; or the field:
    a missing server_key or server_cert, a key that does not parse or does not match the
    certificate, a custom_ca that is not PEM certificates, client_verify without custom_ca.
    """
    message = read_text_proto(path, _ssl_config_class()(), FLAG, SslConfigError)
    config = SslConfig(message.server_key, message.server_cert, message.custom_ca, message.client_verify)
    check_ssl_config(config, f"{FLAG} {path}")
    return config


def check_ssl_config(config, where):
    """Raises SslConfigError, prefixed with `where`, unless `config` (an SslConfig) holds a
    PEM key and certificate chain that belong together, and a PEM custom_ca when it has
    one or client_verify is set."""
    for field in ("server_key", "server_cert"):
        value = getattr(config, field)
        if not value.strip():
            raise SslConfigError(f"{where}: {field} is empty; it must hold the PEM text itself, not a file name")
        if "-----BEGIN " not in value:
            raise SslConfigError(f"{where}: {field} is not PEM text (no -----BEGIN line); it must hold the PEM text "
                                 f"itself, not a file name (got {value[:60]!r})")
    _check_key_and_certificate(config, where)
    if config.custom_ca:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cadata=config.custom_ca)
        except (ssl.SSLError, ValueError) as e:
            raise SslConfigError(f"{where}: custom_ca is not PEM certificates ({e})") from None
    elif config.client_verify:
        raise SslConfigError(f"{where}: client_verify: true needs custom_ca, the CA that signs the client "
                             "certificates")


def ssl_config_text(config):
    """The SSLConfig text proto (str) of `config`, PEM texts escaped as text_format does;
    what `--ssl_config_file` reads, in albert-serve and tensorflow_model_server alike."""
    message = _ssl_config_class()(server_key=config.server_key, server_cert=config.server_cert,
                                  custom_ca=config.custom_ca, client_verify=config.client_verify)
    return text_format.MessageToString(message)
