"""Benchmark: does pretraining learn? A tiny ALBERT on WikiText-2 valid, on this CPU.

    python benchmarks/learning_curve.py                 # about 5 minutes on 2 cores
    python benchmarks/learning_curve.py --steps=3000

Articles are split 90/10 into training and held-out text. A 5000-piece SentencePiece
model and seq-128 MLM+SOP records are built. A tiny ALBERT (E 128, H 256, 4 layers,
1 shared group) is trained with LAMB, and held-out MLM and SOP accuracy are evaluated
every --eval_every steps. The curve is printed as a table and written as JSON and a
PNG to benchmarks/results/.
"""

import argparse
import json
import pathlib
import sys
import time

from scratch import scratch_dir

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "wikitext2-valid.txt"


def split_articles(source, train_path, heldout_path, heldout_every=10):
    """Writes one sentence per line, a blank line between articles; every Nth article is held out."""
    from albert_tf.data.corpus import split_sentences

    articles, current = [], []
    for line in source.read_text(encoding="utf-8").split("\n"):
        if line.startswith(" = ") and not line.startswith(" = = "):
            if current:
                articles.append(current)
            current = []
        elif line.strip() and not line.strip().startswith("="):
            current.extend(split_sentences(line))
    if current:
        articles.append(current)
    for path, keep in ((train_path, lambda i: i % heldout_every), (heldout_path, lambda i: not i % heldout_every)):
        chosen = [a for i, a in enumerate(articles) if keep(i)]
        path.write_text("\n\n".join("\n".join(a) for a in chosen) + "\n", encoding="utf-8")
    return len(articles)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--eval_every", type=int, default=150)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=0.004)
    parser.add_argument("--out_dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()

    from albert_tf.config import AlbertConfig
    from albert_tf.data.pipeline import create_pretraining_data
    from albert_tf.data.worker import DataOptions, TokenizerSpec
    from albert_tf.text.spm_training import train_sentencepiece
    from albert_tf.training.pretraining import PretrainingOptions, PretrainingRun

    work = pathlib.Path(scratch_dir("albert-curve-"))
    n = split_articles(pathlib.Path(args.corpus), work / "train.txt", work / "heldout.txt")
    print(f"{n} articles; building tokenizer and records in {work} ...", flush=True)
    spm_model = train_sentencepiece([str(work / "train.txt")], str(work / "spm"), vocab_size=5000)
    options = DataOptions(max_seq_length=128, max_predictions_per_seq=20, dupe_factor=10)
    spec = TokenizerSpec(spm_model_file=spm_model)
    train_summary = create_pretraining_data([str(work / "train.txt")], [str(work / "train.tfrecord")], spec, options, num_workers=2)
    create_pretraining_data([str(work / "heldout.txt")], [str(work / "heldout.tfrecord")], spec,
                            DataOptions(max_seq_length=128, max_predictions_per_seq=20, dupe_factor=1, random_seed=7))
    print(f"{train_summary['examples']:,} training examples", flush=True)

    config = AlbertConfig.preset("tiny", vocab_size=5000, embedding_size=128, hidden_size=256, num_attention_heads=4,
                                 intermediate_size=1024, max_position_embeddings=128)
    run = PretrainingRun(
        PretrainingOptions(
            input_file=str(work / "train.tfrecord"), eval_input_file=str(work / "heldout.tfrecord"),
            output_dir=str(work / "model"), albert_config=config, max_seq_length=128, max_predictions_per_seq=20,
            train_batch_size=args.batch_size, eval_batch_size=64, learning_rate=args.learning_rate,
            num_train_steps=args.steps, num_warmup_steps=args.steps // 10, optimizer="lamb",
            save_checkpoints_steps=args.steps, log_steps=args.eval_every, max_eval_steps=20,
        ),
        log=lambda line: print("  " + line, flush=True),
    )
    run.restore_or_initialize()
    curve = []
    start = time.perf_counter()
    for step in [0] + list(range(args.eval_every, args.steps + 1, args.eval_every)):
        if step:
            run.train(until_step=step)
        held_out = run.evaluate()
        point = {"step": step, "seconds": round(time.perf_counter() - start, 1),
                 **{k: round(held_out[k], 4) for k in ("masked_lm_accuracy", "masked_lm_loss",
                                                       "sentence_order_accuracy", "sentence_order_loss")}}
        curve.append(point)
        print(f"held-out @ {step}: MLM acc {point['masked_lm_accuracy']:.4f} loss {point['masked_lm_loss']:.3f}  "
              f"SOP acc {point['sentence_order_accuracy']:.4f}", flush=True)

    out_dir = pathlib.Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "learning_curve.json").write_text(json.dumps({"config": config.to_dict(), "curve": curve}, indent=2) + "\n")
    lines = ["| step | seconds | held-out MLM acc | MLM loss | held-out SOP acc | SOP loss |", "|---|---|---|---|---|---|"]
    lines += [f"| {p['step']} | {p['seconds']} | {p['masked_lm_accuracy']:.4f} | {p['masked_lm_loss']:.3f} | "
              f"{p['sentence_order_accuracy']:.4f} | {p['sentence_order_loss']:.3f} |" for p in curve]
    (out_dir / "learning_curve.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        steps = [p["step"] for p in curve]
        ax.plot(steps, [p["masked_lm_accuracy"] for p in curve], marker="o", label="held-out MLM accuracy")
        ax.plot(steps, [p["sentence_order_accuracy"] for p in curve], marker="s", label="held-out SOP accuracy")
        ax.axhline(0.5, color="grey", linestyle=":", label="SOP chance")
        ax.set_xlabel("training step (batch %d, seq 128)" % args.batch_size)
        ax.set_ylabel("accuracy")
        ax.set_title("Tiny ALBERT on WikiText-2 valid, 2 CPU cores")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "learning_curve.png", dpi=100)
        print(f"wrote {out_dir / 'learning_curve.png'}")
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no PNG written")


if __name__ == "__main__":
    main()
