"""Benchmark: the paper's Figure 2, how much each layer changes its input (L2 distance and cosine).

    python benchmarks/layer_transitions.py                           # ALBERT-large vs BERT-large, random init
    python benchmarks/layer_transitions.py --presets=base,bert-base
    python benchmarks/layer_transitions.py --checkpoint=out/pipeline/pretrain \\
        --spm_model_file=out/pipeline/spm.model --input_file=text.txt     # a trained model on your text

For every layer application l (L × inner_group_num of them), the input x (the
embedding output for the first, else the previous output) and output y of every real
token give the L2 distance ‖y − x‖ and the cosine similarity cos(x, y), averaged over
tokens. Lan et al. (2020, Figure 2) report that ALBERT's transitions are smoother than
BERT's: the numbers oscillate instead of converging to 0 / 1.

By default the models have random weights (initializer_range 0.02) and the inputs are
random token ids (--batch × --seq_length, seeded). With --checkpoint (any albert_tf
checkpoint; its albert_config.json beside it, or --albert_config_file) that model is
measured too, on the lines of --input_file tokenized with --spm_model_file / --vocab_file
(random ids without them). Writes benchmarks/results/layer_transitions.json, .md and .png.
"""

import argparse
import json
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def transitions(backbone, inputs):
    """[(l2 mean, cosine mean)] per layer application, over the real tokens of `inputs`."""
    import numpy as np

    outputs = backbone(inputs, training=False)
    states = [outputs["embedding_output"].numpy()] + [o.numpy() for o in outputs["encoder_outputs"]]
    mask = np.asarray(inputs["input_mask"]).astype(bool)
    rows = []
    for before, after in zip(states, states[1:]):
        x, y = before[mask].astype(np.float64), after[mask].astype(np.float64)
        l2 = np.linalg.norm(y - x, axis=-1)
        cosine = (x * y).sum(-1) / (np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1) + 1e-12)
        rows.append((float(l2.mean()), float(cosine.mean())))
    return rows


def model_inputs(args, config, rng):
    import numpy as np

    if args.input_file and (args.spm_model_file or args.vocab_file):
        from albert_tf.text import load_tokenizer, pack_pair

        tokenizer = load_tokenizer(args.spm_model_file, args.vocab_file, args.do_lower_case)
        with open(args.input_file, encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip()][:args.batch]
        if not lines:
            raise SystemExit(f"--input_file {args.input_file}: no text lines")
        packed = [pack_pair(tokenizer.encode(line), None, args.seq_length, tokenizer.cls_id, tokenizer.sep_id,
                            tokenizer.pad_id) for line in lines]
        return {name: np.asarray([p[name] for p in packed], np.int32)
                for name in ("input_word_ids", "input_mask", "input_type_ids")}
    ids = rng.integers(5, config.vocab_size, size=(args.batch, args.seq_length)).astype(np.int32)
    ids[:, 0], ids[:, -1] = 2, 3
    return {"input_word_ids": ids, "input_mask": np.ones_like(ids), "input_type_ids": np.zeros_like(ids)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="large,bert-large", type=lambda s: [p for p in s.split(",") if p])
    parser.add_argument("--checkpoint", help="also measure this albert_tf checkpoint")
    parser.add_argument("--albert_config_file", help="config of --checkpoint (default: beside it)")
    parser.add_argument("--spm_model_file")
    parser.add_argument("--vocab_file")
    parser.add_argument("--do_lower_case", default=True, type=lambda s: s.lower() in ("1", "true", "yes"))
    parser.add_argument("--input_file", help="text, one sequence per line")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq_length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out_dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()

    from albert_tf.cli_support import log, quiet_tensorflow

    quiet_tensorflow()
    import keras
    import numpy as np

    from albert_tf.checkpoints import CheckpointError, restore_weights, resolve_checkpoint
    from albert_tf.config import AlbertConfig
    from albert_tf.models import AlbertBackbone

    models = [(name, AlbertConfig.preset(name), None) for name in args.presets]
    if args.checkpoint:
        try:
            prefix = resolve_checkpoint(args.checkpoint, "--checkpoint")
        except CheckpointError as e:
            raise SystemExit(str(e))
        config_file = args.albert_config_file or os.path.join(os.path.dirname(prefix), "albert_config.json")
        models.append((f"checkpoint {os.path.basename(prefix)}", AlbertConfig.from_json_file(config_file), prefix))
    results = {}
    for name, config, prefix in models:
        keras.utils.set_random_seed(args.seed)
        backbone = AlbertBackbone(config, return_all_layers=True)
        if prefix:
            restore_weights(prefix, backbone, "backbone", "--checkpoint")
        inputs = model_inputs(args, config, np.random.default_rng(args.seed))
        rows = transitions(backbone, inputs)
        results[name] = [{"layer": i + 1, "l2": round(l2, 4), "cosine": round(c, 5)} for i, (l2, c) in enumerate(rows)]
        log(f"{name}: {len(rows)} layers; L2 {rows[0][0]:.2f} → {rows[-1][0]:.2f}, cosine {rows[0][1]:.3f} → "
            f"{rows[-1][1]:.3f}")
        del backbone
        keras.backend.clear_session()

    command = ("python benchmarks/layer_transitions.py " + " ".join(sys.argv[1:])).strip()
    out_dir = pathlib.Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "layer_transitions.json").write_text(json.dumps({"command": command, "models": results}, indent=2))
    names = list(results)
    lines = [f"Command: `{command}`", "", "| layer | " + " | ".join(f"{n} L2 | {n} cosine" for n in names) + " |",
             "|---|" + "---|---|" * len(names)]
    for layer in range(max(len(v) for v in results.values())):
        cells = []
        for n in names:
            row = results[n][layer] if layer < len(results[n]) else None
            cells += [str(row["l2"]), str(row["cosine"])] if row else ["", ""]
        lines.append(f"| {layer + 1} | " + " | ".join(cells) + " |")
    (out_dir / "layer_transitions.md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed (pip install -e '.[bench]'): no PNG")
        return
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for n in names:
        layers = [r["layer"] for r in results[n]]
        left.plot(layers, [r["l2"] for r in results[n]], "-o", markersize=3, label=n)
        right.plot(layers, [r["cosine"] for r in results[n]], "-o", markersize=3, label=n)
    left.set_title("L2 distance, layer input → output")
    right.set_title("cosine similarity, layer input → output")
    for axis in (left, right):
        axis.set_xlabel("layer")
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(out_dir / "layer_transitions.png", dpi=110)
    log(f"wrote {out_dir}/layer_transitions.json, .md, .png")


if __name__ == "__main__":
    main()
