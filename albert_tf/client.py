"""albert-client: send texts to a model server over gRPC and print JSON lines.

    albert-client --server=localhost:8500 --model_name=albert "First text." "Second text."
    albert-client --input_file=queries.txt --text_b_file=pairs.txt --batch_size=16
    albert-client --server=models.internal:8500 --tls_ca_file=ca.pem "A text."   # TLS

One JSON object per text on stdout: the text and the outputs (lists). sequence_output
is left out unless --output_filter names it. The latency of each call goes to stderr.
Works with albert-serve and with tensorflow_model_server.
"""

import json
import os
import time

from albert_tf.cli_support import log, quiet_tensorflow, run_main

quiet_tensorflow()

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("server", "localhost:8500", "host:port of the gRPC model server.")
flags.DEFINE_string("model_name", "albert", "Model name on the server.")
flags.DEFINE_integer("model_version", None, "Pin a version (default: the latest).")
flags.DEFINE_string("version_label", None, "Pin a version label (e.g. stable).")
flags.DEFINE_string("input_file", None, "Texts, one per line (instead of arguments).")
flags.DEFINE_string("text_b_file", None, "Second segments, one per line, aligned with the texts.")
flags.DEFINE_list("output_filter", [], "Outputs to fetch (default: all but sequence_output).")
flags.DEFINE_integer("batch_size", 32, "Texts per request.")
flags.DEFINE_float("timeout", 30.0, "Deadline of each call in seconds.")
flags.DEFINE_bool("tls", False, "Connect over TLS (a server started with --ssl_config_file); implied by the "
                  "--tls_* file flags. Without --tls_ca_file the system's root certificates are trusted.")
flags.DEFINE_string("tls_ca_file", None, "PEM file of the CA that signed the server's certificate.")
flags.DEFINE_string("tls_key_file", None, "PEM file of the client's private key (servers with client_verify).")
flags.DEFINE_string("tls_cert_file", None, "PEM file of the client's certificate chain (with --tls_key_file).")
flags.DEFINE_string("tls_server_name", None, "Name to check the server's certificate against, when --server's "
                    "host is not that name.")


def _read_lines(path, flag):
    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]
    except (OSError, UnicodeDecodeError) as e:
        raise app.UsageError(f"--{flag} {path}: {e}") from None


def _tls_credentials():
    """TlsCredentials from the --tls* flags, or None for plaintext."""
    files = {"tls_ca_file": FLAGS.tls_ca_file, "tls_key_file": FLAGS.tls_key_file, "tls_cert_file": FLAGS.tls_cert_file}
    if not (FLAGS.tls or any(files.values()) or FLAGS.tls_server_name):
        return None
    if bool(FLAGS.tls_key_file) != bool(FLAGS.tls_cert_file):
        raise app.UsageError("--tls_key_file and --tls_cert_file go together (the client's key and certificate)")
    from albert_tf.serving.client import TlsCredentials

    for flag, path in files.items():
        if path and not os.path.isfile(path):
            raise app.UsageError(f"--{flag} {path}: no such file")
    return TlsCredentials.from_files(FLAGS.tls_ca_file, FLAGS.tls_key_file, FLAGS.tls_cert_file,
                                     FLAGS.tls_server_name)


def main(argv):
    texts = _read_lines(FLAGS.input_file, "input_file") if FLAGS.input_file else argv[1:]
    if not texts:
        raise app.UsageError("give texts as arguments or --input_file")
    pairs = _read_lines(FLAGS.text_b_file, "text_b_file") if FLAGS.text_b_file else None
    if pairs is not None and len(pairs) != len(texts):
        raise app.UsageError(f"--text_b_file has {len(pairs)} lines for {len(texts)} texts")
    from albert_tf.serving.client import AlbertClient, ServingClientError

    with AlbertClient(FLAGS.server, FLAGS.model_name, version=FLAGS.model_version,
                      version_label=FLAGS.version_label, timeout=FLAGS.timeout, tls=_tls_credentials()) as client:
        try:
            output_filter = FLAGS.output_filter
            if not output_filter:
                outputs = client.metadata()["serving_default"]["outputs"]
                output_filter = sorted(name for name in outputs if name != "sequence_output")
            for start in range(0, len(texts), FLAGS.batch_size):
                batch = texts[start:start + FLAGS.batch_size]
                batch_b = pairs[start:start + FLAGS.batch_size] if pairs else None
                began = time.perf_counter()
                result = client.predict(batch, batch_b, output_filter=output_filter)
                spec = client.last_model_spec
                log(f"albert-client: {len(batch)} text(s) in {1000 * (time.perf_counter() - began):.1f} ms "
                    f"({spec.name} version {spec.version.value})")
                for row, text in enumerate(batch):
                    record = {"text": text} if batch_b is None else {"text": text, "text_b": batch_b[row]}
                    record.update({name: value[row].tolist() for name, value in result.items()})
                    print(json.dumps(record, ensure_ascii=False), flush=True)
        except ServingClientError as e:
            log(f"albert-client: {e}")
            return 1
    return 0


def run():
    """Console-script entry point."""
    run_main(main, __name__)


if __name__ == "__main__":
    run()
