"""albert-pipeline: the end-to-end job on a small corpus, as one command.

    albert-pipeline --output_dir=out/pipeline                 # generated corpus
    albert-pipeline --output_dir=out/mine --corpus='my/*.txt'  # your text

The steps:
1. Generate a corpus, unless --corpus is given.
2. Train a SentencePiece model with ALBERT's special ids.
3. Write MLM + SOP TFRecords.
4. Build a tiny ALBERT pretrainer for that vocabulary and run it on a batch of the
   records. The initial MLM loss must be close to ln(vocab size), and the SOP loss
   close to ln 2.
5. Pretrain it with LAMB for --train_steps steps (albert-run-pretraining's loop), then
   evaluate. The MLM loss must fall.

6. Export a TF Serving SavedModel version (albert-export) and call its raw-text
   signature in-process.
7. Start albert-serve on the export, query it over gRPC with the Python client
   (raw text, latency of single-text requests, an MLM fill-in through the `mlm`
   signature), and stop the server cleanly.

Each run rebuilds everything in --output_dir.
"""

import math
import os
import shutil

import time

from albert_tf.cli_support import log, quiet_absl_info, quiet_tensorflow, run_main  # noqa: E402

quiet_tensorflow()

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "out/pipeline", "Where every artefact is written.")
flags.DEFINE_string("corpus", None, "Text files (globs, comma-separated), one sentence per line; default: generated.")
flags.DEFINE_integer("num_documents", 2000, "Documents in the generated corpus.")
flags.DEFINE_integer("vocab_size", 2000, "SentencePiece vocabulary size.")
flags.DEFINE_integer("max_seq_length", 128, "Sequence length of the examples.")
flags.DEFINE_integer("dupe_factor", 2, "Masking passes over the corpus.")
flags.DEFINE_integer("num_workers", os.cpu_count() or 1, "Data workers.")
flags.DEFINE_integer("train_steps", 1200, "Pretraining steps of the tiny model.")
flags.DEFINE_integer("latency_requests", 50, "Single-text gRPC requests timed in the serving step.")
flags.DEFINE_float("learning_rate", 0.02, "LAMB learning rate of the tiny model.")
flags.DEFINE_integer("random_seed", 12345, "Seed of every step.")


