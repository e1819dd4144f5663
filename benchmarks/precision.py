"""Benchmark: float32 against bfloat16 matmuls (`--precision=bfloat16`) for ALBERT-base on this CPU.

    python benchmarks/precision.py                       # 1 x 12, 1 x 128, 32 x 128
    python benchmarks/precision.py --shapes=1x12,1x128 --calls=20

bfloat16 pays off only on CPUs with AVX512-BF16 or AMX; elsewhere oneDNN emulates it. This
times the Keras backbone (random weights) both ways in one process, interleaved
(`latency.time_interleaved`), and reports the ratio, the pooled output's cosine to
float32, and whether /proc/cpuinfo lists native bfloat16 (`albert_tf.cpu_features`, the
check behind albert-export's and albert-serve's warning). Writes precision.json and
precision.md to --out_dir.
"""

import argparse
import json
import os
import pathlib
import platform
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from latency import time_interleaved  # noqa: E402  (no TensorFlow import)


def cpu_name():
    """The `model name` of /proc/cpuinfo, else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="1x12,1x128,32x128", help="batch x tokens, comma-separated")
    parser.add_argument("--calls", type=int, default=20, help="timed calls per shape and precision (32 x N: a tenth)")
    parser.add_argument("--out_dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    import numpy as np
    import tensorflow as tf

    from albert_tf import cpu_features
    from albert_tf.config import AlbertConfig
    from albert_tf.layers.dense import set_matmul_dtype
    from albert_tf.models import AlbertBackbone

    native, cpu = cpu_features.native_bfloat16(), cpu_name()
    print(f"CPU: {cpu}; native bfloat16 (AVX512-BF16 or AMX): {native}", flush=True)
    config = AlbertConfig.preset("base")
    float32 = AlbertBackbone(config)
    bfloat16 = AlbertBackbone(config)
    bfloat16.set_weights(float32.get_weights())
    set_matmul_dtype(bfloat16, "bfloat16")
    models = {"float32": tf.function(lambda x: float32(x)["pooled_output"]),
              "bfloat16": tf.function(lambda x: bfloat16(x)["pooled_output"])}
    rows = []
    for shape in args.shapes.split(","):
        batch, tokens = (int(n) for n in shape.lower().split("x"))
        rng = np.random.default_rng(0)
        inputs = {"input_word_ids": tf.constant(rng.integers(5, config.vocab_size, (batch, tokens)), tf.int32),
                  "input_mask": tf.ones((batch, tokens), tf.int32),
                  "input_type_ids": tf.zeros((batch, tokens), tf.int32)}
        pooled = {name: model(inputs).numpy() for name, model in models.items()}
        cosine = float(min((a @ b) / np.linalg.norm(a) / np.linalg.norm(b)
                           for a, b in zip(pooled["float32"], pooled["bfloat16"])))
        calls = max(2, args.calls // 10) if batch >= 32 else args.calls
        times = time_interleaved({name: (lambda m=model: m(inputs).numpy()) for name, model in models.items()},
                                 calls=calls, warmup=2, block=max(1, min(5, calls // 2)))
        median = {name: float(np.median(t)) for name, t in times.items()}
        row = {"batch": batch, "tokens": tokens, "float32_ms": median["float32"], "bfloat16_ms": median["bfloat16"],
               "bfloat16_over_float32": median["bfloat16"] / median["float32"], "pooled_cosine_min": cosine,
               "calls": calls}
        rows.append(row)
        print(f"{batch} x {tokens}: float32 {row['float32_ms']:.1f} ms, bfloat16 {row['bfloat16_ms']:.1f} ms, "
              f"bfloat16 / float32 {row['bfloat16_over_float32']:.2f}, pooled cosine {cosine:.5f}", flush=True)
    result = {"cpu": cpu, "native_bfloat16": native, "rows": rows}
    out = pathlib.Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "precision.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"ALBERT-base, Keras backbone, random weights. CPU: {result['cpu']}; native bfloat16: {native}.", "",
             "| batch × tokens | float32 ms | bfloat16 ms | bfloat16 / float32 | pooled cosine |", "|---|---|---|---|---|"]
    lines += [f"| {r['batch']} × {r['tokens']} | {r['float32_ms']:.1f} | {r['bfloat16_ms']:.1f} | "
              f"{r['bfloat16_over_float32']:.2f} | {r['pooled_cosine_min']:.5f} |" for r in rows]
    (out / "precision.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'precision.json'} and {out / 'precision.md'}")


if __name__ == "__main__":
    main()
