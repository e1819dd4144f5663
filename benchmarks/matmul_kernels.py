"""Benchmark: the matmuls of one ALBERT-base forward pass, in each kernel TensorFlow has and in ONNX Runtime.

    pip install -e '.[peers]'                  # onnx, onnxruntime, torch, transformers
    python benchmarks/matmul_kernels.py        # 1 × 12 and 1 × 128 tokens
    python benchmarks/matmul_kernels.py --tokens=8,12,16

Answers why ALBERT-base at 12 tokens stays slower than ONNX Runtime: is it our model code,
or the matrix-multiply kernels underneath? For T tokens it times the 72 matmuls of one
ALBERT-base forward pass (12 applications of the shared layer: Q, K, V and the attention
output, 768 × 768 each, then the FFN's 768 × 3072 and 3072 × 768), chained so that no
runtime can skip one (per layer: a = x·Wq + x·Wk + x·Wv, b = a·Wo, x = relu(b·W1)·W2;
the adds and ReLUs are tiny next to the matmuls). The same chain runs in:

- `tf graph float32`: a tf.function, so MatMul goes to oneDNN (TensorFlow's default on x86);
- `tf graph bfloat16`: the same with bfloat16 inputs and kernels and float32 outputs,
  what `albert-export --precision=bfloat16` runs (oneDNN's AVX512-BF16 kernels);
- `tf xla float32` / `tf xla bfloat16`: the tf.function with jit_compile (XLA's CPU dots);
- `tf graph float32, tokens as columns`: the same products transposed (yᵀ = Wᵀ·xᵀ, xᵀ
  carried through the chain), so the token count is the column dimension. On an AVX2 Zen 3
  oneDNN ran this form in 0.69-0.85× the plain graph's time at 16-48 rows, and no faster
  at 12 or 64 (WORKSPACE_NOTES, "CPUs without AVX-512");
- `tflite float32 (XNNPACK)`: the chain converted to TensorFlow Lite at the length timed
  (constant weights, builtin ops) and run by tf.lite's interpreter, whose XNNPACK delegate
  packs the weights once, as `albert-export --format=tflite` runs;
- `ONNX Runtime float32`: an ONNX graph of the same chain (MLAS, which packs the
  constant weights once when the session is created).

Beside them, the whole model: ONNX Runtime's ALBERT-base (transformers → ONNX, as in
peers.py) and our AlbertBackbone with jit_compile, at the same shape, twice: reading its
kernels as variables, and traced under `constant_kernels()` with the kernels as graph
constants, as an export's XLA functions hold them. If TensorFlow's
matmuls alone take longer than ONNX Runtime's whole model, no change to our model code
can reach ONNX Runtime there. All runs interleave (latency.time_interleaved), 2 threads.
Writes benchmarks/results/matmul_kernels.json and .md.
"""

import argparse
import json
import os
import pathlib
import sys

from latency import MODELS, ROOT, cosine, inputs_for, log, summarize, time_interleaved
from scratch import scratch_dir

HIDDEN, INTERMEDIATE, LAYERS = 768, 3072, 12
THREADS = 2


def chain_weights(seed=0):
    """The six shared-layer matrices (float32 numpy): Wq, Wk, Wv, Wo [768, 768], W1 [768, 3072], W2 [3072, 768]."""
    import numpy as np

    rng = np.random.default_rng(seed)
    shapes = [(HIDDEN, HIDDEN)] * 4 + [(HIDDEN, INTERMEDIATE), (INTERMEDIATE, HIDDEN)]
    return [(rng.standard_normal(shape) * 0.02).astype(np.float32) for shape in shapes]


def chain_flops(tokens):
    """Multiply-add FLOPs of the chain at `tokens` rows (2 per multiply-add)."""
    return LAYERS * 2 * tokens * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * INTERMEDIATE)


