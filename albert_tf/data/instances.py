"""Documents → sentence-order-prediction instances (BERT's chunking with ALBERT's SOP).

This follows the original `create_instances_from_document`, with two fixes:
- With `random_next_sentence` off, a chunk holding one sentence is split at a random
  word boundary inside that sentence. The original takes segment B from another
  document, which puts NSP negatives into SOP data (google-research/albert#234). A
  sentence of one token yields no instance.
- Every random draw comes from the generator passed in, so that output depends only on
  the seed.
"""

import dataclasses


@dataclasses.dataclass
class Instance:
    """One packed example before masking: ids with [CLS]/[SEP], segment ids, and
    `swapped` (the SOP label: 1 if B precedes A in the document, or if B is random)."""

    ids: list
    segment_ids: list
    swapped: int


def truncate_pair(tokens_a, tokens_b, max_num_tokens, rng):
    """The original `truncate_seq_pair`: it trims the longer list, from the front or
    the back at random, until both fit. It modifies the lists in place."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def _split_single_sentence(sentence, is_word_start, rng):
    """Splits one sentence into (A, B) at a random word start (any position if there
    is none). Returns None for a sentence of fewer than two tokens."""
    if len(sentence) < 2:
        return None
    cuts = [k for k in range(1, len(sentence)) if is_word_start[sentence[k]]] or list(range(1, len(sentence)))
    cut = cuts[rng.randrange(len(cuts))]
    return sentence[:cut], sentence[cut:]


def create_instances(document, other_documents, max_seq_length, short_seq_prob, random_next_sentence,
                     cls_id, sep_id, is_word_start, rng, stats=None):
    """Builds the instances of one document.

    Args:
      document: list of sentences, each a list of token ids.
      other_documents: documents that random segment Bs may come from (NSP mode only).
      stats: optional dict; "skipped_chunks" counts chunks that gave no instance.
    Returns:
      A list of Instance.
    """
    max_num_tokens = max_seq_length - 3
    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)
    instances = []
    chunk, chunk_length, i = [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        chunk_length += len(document[i])
        if i == len(document) - 1 or chunk_length >= target_seq_length:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            tokens_a = [t for sentence in chunk[:a_end] for t in sentence]
            tokens_b = []
            swapped = 0
            use_random_b = random_next_sentence and other_documents and (len(chunk) == 1 or rng.random() < 0.5)
            if use_random_b:
                swapped = 1
                target_b_length = target_seq_length - len(tokens_a)
                other = other_documents[rng.randrange(len(other_documents))]
                for sentence in other[rng.randrange(len(other)):]:
                    tokens_b.extend(sentence)
                    if len(tokens_b) >= target_b_length:
                        break
                i -= len(chunk) - a_end  # the unused sentences start the next chunk
            else:
                if len(chunk) == 1:
                    halves = _split_single_sentence(chunk[0], is_word_start, rng)
                    if halves is None:
                        if stats is not None:
                            stats["skipped_chunks"] = stats.get("skipped_chunks", 0) + 1
                        chunk, chunk_length = [], 0
                        i += 1
                        continue
                    tokens_a, tokens_b = list(halves[0]), list(halves[1])
                else:
                    tokens_b = [t for sentence in chunk[a_end:] for t in sentence]
                if not random_next_sentence and rng.random() < 0.5:
                    swapped = 1
                    tokens_a, tokens_b = tokens_b, tokens_a
            truncate_pair(tokens_a, tokens_b, max_num_tokens, rng)
            if tokens_a and tokens_b:
                ids = [cls_id] + tokens_a + [sep_id] + tokens_b + [sep_id]
                segments = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
                instances.append(Instance(ids, segments, swapped))
            elif stats is not None:
                stats["skipped_chunks"] = stats.get("skipped_chunks", 0) + 1
            chunk, chunk_length = [], 0
        i += 1
    return instances
