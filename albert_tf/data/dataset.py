"""tf.data input for pretraining: TFRecords of albert-create-pretraining-data (or of the
original script, with the same schema) → batches of model inputs."""

from albert_tf.data.schema import parsing_spec
from albert_tf.text.spm_training import expand_input_patterns

# TFRecord feature -> model input name.
MODEL_INPUT_NAMES = {
    "input_ids": "input_word_ids",
    "input_mask": "input_mask",
    "segment_ids": "input_type_ids",
    "masked_lm_positions": "masked_lm_positions",
    "masked_lm_ids": "masked_lm_ids",
    "masked_lm_weights": "masked_lm_weights",
    "next_sentence_labels": "next_sentence_labels",
}


def pretraining_dataset(
    input_patterns,
    max_seq_length,
    max_predictions_per_seq,
    batch_size,
    shuffle=True,
    seed=None,
    repeat=False,
    input_context=None,
):
    """A tf.data.Dataset of dict batches for AlbertPretrainer plus the loss targets.

    Args:
      input_patterns: comma-separated globs (str or list).
      input_context: a tf.distribute.InputContext. When given, files are sharded per
        input pipeline, or records when there are fewer files than pipelines.
    Yields dicts of int32 [B, max_seq_length] (`input_word_ids`, `input_mask`,
    `input_type_ids`), int32 [B, P] `masked_lm_positions` and `masked_lm_ids`, float32
    [B, P] `masked_lm_weights`, and int32 [B] `next_sentence_labels`.
    """
    import tensorflow as tf

    files = expand_input_patterns(input_patterns if isinstance(input_patterns, (list, tuple)) else [input_patterns],
                                  flag="--input_file")
    spec = parsing_spec(max_seq_length, max_predictions_per_seq)
    dataset = tf.data.Dataset.from_tensor_slices(files)
    pipelines = input_context.num_input_pipelines if input_context is not None else 1
    shard_files = pipelines > 1 and len(files) >= pipelines
    if shard_files:
        dataset = dataset.shard(pipelines, input_context.input_pipeline_id)
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed)
    dataset = dataset.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not shuffle or seed is not None,
    )
    if pipelines > 1 and not shard_files:  # fewer files than workers: shard the records instead
        dataset = dataset.shard(pipelines, input_context.input_pipeline_id)
    if shuffle:
        dataset = dataset.shuffle(10000, seed=seed)
    if repeat:
        dataset = dataset.repeat()

    def parse(serialized):
        features = tf.io.parse_example(serialized, spec)
        batch = {}
        for name, target in MODEL_INPUT_NAMES.items():
            value = features[name]
            batch[target] = value if value.dtype == tf.float32 else tf.cast(value, tf.int32)
        batch["next_sentence_labels"] = batch["next_sentence_labels"][:, 0]
        return batch

    return dataset.batch(batch_size, drop_remainder=repeat).map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE
    )
