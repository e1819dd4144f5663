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
