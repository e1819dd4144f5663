"""Benchmark: our SavedModel beside ONNX Runtime, keras-hub and PyTorch on the same configs, in one run.

    pip install -e '.[peers]'            # onnxruntime, onnx, onnxscript, torch (CPU), transformers, keras-hub
    python benchmarks/peers.py           # ALBERT-base and BERT-base, 12 and 128 tokens, batch 32 × 128
    python benchmarks/peers.py --models=albert-base --lengths=128 --skip_batch32
    python benchmarks/peers.py --models=albert-base --lengths=12 --skip_batch32 --threads=1
    python benchmarks/peers.py --models=albert-base --lengths=12 --skip_batch32 --skip_torch --our_variants=xla --repeats=8

Every runtime gets the same shapes, random weights and random token ids, and --threads intra-op
threads (default 2, the machine's cores). The peers are built from the same hyper-parameters:
transformers' AlbertModel / BertModel (gelu_new, as the original), run in PyTorch eager,
and exported to ONNX (torch.onnx.export) for ONNX Runtime's CPU provider with all graph
optimizations; keras-hub's TensorFlow AlbertBackbone / BertBackbone (0.25.1, the newest
that runs on our pinned Keras 3.12, so it shares our TensorFlow build), called through a
tf.function with and without jit_compile. Ours is the albert-export SavedModel's `encode` signature loaded
in-process (what latency.py calls "savedmodel"), float32 and each of --our_variants
(latency.VARIANTS; default xla, bfloat16 and bfloat16+xla_short: `albert-export --xla`,
`--precision=bfloat16`, and that with `--xla_short_lengths=8,12,16`; xla_short is float32
with `--xla_short_lengths=8,12,16`, xla_rows with `--xla_short_lengths=8,12,16,32,64,128`,
tflite is `--format=tflite` run by TFLite's interpreter on --threads threads, tflite_int8 the
same with `--precision=dynamic_int8`). When one of ours is int8, ONNX Runtime's own
dynamic int8 quantization runs too, as "ONNX Runtime int8"
(onnxruntime.quantization.quantize_dynamic: int8 weights with one scale per tensor, its
fastest setting here; ours has one per output channel), so reduced precision is
compared like for like; its rows and ours int8 also report the pooled output's cosine
similarity to the same runtime in float32.
Each cell is the median of --calls
timed calls after --warmup (batch 32: --batch_calls), taken interleaved: the runtimes
alternate in blocks of 5 calls (latency.time_interleaved), so the machine's drift does
not land on one runtime. --repeats=N times every shape N times over in the same process
(the exports and peers are built once); the markdown then adds, for each of ours, its
ratio to ONNX Runtime in every repeat, their median and how many were at most 1.0.
The peers' parameter counts are checked against ours first, so the comparison is like
for like. Writes benchmarks/results/peers.json and peers.md with ours / ONNX Runtime
ratios.
"""

import argparse
import collections
import itertools
import json
import os
import pathlib
import statistics
import sys

from latency import ROOT, cosine, export_variant, inputs_for, load_pooled, log, prepare_export, summarize, time_interleaved
from scratch import scratch_dir


