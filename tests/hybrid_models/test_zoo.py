"""The model dict: presets, seeded builds, and configs rebuilt from JSON."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
import torch

from hybrid_models.cnn_rnn import CNNRNNConfig
from hybrid_models.temporal_classifier import TemporalClassifierConfig
from hybrid_models.zoo import (
    CLIPS,
    FEATURES,
    FRAMES,
    MAPS,
    MODELS,
    RGB_FLOW,
    build_from_config,
    build_model,
    config_from_dict,
)
from tests.hybrid_models.test_action_models import ACTION_MODELS, CASES, case_config


def test_entries_name_a_task_and_what_their_forward_takes():
    for name, entry in MODELS.items():
        assert entry.task in ("action", "caption", "vqa"), name
    inputs = {name: MODELS[name].inputs for name in ACTION_MODELS}
    assert inputs == {
        "bilstm": FEATURES,
        "cnn_rnn": FRAMES,
        "convlstm": MAPS,
        "gru": FEATURES,
        "lstm": FEATURES,
        "lstm_attention": FEATURES,
        "mean_pool": FEATURES,
        "r3d": CLIPS,
        "segments": FEATURES,
        "two_stream": RGB_FLOW,
        "two_stream_attention_fusion": RGB_FLOW,
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("lstm", {"encoder": "lstm", "bidirectional": False, "pooling": "last"}),
        ("gru", {"encoder": "gru", "bidirectional": False, "pooling": "last"}),
        ("bilstm", {"encoder": "lstm", "bidirectional": True, "pooling": "last"}),
        ("lstm_attention", {"encoder": "lstm", "bidirectional": False, "pooling": "attention"}),
        ("mean_pool", {"encoder": "none", "bidirectional": False, "pooling": "mean"}),
    ],
)
def test_presets_set_the_temporal_classifier_fields(name, expected):
    config = build_model(name, feature_dim=8, num_classes=3).config
    assert {key: getattr(config, key) for key in expected} == expected


def test_fields_override_a_preset():
    assert (
        build_model("lstm", feature_dim=8, num_classes=3, pooling="mean").config.pooling == "mean"
    )


def test_same_seed_same_weights_and_the_global_rng_is_left_alone():
    before = torch.get_rng_state()
    first = build_model("two_stream", seed=7, **CASES["two_stream"].fields).state_dict()
    second = build_model("two_stream", seed=7, **CASES["two_stream"].fields).state_dict()
    other = build_model("two_stream", seed=8, **CASES["two_stream"].fields).state_dict()
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert not all(torch.equal(first[key], other[key]) for key in first)


@pytest.mark.parametrize("name", ACTION_MODELS)
def test_every_config_survives_json(name):
    config = case_config(name)
    text = json.dumps(dataclasses.asdict(config))
    assert config_from_dict(type(config), json.loads(text)) == config


def test_nested_configs_and_tuples_come_back_typed():
    data = {"conv_channels": [4, 8], "temporal": {"feature_dim": 8, "num_classes": 2}}
    config = config_from_dict(CNNRNNConfig, data)
    assert config.conv_channels == (4, 8)
    assert config.temporal == TemporalClassifierConfig(feature_dim=8, num_classes=2)


def test_unknown_model_and_unknown_field_are_named():
    with pytest.raises(
        ValueError, match=r"^unknown model 'transformer'; expected one of lstm, gru, "
    ):
        build_model("transformer")
    expected = (
        "unknown field(s) 'hidden' for TemporalClassifierConfig; expected some of attention_dim, "
        "bidirectional, dropout, encoder, feature_dim, hidden_dim, multi_label, num_classes, "
        "num_layers, pooling, projection_dim"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        build_model("lstm", feature_dim=8, num_classes=3, hidden=4)


def test_config_validation_runs_on_build():
    with pytest.raises(ValueError, match=r"^feature_dim \(0\) must be > 0$"):
        build_model("lstm", feature_dim=0, num_classes=3)


def test_build_from_config_checks_the_config_type():
    with pytest.raises(
        TypeError, match="^config is a TemporalClassifierConfig, expected CNNRNNConfig$"
    ):
        build_from_config(MODELS["cnn_rnn"], TemporalClassifierConfig(feature_dim=8, num_classes=3))
