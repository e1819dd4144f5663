"""albert-model-summary: parameter table of ALBERT presets beside BERT-shaped models.

This is the paper's Table 1 computed from the configs (and, with --verify, checked
against models actually built):

    albert-model-summary --preset base
    albert-model-summary --verify --format markdown
    albert-model-summary --albert_config_file path/to/albert_config.json
"""

import json
import os
import sys
import time

from albert_tf.cli_support import log, quiet_tensorflow, run_main  # noqa: E402

quiet_tensorflow()

from absl import app, flags

from albert_tf.io_utils import write_text_atomically
from albert_tf.config import ALBERT_PRESETS, BERT_PRESETS, PRESETS, AlbertConfig, AlbertConfigError
from albert_tf.params import count_parameters

FLAGS = flags.FLAGS
flags.DEFINE_list("preset", list(ALBERT_PRESETS), f"Presets to list; any of {sorted(PRESETS)}.")
flags.DEFINE_string("albert_config_file", None, "Also list the model of this albert_config.json.")
flags.DEFINE_bool("bert", True, "Add the BERT-base/large-shaped unshared models for comparison.")
flags.DEFINE_bool("verify", False, "Build every model and check its Keras parameter count equals the formula.")
flags.DEFINE_enum("format", "table", ["table", "markdown", "json"], "Output format.")
flags.DEFINE_string("output", None, "Also write the output to this file (written atomically).")

# Paper Table 1 (Lan et al., 2020): parameters as printed there.
PAPER_TABLE_1 = {
    "base": "12M",
    "large": "18M",
    "xlarge": "60M",
    "xxlarge": "235M",
    "bert-base": "108M",
    "bert-large": "334M",
}


def summary_rows(named_configs, verify=False, log=None):
    """One dict per (name, AlbertConfig): shape, counts by part, ratio vs BERT-base.

    With `verify`, builds each AlbertBackbone and AlbertPretrainer and adds
    `verified` (True when both Keras counts equal the formula); raises RuntimeError
    on a mismatch. `log(str)` receives progress lines.
    """
    bert_base = count_parameters(AlbertConfig.preset("bert-base")).backbone
    rows = []
    for index, (name, config) in enumerate(named_configs):
        counts = count_parameters(config)
        row = {
            "model": name,
            "layers": config.num_hidden_layers,
            "hidden": config.hidden_size,
            "embedding": config.embedding_size,
            "groups_x_inner": f"{config.num_hidden_groups}x{config.inner_group_num}",
            "embeddings": counts.embeddings,
            "projection": counts.projection,
            "transformer": counts.transformer,
            "pooler": counts.pooler,
            "backbone": counts.backbone,
            "pretrainer": counts.pretrainer,
            "vs_bert_base": round(counts.backbone / bert_base, 3),
            "paper_table_1": PAPER_TABLE_1.get(name, ""),
        }
        if verify:
            row["verified"] = _verify(name, config, counts, index, len(named_configs), log)
        rows.append(row)
    return rows


def _verify(name, config, counts, index, total, log):
    import keras

    from albert_tf.models import AlbertBackbone, AlbertPretrainer

    start = time.perf_counter()
    if log:
        log(f"[{index + 1}/{total}] building {name} ({counts.pretrainer:,} parameters) ...")
    backbone = AlbertBackbone(config)
    built = (backbone.count_params(), AlbertPretrainer(backbone).count_params())
    del backbone
    keras.backend.clear_session()
    expected = (counts.backbone, counts.pretrainer)
    if built != expected:
        raise RuntimeError(f"{name}: built model has {built} parameters (backbone, pretrainer), formula says {expected}")
    if log:
        log(f"[{index + 1}/{total}] {name}: counts match ({time.perf_counter() - start:.1f} s)")
    return True


COLUMNS = [
    ("model", "model"),
    ("layers", "L"),
    ("hidden", "H"),
    ("embedding", "E"),
    ("groups_x_inner", "groups×inner"),
    ("embeddings", "embeddings"),
    ("projection", "projection"),
    ("transformer", "transformer"),
    ("pooler", "pooler"),
    ("backbone", "backbone"),
    ("pretrainer", "+MLM/SOP heads"),
    ("vs_bert_base", "× BERT-base"),
    ("paper_table_1", "paper Table 1"),
    ("verified", "built = formula"),
]


def render(rows, fmt):
    """Renders rows as 'table' (aligned text), 'markdown' or 'json'; returns a str."""
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    columns = [(key, title) for key, title in COLUMNS if any(key in row for row in rows)]

    def cell(row, key):
        value = row.get(key, "")
        if isinstance(value, bool):
            return "yes" if value else "NO"
        if isinstance(value, int) and key not in ("layers", "hidden", "embedding"):
            return f"{value:,}"
        return str(value)

    table = [[title for _, title in columns]] + [[cell(row, key) for key, _ in columns] for row in rows]
    if fmt == "markdown":
        lines = ["| " + " | ".join(table[0]) + " |", "|" + "|".join("---" for _ in columns) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in table[1:]]
        return "\n".join(lines) + "\n"
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    lines = ["  ".join(value.rjust(w) if i else value.ljust(w) for i, (value, w) in enumerate(zip(r, widths))) for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    names = list(FLAGS.preset)
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        raise app.UsageError(f"--preset: unknown preset(s) {unknown}; expected any of {sorted(PRESETS)}")
    if FLAGS.bert:
        names += [n for n in BERT_PRESETS if n not in names]
    named = [(n, AlbertConfig.preset(n)) for n in names]
    if FLAGS.albert_config_file:
        try:
            named.append((os.path.basename(FLAGS.albert_config_file), AlbertConfig.from_json_file(FLAGS.albert_config_file)))
        except AlbertConfigError as e:
            raise app.UsageError(f"--albert_config_file: {e}") from None
    try:
        rows = summary_rows(named, verify=FLAGS.verify, log=log)
    except RuntimeError as e:
        log(f"albert-model-summary: {e}")
        return 1
    text = render(rows, FLAGS.format)
    sys.stdout.write(text)
    if FLAGS.output:
        write_text_atomically(FLAGS.output, text)
    return 0


def run():
    """Console-script entry point."""
    run_main(main, __name__)


if __name__ == "__main__":
    run()
