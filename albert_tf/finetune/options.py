"""What a fine-tuning job takes, and the checks that need no TensorFlow.

The CLIs build the options and run these checks before they import TensorFlow (seconds),
so a bad flag, tokenizer or data path fails at once; `FinetuneRun` runs the same checks
for library callers.
"""

import dataclasses
import os

from albert_tf.finetune import glue
from albert_tf.io_utils import missing_init_checkpoint
from albert_tf.text import load_tokenizer


class FinetuneError(ValueError):
    """Bad flags or data for fine-tuning; the message names the flag or file."""


@dataclasses.dataclass
class ClassifierOptions:
    """What albert-run-classifier's flags set (names as the original run_classifier)."""

    task: glue.TaskSpec
    data_dir: str
    albert_config: object
    output_dir: str
    spm_model_file: str = None
    vocab_file: str = None
    do_lower_case: bool = True
    init_checkpoint: str = None
    do_train: bool = False
    do_eval: bool = False
    do_predict: bool = False
    max_seq_length: int = 512
    train_batch_size: int = 32
    eval_batch_size: int = 8
    learning_rate: float = 5e-5
    train_step: int = 1000
    warmup_step: int = 0
    save_checkpoints_steps: int = 1000
    optimizer: str = "adamw"
    random_seed: int = 12345
    log_steps: int = 50


@dataclasses.dataclass
class SquadOptions:
    """What albert-run-squad's flags set (names as the original run_squad_v1/v2)."""

    albert_config: object
    output_dir: str
    train_file: str = None
    predict_file: str = None
    version_2_with_negative: bool = False
    spm_model_file: str = None
    vocab_file: str = None
    do_lower_case: bool = True
    init_checkpoint: str = None
    do_train: bool = False
    do_predict: bool = False
    max_seq_length: int = 384
    doc_stride: int = 128
    max_query_length: int = 64
    train_batch_size: int = 32
    predict_batch_size: int = 8
    learning_rate: float = 5e-5
    num_train_epochs: float = 3.0
    warmup_proportion: float = 0.1
    train_step: int = None
    warmup_step: int = None
    save_checkpoints_steps: int = 1000
    n_best_size: int = 20
    max_answer_length: int = 30
    null_score_diff_threshold: float = 0.0
    optimizer: str = "adamw"
    random_seed: int = 12345
    log_steps: int = 50


CLASSIFIER_POSITIVE_FLAGS = ("train_batch_size", "eval_batch_size", "train_step", "save_checkpoints_steps")
SQUAD_POSITIVE_FLAGS = ("train_batch_size", "predict_batch_size", "train_step", "save_checkpoints_steps",
                        "doc_stride", "max_query_length", "n_best_size", "max_answer_length")


def check_common(options, positive_flags):
    """Checks what every fine-tuning job shares (lengths, positive flags, tokenizer
    against the config); returns the tokenizer. Raises FinetuneError naming the flag."""
    o = options
    if o.max_seq_length > o.albert_config.max_position_embeddings:
        raise FinetuneError(f"--max_seq_length={o.max_seq_length} exceeds max_position_embeddings="
                            f"{o.albert_config.max_position_embeddings} of --albert_config_file")
    for flag in positive_flags:
        value = getattr(o, flag)
        if value is not None and value < 1:
            raise FinetuneError(f"--{flag} must be >= 1")
    try:
        tokenizer = load_tokenizer(o.spm_model_file, o.vocab_file, o.do_lower_case)
    except ValueError as e:
        raise FinetuneError(str(e)) from None
    if tokenizer.vocab_size > o.albert_config.vocab_size:
        raise FinetuneError(f"the tokenizer has {tokenizer.vocab_size} tokens but --albert_config_file has "
                            f"vocab_size={o.albert_config.vocab_size}")
    return tokenizer


def check_squad_flags(options):
    """The SQuAD job's own flag rules. Raises FinetuneError naming the flag."""
    o = options
    if o.do_train and not o.train_file:
        raise FinetuneError("--do_train needs --train_file")
    if o.do_predict and not o.predict_file:
        raise FinetuneError("--do_predict needs --predict_file")
    if o.max_seq_length <= o.max_query_length + 3:
        raise FinetuneError(f"--max_seq_length={o.max_seq_length} must be greater than --max_query_length="
                            f"{o.max_query_length} + 3")


def check_init_checkpoint(options):
    """A local --init_checkpoint that cannot be a checkpoint (no such directory, no
    `<prefix>.index`) fails here, unless output_dir holds checkpoints to resume from
    (which win over it). Remote paths (gs://...) are left to the restore."""
    if missing := missing_init_checkpoint(options.init_checkpoint, options.output_dir):
        raise FinetuneError(missing)


def check_classifier_options(options):
    """Everything albert-run-classifier can check before TensorFlow: check_common, the
    split files its jobs read, and --init_checkpoint's path. Raises FinetuneError."""
    check_common(options, CLASSIFIER_POSITIVE_FLAGS)
    for wanted, split in ((options.do_train, "train"), (options.do_eval, "dev"), (options.do_predict, "test")):
        path = os.path.join(options.data_dir, options.task.files[split])
        if wanted and not os.path.isfile(path):
            raise FinetuneError(f"{path}: no such file")
    check_init_checkpoint(options)


def check_squad_options(options):
    """Everything albert-run-squad can check before TensorFlow: its flag rules,
    check_common, the files given, and --init_checkpoint's path. Raises FinetuneError."""
    check_squad_flags(options)
    check_common(options, SQUAD_POSITIVE_FLAGS)
    for wanted, flag, path in ((options.do_train, "--train_file", options.train_file),
                               (options.do_predict, "--predict_file", options.predict_file)):
        if wanted and not os.path.isfile(path):
            raise FinetuneError(f"{flag} {path}: no such file")
    check_init_checkpoint(options)
