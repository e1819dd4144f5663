import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from albert_tf.config import AlbertConfig  # noqa: E402


@pytest.fixture(autouse=True)
def _float32_policy_and_seed():
    """Every test starts from the float32 policy and a fixed seed."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def grouped_config():
    """Tiny config with 2 groups, 2 inner blocks and 6 layers (4 distinct blocks)."""
    return AlbertConfig(
        vocab_size=97,
        embedding_size=16,
        hidden_size=24,
        num_hidden_layers=6,
        num_hidden_groups=2,
        num_attention_heads=3,
        intermediate_size=40,
        inner_group_num=2,
        max_position_embeddings=32,
        type_vocab_size=2,
    )


def random_inputs(rng, config, batch, seq, pad_to=None):
    """Random backbone inputs; rows have random real lengths in [1, seq], padded to `pad_to`."""
    pad_to = pad_to or seq
    lengths = rng.integers(1, seq + 1, size=batch)
    lengths[0] = seq
    ids = rng.integers(5, config.vocab_size, size=(batch, pad_to)).astype("int32")
    types = rng.integers(0, config.type_vocab_size, size=(batch, pad_to)).astype("int32")
    mask = (np.arange(pad_to)[None, :] < lengths[:, None]).astype("int32")
    ids = np.where(mask == 1, ids, 0).astype("int32")
    types = np.where(mask == 1, types, 0).astype("int32")
    return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}
