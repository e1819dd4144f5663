"""The explicit name table between original TF1 ALBERT variables and albert_tf variables.

Names follow google-research/albert modeling.py and run_pretraining.py
(official-albert.md §2.2). Every kernel keeps its TF1 shape in albert_tf: Dense kernels
are [in, out], attention kernels are plain [H, H], and the SOP weights are [2, H]. So
the table maps names only; no entry needs a reshape or transpose.
"""

import re

# Per block: TF1 suffix under bert/encoder/transformer/group_{g}/inner_group_{i}/ →
# albert_tf suffix under encoder/group_{g}_inner_group_{i}/.
_BLOCK_TABLE = (
    ("attention_1/self/query/kernel", "attention/query/kernel"),
    ("attention_1/self/query/bias", "attention/query/bias"),
    ("attention_1/self/key/kernel", "attention/key/kernel"),
    ("attention_1/self/key/bias", "attention/key/bias"),
    ("attention_1/self/value/kernel", "attention/value/kernel"),
    ("attention_1/self/value/bias", "attention/value/bias"),
    ("attention_1/output/dense/kernel", "attention/output_dense/kernel"),
    ("attention_1/output/dense/bias", "attention/output_dense/bias"),
    ("LayerNorm/gamma", "attention_layer_norm/gamma"),
    ("LayerNorm/beta", "attention_layer_norm/beta"),
    ("ffn_1/intermediate/dense/kernel", "ffn_intermediate/kernel"),
    ("ffn_1/intermediate/dense/bias", "ffn_intermediate/bias"),
    ("ffn_1/intermediate/output/dense/kernel", "ffn_output/kernel"),
    ("ffn_1/intermediate/output/dense/bias", "ffn_output/bias"),
    ("LayerNorm_1/gamma", "output_layer_norm/gamma"),
    ("LayerNorm_1/beta", "output_layer_norm/beta"),
)

# brightmart/albert_zh: one BERT-named shared layer, bert/encoder/layer_shared/ →
# encoder/group_0_inner_group_0/ (so it needs num_hidden_groups = inner_group_num = 1).
_BRIGHTMART_BLOCK_TABLE = (
    ("attention/self/query/kernel", "attention/query/kernel"),
    ("attention/self/query/bias", "attention/query/bias"),
    ("attention/self/key/kernel", "attention/key/kernel"),
    ("attention/self/key/bias", "attention/key/bias"),
    ("attention/self/value/kernel", "attention/value/kernel"),
    ("attention/self/value/bias", "attention/value/bias"),
    ("attention/output/dense/kernel", "attention/output_dense/kernel"),
    ("attention/output/dense/bias", "attention/output_dense/bias"),
    ("attention/output/LayerNorm/gamma", "attention_layer_norm/gamma"),
    ("attention/output/LayerNorm/beta", "attention_layer_norm/beta"),
    ("intermediate/dense/kernel", "ffn_intermediate/kernel"),
    ("intermediate/dense/bias", "ffn_intermediate/bias"),
    ("output/dense/kernel", "ffn_output/kernel"),
    ("output/dense/bias", "ffn_output/bias"),
    ("output/LayerNorm/gamma", "output_layer_norm/gamma"),
    ("output/LayerNorm/beta", "output_layer_norm/beta"),
)
BRIGHTMART_MARKER = "bert/embeddings/word_embeddings_2"  # only brightmart checkpoints have it

_EMBEDDING_TABLE = (
    ("bert/embeddings/word_embeddings", "embeddings/word_embeddings"),
    ("bert/embeddings/position_embeddings", "embeddings/position_embeddings"),
    ("bert/embeddings/token_type_embeddings", "embeddings/token_type_embeddings"),
    ("bert/embeddings/LayerNorm/gamma", "embeddings/layer_norm/gamma"),
    ("bert/embeddings/LayerNorm/beta", "embeddings/layer_norm/beta"),
)

_BRIGHTMART_PROJECTION_TABLE = ((BRIGHTMART_MARKER, "embeddings/word_projection"),)

_PROJECTION_TABLE = (
    ("bert/encoder/embedding_hidden_mapping_in/kernel", "embedding_projection/kernel"),
    ("bert/encoder/embedding_hidden_mapping_in/bias", "embedding_projection/bias"),
)

