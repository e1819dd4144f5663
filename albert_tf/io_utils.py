"""Small file helpers shared by the CLIs and configs."""

import os
import tempfile


def write_text_atomically(path, text):
    """Writes `text` (str, UTF-8) to `path` via a temporary file in the same directory
    and a rename, so readers never see a half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def unreadable_checkpoint_message(path, flag):
    """The error (str) for a checkpoint path that cannot be read, naming `flag`."""
    return (f"{flag} {path}: not a readable checkpoint (expected a prefix such as out/ckpt-100 or a directory "
            "holding checkpoints)")


def missing_local_checkpoint(path, flag):
    """unreadable_checkpoint_message for a local `path` that is neither a directory nor a
    `<prefix>.index` file; None when it may be a checkpoint or is remote (gs://...). Needs
    no TensorFlow, so the CLIs can check before importing it."""
    if "://" in path or os.path.isdir(path) or os.path.isfile(path + ".index"):
        return None
    return unreadable_checkpoint_message(path, flag)


def missing_init_checkpoint(path, output_dir, flag="--init_checkpoint"):
    """missing_local_checkpoint for a job's --init_checkpoint, or None when there is no
    such flag or `output_dir` already holds checkpoints (resuming wins over it)."""
    if not path or os.path.isfile(os.path.join(output_dir, "checkpoint")):
        return None
    return missing_local_checkpoint(path, flag)
