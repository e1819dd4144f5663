"""Benchmark: our SavedModel beside ONNX Runtime and PyTorch on the same configs, in one run.

    pip install -e '.[peers]'            # onnxruntime, onnx, onnxscript, torch (CPU), transformers
    python benchmarks/peers.py           # ALBERT-base and BERT-base, 12 and 128 tokens, batch 32 × 128
    python benchmarks/peers.py --models=albert-base --lengths=128 --skip_batch32

Every runtime gets the same shapes, random weights and random token ids; 2 intra-op
threads (the machine's cores). The peers are built from the same hyper-parameters:
transformers' AlbertModel / BertModel (gelu_new, as the original), run in PyTorch eager,
and exported to ONNX (torch.onnx.export) for ONNX Runtime's CPU provider with all graph
optimizations. Ours is the albert-export SavedModel's `encode` signature loaded
in-process (what latency.py calls "savedmodel"), float32 and each of --our_variants
(default xla and bfloat16: `albert-export --xla` and `albert-export --precision=bfloat16`).
Each cell is the median of --calls
timed calls after --warmup (batch 32: --batch_calls). The peers' parameter counts are
checked against ours first, so the comparison is like for like. Writes
benchmarks/results/peers.json and peers.md with ours / ONNX Runtime ratios.
"""

import argparse
import json
import os
import pathlib
import sys
import tempfile

from latency import ROOT, export_variant, inputs_for, log, prepare_export, summarize, time_calls

THREADS = 2


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


def onnx_session(model, path):
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
    options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def run(args):
    import tensorflow as tf
    import torch

    torch.set_num_threads(THREADS)
    work = tempfile.mkdtemp(prefix="albert-peers-")
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
        session = onnx_session(peer, os.path.join(work, f"{name}.onnx"))
        encode = tf.saved_model.load(path).signatures["encode"]
        ours_variants = {variant: tf.saved_model.load(export_variant(name, work, config, variant)).signatures["encode"]
                         for variant in args.our_variants}
        for batch, length in shapes:
            inputs = inputs_for(batch, length, config.vocab_size)
            tensors = {k: tf.constant(v) for k, v in inputs.items()}
            feeds = {"input_ids": inputs["input_word_ids"].astype("int64"),
                     "attention_mask": inputs["input_mask"].astype("int64"),
                     "token_type_ids": inputs["input_type_ids"].astype("int64")}
            torch_feeds = {k: torch.from_numpy(v) for k, v in feeds.items()}

            def run_torch():
                with torch.inference_mode():
                    peer(**torch_feeds)

            calls = args.calls if batch == 1 else args.batch_calls
            runtimes = {
                "ours (SavedModel)": lambda: encode(**tensors)["pooled_output"].numpy(),
                **{f"ours {variant}": (lambda s=signature: s(**tensors)["pooled_output"].numpy())
                   for variant, signature in ours_variants.items()},
                "ONNX Runtime": lambda: session.run(["pooler_output"], feeds),
                "PyTorch eager": run_torch,
            }
            results = {}
            for runtime, function in runtimes.items():
                if runtime == "PyTorch eager" and args.skip_torch:
                    continue
                results[runtime] = summarize(time_calls(function, calls, args.warmup))
                rows.append(dict(model=name, batch=batch, tokens=length, runtime=runtime, **results[runtime]))
            onnx = results["ONNX Runtime"]["p50_ms"]
            ratio = results["ours (SavedModel)"]["p50_ms"] / onnx
            for row in rows[-len(results):]:
                row["ours_over_onnxruntime"] = round(ratio, 3)
                if row["runtime"].startswith("ours"):
                    row["over_onnxruntime"] = round(row["p50_ms"] / onnx, 3)
            log(f"{name} {batch} × {length}: " + ", ".join(f"{k} {v['p50_ms']} ms" for k, v in results.items())
                + f"  (ours / ONNX Runtime ×{ratio:.2f})")
    return rows


def write_results(rows, out_dir, command, versions):
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "peers.json").write_text(json.dumps({"command": command, "versions": versions, "rows": rows}, indent=2))
    runtimes = list(dict.fromkeys(r["runtime"] for r in rows))
    lines = [f"Command: `{command}`", "", "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()), "",
             "Median ms per call (p50), random weights, 2 threads; float32 except ours bfloat16 "
             "(bfloat16 matmuls, the rest float32).", "",
             "| model | batch × tokens | " + " | ".join(runtimes) + " | ours float32 / ONNX Runtime | best of ours / ONNX Runtime |",
             "|---|---|" + "---|" * len(runtimes) + "---|---|"]
    for key in dict.fromkeys((r["model"], r["batch"], r["tokens"]) for r in rows):
        cells = {r["runtime"]: r for r in rows if (r["model"], r["batch"], r["tokens"]) == key}
        first = next(iter(cells.values()))
        best = min((r for r in cells.values() if "over_onnxruntime" in r), key=lambda r: r["over_onnxruntime"])
        lines.append(f"| {key[0]} | {key[1]} × {key[2]} | " + " | ".join(
            str(cells[rt]["p50_ms"]) if rt in cells else "" for rt in runtimes)
            + f" | {first['ours_over_onnxruntime']} | {best['over_onnxruntime']} ({best['runtime']}) |")
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
    parser.add_argument("--our_variants", default="xla,bfloat16", type=lambda s: [v for v in s.split(",") if v],
                        help="our export variants timed too (latency.VARIANTS)")
    parser.add_argument("--out_dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    try:
        import onnxruntime
        import tensorflow as tf
        import torch
        import transformers
    except ImportError as e:
        raise SystemExit(f"peers need the [peers] extra: pip install -e '.[peers]' ({e})")
    versions = {"tensorflow": tf.__version__, "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
                "transformers": transformers.__version__}
    rows = run(args)
    command = ("python benchmarks/peers.py " + " ".join(sys.argv[1:])).strip()
    write_results(rows, pathlib.Path(args.out_dir), command, versions)
    log(f"wrote {args.out_dir}/peers.json, peers.md")


if __name__ == "__main__":
    main()