_POOLER_TABLE = (
    ("bert/pooler/dense/kernel", "pooler/kernel"),
    ("bert/pooler/dense/bias", "pooler/bias"),
)

_PRETRAINING_HEADS_TABLE = (
    ("cls/predictions/transform/dense/kernel", "mlm_head/transform_dense/kernel"),
    ("cls/predictions/transform/dense/bias", "mlm_head/transform_dense/bias"),
    ("cls/predictions/transform/LayerNorm/gamma", "mlm_head/transform_layer_norm/gamma"),
    ("cls/predictions/transform/LayerNorm/beta", "mlm_head/transform_layer_norm/beta"),
    ("cls/predictions/output_bias", "mlm_head/output_bias"),
    ("cls/seq_relationship/output_weights", "sop_head/output_weights"),
    ("cls/seq_relationship/output_bias", "sop_head/output_bias"),
)

# Checkpoint entries that are skipped on purpose: optimizer state and step counters.
SKIPPED = (
    re.compile(r"(^|/)(adam_m|adam_v|lamb_m|lamb_v)$"),
    re.compile(r"^global_step$"),
    re.compile(r"AdamWeightDecayOptimizer|LAMBOptimizer"),
)

# The fine-tuned head of the original run_classifier (top-level names).
_CLASSIFIER_TABLE = (
    ("output_weights", "classifier_head/output_weights"),
    ("output_bias", "classifier_head/output_bias"),
)

# The fine-tuned head of the original run_squad_v1 (start row 0, end row 1).
_SQUAD_TABLE = (
    ("cls/squad/output_weights", "squad_head/output_weights"),
    ("cls/squad/output_bias", "squad_head/output_bias"),
)

HUB_PREFIX = "module/"
MODEL_KINDS = ("backbone", "pretrainer", "classifier", "squad")


def name_table(config, model_kind):
    """The (tf1_name, albert_tf_variable_path) pairs of a model, in a stable order.

    Args:
      config: the AlbertConfig; its groups and inner groups decide the block entries,
        and E != H adds the projection. With embedding_projection_position
        "word_embeddings" the table is brightmart/albert_zh's: `word_embeddings_2` and
        the `bert/encoder/layer_shared/` block names.
      model_kind: "backbone", "pretrainer" (adds the MLM and SOP heads), "classifier"
        (adds run_classifier's `output_weights` / `output_bias`) or "squad" (adds
        run_squad_v1's `cls/squad/output_weights` / `output_bias`).
    Returns a list of (str, str).
    """
    if model_kind not in MODEL_KINDS:
        raise ValueError(f"--model: {model_kind!r} is not one of {MODEL_KINDS}")
    table = list(_EMBEDDING_TABLE)
    if config.projects_word_embeddings:
        if (config.num_hidden_groups, config.inner_group_num) != (1, 1):
            raise ValueError("the brightmart layout (embedding_projection_position=word_embeddings) has one shared "
                             f"layer; num_hidden_groups={config.num_hidden_groups} and inner_group_num="
                             f"{config.inner_group_num} must both be 1")
        table += _BRIGHTMART_PROJECTION_TABLE
        table += [("bert/encoder/layer_shared/" + tf1, "encoder/group_0_inner_group_0/" + ours)
                  for tf1, ours in _BRIGHTMART_BLOCK_TABLE]
        groups = ()
    else:
        if config.embedding_size != config.hidden_size:
            table += _PROJECTION_TABLE
        groups = config.used_groups
    for group in groups:
        for inner in range(config.inner_group_num):
            tf1_prefix = f"bert/encoder/transformer/group_{group}/inner_group_{inner}/"
            ours_prefix = f"encoder/group_{group}_inner_group_{inner}/"
            table += [(tf1_prefix + tf1, ours_prefix + ours) for tf1, ours in _BLOCK_TABLE]
    table += _POOLER_TABLE
    if model_kind == "pretrainer":
        table += _PRETRAINING_HEADS_TABLE
    elif model_kind == "classifier":
        table += _CLASSIFIER_TABLE
    elif model_kind == "squad":
        table += _SQUAD_TABLE
    return table


def is_skipped(tf1_name):
    """True for checkpoint entries that conversion ignores on purpose."""
    return any(pattern.search(tf1_name) for pattern in SKIPPED)