def tensorflow_chains(weights):
    """{name: tf.function(x [T, 768] float32) -> [T, 768] float32} for the TF kernels timed."""
    import tensorflow as tf

    def chain(dtype, jit_compile):
        wq, wk, wv, wo, w1, w2 = [tf.Variable(tf.cast(w, dtype)) for w in weights]

        def matmul(x, w):
            return tf.cast(tf.matmul(tf.cast(x, dtype), w), tf.float32)

        def run(x):
            for _ in range(LAYERS):
                a = matmul(x, wq) + matmul(x, wk) + matmul(x, wv)
                x = matmul(tf.nn.relu(matmul(matmul(a, wo), w1)), w2)
            return x

        return tf.function(run, jit_compile=jit_compile)

    def tokens_as_columns_chain():
        # The same products computed transposed, yᵀ = Wᵀ·xᵀ, carrying xᵀ [768, T] through
        # the chain, so the token count is the matmul's column dimension instead of its rows.
        wq, wk, wv, wo, w1, w2 = [tf.Variable(w.T.copy()) for w in weights]

        def run(x):
            xt = tf.transpose(x)
            for _ in range(LAYERS):
                a = wq @ xt + wk @ xt + wv @ xt
                xt = w2 @ tf.nn.relu(w1 @ (wo @ a))
            return tf.transpose(xt)

        return tf.function(run)

    return {"tf graph float32": chain(tf.float32, False), "tf graph bfloat16": chain(tf.bfloat16, False),
            "tf xla float32": chain(tf.float32, True), "tf xla bfloat16": chain(tf.bfloat16, True),
            "tf graph float32, tokens as columns": tokens_as_columns_chain()}


def tflite_chain(weights, tokens):
    """The chain as a TFLite model for x [tokens, 768] float32: a function of numpy x → numpy."""
    import tensorflow as tf

    from albert_tf.export.tflite import convert_function, signature_runner

    constants = [tf.constant(w) for w in weights]

    @tf.function(input_signature=[tf.TensorSpec([tokens, HIDDEN], tf.float32, name="x")])
    def run(x):
        wq, wk, wv, wo, w1, w2 = constants
        for _ in range(LAYERS):
            a = x @ wq + x @ wk + x @ wv
            x = tf.nn.relu((a @ wo) @ w1) @ w2
        return {"y": x}

    runner = signature_runner(convert_function(run.get_concrete_function()), THREADS)
    return lambda x: runner(x=x)["y"]


