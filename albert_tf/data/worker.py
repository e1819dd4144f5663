"""The work on one block of documents: tokenize, build SOP instances, mask, serialize.

It runs in worker processes (or in-process with one worker) and imports no TensorFlow.
The result depends only on the block, its index, the flags and the seed. That is what
makes the output identical whatever the number of workers.
"""

import dataclasses
import random

from albert_tf.data.instances import create_instances
from albert_tf.data.masking import MaskingRule
from albert_tf.data.schema import encode_example
from albert_tf.text.tokenizer import SentencePieceTokenizer, load_tokenizer


@dataclasses.dataclass(frozen=True)
class DataOptions:
    """The flags of albert-create-pretraining-data that shape examples."""

    max_seq_length: int = 512
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    dupe_factor: int = 40
    short_seq_prob: float = 0.1
    ngram: int = 3
    favor_shorter_ngram: bool = True
    do_whole_word_mask: bool = True
    random_next_sentence: bool = False
    random_seed: int = 12345


@dataclasses.dataclass(frozen=True)
class TokenizerSpec:
    """How a worker loads its tokenizer (the original's flags)."""

    spm_model_file: str = None
    vocab_file: str = None
    do_lower_case: bool = True


class BlockProcessor:
    """Turns a block of raw documents into serialized examples and statistics."""

    def __init__(self, tokenizer_spec, options):
        self.options = options
        self.tokenizer = load_tokenizer(tokenizer_spec.spm_model_file, tokenizer_spec.vocab_file, tokenizer_spec.do_lower_case)
        tok = self.tokenizer
        self.is_spm = isinstance(tok, SentencePieceTokenizer)
        pieces = tok.convert_ids_to_tokens(range(tok.vocab_size))
        self.is_word_start = [tok.is_word_start(p) for p in pieces]
        self.masking = MaskingRule(
            tok.vocab_size,
            self.is_word_start,
            cls_id=tok.cls_id,
            sep_id=tok.sep_id,
            mask_id=tok.mask_id,
            excluded_replacement_ids=tok.special_ids,
            masked_lm_prob=options.masked_lm_prob,
            max_predictions_per_seq=options.max_predictions_per_seq,
            ngram=options.ngram,
            favor_shorter_ngram=options.favor_shorter_ngram,
            do_whole_word_mask=options.do_whole_word_mask,
        )

    def tokenize_document(self, raw_sentences):
        """Raw sentences → documents (lists of id lists). As in the original, a line that
        normalizes to nothing ends the document."""
        documents, current = [], []
        for line in raw_sentences:
            if self.is_spm:
                text = self.tokenizer.normalize(line)
                ids = self.tokenizer.encode_normalized(text) if text else []
            else:
                text = line.strip()
                ids = self.tokenizer.encode(text) if text else []
            if not text:
                if current:
                    documents.append(current)
                current = []
                continue
            if ids:
                current.append(ids)
        if current:
            documents.append(current)
        return documents

    def process(self, block_index, raw_documents):
        """Returns (list of example bytes, stats dict) for one block."""
        o = self.options
        stats = {"documents": 0, "examples": 0, "tokens": 0, "masked": 0, "swapped": 0, "skipped_chunks": 0}
        documents = [d for raw in raw_documents for d in self.tokenize_document(raw)]
        stats["documents"] = len(documents)
        examples = []
        for dupe in range(o.dupe_factor):
            for doc_index, document in enumerate(documents):
                rng = random.Random(f"{o.random_seed}:{block_index}:{doc_index}:{dupe}")
                others = documents[:doc_index] + documents[doc_index + 1 :] if o.random_next_sentence else ()
                for instance in create_instances(
                    document, others, o.max_seq_length, o.short_seq_prob, o.random_next_sentence,
                    self.tokenizer.cls_id, self.tokenizer.sep_id, self.is_word_start, rng, stats,
                ):
                    examples.append(self.serialize(instance, rng, stats))
        # The original shuffles all instances of the corpus; a stream shuffles per block.
        random.Random(f"{o.random_seed}:block:{block_index}").shuffle(examples)
        stats["examples"] = len(examples)
        return examples, stats

    def serialize(self, instance, rng, stats):
        """Masks one instance and returns its tf.train.Example bytes."""
        o = self.options
        ids, positions, labels, boundary = self.masking.apply(instance.ids, rng)
        pad = o.max_seq_length - len(ids)
        pred_pad = o.max_predictions_per_seq - len(positions)
        stats["tokens"] += len(ids)
        stats["masked"] += len(positions)
        stats["swapped"] += instance.swapped
        return encode_example(
            {
                "input_ids": ids + [0] * pad,
                "input_mask": [1] * len(ids) + [0] * pad,
                "segment_ids": instance.segment_ids + [0] * pad,
                "token_boundary": boundary + [0] * pad,
                "masked_lm_positions": positions + [0] * pred_pad,
                "masked_lm_ids": labels + [0] * pred_pad,
                "masked_lm_weights": [1.0] * len(positions) + [0.0] * pred_pad,
                "next_sentence_labels": [instance.swapped],
            }
        )


_PROCESSOR = None


def init_worker(tokenizer_spec, options):
    """Pool initializer: loads the tokenizer once per worker process."""
    global _PROCESSOR
    _PROCESSOR = BlockProcessor(tokenizer_spec, options)


def process_block(block_index, raw_documents):
    """Pool task: processes one block with this worker's processor."""
    return _PROCESSOR.process(block_index, raw_documents)
