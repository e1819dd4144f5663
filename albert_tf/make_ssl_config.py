"""albert-ssl-config: write the --ssl_config_file of albert-serve and tensorflow_model_server.

    albert-ssl-config --server_key=server.key --server_cert=server.crt --output=ssl.config
    albert-ssl-config --server_key=server.key --server_cert=server.crt \\
        --custom_ca=clients-ca.pem --client_verify --output=ssl.config     # mutual TLS

TF Serving's SSLConfig holds the PEM text itself, escaped inside a text proto, which is
awkward to write by hand. This reads the PEM files, checks that the key belongs to the
certificate (and that the CA parses), and writes the file with mode 0600, since it holds
the private key. Without --output it prints the text proto.
"""

import sys

from absl import app, flags

from albert_tf.cli_support import log, run_main

FLAGS = flags.FLAGS
flags.DEFINE_string("server_key", None, "PEM file of the server's private key.")
flags.DEFINE_string("server_cert", None, "PEM file of the server's certificate chain.")
flags.DEFINE_string("custom_ca", None, "PEM file of the CA that signs client certificates (for --client_verify).")
flags.DEFINE_bool("client_verify", False, "Require a client certificate signed by --custom_ca (mutual TLS).")
flags.DEFINE_string("output", None, "Where to write the SSLConfig text proto (mode 0600); default: stdout.")


def _read_pem(flag):
    path = getattr(FLAGS, flag)
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise app.UsageError(f"--{flag} {path}: {getattr(e, 'strerror', None) or e}") from None


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    for flag in ("server_key", "server_cert"):
        if not getattr(FLAGS, flag):
            raise app.UsageError(f"--{flag} is required")
    from albert_tf.io_utils import write_text_atomically
    from albert_tf.serving.ssl_config import SslConfig, SslConfigError, check_ssl_config, ssl_config_text

    config = SslConfig(_read_pem("server_key"), _read_pem("server_cert"),
                       _read_pem("custom_ca") if FLAGS.custom_ca else "", FLAGS.client_verify)
    try:
        check_ssl_config(config, f"--server_key {FLAGS.server_key} / --server_cert {FLAGS.server_cert}")
    except SslConfigError as e:
        log(f"albert-ssl-config: {e}")
        return 1
    text = ssl_config_text(config)
    if FLAGS.output:
        write_text_atomically(FLAGS.output, text)  # a private temporary file (0600), then a rename
        log(f"albert-ssl-config: wrote {FLAGS.output}")
    else:
        sys.stdout.write(text)
    return 0


def run():
    """Console-script entry point."""
    run_main(main, __name__)


if __name__ == "__main__":
    run()
