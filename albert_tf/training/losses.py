"""The original ALBERT pretraining losses (run_pretraining.py)."""

from keras import ops


def masked_lm_loss(mlm_logits, masked_lm_ids, masked_lm_weights):
    """Σ(w · nll) / (Σw + 1e-5), the original weighted MLM loss.

    Args: float logits [B, P, V], int label ids [B, P], float weights [B, P].
    Returns a float32 scalar.
    """
    log_probs = ops.log_softmax(ops.cast(mlm_logits, "float32"), axis=-1)
    nll = -ops.take_along_axis(log_probs, ops.cast(masked_lm_ids, "int32")[..., None], axis=-1)[..., 0]
    weights = ops.cast(masked_lm_weights, "float32")
    return ops.sum(weights * nll) / (ops.sum(weights) + 1e-5)


def sentence_order_loss(sop_logits, labels):
    """Mean cross-entropy of the SOP logits [B, 2] against int labels [B] (1 = swapped).
    Returns a float32 scalar."""
    log_probs = ops.log_softmax(ops.cast(sop_logits, "float32"), axis=-1)
    return -ops.mean(ops.take_along_axis(log_probs, ops.cast(labels, "int32")[:, None], axis=-1))
