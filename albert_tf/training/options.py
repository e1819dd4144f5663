"""What a pretraining job takes, and the checks that need no TensorFlow.

albert-run-pretraining builds the options and runs `check_pretraining_options` and
`input_files` before it imports TensorFlow (seconds), so a bad flag, a pattern that
matches no file or an output directory that cannot be written fails at once.
`PretrainingRun` runs the same checks for library callers, then reads the records.
"""

import dataclasses
import os
import tempfile

from albert_tf.io_utils import missing_init_checkpoint
from albert_tf.text.spm_training import expand_input_patterns

POSITIVE_FLAGS = ("train_batch_size", "eval_batch_size", "num_train_steps", "log_steps", "save_checkpoints_steps")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


class PretrainingError(ValueError):
    """Bad input for a pretraining run; the message names the flag, file or feature."""


@dataclasses.dataclass
class PretrainingOptions:
    """The flags of albert-run-pretraining (original names and defaults)."""

    input_file: str
    output_dir: str
    albert_config: object  # an AlbertConfig
    init_checkpoint: str = None
    init_from_group0: bool = False
    max_seq_length: int = 512
    max_predictions_per_seq: int = 20
    train_batch_size: int = 4096
    eval_batch_size: int = 64
    learning_rate: float = 0.00176
    num_train_steps: int = 125000
    num_warmup_steps: int = 3125
    start_warmup_step: int = 0
    poly_power: float = 1.0
    optimizer: str = "lamb"
    save_checkpoints_steps: int = 5000
    keep_checkpoint_max: int = 5
    do_train: bool = True
    do_eval: bool = False
    max_eval_steps: int = 100
    random_seed: int = 12345
    mixed_precision: str = "float32"
    jit_compile: bool = False
    log_steps: int = 100
    eval_input_file: str = None  # default: input_file, as the original evaluates


def input_files(pattern, flag):
    """The files of comma-separated globs `pattern` (str), sorted per glob; local globs
    need no TensorFlow, remote ones (gs://...) go through tf.io.gfile. Raises
    PretrainingError naming `flag` and the glob that matches no file."""
    try:
        return expand_input_patterns([pattern], flag=flag)
    except ValueError as e:
        raise PretrainingError(str(e)) from None


def check_pretraining_options(options):
    """The checks of a PretrainingOptions that need neither TensorFlow nor the records:
    --optimizer, --mixed_precision, --max_seq_length against the config, the positive
    flags, a local --init_checkpoint path (skipped when --output_dir holds checkpoints
    to resume from, which win over it), and that --output_dir can be created and
    written. Raises PretrainingError naming the flag."""
    o = options
    if o.optimizer not in ("lamb", "adamw"):
        raise PretrainingError(f"--optimizer: {o.optimizer!r} is not lamb or adamw")
    if o.mixed_precision not in PRECISIONS:
        raise PretrainingError(f"--mixed_precision: {o.mixed_precision!r} is not one of {PRECISIONS}")
    if o.max_seq_length > o.albert_config.max_position_embeddings:
        raise PretrainingError(
            f"--max_seq_length={o.max_seq_length} exceeds max_position_embeddings="
            f"{o.albert_config.max_position_embeddings} of --albert_config_file"
        )
    for flag in POSITIVE_FLAGS:
        if getattr(o, flag) < 1:
            raise PretrainingError(f"--{flag} must be >= 1")
    if missing := missing_init_checkpoint(o.init_checkpoint, o.output_dir):
        raise PretrainingError(missing)
    try:
        os.makedirs(o.output_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=o.output_dir):
            pass
    except OSError as e:
        raise PretrainingError(f"--output_dir {o.output_dir}: not writable ({e.strerror})") from None
