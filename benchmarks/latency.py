"""Benchmark: inference latency by sequence length, in-process vs SavedModel vs gRPC.

    python benchmarks/latency.py                               # ALBERT-base and BERT-base shapes
    python benchmarks/latency.py --models=albert-base --lengths=12,128 --calls=30

For each model (random weights; ALBERT-base v2 and a BERT-base-shaped model, E = H and
12 unshared layers, built by the same code) it times, at batch 1 for every length and
at batch 32 × 128 tokens:

- `keras`: the Keras backbone in-process, called through a tf.function;
- `savedmodel`: the albert-export SavedModel's `encode` signature, loaded in-process;
- `grpc`: the same export behind albert-serve, called over loopback gRPC with the
  unmodified TF Serving stubs (`output_filter=["pooled_output"]`);
- `rest`: the same albert-serve over its REST port (`:predict`, columnar JSON, one
  kept-alive connection). TF Serving's REST API has no output filter, so the answer
  carries every output of `encode`, `sequence_output` included, as JSON;
- `tf-serving grpc`: the same behind the real tensorflow_model_server, when there is one
  ($TFS_MODEL_SERVER_BIN or on PATH; albert_tf.serving.process.model_server_binary).

Each row gives N calls, the total time, mean, p50, p90 and p99 in ms, and the served/
SavedModel ratio (the serving overhead: the row's own for served rows, albert-serve
gRPC's for the in-process ones). All paths and variants of one shape are timed
interleaved (`time_interleaved`), so the machine's drift does not bias the ratios. The
same checkpoint is also exported as the
--variants (`xla`: the model part compiled with XLA; `bfloat16`: `--precision=bfloat16`,
the Dense matmuls in bfloat16, which this CPU's AVX512-BF16 runs natively; both;
`bfloat16+xla_short`: bfloat16 plus `--xla_short_lengths=8,12,16`; `xla_rows`: float32
with `--xla_short_lengths=8,12,16,32,64,128`; `tflite`: `--format=tflite`, model.tflite
run in-process by TFLite's interpreter; `tflite_int8`: the same with
`--precision=dynamic_int8`), each timed in-process ("savedmodel <variant>")
with its ratio to float32 and the cosine of its pooled output against float32's. For
each TFLite variant, the row `grpc <variant>` times that version behind albert-serve
--prefer_tflite_model (signature serving_default), and its served ratio is against the
same TFLite model in-process. It writes benchmarks/results/latency.json, latency.md and latency.png
(latency against sequence length, ALBERT vs BERT).
Reference figures from other runtimes on this machine class are in
../shared/reference/peer-performance.md and are quoted beside ours in the markdown.
"""

import argparse
import http.client
import json
import os
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from albert_tf.serving.process import ModelServerProcess, free_port, model_server_binary  # noqa: E402  (no TensorFlow import)
from scratch import scratch_dir  # noqa: E402

MODELS = {"albert-base": "base", "bert-base": "bert-base"}
# Median ms, batch 1, from ../shared/reference/peer-performance.md (round 1), for context.
PEERS = {
    ("albert-base", 12): {"ONNX Runtime": 8.8, "keras-hub TF": 14.6},
    ("albert-base", 128): {"ONNX Runtime": 54.4, "keras-hub TF": 65.9},
    ("bert-base", 12): {"ONNX Runtime": 14.3, "keras-hub TF": 17.4},
    ("bert-base", 128): {"ONNX Runtime": 56.1, "keras-hub TF": 70.3},
}


def log(line):
    print(line, file=sys.stderr, flush=True)


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def summarize(times_ms):
    return {"n": len(times_ms), "total_ms": round(sum(times_ms), 1), "mean_ms": round(statistics.mean(times_ms), 2),
            "p50_ms": round(statistics.median(times_ms), 2), "p90_ms": round(percentile(times_ms, 90), 2),
            "p99_ms": round(percentile(times_ms, 99), 2)}


