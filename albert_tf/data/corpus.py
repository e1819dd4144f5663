"""Streaming corpus reading: text files → blocks of documents, never the whole corpus.

Input as the original expects: one sentence per line, a blank line between documents
(each file also starts a new document). With `paragraph_per_line`, each line is a
paragraph and is split into sentences by `split_sentences`.
"""

import re

from albert_tf.text.spm_training import iter_lines

# A sentence ends at . ! ? (ASCII or full-width) or 。, optionally followed by closing
# quotes or brackets. It must then be followed by whitespace and the start of a new
# sentence (upper case, a digit, or an opening quote or bracket). CJK enders need no
# space after them.
_SENTENCE_END = re.compile(
    r"""(?<=[.!?])["'”’)\]]*\s+(?=["'“‘(\[]?[A-Z0-9À-ÖØ-Þ])|(?<=[。！？])["'”’」』)]*\s*"""
)


def split_sentences(paragraph):
    """Splits a paragraph into sentences (list of non-empty str) with a rule-based
    splitter. "H. americanus" stays whole, because a lower-case word follows the
    period."""
    return [s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip()]


def iter_documents(input_files, paragraph_per_line=False, skip_bad_lines=False, counters=None):
    """Yields documents as lists of raw sentence strings, in input order.

    Invalid UTF-8 raises CorpusError naming file:line. With `skip_bad_lines`, the line
    is skipped instead and counted in counters["bad_lines"].
    """
    for path in input_files:
        document = []
        for _, line in iter_lines(path, skip_bad_lines, counters):
            if not line.strip():
                if document:
                    yield document
                document = []
            elif paragraph_per_line:
                document.extend(split_sentences(line))
            else:
                document.append(line)
        if document:
            yield document


def iter_blocks(documents, documents_per_block):
    """Groups documents into (block_index, [document, ...]) of `documents_per_block`."""
    block, index = [], 0
    for document in documents:
        block.append(document)
        if len(block) == documents_per_block:
            yield index, block
            block, index = [], index + 1
    if block:
        yield index, block
