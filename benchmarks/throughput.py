"""Benchmark: albert-serve throughput with 1, 4 and 16 concurrent gRPC clients, batching off and on.

    python benchmarks/throughput.py                       # ALBERT-base, short and 128-token texts
    python benchmarks/throughput.py --clients=1,16 --seconds=5 --texts=short
    python benchmarks/throughput.py --format=tflite --clients=1,16 --texts=short   # a TFLite version
    python benchmarks/throughput.py --format=tflite --precision=dynamic_int8 --clients=1,16 --texts=short

The model is ALBERT-base v2 with random weights, exported by albert-export. Each client
is a thread with its own gRPC channel that sends raw-text Predict requests
(`serving_default`, `output_filter=["pooled_output"]`) back to back for --seconds after a
warm-up. Two request kinds: `short` texts (12 tokens packed, or a few less) and `long`
ones (128). Batching "on" is albert-serve with --enable_batching and
--batching_parameters_file (default: the shipped serving/batching_parameters.txt, the
configuration we recommend for TF Serving too). With --format=tflite the model is
exported with `albert-export --format=tflite` and served with --prefer_tflite_model; the
clients tokenize and pack the same texts themselves and send token ids to its
`serving_default` (with --precision=dynamic_int8, of the int8 TFLite export), and
batching adds `pad_variable_length_inputs: true` to the batching file (albert-serve
pads with zeros; see serving/README.md for TF Serving).

For each (texts, clients, batching) it reports requests/s and latency mean/p50/p90/p99 ms,
and the batching-on / batching-off requests/s ratio. It writes
benchmarks/results/throughput.json and throughput.md.
"""

import argparse
import json
import pathlib
import random
import shlex
import sys
import threading
import time

from latency import ROOT, export_variant, log, prepare_export, start_server, summarize
from scratch import scratch_dir

BATCHING_FILE = ROOT / "serving" / "batching_parameters.txt"
TEXT_TOKENS = {"short": 12, "long": 128}  # packed length ([CLS] text [SEP]) of each request


def texts_of(kind, corpus_words, tokenizer, count, seed=0):
    """`count` texts of random corpus words, each packing to TEXT_TOKENS[kind] tokens or
    one word's pieces less."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        words, length = [], 2
        while True:
            word = rng.choice(corpus_words)
            pieces = len(tokenizer.encode(word))
            if length + pieces > TEXT_TOKENS[kind]:
                break
            words.append(word)
            length += pieces
        texts.append(" ".join(words))
    return texts


def predict_requests(model_name, texts, tokenizer=None):
    """One PredictRequest per text for `serving_default`: the raw text, or with a tokenizer
    its packed token ids (int32 [1, T]), as a TFLite version takes them."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    from albert_tf.text import pack_pair

    requests = []
    for text in texts:
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = model_name, "serving_default"
        if tokenizer is None:
            request.inputs["text"].CopyFrom(tf.make_tensor_proto([text]))
        else:
            row = pack_pair(tokenizer.encode(text), None, 512, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id,
                            pad=False)
            for name, values in row.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(np.array([values], np.int32)))
        request.output_filter.append("pooled_output")
        requests.append(request)
    return requests


