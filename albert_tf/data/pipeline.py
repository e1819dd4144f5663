"""Runs the pretraining-data job: stream blocks to workers, write shards, report.

Memory is bounded: at most `2 × num_workers` blocks are in flight, and each holds
`documents_per_block` documents. Results come back in block order and example k goes
to shard k mod S, so the bytes written depend only on the inputs, the flags and the
seed, never on the number of workers.

Outputs are written to temporary files beside their targets. They are renamed into
place only when the whole run succeeds, so a failed run leaves earlier files untouched.
"""

import collections
import multiprocessing
import os
import time

from albert_tf.data.corpus import iter_blocks, iter_documents
from albert_tf.data.worker import BlockProcessor, init_worker, process_block
from albert_tf.text.spm_training import CorpusError

DOCUMENTS_PER_BLOCK = 64


class Summary(collections.Counter):
    """Counters of a run: documents, examples, tokens, masked, swapped, skipped_chunks,
    bad_lines, blocks."""

    def describe(self, seconds):
        """A multi-line human summary."""
        examples = max(self["examples"], 1)
        lines = [
            f"documents       {self['documents']:,}",
            f"examples        {self['examples']:,}",
            f"tokens          {self['tokens']:,}",
            f"masked fraction {self['masked'] / max(self['tokens'], 1):.4f} of tokens "
            f"({self['masked'] / examples:.2f} per example)",
            f"SOP swapped     {self['swapped'] / examples:.4f} of examples (label 1)",
            f"time            {seconds:.1f} s ({self['tokens'] / max(seconds, 1e-9):,.0f} tokens/s, "
            f"{self['examples'] / max(seconds, 1e-9):,.0f} examples/s)",
        ]
        if self["skipped_chunks"]:
            lines.append(f"skipped chunks  {self['skipped_chunks']:,} (a one-token chunk cannot form a pair)")
        if self["bad_lines"]:
            lines.append(f"skipped lines   {self['bad_lines']:,} (invalid UTF-8)")
        return "\n".join(lines)


def _ordered_results(blocks, num_workers, tokenizer_spec, options):
    """Yields process_block results in block order, `2 × num_workers` in flight at most."""
    if num_workers <= 1:
        processor = BlockProcessor(tokenizer_spec, options)
        for index, block in blocks:
            yield processor.process(index, block)
        return
    context = multiprocessing.get_context("spawn")  # no TensorFlow state forked into workers
    with context.Pool(num_workers, initializer=init_worker, initargs=(tokenizer_spec, options)) as pool:
        pending = collections.deque()
        for index, block in blocks:
            pending.append(pool.apply_async(process_block, (index, block)))
            if len(pending) >= 2 * num_workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def create_pretraining_data(
    input_files,
    output_files,
    tokenizer_spec,
    options,
    num_workers=1,
    paragraph_per_line=False,
    skip_bad_lines=False,
    documents_per_block=DOCUMENTS_PER_BLOCK,
    log=None,
    log_every_seconds=5.0,
):
    """Writes the TFRecord shards `output_files` from `input_files`; returns a Summary.

    Raises CorpusError (empty corpus, bad input) and leaves no output written.
    """
    import tensorflow as tf  # only the writing process needs TensorFlow

    summary = Summary()
    start = last_log = time.perf_counter()
    temporaries = []
    writers = []
    try:
        for path in output_files:
            directory = os.path.dirname(os.path.abspath(path))
            os.makedirs(directory, exist_ok=True)
            tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
            temporaries.append(tmp)
            writers.append(tf.io.TFRecordWriter(tmp))
        documents = iter_documents(input_files, paragraph_per_line, skip_bad_lines, counters=summary)
        blocks = iter_blocks(documents, documents_per_block)
        for examples, stats in _ordered_results(blocks, num_workers, tokenizer_spec, options):
            for example in examples:
                writers[summary["examples_written"] % len(writers)].write(example)
                summary["examples_written"] += 1
            summary.update(stats)
            summary["blocks"] += 1
            now = time.perf_counter()
            if log and now - last_log >= log_every_seconds:
                last_log = now
                log(
                    f"{summary['documents']:,} documents, {summary['examples']:,} examples, "
                    f"{summary['tokens'] / (now - start):,.0f} tokens/s"
                )
        for writer in writers:
            writer.close()
        writers = []
        if summary["documents"] == 0:
            raise CorpusError(f"--input_file: no text found in {', '.join(input_files)} (empty corpus)")
        for tmp, path in zip(temporaries, output_files):
            os.replace(tmp, path)
        temporaries = []
    finally:
        for writer in writers:
            writer.close()
        for tmp in temporaries:
            if os.path.exists(tmp):
                os.unlink(tmp)
    del summary["examples_written"]
    summary.seconds = time.perf_counter() - start
    return summary
