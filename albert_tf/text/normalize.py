"""Text normalisation rules of the original tokenization.py, and the Unicode character
classes that let the in-graph (RE2) version apply exactly the same rules.

The classes are computed from Python's `unicodedata`, i.e. from the very predicates the
Python path uses, so both paths agree code point by code point. Computing them scans every
code point (about 5 s for all of them on a 2-core Zen 3), so `re2_classes.json` holds them
ready for each Unicode version of the Pythons albert-tf supports, and they are computed
only for another version. After changing a predicate, rewrite that file with each Python
(this file needs only the standard library):

    for v in 3.10 3.11 3.12 3.13; do python$v albert_tf/text/normalize.py --write_table; done
"""

import functools
import json
import os
import sys
import unicodedata

RE2_CLASSES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "re2_classes.json")


def preprocess_text(text: str, lower: bool = False) -> str:
    """The original `preprocess_text`: collapse whitespace (Python `str.split`), NFKD,
    drop combining characters (so accents are always stripped), lower-case if asked.

    Takes and returns a str.
    """
    text = " ".join(text.strip().split())
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.lower() if lower else text


# ----------------------------------------------------------------- BERT basic rules
def is_bert_whitespace(char: str) -> bool:
    """BERT's whitespace: space, \\t, \\n, \\r, or Unicode category Zs."""
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def is_bert_control(char: str) -> bool:
    """BERT's control characters (removed): categories Cc and Cf, except \\t \\n \\r."""
    return char not in "\t\n\r" and unicodedata.category(char) in ("Cc", "Cf")


def is_bert_punctuation(char: str) -> bool:
    """BERT's punctuation: every non-alphanumeric ASCII symbol, or a Unicode P* category."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def is_cjk_character(char: str) -> bool:
    """True for code points in the CJK ideograph blocks BERT splits into single tokens."""
    cp = ord(char)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


# ----------------------------------------------------------------- final sigma context
# Python's str.lower() maps "Σ" to "ς" at the end of a word (Unicode Final_Sigma): when
# a cased letter precedes it and none follows, skipping case-ignorable characters. The
# in-graph path needs the two properties as character classes.
_WORD_BREAK_MID = frozenset(
    "'.:\u00b7\u0387\u055f\u05f4\u2018\u2019\u2024\u2027\ufe13\ufe52\ufe55\uff07\uff0e\uff1a"
)


def _is_cased(char: str) -> bool:
    return char.islower() or char.isupper() or unicodedata.category(char) == "Lt"


def _is_case_ignorable(char: str) -> bool:
    return char in _WORD_BREAK_MID or unicodedata.category(char) in ("Mn", "Me", "Cf", "Lm", "Sk")


# ----------------------------------------------------------------- RE2 classes
def _ranges(predicate):
    ranges, start = [], None
    for cp in range(sys.maxunicode + 1):
        if 0xD800 <= cp <= 0xDFFF:  # surrogates never occur in valid UTF-8
            hit = False
        else:
            hit = predicate(chr(cp))
        if hit and start is None:
            start = cp
        elif not hit and start is not None:
            ranges.append((start, cp - 1))
            start = None
    if start is not None:
        ranges.append((start, sys.maxunicode))
    return tuple(ranges)


def _re2_class(ranges) -> str:
    parts = []
    for lo, hi in ranges:
        parts.append(f"\\x{{{lo:x}}}" if lo == hi else f"\\x{{{lo:x}}}-\\x{{{hi:x}}}")
    return "[" + "".join(parts) + "]"


# The predicates behind each class, by name:
# - "python_space": `str.isspace()` (what `str.split()` and `str.strip()` use);
# - "combining": `unicodedata.combining(c) != 0`;
# - "mark_nonspacing": category Mn (BERT accent stripping);
# - "bert_whitespace", "bert_control", "bert_punctuation", "cjk": BERT basic tokenizer;
# - "python_digit": `str.isdigit()` (the digit-comma rule of `encode_pieces`);
# - "cased", "not_cased", "case_ignorable": the Final_Sigma context of `str.lower()`.
RE2_CLASS_PREDICATES = {
    "python_space": str.isspace,
    "combining": lambda c: unicodedata.combining(c) != 0,
    "mark_nonspacing": lambda c: unicodedata.category(c) == "Mn",
    "bert_whitespace": is_bert_whitespace,
    "bert_control": lambda c: is_bert_control(c) or c in ("\x00", "\ufffd"),
    "bert_punctuation": is_bert_punctuation,
    "cjk": is_cjk_character,
    "python_digit": str.isdigit,
    "cased": _is_cased,
    "case_ignorable": _is_case_ignorable,
    "not_cased": lambda c: not _is_cased(c),
}


def compute_re2_class(name: str) -> str:
    """The RE2 class of RE2_CLASS_PREDICATES[name], by a scan of every code point
    (surrogates excluded)."""
    return _re2_class(_ranges(RE2_CLASS_PREDICATES[name]))


@functools.lru_cache(maxsize=None)
def shipped_re2_classes() -> dict:
    """{name: RE2 class} from RE2_CLASSES_FILE for this Python's Unicode version
    (`unicodedata.unidata_version`), or {} when the file has none for it."""
    try:
        with open(RE2_CLASSES_FILE, encoding="utf-8") as f:
            return json.load(f).get(unicodedata.unidata_version, {})
    except FileNotFoundError:
        return {}


@functools.lru_cache(maxsize=None)
def re2_class(name: str) -> str:
    """An RE2 character class (str like "[\\x{300}-\\x{36f}...]") for a name of
    RE2_CLASS_PREDICATES: from RE2_CLASSES_FILE when it has this Unicode version, else
    computed. KeyError names an unknown class."""
    if name not in RE2_CLASS_PREDICATES:
        raise KeyError(f"no RE2 class named {name!r}; known: {sorted(RE2_CLASS_PREDICATES)}")
    shipped = shipped_re2_classes().get(name)
    return shipped if shipped is not None else compute_re2_class(name)


def write_table():
    """Adds (or replaces) this Python's Unicode version in RE2_CLASSES_FILE, every class
    computed, written through a temporary file and a rename."""
    try:
        with open(RE2_CLASSES_FILE, encoding="utf-8") as f:
            tables = json.load(f)
    except FileNotFoundError:
        tables = {}
    tables[unicodedata.unidata_version] = {name: compute_re2_class(name) for name in RE2_CLASS_PREDICATES}
    with open(RE2_CLASSES_FILE + ".tmp", "w", encoding="utf-8") as f:
        json.dump(tables, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(RE2_CLASSES_FILE + ".tmp", RE2_CLASSES_FILE)
    shipped_re2_classes.cache_clear()
    re2_class.cache_clear()


if __name__ == "__main__":
    if sys.argv[1:] != ["--write_table"]:
        sys.exit(f"usage: python {sys.argv[0]} --write_table  (adds Unicode {unicodedata.unidata_version} "
                 f"to {RE2_CLASSES_FILE})")
    write_table()
    print(f"{RE2_CLASSES_FILE}: Unicode {unicodedata.unidata_version} written")
