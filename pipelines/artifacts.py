"""Trained models as folders under ROOT/models/<model_id>/, read and written through fsspec.

    model.safetensors   weights (hybrid_models.checkpoints.save_checkpoint)
    model.json          {"model", "task", "config_type", "config", "extra", "lineage"}: everything
                        that rebuilds the model and everything inference needs (`extra`: class
                        names, vocabularies, the input it takes, the feature set it was trained on)
    training_log.jsonl  one JSON object per epoch (the report's training curves)
    train_config.json   the resolved training settings, as the command line saw them
    state/              resumable training state (optional)
A folder is complete once model.json exists: it is written last.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
from torch import nn

from hybrid_models.checkpoints import load_checkpoint, save_checkpoint
from schemas import check_id, lineage_record

WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"
TRAINING_LOG_FILE = "training_log.jsonl"
TRAIN_CONFIG_FILE = "train_config.json"


@dataclass(frozen=True)
class LoadedModel:
    model: nn.Module  # in eval mode
    config: Any
    meta: dict[str, Any]

    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def extra(self) -> dict[str, Any]:
        return self.meta["extra"]

    @property
    def model_id(self) -> str:
        return self.meta["model_id"]


def model_uri(root: str, model_id: str) -> str:
    return f"{root.rstrip('/')}/models/{check_id(model_id)}"


def write_model(
    uri: str,
    model: nn.Module,
    config: Any,
    *,
    name: str,
    extra: Mapping[str, Any],
    training_log: Iterable[Mapping[str, Any]] = (),
    train_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a trained model's folder at `uri`; returns its model.json content."""
    weights, meta = save_checkpoint(model, config, extra=extra, name=name)
    model_id = uri.rstrip("/").rsplit("/", 1)[-1]
    meta = {**meta, "model_id": model_id}
    meta["lineage"] = lineage_record(
        "model", {"model": name, "config": meta["config"]}, model_id=model_id
    )
    fs, path = fsspec.core.url_to_fs(uri)
    fs.makedirs(path, exist_ok=True)
    with fs.open(f"{path}/{WEIGHTS_FILE}", "wb") as f:
        f.write(weights)
    with fs.open(f"{path}/{TRAINING_LOG_FILE}", "w") as f:
        for entry in training_log:
            f.write(json.dumps(entry, allow_nan=True) + "\n")
    if train_config is not None:
        with fs.open(f"{path}/{TRAIN_CONFIG_FILE}", "w") as f:
            json.dump(train_config, f, indent=2, sort_keys=True)
    with fs.open(f"{path}/{META_FILE}", "w") as f:  # last: marks the folder complete
        json.dump(meta, f, indent=2, sort_keys=True)
    return meta


def read_model_meta(uri: str) -> dict[str, Any]:
    fs, path = fsspec.core.url_to_fs(uri)
    if not fs.exists(f"{path}/{META_FILE}"):
        raise FileNotFoundError(f"no trained model at {uri} ({META_FILE} is missing)")
    with fs.open(f"{path}/{META_FILE}", "r") as f:
        return json.load(f)


def read_model(uri: str) -> LoadedModel:
    """The model at `uri`, rebuilt from its config and weights (never unpickled), in eval mode."""
    meta = read_model_meta(uri)
    fs, path = fsspec.core.url_to_fs(uri)
    with fs.open(f"{path}/{WEIGHTS_FILE}", "rb") as f:
        weights = f.read()
    model, config = load_checkpoint(weights, meta)
    return LoadedModel(model=model.eval(), config=config, meta=meta)


def read_training_log(uri: str) -> list[dict[str, Any]]:
    fs, path = fsspec.core.url_to_fs(uri)
    target = f"{path}/{TRAINING_LOG_FILE}"
    if not fs.exists(target):
        return []
    with fs.open(target, "r") as f:
        return [json.loads(line) for line in f if line.strip()]
