"""Benchmark: a batch on one TFLite interpreter against the batch split over several.

    python benchmarks/tflite_split.py
    python benchmarks/tflite_split.py --variants=tflite_int8 --shapes=16x12 --rounds=20

TF Serving's `--num_tflite_interpreters_per_pool=N` splits a large batch into N parts and
runs them at once on N interpreters; albert-serve ignores that flag and runs a batch on
one interpreter that uses every core (serving/README.md). This measures what the split
would buy. For each variant (`tflite`: `albert-export --format=tflite`; `tflite_int8`: the
same with `--precision=dynamic_int8`; ALBERT-base, random weights) and each batch × tokens
shape it times, interleaved:

- `one interpreter` (the baseline, albert-serve's way): the whole batch on one interpreter
  with `--threads` threads;
- `split`: the batch cut into `--threads` parts, each on its own one-thread interpreter
  in its own Python thread (an Invoke releases the GIL), the pooled outputs concatenated.

It prints and writes the median ms of each and the ratio split / one interpreter, plus
the largest difference between the two pooled outputs (they must agree).
Results: benchmarks/results/tflite_split.json and tflite_split.md.
"""

import argparse
import json
import os
import pathlib
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from latency import export_variant, inputs_for, log, prepare_export, time_interleaved  # noqa: E402
from scratch import scratch_dir  # noqa: E402

SPLIT_VARIANTS = ("tflite", "tflite_int8")


def split_batch(inputs, parts):
    """Cuts a batch ({name: array [B, ...]}) along its first axis into `parts` dicts of
    nearly equal size (numpy.array_split; a part is never empty, so parts ≤ B)."""
    import numpy as np

    batch = len(next(iter(inputs.values())))
    if not 1 <= parts <= batch:
        raise ValueError(f"cannot split a batch of {batch} into {parts} parts")
    pieces = {name: np.array_split(value, parts) for name, value in inputs.items()}
    return [{name: pieces[name][i] for name in inputs} for i in range(parts)]


def run_split(runners, executor, inputs):
    """Runs one part of the batch on each runner at once; returns their pooled outputs
    ([B, H] float32) concatenated in batch order. `runners`: callables taking the inputs
    as keyword arrays and returning {"pooled_output": array}; `executor`: a thread pool
    with at least len(runners) workers."""
    import numpy as np

    parts = split_batch(inputs, len(runners))
    outputs = executor.map(lambda pair: pair[0](**pair[1])["pooled_output"], zip(runners, parts))
    return np.concatenate(list(outputs))


def run(args):
    import numpy as np

    from albert_tf.export import tflite

    work = scratch_dir("albert-tflite-split-")
    config, _, _ = prepare_export("albert-base", work)
    rows = []
    executor = ThreadPoolExecutor(args.threads)
    for variant in args.variants:
        log(f"albert-base: exporting {variant}")
        path = export_variant("albert-base", work, config, variant)
        whole = tflite.version_runner(path, args.threads)
        parts = [tflite.version_runner(path, 1) for _ in range(args.threads)]
        for batch, tokens in args.shapes:
            inputs = inputs_for(batch, tokens, config.vocab_size)
            log(f"{variant} {batch} × {tokens}: timing {args.rounds} calls of each, interleaved")
            difference = float(np.abs(whole(**inputs)["pooled_output"]
                                      - run_split(parts, executor, inputs)).max())
            times = time_interleaved({"one interpreter": lambda: whole(**inputs),
                                      "split": lambda: run_split(parts, executor, inputs)},
                                     calls=args.rounds, warmup=2, block=1)
            one_ms, split_ms = (statistics.median(times[name]) for name in ("one interpreter", "split"))
            rows.append({"variant": variant, "batch": batch, "tokens": tokens, "threads": args.threads,
                         "calls": args.rounds, "one_interpreter_ms": round(one_ms, 1),
                         "split_ms": round(split_ms, 1), "split_over_one": round(split_ms / one_ms, 3),
                         "max_abs_difference": difference})
            log(f"{variant} {batch} × {tokens}: one interpreter {one_ms:.1f} ms, split over {args.threads} "
                f"{split_ms:.1f} ms ({split_ms / one_ms:.2f}×), outputs within {difference:.1e}")
    executor.shutdown()
    return rows


def write_results(rows, out_dir, command):
    """Writes tflite_split.json and tflite_split.md (a table of the rows) into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tflite_split.json").write_text(json.dumps({"command": command, "rows": rows}, indent=2))
    lines = [f"Command: `{command}`", "",
             "ALBERT-base, median ms per batch; `split`: the batch in one part per thread, each on a "
             "one-thread interpreter, all at once (TF Serving's --num_tflite_interpreters_per_pool).", "",
             "| variant | batch × tokens | one interpreter (threads) | split | split / one interpreter | "
             "max abs difference |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['batch']} × {r['tokens']} | {r['one_interpreter_ms']} "
                     f"({r['threads']}) | {r['split_ms']} | {r['split_over_one']} | {r['max_abs_difference']:.1e} |")
    (out_dir / "tflite_split.md").write_text("\n".join(lines) + "\n")


def parse_shapes(text):
    """'16x12,32x128' → [(16, 12), (32, 128)]."""
    try:
        return [tuple(int(n) for n in shape.split("x", 1)) for shape in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shapes: expected BATCHxTOKENS[,...], got {text!r}") from None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(SPLIT_VARIANTS), type=lambda s: s.split(","),
                        help=f"of {list(SPLIT_VARIANTS)}")
    parser.add_argument("--shapes", default="16x12,32x128", type=parse_shapes,
                        help="batch × tokens shapes, e.g. 16x12,32x128")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads of the one interpreter, and the number of parts and interpreters of the split")
    parser.add_argument("--rounds", type=int, default=10, help="timed calls of each, interleaved")
    parser.add_argument("--out_dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    unknown = [v for v in args.variants if v not in SPLIT_VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from {list(SPLIT_VARIANTS)}")
    small = [f"{b}x{t}" for b, t in args.shapes if b < args.threads]
    if small or args.threads < 2:
        parser.error(f"--shapes {small} have fewer rows than --threads={args.threads}" if small
                     else "--threads must be at least 2 to split")
    rows = run(args)
    command = ("python benchmarks/tflite_split.py " + " ".join(sys.argv[1:])).strip()
    write_results(rows, pathlib.Path(args.out_dir), command)
    log(f"wrote {args.out_dir}/tflite_split.json and tflite_split.md")


if __name__ == "__main__":
    main()
