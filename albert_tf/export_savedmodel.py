"""albert-export: an albert_tf checkpoint → a TF Serving SavedModel version.

    albert-export --checkpoint=out/pretrain --spm_model_file=out/spm/spiece.model \\
        --export_base=out/export --model_name=albert --model=backbone
    # → out/export/albert/<next version>/ (saved_model.pb, variables/, assets/,
    #   assets.extra/tf_serving_warmup_requests)
    albert-export --checkpoint=out/pretrain --export_base=out/export --model_name=albert-lite --format=tflite
    # → out/export/albert-lite/<next version>/model.tflite (token ids in; --prefer_tflite_model=true)

The checkpoint may come from albert-run-pretraining, fine-tuning or
albert-convert-checkpoint. --albert_config_file defaults to the albert_config.json
beside the checkpoint. Signatures (README, "Serving signatures"): serving_default (raw
text), encode (token ids), serve_examples (tf.Example), and mlm / sop for
--model=pretrainer. The version is written to a temporary directory and renamed into
place, so a polling TF Serving never sees half of it.
"""

import os

from albert_tf.cli_support import log, quiet_absl_info, quiet_tensorflow, run_main

quiet_tensorflow()

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint", None, "A checkpoint of ours: a prefix (out/ckpt-100) or a directory (latest used).")
flags.DEFINE_string("albert_config_file", None,
                    "albert_config.json of the model (default: albert_config.json beside the checkpoint).")
flags.DEFINE_string("spm_model_file", None, "SentencePiece model of the model (English ALBERT).")
flags.DEFINE_string("vocab_file", None, "WordPiece vocab.txt of the model (albert_zh); used without --spm_model_file.")
flags.DEFINE_bool("do_lower_case", True, "Lower-case the text in the graph, as the tokenizer was trained.")
flags.DEFINE_enum("model", "backbone", ["backbone", "pretrainer", "classifier", "squad"],
                  "What to export: the encoder, it with the MLM/SOP heads, or a fine-tuned classifier or SQuAD model.")
flags.DEFINE_string("export_base", None, "The TF Serving model base directory's parent.")
flags.DEFINE_string("model_name", "albert", "Model name: versions go to <export_base>/<model_name>/<version>.")
flags.DEFINE_integer("version", None, "Version number (default: one above the highest present).")
flags.DEFINE_integer("max_seq_length", None,
                     "Longest packed raw-text input; longer texts are truncated (default: max_position_embeddings).")
flags.DEFINE_list("bucket_lengths", [], "Pad raw-text batches up to the next of these lengths (e.g. 16,32,64,128); "
                  "default: to the longest text of the batch.")
flags.DEFINE_bool("xla", False, "Compile the model part of every signature with XLA (jit_compile), for every "
                  "input shape (one compilation per new shape). tensorflow_model_server needs "
                  "--xla_cpu_compilation_enabled=true to run it.")
flags.DEFINE_list("xla_short_lengths", [],
                  "Run a request of one row of at most max(these) tokens through an XLA-compiled float32 copy of "
                  "the model, padded to the first of these lengths that fits (one compilation per length, done "
                  "by the warmup); longer rows and batches run the graph (float32 or --precision). 8,12,16 is the "
                  "fastest short-input setting measured on CPU (README, Performance); default: off. "
                  "tensorflow_model_server needs --xla_cpu_compilation_enabled=true to run it.")
flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16", "dynamic_int8"],
                  "Matmul precision: bfloat16 rounds the Dense kernels and their inputs to bfloat16 (fast on "
                  "AVX512-BF16/AMX CPUs; --format=saved_model). dynamic_int8 stores the weight matrices as int8 "
                  "and quantizes each matmul's input on the fly (--format=tflite; a quarter of the size, the "
                  "fastest export measured on AVX2 CPUs; checked at cosine similarity >= 0.999 to float32). "
                  "LayerNorm, softmax and GELU stay float32.")
flags.DEFINE_bool("warmup", True, "Write assets.extra/tf_serving_warmup_requests.")
flags.DEFINE_enum("format", "saved_model", ["saved_model", "tflite"],
                  "saved_model: a SavedModel with the raw-text, token-id and tf.Example signatures. tflite: "
                  "model.tflite (builtin ops, float32 or --precision=dynamic_int8) with one serving_default "
                  "signature on token ids, for --prefer_tflite_model=true in tensorflow_model_server or "
                  "albert-serve; on CPUs without AVX-512 the fastest float32 export measured from about 40 tokens "
                  "(README, Performance). --spm_model_file/--vocab_file are then optional (copied to "
                  "assets.extra/ for clients).")
flags.mark_flags_as_required(["checkpoint", "export_base"])


def _config_path(checkpoint):
    if FLAGS.albert_config_file:
        return FLAGS.albert_config_file
    directory = checkpoint if os.path.isdir(checkpoint) else os.path.dirname(checkpoint)
    candidate = os.path.join(directory, "albert_config.json")
    if not os.path.isfile(candidate):
        raise app.UsageError(f"--albert_config_file is required: there is no {candidate}")
    return candidate


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    quiet_absl_info()
    from albert_tf.config import AlbertConfig, AlbertConfigError

    config_path = _config_path(FLAGS.checkpoint)
    try:
        config = AlbertConfig.from_json_file(config_path)
    except AlbertConfigError as e:
        log(f"albert-export: --albert_config_file: {e}")
        return 1
    try:
        buckets = tuple(int(b) for b in FLAGS.bucket_lengths)
    except ValueError:
        raise app.UsageError(f"--bucket_lengths: expected integers, got {FLAGS.bucket_lengths}") from None
    try:
        short_lengths = tuple(int(n) for n in FLAGS.xla_short_lengths)
    except ValueError:
        raise app.UsageError(f"--xla_short_lengths: expected integers, got {FLAGS.xla_short_lengths}") from None
    # TensorFlow (seconds to import) only once the flags are known to be usable.
    from albert_tf.export.exporter import ExportError, ExportOptions, export_saved_model

    options = ExportOptions(
        checkpoint=FLAGS.checkpoint,
        albert_config=config,
        export_base=FLAGS.export_base,
        model_name=FLAGS.model_name,
        model=FLAGS.model,
        spm_model_file=FLAGS.spm_model_file,
        vocab_file=FLAGS.vocab_file,
        do_lower_case=FLAGS.do_lower_case,
        version=FLAGS.version,
        max_seq_length=FLAGS.max_seq_length,
        bucket_lengths=buckets,
        xla=FLAGS.xla,
        xla_short_lengths=short_lengths,
        precision=FLAGS.precision,
        warmup=FLAGS.warmup,
        format=FLAGS.format,
    )
    try:
        path = export_saved_model(options, log=log)
    except (ExportError, ValueError) as e:
        log(f"albert-export: {e}")
        return 1
    print(path)
    return 0


def run():
    """Console-script entry point."""
    run_main(main, __name__)


if __name__ == "__main__":
    run()
