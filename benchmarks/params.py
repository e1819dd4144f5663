"""Benchmark: the parameter table (the paper's Table 1) for the ALBERT presets beside BERT shapes.

    python benchmarks/params.py            # counts from the formula, each checked against a built model
    python benchmarks/params.py --noverify # formula only (instant)

Counts come from `albert_tf.params.count_parameters` (the exact formula) and, with
verification (the default), equal the Keras parameter counts of the AlbertBackbone and
AlbertPretrainer actually built. Each row also gives the float32 size of the backbone
weights and the count against BERT-base. Writes benchmarks/results/params.json and
params.md (albert-model-summary prints the same table).
"""

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noverify", action="store_true", help="skip building the models")
    parser.add_argument("--out_dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()

    from albert_tf.cli_support import log, quiet_tensorflow

    quiet_tensorflow()
    from albert_tf.config import ALBERT_PRESETS, BERT_PRESETS, AlbertConfig
    from albert_tf.model_summary import render, summary_rows

    names = list(ALBERT_PRESETS) + list(BERT_PRESETS)
    rows = summary_rows([(n, AlbertConfig.preset(n)) for n in names], verify=not args.noverify, log=log)
    for row in rows:
        row["backbone_mb_float32"] = round(row["backbone"] * 4 / 2**20, 1)
    command = ("python benchmarks/params.py " + " ".join(sys.argv[1:])).strip()
    out_dir = pathlib.Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "params.json").write_text(json.dumps({"command": command, "rows": rows}, indent=2))
    table = render(rows, "markdown")
    sizes = "\n".join(f"- {r['model']}: {r['backbone_mb_float32']} MiB of float32 backbone weights" for r in rows)
    (out_dir / "params.md").write_text(f"Command: `{command}`\n\n{table}\n{sizes}\n")
    print(table)
    log(f"wrote {out_dir}/params.json, params.md")


if __name__ == "__main__":
    main()
