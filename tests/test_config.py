import json

import pytest

from albert_tf.config import PRESETS, AlbertConfig, AlbertConfigError, group_of_layer

# The official albert_base v2 albert_config.json, as released (keys in file order).
OFFICIAL_BASE_V2 = {
    "attention_probs_dropout_prob": 0,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0,
    "embedding_size": 128,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "num_hidden_groups": 1,
    "net_structure_type": 0,
    "gap_size": 0,
    "num_memory_blocks": 0,
    "inner_group_num": 1,
    "down_scale_factor": 1,
    "type_vocab_size": 2,
    "vocab_size": 30000,
}

# brightmart albert_tiny_zh config: no group keys, BERT-style pooler metadata.
BRIGHTMART_TINY = {
    "attention_probs_dropout_prob": 0.0,
    "directionality": "bidi",
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "hidden_size": 312,
    "embedding_size": 128,
    "initializer_range": 0.02,
    "intermediate_size": 1248,
    "max_position_embeddings": 512,
    "num_attention_heads": 12,
    "num_hidden_layers": 4,
    "pooler_fc_size": 768,
    "pooler_num_attention_heads": 12,
    "pooler_num_fc_layers": 3,
    "pooler_size_per_head": 128,
    "pooler_type": "first_token_transform",
    "type_vocab_size": 2,
    "vocab_size": 21128,
    "ln_type": "postln",
}


def write_json(tmp_path, data, name="albert_config.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_reads_official_file_and_matches_base_preset(tmp_path):
    config = AlbertConfig.from_json_file(write_json(tmp_path, OFFICIAL_BASE_V2))
    assert config == AlbertConfig.preset("base")
    assert config.extra == {"net_structure_type": 0, "gap_size": 0, "num_memory_blocks": 0}
    assert config.attention_head_size == 64


def test_json_round_trip_keeps_extra_keys(tmp_path):
    config = AlbertConfig.from_json_file(write_json(tmp_path, dict(OFFICIAL_BASE_V2, layers_to_keep=[])))
    out = tmp_path / "out" / "albert_config.json"
    out.parent.mkdir()
    config.to_json_file(str(out))
    assert json.loads(out.read_text()) == dict(OFFICIAL_BASE_V2, layers_to_keep=[])
    assert AlbertConfig.from_json_file(str(out)).to_dict() == config.to_dict()
    assert [p.name for p in out.parent.iterdir()] == ["albert_config.json"]  # no temp file left


def test_brightmart_config_uses_original_defaults_for_groups(tmp_path):
    config = AlbertConfig.from_json_file(write_json(tmp_path, BRIGHTMART_TINY))
    assert (config.num_hidden_groups, config.inner_group_num, config.down_scale_factor) == (1, 1, 1)
    assert config.vocab_size == 21128


def test_missing_fields_take_the_original_constructor_defaults():
    config = AlbertConfig.from_dict({"vocab_size": 10})
    assert (config.hidden_size, config.num_attention_heads, config.intermediate_size) == (4096, 64, 16384)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"hidden_size": 770}, "hidden_size"),
        ({"num_hidden_groups": 13}, "num_hidden_groups"),
        ({"hidden_act": "swish"}, "hidden_act"),
        ({"num_hidden_layers": 0}, "num_hidden_layers"),
        ({"vocab_size": "30000"}, "vocab_size"),
        ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob"),
        ({"initializer_range": -1}, "initializer_range"),
        ({"hiden_size": 768}, "hiden_size"),
        ({"ln_type": "preln"}, "ln_type"),
    ],
)
def test_invalid_configs_name_the_field_and_file(tmp_path, change, field):
    path = write_json(tmp_path, dict(OFFICIAL_BASE_V2, **change))
    with pytest.raises(AlbertConfigError) as error:
        AlbertConfig.from_json_file(path)
    assert f"'{field}'" in str(error.value)
    assert path in str(error.value)


def test_missing_vocab_size_and_bad_json_are_reported(tmp_path):
    data = dict(OFFICIAL_BASE_V2)
    del data["vocab_size"]
    with pytest.raises(AlbertConfigError, match="'vocab_size'.*missing"):
        AlbertConfig.from_json_file(write_json(tmp_path, data))
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "vocab_size": 3,\n  oops\n}')
    with pytest.raises(AlbertConfigError, match="bad.json: invalid JSON at line 3"):
        AlbertConfig.from_json_file(str(bad))
    with pytest.raises(AlbertConfigError, match="cannot read"):
        AlbertConfig.from_json_file(str(tmp_path / "absent.json"))


def test_direct_construction_and_replace_validate():
    with pytest.raises(AlbertConfigError, match="'hidden_size'"):
        AlbertConfig(vocab_size=10, hidden_size=10, num_attention_heads=3)
    with pytest.raises(AlbertConfigError, match="'num_hidden_groups'"):
        AlbertConfig.preset("base").replace(num_hidden_groups=24)


def test_v2_presets_hold_the_official_values():
    shapes = {name: (p["hidden_size"], p["num_hidden_layers"], p["num_attention_heads"], p["intermediate_size"]) for name, p in PRESETS.items()}
    assert shapes["base"] == (768, 12, 12, 3072)
    assert shapes["large"] == (1024, 24, 16, 4096)
    assert shapes["xlarge"] == (2048, 24, 16, 8192)
    assert shapes["xxlarge"] == (4096, 12, 64, 16384)
    for name in ("base", "large", "xlarge", "xxlarge"):
        config = AlbertConfig.preset(name)
        assert (config.vocab_size, config.embedding_size, config.hidden_dropout_prob) == (30000, 128, 0.0)
    with pytest.raises(AlbertConfigError, match="unknown preset"):
        AlbertConfig.preset("huge")


def test_group_routing_follows_the_original_float_expression():
    assert [group_of_layer(l, 6, 2) for l in range(6)] == [0, 0, 0, 1, 1, 1]
    assert [group_of_layer(l, 12, 3) for l in range(12)] == [0] * 4 + [1] * 4 + [2] * 4
    # int(15 / 22 * 22) == 14 in floating point: the original never creates group 15.
    assert group_of_layer(15, 22, 22) == 14
    config = AlbertConfig(vocab_size=10, hidden_size=8, num_attention_heads=2, intermediate_size=8,
                          num_hidden_layers=22, num_hidden_groups=22)
    assert 15 not in config.used_groups and len(config.used_groups) == 21
