"""Parameter counts: the formula against the released numbers and against built models."""

import pytest

from albert_tf.config import PRESETS, AlbertConfig
from albert_tf.models import AlbertBackbone, AlbertPretrainer
from albert_tf.params import count_parameters


def test_base_matches_the_original_counts():
    counts = count_parameters(AlbertConfig.preset("base"))
    assert counts.embeddings == 3_906_048
    assert counts.projection == 99_072
    assert counts.block == 7_087_872
    assert counts.pooler == 590_592
    assert counts.backbone == 11_683_584


def test_bert_shaped_base_matches_bert_base():
    # BERT-base (uncased) with pooler has 109,482,240 parameters.
    assert count_parameters(AlbertConfig.preset("bert-base")).backbone == 109_482_240


def test_grouped_config_counts_four_blocks(grouped_config):
    counts = count_parameters(grouped_config)
    assert counts.num_blocks == 4
    assert AlbertBackbone(grouped_config).count_params() == counts.backbone


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_built_models_match_the_formula(name):
    config = AlbertConfig.preset(name)
    counts = count_parameters(config)
    backbone = AlbertBackbone(config)
    assert backbone.count_params() == counts.backbone
    assert AlbertPretrainer(backbone).count_params() == counts.pretrainer


def test_depth_and_unused_groups_in_the_formula():
    base = AlbertConfig.preset("base")
    assert count_parameters(base.replace(num_hidden_layers=24)).backbone == count_parameters(base).backbone
    odd = AlbertConfig.preset("tiny", num_hidden_layers=22, num_hidden_groups=22)
    assert count_parameters(odd).num_blocks == 21  # group 15 is never routed to, as in the original
    assert AlbertBackbone(odd).count_params() == count_parameters(odd).backbone