def torch_model(config, name):
    """transformers model with our config's hyper-parameters, random weights, eval mode."""
    import torch
    import transformers

    torch.manual_seed(0)
    common = dict(vocab_size=config.vocab_size, hidden_size=config.hidden_size,
                  num_hidden_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
                  intermediate_size=config.intermediate_size, max_position_embeddings=config.max_position_embeddings,
                  type_vocab_size=config.type_vocab_size, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    if name.startswith("albert"):
        model = transformers.AlbertModel(transformers.AlbertConfig(
            embedding_size=config.embedding_size, num_hidden_groups=config.num_hidden_groups,
            inner_group_num=config.inner_group_num, hidden_act="gelu_new", **common))
    else:
        model = transformers.BertModel(transformers.BertConfig(hidden_act="gelu_new", **common))
    return model.eval()


def keras_hub_model(config, name):
    """keras-hub's TF backbone with our config's hyper-parameters (random weights)."""
    import keras_hub

    common = dict(vocabulary_size=config.vocab_size, num_layers=config.num_hidden_layers,
                  num_heads=config.num_attention_heads, hidden_dim=config.hidden_size,
                  intermediate_dim=config.intermediate_size, dropout=0.0,
                  max_sequence_length=config.max_position_embeddings, num_segments=config.type_vocab_size)
    if name.startswith("albert"):
        return keras_hub.models.AlbertBackbone(embedding_dim=config.embedding_size, num_groups=config.num_hidden_groups,
                                               num_inner_repetitions=config.inner_group_num, **common)
    return keras_hub.models.BertBackbone(**common)


def onnx_session(model, path, threads):
    import onnxruntime
    import torch

    class Positional(torch.nn.Module):  # the exporter traces positional inputs; transformers wants keywords
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state, out.pooler_output

    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
            "token_type_ids": {0: "batch", 1: "seq"}}
    example = tuple(torch.ones((1, 8), dtype=torch.int64) for _ in axes)
    torch.onnx.export(Positional(model), example, path, input_names=list(axes),
                      output_names=["last_hidden_state", "pooler_output"], dynamic_axes=axes, opset_version=17,
                      dynamo=False)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def onnx_int8_session(path, threads):
    """ONNX Runtime on the float32 ONNX model at `path` quantized with quantize_dynamic
    (int8 weights, one scale per tensor: per channel was slower and less accurate)."""
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # torch.onnx.export reaches ALBERT's shared weights through Identity nodes, which the
    # quantizer does not follow (it left 90 of 97 MatMuls float32); ORT's basic graph
    # optimizations remove them first.
    basic = onnxruntime.SessionOptions()
    basic.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    stem = os.path.splitext(path)[0]
    basic.optimized_model_filepath = stem + "-basic.onnx"
    onnxruntime.InferenceSession(path, basic, providers=["CPUExecutionProvider"])
    quantized = stem + "-int8.onnx"
    quantize_dynamic(basic.optimized_model_filepath, quantized, weight_type=QuantType.QInt8)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(quantized, options, providers=["CPUExecutionProvider"])