def drive(address, requests, clients, seconds, warmup_seconds):
    """Runs `clients` threads of back-to-back Predict calls (cycling through `requests`);
    returns (requests/s, latencies ms, errors)."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    start_at = time.perf_counter() + warmup_seconds
    stop_at = start_at + seconds
    latencies, errors, lock = [], [], threading.Lock()

    def client(index):
        channel = grpc.insecure_channel(address)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        mine, i = [], index
        try:
            while True:
                began = time.perf_counter()
                if began >= stop_at:
                    break
                try:
                    stub.Predict(requests[i % len(requests)], timeout=120)
                except grpc.RpcError as e:
                    with lock:
                        errors.append(e.code().name)
                    continue
                ended = time.perf_counter()
                if began >= start_at and ended <= stop_at:
                    mine.append(1000 * (ended - began))
                i += clients
        finally:
            channel.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return (len(latencies) / seconds if seconds else 0.0), latencies, errors


def run(args):
    from albert_tf.text import SentencePieceTokenizer

    work = scratch_dir("albert-throughput-")
    log("albert-base: building, exporting")
    config, _, path = prepare_export("albert-base", work)
    model_name, server_flags, batching_file = "albert-base", [], args.batching_parameters_file
    if args.format == "tflite":
        variant = "tflite_int8" if args.precision == "dynamic_int8" else "tflite"
        path = export_variant("albert-base", work, config, variant)
        model_name, server_flags = f"albert-base-{variant}", ["--prefer_tflite_model=true"]
        # Token-id requests of different lengths merge only when padded. albert-serve pads
        # with zeros (input_mask 0 on the padding); TF Serving would pad with each tensor's
        # first element, which is wrong for input_mask (serving/README.md).
        batching_file = str(pathlib.Path(work) / "batching_parameters_padded.txt")
        text = pathlib.Path(args.batching_parameters_file).read_text(encoding="utf-8")
        pathlib.Path(batching_file).write_text(text + "\npad_variable_length_inputs: true\n", encoding="utf-8")
    tokenizer = SentencePieceTokenizer(str(pathlib.Path(work) / "spm.model"))
    corpus_words = (pathlib.Path(work) / "corpus.txt").read_text(encoding="utf-8").split()
    rows = []
    for batching in (False, True):
        extra = ["--enable_batching", f"--batching_parameters_file={batching_file}"] if batching else []
        extra += server_flags + args.server_args
        server = start_server("embedded", str(pathlib.Path(path).parent), model_name, extra)
        try:
            for kind in args.texts:
                texts = texts_of(kind, corpus_words, tokenizer, 64)
                tokens = sum(len(tokenizer.encode(t)) + 2 for t in texts) / len(texts)
                requests = predict_requests(model_name, texts, tokenizer if args.format == "tflite" else None)
                # One client first, untimed: the first calls of a fresh server trace and
                # allocate, and 16 cold clients at once would stall on that.
                drive(server.address, requests, 1, 0.0, args.warmup_seconds)
                for clients in args.clients:
                    rate, latencies, errors = drive(server.address, requests, clients, args.seconds,
                                                    args.warmup_seconds)
                    row = dict(texts=kind, tokens=round(tokens, 1), clients=clients, batching=batching,
                               requests_per_s=round(rate, 2), errors=len(errors),
                               **(summarize(latencies) if latencies else {}))
                    rows.append(row)
                    log(f"{kind} ({row['tokens']} tokens), {clients} clients, batching {'on' if batching else 'off'}: "
                        f"{rate:.1f} req/s, p50 {row.get('p50_ms')} ms, p99 {row.get('p99_ms')} ms, "
                        f"{len(errors)} errors")
        finally:
            server.stop()
    for row in rows:
        if row["batching"]:
            off = next(r for r in rows if not r["batching"] and r["texts"] == row["texts"]
                       and r["clients"] == row["clients"])
            row["on_over_off"] = round(row["requests_per_s"] / off["requests_per_s"], 2) if off["requests_per_s"] else None
    return rows


def write_results(rows, out_dir, command, model_format="saved_model", precision="float32"):
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "throughput.json").write_text(json.dumps({"command": command, "rows": rows}, indent=2))
    what = ("raw-text Predict" if model_format == "saved_model"
            else f"token-id Predict to a --format=tflite --precision={precision} version (--prefer_tflite_model)")
    lines = [f"Command: `{command}`", "",
             f"ALBERT-base (random weights), {what} over loopback gRPC to albert-serve, 2 CPU cores.", "",
             "| texts (mean tokens) | clients | batching | requests/s | on / off | N | mean ms | p50 | p90 | p99 | errors |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["texts"], r["clients"], r["batching"])):
        lines.append(f"| {r['texts']} ({r['tokens']}) | {r['clients']} | {'on' if r['batching'] else 'off'} | "
                     f"{r['requests_per_s']} | {r.get('on_over_off', '')} | {r.get('n', 0)} | {r.get('mean_ms', '')} | "
                     f"{r.get('p50_ms', '')} | {r.get('p90_ms', '')} | {r.get('p99_ms', '')} | {r['errors']} |")
    (out_dir / "throughput.md").write_text("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,4,16", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--texts", default="short,long", type=lambda s: s.split(","))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup_seconds", type=float, default=3.0)
    parser.add_argument("--batching_parameters_file", default=str(BATCHING_FILE))
    parser.add_argument("--server_args", default="", type=shlex.split,
                        help='more albert-serve flags, e.g. "--tensorflow_intra_op_parallelism=1"')
    parser.add_argument("--format", default="saved_model", choices=["saved_model", "tflite"],
                        help="the export served: a SavedModel (raw text) or a TFLite version (token ids)")
    parser.add_argument("--precision", default="float32", choices=["float32", "dynamic_int8"],
                        help="with --format=tflite: albert-export's --precision")
    parser.add_argument("--out_dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    if args.precision != "float32" and args.format != "tflite":
        parser.error(f"--precision={args.precision} needs --format=tflite")
    unknown = [t for t in args.texts if t not in TEXT_TOKENS]
    if unknown:
        parser.error(f"--texts: unknown {unknown}; choose from {sorted(TEXT_TOKENS)}")
    rows = run(args)
    command = ("python benchmarks/throughput.py " + " ".join(sys.argv[1:])).strip()
    write_results(rows, pathlib.Path(args.out_dir), command, args.format, args.precision)
    log(f"wrote {args.out_dir}/throughput.json, throughput.md")


if __name__ == "__main__":
    main()
