"""Benchmark: pretraining step throughput, and the same step in PyTorch transformers.

    python benchmarks/train_throughput.py                  # tiny and base, batch 8 × seq 128
    python benchmarks/train_throughput.py --models=base --steps=10

For each model (tiny, base) and variant (float32 and mixed_bfloat16, each with and
without --jit_compile), it times full LAMB training steps of albert-run-pretraining's
loop on random MLM+SOP records. It reports the median milliseconds per step, examples/s
and tokens/s. When `transformers` and `torch` are installed, it also times
AlbertForPreTraining (same shapes, AdamW, eager) and prints our step time as a ratio of
that baseline. It writes JSON and markdown to benchmarks/results/.
"""

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

from scratch import scratch_dir

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODELS = {
    "tiny": dict(preset="tiny", vocab_size=30000),
    "base": dict(preset="base"),
}


def write_random_records(path, count, seq, pred, vocab, seed=0):
    import random

    import tensorflow as tf

    from albert_tf.data.schema import encode_example

    rng = random.Random(seed)
    with tf.io.TFRecordWriter(path) as writer:
        for _ in range(count):
            half = seq // 2
            positions = sorted(rng.sample(range(1, seq - 1), pred))
            writer.write(encode_example({
                "input_ids": [2] + [rng.randrange(5, vocab) for _ in range(seq - 2)] + [3],
                "input_mask": [1] * seq,
                "segment_ids": [0] * half + [1] * (seq - half),
                "token_boundary": [1] * seq,
                "masked_lm_positions": positions,
                "masked_lm_ids": [rng.randrange(5, vocab) for _ in range(pred)],
                "masked_lm_weights": [1.0] * pred,
                "next_sentence_labels": [rng.randrange(2)],
            }))


def time_ours(config, records, batch, seq, pred, precision, jit, steps, warmup):
    from albert_tf.training.pretraining import PretrainingOptions, PretrainingRun

    times = []
    run = PretrainingRun(
        PretrainingOptions(
            input_file=records, output_dir=scratch_dir("albert-tp-"), albert_config=config,
            max_seq_length=seq, max_predictions_per_seq=pred, train_batch_size=batch, num_train_steps=warmup + steps,
            num_warmup_steps=1, learning_rate=1e-4, save_checkpoints_steps=10**9, log_steps=10**9,
            mixed_precision=precision, jit_compile=jit,
        ),
        log=lambda line: None,
    )
    run.train(until_step=warmup)
    for step in range(warmup + 1, warmup + steps + 1):
        start = time.perf_counter()
        run.train(until_step=step)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_pytorch(config, batch, seq, pred, steps, warmup):
    try:
        import torch
        from transformers import AlbertConfig as HFConfig
        from transformers import AlbertForPreTraining
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    hf = HFConfig(vocab_size=config.vocab_size, embedding_size=config.embedding_size, hidden_size=config.hidden_size,
                  num_hidden_layers=config.num_hidden_layers, num_hidden_groups=config.num_hidden_groups,
                  num_attention_heads=config.num_attention_heads, intermediate_size=config.intermediate_size,
                  inner_group_num=config.inner_group_num, hidden_act="gelu_new", hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0, max_position_embeddings=config.max_position_embeddings)
    model = AlbertForPreTraining(hf).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    ids = torch.randint(5, config.vocab_size, (batch, seq))
    labels = torch.full((batch, seq), -100)
    labels[:, 1 : pred + 1] = ids[:, 1 : pred + 1]
    sop = torch.randint(0, 2, (batch,))
    types = torch.zeros_like(ids)
    types[:, seq // 2 :] = 1
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=types, labels=labels,
                    sentence_order_label=sop)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="tiny,base")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out_dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    from albert_tf.config import AlbertConfig

    pred = 20
    rows = []
    work = scratch_dir("albert-tp-data-")
    for name in args.models.split(","):
        spec = dict(MODELS[name])
        config = AlbertConfig.preset(spec.pop("preset"), **spec)
        records = os.path.join(work, f"{name}.tfrecord")
        write_random_records(records, 256, args.seq, pred, config.vocab_size)
        baseline = time_pytorch(config, args.batch_size, args.seq, pred, args.steps, args.warmup)
        if baseline:
            rows.append({"model": name, "implementation": "PyTorch transformers AlbertForPreTraining (eager)",
                         "variant": "float32", "ms_per_step": round(baseline * 1000, 1)})
            print(f"{name} PyTorch: {baseline * 1000:.1f} ms/step", file=sys.stderr, flush=True)
        for precision in ("float32", "mixed_bfloat16"):
            for jit in (False, True):
                seconds = time_ours(config, records, args.batch_size, args.seq, pred, precision, jit, args.steps,
                                    args.warmup)
                variant = precision + (" + XLA" if jit else "")
                rows.append({"model": name, "implementation": "albert-tf", "variant": variant,
                             "ms_per_step": round(seconds * 1000, 1)})
                print(f"{name} albert-tf {variant}: {seconds * 1000:.1f} ms/step", file=sys.stderr, flush=True)
        for row in rows:
            if row["model"] == name:
                seconds = row["ms_per_step"] / 1000
                row["examples_per_s"] = round(args.batch_size / seconds, 1)
                row["tokens_per_s"] = round(args.batch_size * args.seq / seconds)
                row["vs_pytorch"] = round(row["ms_per_step"] / (baseline * 1000), 2) if baseline else None
    out_dir = pathlib.Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "train_throughput.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [f"batch {args.batch_size} × seq {args.seq}, {pred} predictions, median of {args.steps} steps", "",
             "| model | implementation | variant | ms/step | examples/s | tokens/s | step time ÷ PyTorch |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['implementation']} | {r['variant']} | {r['ms_per_step']} | "
                     f"{r['examples_per_s']} | {r['tokens_per_s']:,} | {r['vs_pytorch'] if r['vs_pytorch'] else '-'} |")
    (out_dir / "train_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
