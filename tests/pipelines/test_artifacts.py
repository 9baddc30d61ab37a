import pytest
import torch

from hybrid_models.zoo import build_model, model_entry
from pipelines.artifacts import (
    model_uri,
    read_model,
    read_model_meta,
    read_training_log,
    write_model,
)


def test_model_folder_round_trips_exactly():
    entry = model_entry("lstm")
    model = build_model("lstm", feature_dim=6, num_classes=3, seed=1)
    config = model.config
    uri = model_uri("memory://artifacts", "action-lstm")
    log = [{"epoch": 0, "train_loss": 1.5, "val_accuracy": 0.5}, {"epoch": 1, "train_loss": 0.9}]
    write_model(
        uri, model, config, name="lstm", extra={"class_names": ["a", "b", "c"]}, training_log=log
    )
    loaded = read_model(uri)
    assert loaded.task == entry.task == "action" and loaded.model_id == "action-lstm"
    assert loaded.extra["class_names"] == ["a", "b", "c"]
    assert read_model_meta(uri)["lineage"]["kind"] == "model"
    assert read_training_log(uri) == log
    features, mask = torch.randn(2, 4, 6), torch.ones(2, 4, dtype=torch.bool)
    model.eval()
    assert torch.equal(model(features, mask).logits, loaded.model(features, mask).logits)


def test_missing_model_and_unsafe_ids():
    with pytest.raises(FileNotFoundError, match="no trained model at memory://nowhere/models/x"):
        read_model("memory://nowhere/models/x")
    with pytest.raises(ValueError, match="contains a path separator"):
        model_uri("/root", "../escape")
