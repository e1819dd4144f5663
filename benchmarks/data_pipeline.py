"""Benchmark: albert-create-pretraining-data throughput and peak memory.

    python benchmarks/data_pipeline.py                       # WikiText-2 valid from ../shared
    python benchmarks/data_pipeline.py --original_dir=/path/to/google-research/albert

The benchmark runs the CLI as users run it, with max_seq_length 128 and dupe_factor 5, on
1 and 2 workers. It uses two corpus sizes (--sizes, default the text once and 4 times
over) to show that peak memory does not grow with the corpus.

Memory is the peak summed RSS of the whole process tree (main process and workers),
sampled every 20 ms. With --original_dir, the same input and flags also go through the
original create_pretraining_data.py (TF1 code run through tensorflow.compat.v1; it needs
`six`, and `tensorflow_hub` for its tokenization.py import), and the table gains the speed-up ratio against it.
It writes JSON and a markdown table to benchmarks/results/.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import psutil
from scratch import scratch_dir

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "wikitext2-valid.txt"


def measure(command, env=None):
    """Runs `command`; returns (seconds, peak RSS MiB of the process tree, stderr text)."""
    # stderr goes to a file: a pipe that nobody drains blocks a chatty process.
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
        root = psutil.Process(process.pid)
        peak = 0
        while process.poll() is None:
            try:
                tree = [root] + root.children(recursive=True)
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.02)
        seconds = time.perf_counter() - start
        stderr.seek(0)
        text = stderr.read().decode("utf-8", "replace")
    if process.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed:\n{text[-3000:]}")
    return seconds, peak / 2**20, text


def summary_value(stderr, key):
    for line in stderr.splitlines():
        if line.startswith(key):
            return int(line.split()[1].replace(",", ""))
    raise ValueError(f"no '{key}' line in the output")


def make_sentence_corpus(source, copies, path):
    """One sentence per line (the original's format), `copies` times over."""
    sys.path.insert(0, str(ROOT))
    from albert_tf.data.corpus import split_sentences

    lines = []
    for line in source.read_text(encoding="utf-8").split("\n"):
        if line.startswith(" = ") and not line.startswith(" = = "):
            lines.append("")
        if line.strip() and not line.strip().startswith("="):
            lines.extend(split_sentences(line))
    text = "\n".join(lines) + "\n\n"
    path.write_text(text * copies, encoding="utf-8")
    return path


def render_table(rows):
    """The markdown table of the rows (list of dicts as written to the JSON)."""

    def number(value):
        return f"{value:,}" if isinstance(value, (int, float)) else "-"

    lines = ["| implementation | corpus MiB | workers | seconds | tokens/s | examples/s | peak RSS MiB | × original |",
             "|" + "---|" * 8]
    for r in rows:
        lines.append(f"| {r['implementation']} | {r['corpus_mib']} | {r['workers']} | {r['seconds']} | "
                     f"{number(r['tokens_per_s'])} | {number(r['examples_per_s'])} | {r['peak_rss_mib']} | "
                     f"{r['speedup_vs_original'] or '-'} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    parser.add_argument("--spm_model_file", default=None, help="default: train a 5000-piece model on the corpus")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--dupe_factor", type=int, default=5)
    parser.add_argument("--original_dir", default=None, help="checkout of google-research/albert (optional baseline)")
    parser.add_argument("--sizes", default="1,4", help="corpus sizes, as copies of the text")
    parser.add_argument("--out_dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()

    work = pathlib.Path(scratch_dir("albert-data-bench-"))
    spm_model = args.spm_model_file
    if not spm_model:
        print("training a 5000-piece SentencePiece model ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "albert_tf.train_tokenizer", f"--input={args.corpus}",
                        f"--model_prefix={work}/spm", "--vocab_size=5000"], check=True, capture_output=True)
        spm_model = f"{work}/spm.model"
    flags = [f"--spm_model_file={spm_model}", f"--max_seq_length={args.max_seq_length}",
             f"--dupe_factor={args.dupe_factor}", "--max_predictions_per_seq=20", "--random_seed=12345"]
    rows = []
    for copies in [int(c) for c in args.sizes.split(",")]:
        corpus = make_sentence_corpus(pathlib.Path(args.corpus), copies, work / f"corpus-x{copies}.txt")
        size_mb = corpus.stat().st_size / 2**20
        for workers in (1, 2):
            print(f"albert-tf, corpus x{copies} ({size_mb:.1f} MiB), {workers} worker(s) ...", file=sys.stderr, flush=True)
            seconds, peak, log = measure([sys.executable, "-m", "albert_tf.create_pretraining_data",
                                          f"--input_file={corpus}", f"--output_file={work}/ours.tfrecord",
                                          f"--num_workers={workers}", *flags])
            rows.append({"implementation": "albert-tf", "corpus_mib": round(size_mb, 2), "workers": workers,
                         "seconds": round(seconds, 2), "tokens": summary_value(log, "tokens"),
                         "examples": summary_value(log, "examples"), "peak_rss_mib": round(peak)})
        if args.original_dir:
            print(f"original create_pretraining_data.py, corpus x{copies} ...", file=sys.stderr, flush=True)
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
            script = pathlib.Path(args.original_dir).resolve() / "create_pretraining_data.py"
            seconds, peak, log = measure([sys.executable, str(script), f"--input_file={corpus}",
                                          f"--output_file={work}/original.tfrecord", f"--vocab_file={spm_model}",
                                          *flags], env=env)
            ours = next(r for r in rows if r["corpus_mib"] == round(size_mb, 2) and r["workers"] == 1)
            rows.append({"implementation": "original (google-research/albert)", "corpus_mib": round(size_mb, 2),
                         "workers": 1, "seconds": round(seconds, 2), "tokens": ours["tokens"],
                         "examples": None, "peak_rss_mib": round(peak)})
    for row in rows:
        row["tokens_per_s"] = round(row["tokens"] / row["seconds"])
        row["examples_per_s"] = round(row["examples"] / row["seconds"]) if row["examples"] else None
    originals = {r["corpus_mib"]: r for r in rows if r["implementation"].startswith("original")}
    for row in rows:
        base = originals.get(row["corpus_mib"])
        row["speedup_vs_original"] = round(base["seconds"] / row["seconds"], 1) if base else None

    out_dir = pathlib.Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "data_pipeline.json").write_text(json.dumps(rows, indent=2) + "\n")
    table = render_table(rows)
    (out_dir / "data_pipeline.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