def time_interleaved(functions, calls, warmup, block=5):
    """Times several functions ({name: callable}) against each other: ms per call, {name: [times]}.

    This machine's speed drifts by 10-30% within minutes, so timing one function after
    another turns drift into false ratios. Here every function runs `warmup` calls, then
    the calls are taken in rounds: each round gives every function one untimed call (to
    bring its weights back into cache after the others ran) and `block` timed calls, in
    an order that reverses every round. Each function gets `calls` timed calls, all spread
    over the same stretch of time.
    """
    for function in functions.values():
        for _ in range(warmup):
            function()
    times = {name: [] for name in functions}
    order = list(functions)
    for round_index in range(-(-calls // block)):
        for name in order if round_index % 2 == 0 else reversed(order):
            function = functions[name]
            function()
            for _ in range(min(block, calls - len(times[name]))):
                began = time.perf_counter()
                function()
                times[name].append(1000 * (time.perf_counter() - began))
    return times


def inputs_for(batch, length, vocab, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, size=(batch, length)).astype(np.int32)
    ids[:, 0], ids[:, -1] = 2, 3
    return {"input_word_ids": ids, "input_mask": np.ones_like(ids), "input_type_ids": np.zeros_like(ids)}


# Export variants timed beside float32 (--variants): ExportOptions overrides.
VARIANTS = {"float32": {}, "xla": {"xla": True}, "bfloat16": {"precision": "bfloat16"},
            "bfloat16+xla": {"precision": "bfloat16", "xla": True},
            "xla_short": {"xla_short_lengths": (8, 12, 16)},
            "bfloat16+xla_short": {"precision": "bfloat16", "xla_short_lengths": (8, 12, 16)},
            # every single row up to 128 tokens through XLA; on an AVX2 Zen 3 padding to the next
            # length lost to --xla (README, "On a CPU without AVX-512")
            "xla_rows": {"xla_short_lengths": (8, 12, 16, 32, 64, 128)},
            # model.tflite (albert-export --format=tflite), run by TFLite's interpreter (XNNPACK)
            "tflite": {"format": "tflite"},
            # the same with int8 weight matrices (--precision=dynamic_int8)
            "tflite_int8": {"format": "tflite", "precision": "dynamic_int8"}}


def load_pooled(path, threads=None):
    """The pooled_output of an export (numpy [B, H]) as a function of the three int32
    inputs (numpy or tf tensors, by name): the SavedModel's `encode` signature, or for a
    TFLite version (--format=tflite) its serving_default signature on `threads` threads
    (default: one per CPU)."""
    import numpy as np

    from albert_tf.export import tflite

    if os.path.exists(os.path.join(path, tflite.TFLITE_FILE)):
        runner = tflite.version_runner(path, threads or os.cpu_count())
        return lambda **inputs: runner(**{k: np.asarray(v) for k, v in inputs.items()})["pooled_output"]
    import tensorflow as tf

    encode = tf.saved_model.load(path).signatures["encode"]
    return lambda **tensors: encode(**tensors)["pooled_output"].numpy()


def prepare_export(name, work):
    """Random-weight backbone → checkpoint → albert-export; returns (config, backbone, export path)."""
    import tensorflow as tf

    from albert_tf.checkpoints import build_model
    from albert_tf.config import AlbertConfig
    from albert_tf.data.synthetic_corpus import write_corpus
    from albert_tf.text.spm_training import train_sentencepiece

    spm = os.path.join(work, "spm.model")
    if not os.path.exists(spm):
        corpus = write_corpus(os.path.join(work, "corpus.txt"), 300, 1)
        train_sentencepiece([corpus], os.path.join(work, "spm"), vocab_size=500)
    config = AlbertConfig.preset(MODELS[name])
    backbone = build_model(config, "backbone")
    tf.train.CheckpointManager(tf.train.Checkpoint(model=backbone), os.path.join(work, name, "ckpt"), 1).save()
    return config, backbone, export_variant(name, work, config, "float32")


def export_variant(name, work, config, variant):
    """Exports the checkpoint prepare_export wrote as `variant` (VARIANTS), under the
    model name `name` for float32 and `name-variant` otherwise; returns its path."""
    from albert_tf.export.exporter import ExportOptions, export_saved_model

    return export_saved_model(ExportOptions(
        checkpoint=os.path.join(work, name, "ckpt"), albert_config=config, export_base=os.path.join(work, "export"),
        model_name=name if variant == "float32" else f"{name}-{variant}", model="backbone",
        spm_model_file=os.path.join(work, "spm.model"), warmup=False, **VARIANTS[variant]), log=lambda _: None)


def cosine(a, b):
    import numpy as np

    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def start_server(backend, model_dir, name, extra_args=()):
    """albert-serve ("embedded") or tensorflow_model_server ("binary") serving the model
    directory `model_dir` as `name`; a started albert_tf.serving.process.ModelServerProcess."""
    flags = [f"--model_name={name}", f"--model_base_path={model_dir}",
             "--xla_cpu_compilation_enabled=true",  # both servers need it for the --xla variants; harmless otherwise
             *extra_args]
    return ModelServerProcess(backend, flags)


def rest_predict(connection, name, body):
    """One REST :predict on a kept-alive http.client connection; the parsed pooled_output."""
    connection.request("POST", f"/v1/models/{name}:predict", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    if response.status != 200:
        raise RuntimeError(f"REST :predict answered {response.status}: {answer}")
    return answer["outputs"]["pooled_output"]


def run(args):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    work = scratch_dir("albert-latency-")
    rows = []
    shapes = [(1, length) for length in args.lengths] + [(32, 128)] * (not args.skip_batch32)
    for name in args.models:
        log(f"{name}: building, exporting")
        config, backbone, path = prepare_export(name, work)
        keras_fn = tf.function(lambda inputs: backbone(inputs, training=False)["pooled_output"], reduce_retracing=True)
        loaded = tf.saved_model.load(path)
        encode = loaded.signatures["encode"]
        variants = {}
        tflite_dirs = {}  # TFLite variant → its model directory (served below)
        for variant in args.variants:
            if variant != "float32":
                log(f"{name}: exporting the {variant} variant")
                variant_path = export_variant(name, work, config, variant)
                variants[variant] = load_pooled(variant_path)
                if VARIANTS[variant].get("format") == "tflite":
                    tflite_dirs[variant] = os.path.dirname(variant_path)
        rest_port = free_port()
        servers = {"grpc": start_server("embedded", os.path.dirname(path), name, [f"--rest_api_port={rest_port}"])}
        for variant, model_dir in tflite_dirs.items():  # behind albert-serve --prefer_tflite_model, serving_default
            servers[f"grpc {variant}"] = start_server("embedded", model_dir, f"{name}-{variant}",
                                                      ["--prefer_tflite_model=true"])
        rest = http.client.HTTPConnection("127.0.0.1", rest_port, timeout=600)
        if model_server_binary():
            log(f"{name}: also timing tensorflow_model_server ({model_server_binary()})")
            servers["tf-serving grpc"] = start_server("binary", os.path.dirname(path), name)
        channels = {path_name: grpc.insecure_channel(server.address, options=[
            ("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])
            for path_name, server in servers.items()}
        stubs = {path_name: prediction_service_pb2_grpc.PredictionServiceStub(channel)
                 for path_name, channel in channels.items()}
        try:
            for batch, length in shapes:
                inputs = inputs_for(batch, length, config.vocab_size)
                tensors = {k: tf.constant(v) for k, v in inputs.items()}
                request = predict_pb2.PredictRequest()
                request.model_spec.name, request.model_spec.signature_name = name, "encode"
                for key, value in inputs.items():
                    request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
                request.output_filter.append("pooled_output")
                requests = {}  # served TFLite variants: the same inputs to serving_default
                for variant in tflite_dirs:
                    served = predict_pb2.PredictRequest()
                    served.CopyFrom(request)
                    served.model_spec.name, served.model_spec.signature_name = f"{name}-{variant}", "serving_default"
                    requests[f"grpc {variant}"] = served
                rest_body = json.dumps({"signature_name": "encode",
                                        "inputs": {k: v.tolist() for k, v in inputs.items()}}).encode("utf-8")
                calls = args.calls if batch == 1 else args.batch_calls
                paths = {
                    "keras": lambda: keras_fn(tensors).numpy(),
                    "savedmodel": lambda: encode(**tensors)["pooled_output"].numpy(),
                    **{path_name: (lambda stub=stub, r=requests.get(path_name, request): stub.Predict(r, timeout=600))
                       for path_name, stub in stubs.items()},
                    "rest": lambda: rest_predict(rest, name, rest_body),
                    **{f"savedmodel {variant}": (lambda f=pooled: f(**tensors)) for variant, pooled in variants.items()},
                }
                results = {path_name: summarize(times)
                           for path_name, times in time_interleaved(paths, calls, args.warmup).items()}
                saved = results["savedmodel"]["p50_ms"]
                ratios = {}  # path → its served / in-process ratio
                for path_name in ("keras", "savedmodel", *servers, "rest"):
                    served = path_name if path_name in (*servers, "rest") else "grpc"  # in-process: albert-serve's
                    # A served TFLite version against the same model.tflite in-process.
                    variant = path_name.removeprefix("grpc ")
                    base = results[f"savedmodel {variant}"]["p50_ms"] if variant in tflite_dirs else saved
                    ratios[path_name] = round(results[served]["p50_ms"] / base, 3)
                    rows.append(dict(model=name, path=path_name, batch=batch, tokens=length, **results[path_name],
                                     served_over_savedmodel=ratios[path_name]))
                log(f"{name} batch {batch} × {length}: keras {results['keras']['p50_ms']} ms, savedmodel {saved} ms, "
                    + ", ".join(f"{p} {results[p]['p50_ms']} ms (×{ratios[p]:.3f})" for p in (*servers, "rest")))
                reference = encode(**tensors)["pooled_output"].numpy()
                for variant, pooled in variants.items():
                    timed = results[f"savedmodel {variant}"]
                    similarity = cosine(pooled(**tensors), reference)
                    rows.append(dict(model=name, path=f"savedmodel {variant}", batch=batch, tokens=length, **timed,
                                     over_float32=round(timed["p50_ms"] / results["savedmodel"]["p50_ms"], 3),
                                     pooled_cosine_vs_float32=round(similarity, 6)))
                    log(f"  {variant}: {timed['p50_ms']} ms (×{rows[-1]['over_float32']} of float32), pooled cosine "
                        f"{similarity:.6f}")
        finally:
            rest.close()
            for channel in channels.values():
                channel.close()
            for server in servers.values():
                server.stop()
    return rows


def write_results(rows, out_dir, command):
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latency.json").write_text(json.dumps({"command": command, "rows": rows}, indent=2))
    lines = [f"Command: `{command}`", "",
             "| model | batch × tokens | path | N | total ms | mean | p50 | p90 | p99 | served / SavedModel (p50) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "served_over_savedmodel" in r:
            lines.append(f"| {r['model']} | {r['batch']} × {r['tokens']} | {r['path']} | {r['n']} | {r['total_ms']} | "
                         f"{r['mean_ms']} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | {r['served_over_savedmodel']} |")
    if any(r["path"].startswith("grpc tflite") for r in rows):
        lines += ["", "`grpc tflite` (and `grpc tflite_int8`): the --format=tflite version behind albert-serve "
                  "--prefer_tflite_model; its served ratio is against the same model.tflite in-process (the variant "
                  "of that name below)."]
    variant_rows = [r for r in rows if "over_float32" in r]
    if variant_rows:
        lines += ["", "Export variants (albert-export --xla / --precision=bfloat16 / --format=tflite), in-process "
                  "(SavedModel `encode`; tflite: TFLite's interpreter):", "",
                  "| model | batch × tokens | variant | p50 ms | × float32 (p50) | pooled cosine vs float32 |",
                  "|---|---|---|---|---|---|"]
        for r in variant_rows:
            lines.append(f"| {r['model']} | {r['batch']} × {r['tokens']} | {r['path'].split(' ', 1)[1]} | "
                         f"{r['p50_ms']} | {r['over_float32']} | {r['pooled_cosine_vs_float32']} |")
    lines += ["", "Peers from another session on this machine class (batch 1, median ms; "
              "../shared/reference/peer-performance.md; benchmarks/peers.py times them in the same run):", "",
              "| model, tokens | ours SavedModel p50 | ONNX Runtime | keras-hub TF | ours / ONNX Runtime |",
              "|---|---|---|---|---|"]
    for (model, tokens), peers in PEERS.items():
        ours = next((r["p50_ms"] for r in rows if r["model"] == model and r["tokens"] == tokens and r["batch"] == 1
                     and r["path"] == "savedmodel"), None)
        if ours is not None:
            lines.append(f"| {model}, {tokens} | {ours} | {peers['ONNX Runtime']} | {peers['keras-hub TF']} | "
                         f"{ours / peers['ONNX Runtime']:.2f} |")
    (out_dir / "latency.md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed (pip install -e '.[bench]'): no PNG")
        return
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for model in sorted({r["model"] for r in rows}):
        for path_name, style in (("savedmodel", "-o"), ("grpc", "--s"), ("savedmodel bfloat16", ":^"),
                                 ("savedmodel bfloat16+xla_short", "-.v")):
            points = sorted((r["tokens"], r["p50_ms"]) for r in rows
                            if r["model"] == model and r["path"] == path_name and r["batch"] == 1)
            if points:
                axis.plot(*zip(*points), style, label=f"{model} {path_name}")
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    axis.set_xlabel("tokens (batch 1)")
    axis.set_ylabel("median latency, ms")
    axis.set_title("albert-tf inference latency, 2 CPU cores (float32 unless marked)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(out_dir / "latency.png", dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="albert-base,bert-base", type=lambda s: s.split(","))
    parser.add_argument("--lengths", default="12,32,64,128,256,512", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--batch_calls", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--skip_batch32", action="store_true")
    parser.add_argument("--variants", default="float32,xla,bfloat16,bfloat16+xla_short", type=lambda s: s.split(","),
                        help=f"export variants timed as SavedModels, of {list(VARIANTS)}")
    parser.add_argument("--out_dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {sorted(MODELS)}")
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    rows = run(args)
    command = "python benchmarks/latency.py " + " ".join(sys.argv[1:])
    write_results(rows, pathlib.Path(args.out_dir), command.strip())
    log(f"wrote {args.out_dir}/latency.json, latency.md, latency.png")


if __name__ == "__main__":
    main()
