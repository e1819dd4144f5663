"""Reading albert-serve's config files (TF Serving's text-format protos), with errors that
name the flag, the file and, for parse errors, the line and column.

No TensorFlow import: albert-serve checks its flags before TensorFlow loads.
"""

from google.protobuf import text_format


def read_config_text(path, flag, error_class):
    """The text (str) of the file `path` given to `flag`; `error_class(message)` if unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise error_class(f"{flag} {path}: {e.strerror}") from None


def read_text_proto(path, message, flag, error_class):
    """Parses the text-format proto file `path` into `message` (a fresh proto) and returns it.
    Errors raise `error_class` as "<flag> <path>:<line>:<column> : <what>"."""
    text = read_config_text(path, flag, error_class)
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as e:
        raise error_class(f"{flag} {path}:{e}") from None
