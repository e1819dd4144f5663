"""The pretraining TFRecord schema, exactly as the original create_pretraining_data.py
writes it and run_pretraining.py reads it. One table serves writer, reader and tests.

`next_sentence_labels` keeps its historical name although it holds the SOP label
(1 = segments swapped, 0 = in order).
"""

import struct

# name -> (kind, length), where length is "seq" (max_seq_length), "pred"
# (max_predictions_per_seq) or an int.
PRETRAINING_FEATURES = (
    ("input_ids", "int64", "seq"),
    ("input_mask", "int64", "seq"),
    ("segment_ids", "int64", "seq"),
    ("token_boundary", "int64", "seq"),
    ("masked_lm_positions", "int64", "pred"),
    ("masked_lm_ids", "int64", "pred"),
    ("masked_lm_weights", "float", "pred"),
    ("next_sentence_labels", "int64", 1),
)


def feature_lengths(max_seq_length, max_predictions_per_seq):
    """{feature name: fixed length} for the given shapes."""
    sizes = {"seq": max_seq_length, "pred": max_predictions_per_seq}
    return {name: sizes.get(length, length) for name, _, length in PRETRAINING_FEATURES}


def parsing_spec(max_seq_length, max_predictions_per_seq):
    """The tf.io.parse_example spec (FixedLenFeature per feature); imports TensorFlow."""
    import tensorflow as tf

    lengths = feature_lengths(max_seq_length, max_predictions_per_seq)
    return {
        name: tf.io.FixedLenFeature([lengths[name]], tf.int64 if kind == "int64" else tf.float32)
        for name, kind, _ in PRETRAINING_FEATURES
    }


# ----------------------------------------------------------------- Example encoding
# A tf.train.Example is Features{map<string, Feature>}; Feature holds a packed
# Int64List (field 3) or FloatList (field 2). Writing the protobuf bytes directly
# keeps TensorFlow out of the data workers and is several times faster than building
# message objects. Entries are written in table order, so output is deterministic.


def _varint(value):
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL_VARINTS = [_varint(i) for i in range(1 << 16)]


def _encode_varint(value):
    return _SMALL_VARINTS[value] if 0 <= value < 65536 else _varint(value)


def _length_delimited(field, payload):
    return _encode_varint((field << 3) | 2) + _encode_varint(len(payload)) + payload


def _int64_feature(values):
    packed = b"".join([_encode_varint(v) for v in values])
    return _length_delimited(3, _length_delimited(1, packed))


def _float_feature(values):
    packed = struct.pack(f"<{len(values)}f", *values)
    return _length_delimited(2, _length_delimited(1, packed))


_KEYS = {name: _length_delimited(1, name.encode("ascii")) for name, _, _ in PRETRAINING_FEATURES}


def encode_example(features):
    """Serializes {name: list of int or float} (the PRETRAINING_FEATURES, in any order)
    to tf.train.Example bytes, entries in table order."""
    entries = []
    for name, kind, _ in PRETRAINING_FEATURES:
        value = _int64_feature(features[name]) if kind == "int64" else _float_feature(features[name])
        entries.append(_length_delimited(1, _KEYS[name] + _length_delimited(2, value)))
    return _length_delimited(1, b"".join(entries))