def run(args):
    import tensorflow as tf
    import torch

    torch.set_num_threads(args.threads)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)  # before TensorFlow's runtime starts
    work = scratch_dir("albert-peers-")
    rows = []
    shapes = [(1, n) for n in args.lengths] + [(32, 128)] * (not args.skip_batch32)
    for name in args.models:
        log(f"{name}: building ours (export) and the peers (transformers → ONNX)")
        config, backbone, path = prepare_export(name, work)
        ours_params = backbone.count_params()
        del backbone
        peer = torch_model(config, name)
        peer_params = sum(p.numel() for p in peer.parameters())
        if peer_params != ours_params:
            raise SystemExit(f"{name}: the transformers model has {peer_params:,} parameters, ours {ours_params:,}")
        session = onnx_session(peer, os.path.join(work, f"{name}.onnx"), args.threads)
        int8 = any("int8" in v for v in args.our_variants)
        session_int8 = onnx_int8_session(os.path.join(work, f"{name}.onnx"), args.threads) if int8 else None
        hub = keras_hub_model(config, name)
        if hub.count_params() != ours_params:
            raise SystemExit(f"{name}: the keras-hub model has {hub.count_params():,} parameters, ours {ours_params:,}")
        # All outputs, as our encode signature computes them (pooled alone lets XLA skip work).
        hub_call = tf.function(lambda x: hub(x, training=False))
        hub_xla = tf.function(lambda x: hub(x, training=False), jit_compile=True)
        encode = tf.saved_model.load(path).signatures["encode"]
        ours_variants = {variant: load_pooled(export_variant(name, work, config, variant), args.threads)
                         for variant in args.our_variants}
        for repeat, (batch, length) in itertools.product(range(1, args.repeats + 1), shapes):
            inputs = inputs_for(batch, length, config.vocab_size)
            tensors = {k: tf.constant(v) for k, v in inputs.items()}
            feeds = {"input_ids": inputs["input_word_ids"].astype("int64"),
                     "attention_mask": inputs["input_mask"].astype("int64"),
                     "token_type_ids": inputs["input_type_ids"].astype("int64")}
            torch_feeds = {k: torch.from_numpy(v) for k, v in feeds.items()}
            hub_feeds = {"token_ids": tensors["input_word_ids"], "segment_ids": tensors["input_type_ids"],
                         "padding_mask": tensors["input_mask"]}

            def run_torch():
                with torch.inference_mode():
                    peer(**torch_feeds)

            calls = args.calls if batch == 1 else args.batch_calls
            runtimes = {
                "ours (SavedModel)": lambda: encode(**tensors)["pooled_output"].numpy(),
                **{f"ours {variant}": (lambda f=pooled: f(**tensors)) for variant, pooled in ours_variants.items()},
                "ONNX Runtime": lambda: session.run(["pooler_output"], feeds),
                "keras-hub": lambda: hub_call(hub_feeds)["pooled_output"].numpy(),
                "keras-hub xla": lambda: hub_xla(hub_feeds)["pooled_output"].numpy(),
                "PyTorch eager": run_torch,
            }
            if args.skip_torch:
                del runtimes["PyTorch eager"]
            cosines = {}  # reduced-precision runtime -> pooled output's cosine to its float32 counterpart
            if int8:
                runtimes["ONNX Runtime int8"] = lambda: session_int8.run(["pooler_output"], feeds)
                onnx_float32 = session.run(["pooler_output"], feeds)[0]
                cosines["ONNX Runtime int8"] = cosine(session_int8.run(["pooler_output"], feeds)[0], onnx_float32)
                ours_float32 = (ours_variants["tflite"](**tensors) if "tflite" in ours_variants
                                else encode(**tensors)["pooled_output"].numpy())
                cosines.update({f"ours {v}": cosine(ours_variants[v](**tensors), ours_float32)
                                for v in args.our_variants if "int8" in v})
            results = {runtime: summarize(times)
                       for runtime, times in time_interleaved(runtimes, calls, args.warmup).items()}
            for runtime, result in results.items():
                rows.append(dict(model=name, batch=batch, tokens=length, repeat=repeat, runtime=runtime, **result))
            onnx = results["ONNX Runtime"]["p50_ms"]
            ratio = results["ours (SavedModel)"]["p50_ms"] / onnx
            for row in rows[-len(results):]:
                row["ours_over_onnxruntime"] = round(ratio, 3)
                if row["runtime"].startswith("ours"):
                    row["over_onnxruntime"] = round(row["p50_ms"] / onnx, 3)
                if row["runtime"] in cosines:
                    row["pooled_cosine_to_float32"] = round(cosines[row["runtime"]], 6)
                if row["runtime"].startswith("ours") and "int8" in row["runtime"]:
                    row["over_onnxruntime_int8"] = round(row["p50_ms"] / results["ONNX Runtime int8"]["p50_ms"], 3)
            label = f"{name} {batch} × {length}" + (f", repeat {repeat}" if args.repeats > 1 else "")
            log(f"{label}: " + ", ".join(f"{k} {v['p50_ms']} ms" for k, v in results.items())
                + f"  (ours / ONNX Runtime ×{ratio:.2f})")
    return rows


