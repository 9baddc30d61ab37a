"""Checkpoints: exact round trips through bytes and JSON for every action model, optimizer state
for resuming, and refusal of checkpoints that do not describe a model we have.
"""

from __future__ import annotations

import json
import math
import re

import pytest
import safetensors.torch
import torch

from hybrid_models.checkpoints import (
    load_checkpoint,
    optimizer_state_from_bytes,
    optimizer_state_to_bytes,
    save_checkpoint,
    tree_from_bytes,
    tree_to_bytes,
)
from hybrid_models.training.action import predict
from hybrid_models.zoo import build_model
from tests.hybrid_models.test_action_models import (
    ACTION_MODELS,
    build_case,
    case_batch,
    case_config,
)


def _saved(model, extra=None, name=None):
    weights, meta = save_checkpoint(model, model.config, extra=extra or {}, name=name)
    return weights, json.loads(json.dumps(meta))  # as the caller writes and reads it


@pytest.mark.parametrize("name", ACTION_MODELS)
def test_round_trip_is_exact(name):
    model = build_case(name, seed=3)
    batch = case_batch(name)
    with torch.no_grad():
        model.train()(*batch.inputs, batch.mask)  # moves BatchNorm running statistics
    model.eval()
    config = case_config(name)
    weights, meta = save_checkpoint(model, config, extra={"classes": ["a", "b", "c"]}, name=name)
    meta = json.loads(json.dumps(meta))
    loaded, loaded_config = load_checkpoint(weights, meta)
    assert loaded_config == config
    assert meta["model"] == name and meta["extra"] == {"classes": ["a", "b", "c"]}
    assert not loaded.training
    original, restored = model.state_dict(), loaded.state_dict()
    assert list(original) == list(restored)
    for key in original:
        assert torch.equal(original[key], restored[key]), key
    with torch.no_grad():
        assert torch.equal(predict(model, batch).logits, predict(loaded, batch).logits)


def test_the_default_name_is_the_first_entry_of_the_config_type_and_rebuilds_the_same_model():
    model = build_model("gru", feature_dim=8, num_classes=3, hidden_dim=4)
    weights, meta = _saved(model)
    assert meta["model"] == "lstm"  # "lstm" and "gru" share TemporalClassifierConfig
    loaded, config = load_checkpoint(weights, meta)
    assert config.encoder == "gru"
    assert isinstance(loaded.encoder.rnn, torch.nn.GRU)


def test_meta_describes_the_model():
    model = build_model("mean_pool", feature_dim=8, num_classes=3)
    _, meta = _saved(model, extra={"feature_set_id": "fs1"}, name="mean_pool")
    assert meta == {
        "format_version": 1,
        "model": "mean_pool",
        "task": "action",
        "config_type": "TemporalClassifierConfig",
        "config": {
            "feature_dim": 8,
            "num_classes": 3,
            "projection_dim": None,
            "encoder": "none",
            "hidden_dim": 128,
            "bidirectional": False,
            "num_layers": 1,
            "pooling": "mean",
            "attention_dim": 64,
            "dropout": 0.0,
            "multi_label": False,
        },
        "extra": {"feature_set_id": "fs1"},
    }


def test_weights_are_plain_safetensors():
    model = build_model("lstm", feature_dim=8, num_classes=3, hidden_dim=4)
    weights, _ = _saved(model)
    state = safetensors.torch.load(weights)
    assert set(state) == set(model.state_dict())


def _meta_with(meta, **changes):
    return {**meta, **changes}


def test_untrusted_meta_is_checked():
    model = build_model("lstm", feature_dim=8, num_classes=3, hidden_dim=4)
    weights, meta = _saved(model)
    with pytest.raises(ValueError, match=r"^unknown model 'os\.system'; expected one of lstm, "):
        load_checkpoint(weights, _meta_with(meta, model="os.system"))
    with pytest.raises(
        ValueError,
        match=r"^checkpoint config_type 'Video3DConfig' does not match model 'lstm' \(TemporalClassifierConfig\)$",
    ):
        load_checkpoint(weights, _meta_with(meta, config_type="Video3DConfig"))
    with pytest.raises(
        ValueError, match=r"^unknown field\(s\) '__class__' for TemporalClassifierConfig"
    ):
        load_checkpoint(weights, _meta_with(meta, config={**meta["config"], "__class__": "x"}))
    with pytest.raises(ValueError, match=r"^hidden_dim \(-1\) must be > 0$"):
        load_checkpoint(weights, _meta_with(meta, config={**meta["config"], "hidden_dim": -1}))
    with pytest.raises(ValueError, match=r"^checkpoint format_version 2 is not 1$"):
        load_checkpoint(weights, _meta_with(meta, format_version=2))