class Steps:
    """Prints numbered steps with their duration."""

    def __init__(self, total):
        self.total, self.index, self.start = total, 0, None

    def begin(self, title):
        """Prints "[i/total] title ..." and starts the step's clock."""
        self.index += 1
        self.start = time.perf_counter()
        print(f"[{self.index}/{self.total}] {title} ...", flush=True)

    def end(self, detail):
        """Prints `detail` and the seconds since `begin`."""
        print(f"      {detail} ({time.perf_counter() - self.start:.1f} s)", flush=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    quiet_absl_info()
    from albert_tf.data.pipeline import create_pretraining_data
    from albert_tf.data.synthetic_corpus import write_corpus
    from albert_tf.data.worker import DataOptions, TokenizerSpec
    from albert_tf.text.spm_training import CorpusError, expand_input_patterns, train_sentencepiece

    out = FLAGS.output_dir
    os.makedirs(out, exist_ok=True)
    steps = Steps(7)
    try:
        steps.begin("corpus")
        if FLAGS.corpus:
            corpus_files = expand_input_patterns([FLAGS.corpus], flag="--corpus")
            steps.end(f"{len(corpus_files)} file(s) given")
        else:
            corpus_files = [write_corpus(os.path.join(out, "corpus.txt"), FLAGS.num_documents, FLAGS.random_seed)]
            steps.end(f"generated {FLAGS.num_documents:,} documents → {corpus_files[0]}")

        steps.begin("SentencePiece tokenizer")
        spm_model = train_sentencepiece(corpus_files, os.path.join(out, "spm"), vocab_size=FLAGS.vocab_size)
        steps.end(f"{FLAGS.vocab_size:,} pieces → {spm_model}")

        steps.begin("pretraining data")
        data_dir = os.path.join(out, "data")
        shards = [os.path.join(data_dir, f"train-{i}.tfrecord") for i in range(2)]
        options = DataOptions(max_seq_length=FLAGS.max_seq_length, dupe_factor=FLAGS.dupe_factor,
                              random_seed=FLAGS.random_seed)
        summary = create_pretraining_data(corpus_files, shards, TokenizerSpec(spm_model_file=spm_model), options,
                                          num_workers=FLAGS.num_workers)
        steps.end(
            f"{summary['examples']:,} examples, {summary['tokens']:,} tokens, masked "
            f"{summary['masked'] / summary['tokens']:.3f}, SOP swapped {summary['swapped'] / summary['examples']:.3f}"
            f" → {data_dir}"
        )
    except CorpusError as e:
        log(f"albert-pipeline: {e}")
        return 1

    steps.begin("tiny ALBERT on the records")
    import keras

    from albert_tf.config import AlbertConfig
    from albert_tf.data.dataset import pretraining_dataset
    from albert_tf.models import AlbertBackbone, AlbertPretrainer
    from albert_tf.models.pretrainer import PRETRAINER_INPUT_NAMES
    from albert_tf.params import count_parameters
    from albert_tf.training.losses import masked_lm_loss, sentence_order_loss

    keras.utils.set_random_seed(FLAGS.random_seed)
    config = AlbertConfig.preset("tiny", vocab_size=FLAGS.vocab_size, max_position_embeddings=FLAGS.max_seq_length)
    config.to_json_file(os.path.join(out, "albert_config.json"))
    pretrainer = AlbertPretrainer(AlbertBackbone(config))
    batch = next(iter(pretraining_dataset(shards, FLAGS.max_seq_length, options.max_predictions_per_seq, 32, seed=0)))
    outputs = pretrainer({name: batch[name] for name in PRETRAINER_INPUT_NAMES}, training=False)
    mlm = float(masked_lm_loss(outputs["mlm_logits"], batch["masked_lm_ids"], batch["masked_lm_weights"]))
    sop = float(sentence_order_loss(outputs["sop_logits"], batch["next_sentence_labels"]))
    steps.end(
        f"{count_parameters(config).pretrainer:,} parameters; initial MLM loss {mlm:.3f} "
        f"(ln V = {math.log(config.vocab_size):.3f}), SOP loss {sop:.3f} (ln 2 = {math.log(2):.3f})"
    )
    if abs(mlm - math.log(config.vocab_size)) > 0.5 or abs(sop - math.log(2)) > 0.2:
        log("albert-pipeline: initial losses are far from chance level; the model or data is wrong")
        return 1

    steps.begin(f"pretraining ({FLAGS.train_steps} LAMB steps, batch 32)")
    from albert_tf.training.pretraining import PretrainingOptions, PretrainingRun

    pretrain_dir = os.path.join(out, "pretrain")
    shutil.rmtree(pretrain_dir, ignore_errors=True)  # a fresh run, not a resume of an earlier one
    run = PretrainingRun(
        PretrainingOptions(
            input_file=",".join(shards), output_dir=pretrain_dir, albert_config=config,
            max_seq_length=FLAGS.max_seq_length, max_predictions_per_seq=options.max_predictions_per_seq,
            train_batch_size=32, eval_batch_size=64, learning_rate=FLAGS.learning_rate, num_train_steps=FLAGS.train_steps,
            num_warmup_steps=max(FLAGS.train_steps // 10, 1), save_checkpoints_steps=FLAGS.train_steps,
            log_steps=max(FLAGS.train_steps // 3, 1), max_eval_steps=10, random_seed=FLAGS.random_seed,
        ),
        log=lambda line: print("      " + line, flush=True),
    )
    run.restore_or_initialize()
    run.train()
    results = run.evaluate()
    steps.end(
        f"MLM loss {mlm:.3f} → {results['masked_lm_loss']:.3f}, MLM accuracy "
        f"{results['masked_lm_accuracy']:.3f}, SOP accuracy {results['sentence_order_accuracy']:.3f} "
        f"→ {pretrain_dir}"
    )
    if not results["masked_lm_loss"] < mlm - 0.5:
        log("albert-pipeline: pretraining did not lower the MLM loss")
        return 1

    steps.begin("export for TF Serving")
    import numpy as np
    import tensorflow as tf

    from albert_tf.export.exporter import ExportOptions, export_saved_model

    export_base = os.path.join(out, "export")
    shutil.rmtree(export_base, ignore_errors=True)
    path = export_saved_model(
        ExportOptions(checkpoint=pretrain_dir, albert_config=config, export_base=export_base, model_name="albert",
                      model="pretrainer", spm_model_file=spm_model),
        log=lambda line: print("      " + line, flush=True),
    )
    loaded = tf.saved_model.load(path)
    texts = np.array(["the first document of the corpus.", "a second, longer sentence about something else."], object)
    encoded = loaded.signatures["serving_default"](text=tf.constant(texts), text_b=tf.constant([""]))
    steps.end(f"raw text → pooled_output {tuple(encoded['pooled_output'].shape)}, "
              f"sequence_output {tuple(encoded['sequence_output'].shape)} → {path}")
    steps.begin("albert-serve over gRPC, queried with the client")
    try:
        served = _serve_and_query(path, spm_model, out)
    except RuntimeError as e:
        log(f"albert-pipeline: {e}")
        return 1
    steps.end(served)
    print(f"done: artefacts in {out}")
    return 0


MLM_PROBE = "About 2,500 people visit it every [MASK], most of them in summer."


def _serve_and_query(version_path, spm_model, out):
    """Starts albert-serve on the export, queries it over gRPC, stops it; a summary line."""
    import statistics

    import numpy as np

    from albert_tf.serving.client import AlbertClient, ServingClientError
    from albert_tf.serving.process import ModelServerError, ModelServerProcess
    from albert_tf.text import SentencePieceTokenizer, pack_pair

    log_path = os.path.join(out, "albert-serve.log")
    try:
        server = ModelServerProcess("embedded", ["--model_name=albert", "--model_base_path="
                                                 + os.path.abspath(os.path.dirname(version_path))], log_path=log_path)
    except ModelServerError:
        raise RuntimeError(f"albert-serve did not start; see {log_path}") from None
    try:
        print(f"      albert-serve is up at {server.address} (log: {log_path})", flush=True)
        with AlbertClient(server.address, "albert") as client:
            (status,) = client.status()
            texts = ["The ancient bridge of the old harbour is a famous bridge in the old harbour.",
                     "Today the library is open to the public."]
            encoded = client.predict(texts, output_filter=["pooled_output", "input_mask"])
            timings = []
            for i in range(FLAGS.latency_requests):
                began = time.perf_counter()
                client.predict([texts[i % 2]], output_filter=["pooled_output"])
                timings.append(1000 * (time.perf_counter() - began))
            tokenizer = SentencePieceTokenizer(spm_model)
            before, after = MLM_PROBE.split("[MASK]")
            ids = tokenizer.encode(before) + [tokenizer.mask_id] + tokenizer.encode(after)
            packed = pack_pair(ids, None, 64, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id, pad=False)
            position = packed["input_word_ids"].index(tokenizer.mask_id)
            inputs = {k: np.array([v], np.int32) for k, v in packed.items()}
            logits = client.predict_inputs(dict(inputs, masked_lm_positions=np.array([[position]], np.int32)),
                                           "mlm", ["mlm_logits"])["mlm_logits"][0, 0]
    except (ServingClientError, OSError) as e:
        raise RuntimeError(f"querying albert-serve failed: {e}") from None
    finally:
        returncode, _ = server.stop()
    if returncode != 0:
        raise RuntimeError(f"albert-serve did not stop cleanly (exit {returncode}); see {log_path}")
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    top = np.argsort(-probabilities)[:3]
    guesses = ", ".join(f"{tokenizer.convert_ids_to_tokens([int(i)])[0]} {probabilities[i]:.2f}" for i in top)
    print(f"      version {status['version']} {status['state']}; serving_default: pooled_output "
          f"{encoded['pooled_output'].shape}, tokens per text {encoded['input_mask'].sum(axis=1).tolist()}", flush=True)
    print(f"      mlm over gRPC: {MLM_PROBE!r} → {guesses}", flush=True)
    return (f"{FLAGS.latency_requests} single-text requests over gRPC: median {statistics.median(timings):.1f} ms, "
            f"p90 {sorted(timings)[int(0.9 * len(timings)) - 1]:.1f} ms; server stopped cleanly")


def run():
    """Console-script entry point."""
    run_main(main, __name__)


if __name__ == "__main__":
    run()