def write_results(rows, out_dir, command, versions, threads):
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "peers.json").write_text(json.dumps({"command": command, "versions": versions, "rows": rows}, indent=2))
    runtimes = list(dict.fromkeys(r["runtime"] for r in rows))
    lines = [f"Command: `{command}`", "", "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()), "",
             f"Median ms per call (p50), random weights, {threads} intra-op thread(s), the runtimes interleaved in blocks of 5 "
             "calls; float32 except ours bfloat16 (bfloat16 matmuls, the rest float32) and ours "
             "xla_short / bfloat16+xla_short (one row of at most 16 tokens: float32 through XLA, padded to 8, "
             "12 or 16; the rest as float32 / bfloat16) and ours xla_rows (one row of at most 128 tokens: "
             "float32 through XLA, padded to 8, 12, 16, 32, 64 or 128; the rest float32); ours tflite is "
             "model.tflite (--format=tflite) in TFLite's interpreter, float32, and ours tflite_int8 the same with "
             "--precision=dynamic_int8 (int8 weight matrices, matmul inputs quantized on the fly); ONNX Runtime int8 "
             "is its quantize_dynamic (int8 weights) of the float32 ONNX model.", "",
             "| model | batch × tokens | " + " | ".join(runtimes) + " | ours float32 / ONNX Runtime | best of ours / ONNX Runtime |",
             "|---|---|" + "---|" * len(runtimes) + "---|---|"]
    repeats = max(r["repeat"] for r in rows)
    timings = collections.defaultdict(dict)  # (model, batch, tokens, repeat) -> {runtime: row}, in run order
    ratios = collections.defaultdict(list)  # (model, batch, tokens, ours runtime) -> its ratio in each repeat
    for r in rows:
        timings[r["model"], r["batch"], r["tokens"], r["repeat"]][r["runtime"]] = r
        if "over_onnxruntime" in r:
            ratios[r["model"], r["batch"], r["tokens"], r["runtime"]].append(r["over_onnxruntime"])
    for key, cells in timings.items():
        first = next(iter(cells.values()))
        best = min((r for r in cells.values() if "over_onnxruntime" in r), key=lambda r: r["over_onnxruntime"])
        shape = f"{key[1]} × {key[2]}" + (f", repeat {key[3]}" if repeats > 1 else "")
        lines.append(f"| {key[0]} | {shape} | " + " | ".join(
            str(cells[rt]["p50_ms"]) if rt in cells else "" for rt in runtimes)
            + f" | {first['ours_over_onnxruntime']} | {best['over_onnxruntime']} ({best['runtime']}) |")
    if repeats > 1:
        lines += ["", f"Ours / ONNX Runtime in each of the {repeats} repeats:", "",
                  "| model | batch × tokens | ours | per repeat | median | at most 1.0 |", "|---|---|---|---|---|---|"]
        for (model, batch, tokens, runtime), values in ratios.items():
            lines.append(f"| {model} | {batch} × {tokens} | {runtime} | {', '.join(f'{x:.2f}' for x in values)} | "
                         f"{statistics.median(values):.2f} | {sum(x <= 1.0 for x in values)} of {len(values)} |")
    int8_rows = [r for r in rows if "pooled_cosine_to_float32" in r]
    if int8_rows:
        lines += ["", "Reduced precision against the same runtime in float32 (pooled output, float32: ours tflite "
                  "or ours SavedModel, ONNX Runtime) and ours int8 against ONNX Runtime int8:", "",
                  "| model | batch × tokens | runtime | p50 ms | cosine to float32 | over ONNX Runtime (float32) | "
                  "over ONNX Runtime int8 |", "|---|---|---|---|---|---|---|"]
        for r in int8_rows:
            shape = f"{r['batch']} × {r['tokens']}" + (f", repeat {r['repeat']}" if repeats > 1 else "")
            lines.append(f"| {r['model']} | {shape} | {r['runtime']} | {r['p50_ms']} | {r['pooled_cosine_to_float32']} | "
                         f"{r.get('over_onnxruntime', '')} | {r.get('over_onnxruntime_int8', '')} |")
    (out_dir / "peers.md").write_text("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="albert-base,bert-base", type=lambda s: s.split(","))
    parser.add_argument("--lengths", default="12,128", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--batch_calls", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--skip_batch32", action="store_true")
    parser.add_argument("--skip_torch", action="store_true", help="leave PyTorch eager out")
    parser.add_argument("--our_variants", default="xla,bfloat16,bfloat16+xla_short",
                        type=lambda s: [v for v in s.split(",") if v],
                        help="our export variants timed too (latency.VARIANTS)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for every runtime")
    parser.add_argument("--repeats", type=int, default=1, help="time every shape this many times over")
    parser.add_argument("--out_dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    if args.threads < 1:
        raise SystemExit(f"--threads must be at least 1, got {args.threads}")
    if args.repeats < 1:
        raise SystemExit(f"--repeats must be at least 1, got {args.repeats}")
    try:
        import keras_hub
        import onnxruntime
        import tensorflow as tf
        import torch
        import transformers
    except ImportError as e:
        raise SystemExit(f"peers need the [peers] extra: pip install -e '.[peers]' ({e})")
    versions = {"tensorflow": tf.__version__, "onnxruntime": onnxruntime.__version__, "keras-hub": keras_hub.__version__,
                "torch": torch.__version__, "transformers": transformers.__version__}
    rows = run(args)
    command = ("python benchmarks/peers.py " + " ".join(sys.argv[1:])).strip()
    write_results(rows, pathlib.Path(args.out_dir), command, versions, args.threads)
    log(f"wrote {args.out_dir}/peers.json, peers.md")


if __name__ == "__main__":
    main()