def test_weights_that_do_not_fit_the_config_are_refused():
    small = build_model("lstm", feature_dim=8, num_classes=3, hidden_dim=4)
    weights, meta = _saved(small)
    wider = {**meta, "config": {**meta["config"], "hidden_dim": 5}}
    with pytest.raises(
        ValueError,
        match=re.escape(
            "checkpoint weight 'encoder.rnn.weight_ih_l0' has shape (16, 8), model expects (20, 8)"
        ),
    ):
        load_checkpoint(weights, wider)
    attention = {**meta, "config": {**meta["config"], "pooling": "attention"}}
    with pytest.raises(
        ValueError, match=r"^checkpoint weights do not fit model 'lstm': missing \['attention"
    ):
        load_checkpoint(weights, attention)


def test_extra_must_be_json():
    model = build_model("lstm", feature_dim=8, num_classes=3, hidden_dim=4)
    with pytest.raises(TypeError, match="is not JSON serializable"):
        save_checkpoint(model, model.config, extra={"when": object()})


def test_optimizer_state_round_trip_resumes_exactly():
    g = torch.Generator().manual_seed(0)
    features, labels = torch.randn(4, 3, 8, generator=g), torch.tensor([0, 1, 2, 0])
    mask = torch.ones(4, 3, dtype=torch.bool)

    def step(model, optimizer):
        loss = torch.nn.functional.cross_entropy(model(features, mask).logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    model = build_model("lstm_attention", feature_dim=8, num_classes=3, hidden_dim=4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    step(model, optimizer)
    step(model, optimizer)
    data = optimizer_state_to_bytes(optimizer.state_dict())
    restored_state = optimizer_state_from_bytes(data)
    assert restored_state["param_groups"][0]["betas"] == (0.9, 0.999)
    assert sorted(restored_state["state"]) == sorted(optimizer.state_dict()["state"])

    twin = build_model("lstm_attention", feature_dim=8, num_classes=3, hidden_dim=4, seed=9)
    twin.load_state_dict(model.state_dict())
    twin_optimizer = torch.optim.AdamW(twin.parameters(), lr=1.0)
    twin_optimizer.load_state_dict(restored_state)
    step(model, optimizer)
    step(twin, twin_optimizer)
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)


def test_state_trees_keep_their_types():
    tree = {
        "ints": {0: torch.arange(3), 7: (1.5, None, "x")},
        "list": [True, math.inf, {"nested": torch.ones(2, 2, dtype=torch.float16)}],
        "scalar": torch.tensor(4.0),
    }
    back = tree_from_bytes(tree_to_bytes(tree))
    assert set(back) == {"ints", "list", "scalar"}
    assert torch.equal(back["ints"][0], torch.arange(3)) and back["ints"][7] == (1.5, None, "x")
    assert back["list"][:2] == [True, math.inf]
    assert back["list"][2]["nested"].dtype == torch.float16
    assert torch.equal(back["scalar"], torch.tensor(4.0))


def test_state_trees_refuse_what_would_need_pickle():
    with pytest.raises(TypeError, match="^cannot store a object without pickle$"):
        tree_to_bytes({"x": object()})
    bad = safetensors.torch.save({}, metadata={"tree": json.dumps({"pickle": "cos\nsystem"})})
    with pytest.raises(ValueError, match="^unknown state tree tag 'pickle'$"):
        tree_from_bytes(bad)
    with pytest.raises(ValueError, match="^not a safetensors blob: header length"):
        tree_from_bytes(b"\xff" * 16)