def onnx_chain(weights, path):
    """ONNX Runtime session of the same chain: input "x" [T, 768] float32 (T dynamic)."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper

    names = ["Wq", "Wk", "Wv", "Wo", "W1", "W2"]
    initializers = [helper.make_tensor(n, TensorProto.FLOAT, w.shape, w.ravel()) for n, w in zip(names, weights)]
    nodes, x = [], "x"
    for i in range(LAYERS):
        def node(op, inputs, name):
            nodes.append(helper.make_node(op, inputs, [f"{name}{i}"]))
            return f"{name}{i}"
        q, k, v = (node("MatMul", [x, w], f"{w}_") for w in ("Wq", "Wk", "Wv"))
        a = node("Add", [node("Add", [q, k], "qk"), v], "a")
        hidden = node("Relu", [node("MatMul", [node("MatMul", [a, "Wo"], "b"), "W1"], "f")], "r")
        x = node("MatMul", [hidden, "W2"], "x")
    graph = helper.make_graph(nodes, "albert_matmuls", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", HIDDEN])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["T", HIDDEN])], initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def run(args):
    import numpy as np
    import tensorflow as tf

    from albert_tf.checkpoints import build_model
    from albert_tf.config import AlbertConfig
    from albert_tf.layers.dense import constant_kernels
    from peers import onnx_session, torch_model

    work = scratch_dir("albert-matmuls-")
    weights = chain_weights()
    chains = tensorflow_chains(weights)
    chain_session = onnx_chain(weights, os.path.join(work, "chain.onnx"))
    log("ALBERT-base: ours (AlbertBackbone) and transformers → ONNX")
    config = AlbertConfig.preset(MODELS["albert-base"])
    backbone = build_model(config, "backbone")
    ours_xla = tf.function(lambda x: backbone(x, training=False), jit_compile=True)

    def constant_kernel_backbone(x):
        with constant_kernels():
            return backbone(x, training=False)

    ours_xla_constants = tf.function(constant_kernel_backbone, jit_compile=True)
    model_session = onnx_session(torch_model(config, "albert-base"), os.path.join(work, "albert.onnx"), THREADS)
    rows = []
    for tokens in args.tokens:
        x = np.random.default_rng(1).standard_normal((tokens, HIDDEN)).astype(np.float32)
        x_tensor = tf.constant(x)
        inputs = inputs_for(1, tokens, config.vocab_size)
        tensors = {k: tf.constant(v) for k, v in inputs.items()}
        feeds = {"input_ids": inputs["input_word_ids"].astype("int64"), "attention_mask": inputs["input_mask"].astype("int64"),
                 "token_type_ids": inputs["input_type_ids"].astype("int64")}
        reference = chain_session.run(None, {"x": x})[0]
        lite = tflite_chain(weights, tokens)
        chained = {**{name: (lambda c=chain: c(x_tensor).numpy()) for name, chain in chains.items()},
                   "tflite float32 (XNNPACK)": lambda: lite(x)}
        functions = {"ONNX Runtime float32": lambda: chain_session.run(None, {"x": x})}
        for name, function in chained.items():
            similarity = cosine(function(), reference)  # also compiles / traces before timing
            if similarity < 0.99:
                raise SystemExit(f"{name} at {tokens} tokens disagrees with ONNX Runtime (cosine {similarity:.4f})")
            functions[name] = function
        ours_xla(tensors)
        np.testing.assert_allclose(ours_xla_constants(tensors)["pooled_output"], ours_xla(tensors)["pooled_output"],
                                   atol=1e-5, rtol=0)
        functions["whole model: ONNX Runtime"] = lambda: model_session.run(["pooler_output"], feeds)
        functions["whole model: ours xla"] = lambda: ours_xla(tensors)["pooled_output"].numpy()
        functions["whole model: ours xla, constant kernels"] = \
            lambda: ours_xla_constants(tensors)["pooled_output"].numpy()
        log(f"1 × {tokens}: timing {len(functions)} runtimes, {args.calls} calls each, interleaved")
        results = {name: summarize(times) for name, times in time_interleaved(functions, args.calls, args.warmup).items()}
        onnx_chain_ms = results["ONNX Runtime float32"]["p50_ms"]
        for name, result in results.items():
            row = dict(tokens=tokens, runtime=name, **result,
                       over_onnxruntime_chain=round(result["p50_ms"] / onnx_chain_ms, 3))
            if not name.startswith("whole model"):
                row["gflops_per_s"] = round(chain_flops(tokens) / result["p50_ms"] / 1e6)
            rows.append(row)
        log(f"1 × {tokens}: " + ", ".join(f"{k} {v['p50_ms']} ms" for k, v in results.items()))
    return rows


def write_results(rows, out_dir, command):
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "matmul_kernels.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1) + "\n")
    lines = [f"Command: `{command}`", "",
             "The 72 matmuls of one ALBERT-base forward pass at batch 1 (chained; 2 threads), median ms of "
             "interleaved calls, and the whole model beside them.", "",
             "| tokens | runtime | p50 ms | p90 ms | GFLOP/s | / ONNX Runtime matmuls |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['tokens']} | {row['runtime']} | {row['p50_ms']} | {row['p90_ms']} | "
                     f"{row.get('gflops_per_s', '')} | {row['over_onnxruntime_chain']} |")
    (out_dir / "matmul_kernels.md").write_text("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", default="12,128", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out_dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"matmul_kernels needs the [peers] extra: pip install -e '.[peers]' ({e})")
    rows = run(args)
    command = ("python benchmarks/matmul_kernels.py " + " ".join(sys.argv[1:])).strip()
    write_results(rows, pathlib.Path(args.out_dir), command)
    log(f"wrote {args.out_dir}/matmul_kernels.json, matmul_kernels.md")


if __name__ == "__main__":
    main()
