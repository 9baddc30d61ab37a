"""Checkpoints as bytes: safetensors for tensors, JSON for everything else, never pickle.

No file I/O here: callers write the bytes through fsspec. Loading rebuilds the model through
`zoo.MODELS`, so a checkpoint can only ever name code that vidpipe already has.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Mapping
from typing import Any

import safetensors.torch
import torch
from torch import nn

FORMAT_VERSION = 1
# _zoo_note: the model dict imports every model, torchvision included (seconds to import);
# the training loop needs only the state-tree format below, so zoo is imported where used.
_TREE_KEY = "tree"  # safetensors metadata key holding the JSON skeleton of a state tree


def save_checkpoint(
    model: nn.Module,
    config: Any,
    *,
    extra: Mapping[str, Any],
    name: str | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """Model weights as safetensors bytes, and the JSON-ready description that rebuilds it.

    `name` is the model-dict entry; by default the first entry with `config`'s type (entries
    sharing a config type build the same model from the same config). `extra` (class names,
    feature-set id, metrics, ...) must be JSON-serialisable and is returned as is on load.
    """
    from hybrid_models import zoo  # here, not on top: see _zoo_note

    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"config must be a dataclass instance, got {type(config).__name__}")
    if name is None:
        matching = [n for n, e in zoo.MODELS.items() if e.config_type is type(config)]
        if not matching:
            raise ValueError(f"no model in zoo.MODELS takes a {type(config).__name__}")
        name = matching[0]
    entry = zoo.model_entry(name)
    if type(config) is not entry.config_type:
        raise TypeError(
            f"model {name!r} takes a {entry.config_type.__name__}, got {type(config).__name__}"
        )
    meta = {
        "format_version": FORMAT_VERSION,
        "model": name,
        "task": entry.task,
        "config_type": entry.config_type.__name__,
        "config": dataclasses.asdict(config),
        "extra": dict(extra),
    }
    json.dumps(meta, allow_nan=False)  # fail now, not when the caller writes it
    return safetensors.torch.save(_unshared(model.state_dict())), meta


def load_checkpoint(weights: bytes, meta: Mapping[str, Any]) -> tuple[nn.Module, Any]:
    """(model, config) from `save_checkpoint`'s output; the model is in eval mode.

    `meta` is untrusted: the model must be in `zoo.MODELS`, the config must validate, and the
    weights must match the rebuilt model's state dict key for key and shape for shape.
    """
    from hybrid_models import zoo  # here, not on top: see _zoo_note

    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"checkpoint format_version {meta.get('format_version')!r} is not {FORMAT_VERSION}"
        )
    entry = zoo.model_entry(str(meta.get("model")))
    if meta.get("config_type") != entry.config_type.__name__:
        raise ValueError(
            f"checkpoint config_type {meta.get('config_type')!r} does not match model "
            f"{meta['model']!r} ({entry.config_type.__name__})"
        )
    if not isinstance(meta.get("config"), Mapping):
        raise ValueError("checkpoint config must be a JSON object")
    config = zoo.config_from_dict(entry.config_type, meta["config"])
    model = zoo.build_from_config(entry, config)
    state = safetensors.torch.load(weights)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"checkpoint weights do not fit model {meta['model']!r}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for key, target in expected.items():
        if state[key].shape != target.shape:
            raise ValueError(
                f"checkpoint weight {key!r} has shape {tuple(state[key].shape)}, "
                f"model expects {tuple(target.shape)}"
            )
    model.load_state_dict(state, strict=True)
    return model.eval(), config


def optimizer_state_to_bytes(state: Mapping[str, Any]) -> bytes:
    """An optimizer's `state_dict()` as bytes (see `tree_to_bytes`)."""
    return tree_to_bytes(state)


def optimizer_state_from_bytes(data: bytes) -> dict[str, Any]:
    """The inverse of `optimizer_state_to_bytes`, ready for `optimizer.load_state_dict`."""
    tree = tree_from_bytes(data)
    if not isinstance(tree, dict):
        raise ValueError(f"optimizer state must be a dict, got {type(tree).__name__}")
    return tree


def tree_to_bytes(tree: Any) -> bytes:
    """A nest of dicts (str or int keys), lists, tuples, tensors and JSON scalars as one
    safetensors blob: the tensors as tensors, the rest as JSON in the blob's metadata.
    """
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(tree, tensors)
    text = json.dumps(skeleton, allow_nan=True, separators=(",", ":"))
    return safetensors.torch.save(_unshared(tensors), metadata={_TREE_KEY: text})


def tree_from_bytes(data: bytes) -> Any:
    """The inverse of `tree_to_bytes` (tuples and int keys come back as they went in)."""
    skeleton = json.loads(_safetensors_metadata(data).get(_TREE_KEY, "null"))
    return _decode(skeleton, safetensors.torch.load(data))


def _unshared(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors that safetensors accepts: contiguous, on CPU, no two sharing memory."""
    seen: set[int] = set()
    result = {}
    for key, tensor in state.items():
        tensor = tensor.detach().cpu().contiguous()
        storage = tensor.untyped_storage().data_ptr()
        if storage in seen and tensor.numel() > 0:
            tensor = tensor.clone()  # tied weights: safetensors refuses shared memory
        seen.add(storage)
        result[key] = tensor
    return result


def _safetensors_metadata(data: bytes) -> dict[str, str]:
    # Format: 8-byte little-endian header length, then a JSON header whose "__metadata__"
    # holds the string-to-string metadata. safetensors.torch.load does not return it.
    if len(data) < 8:
        raise ValueError("not a safetensors blob: shorter than its 8-byte header length")
    (length,) = struct.unpack("<Q", data[:8])
    if length > len(data) - 8:
        raise ValueError(f"not a safetensors blob: header length {length} exceeds the data")
    header = json.loads(data[8 : 8 + length])
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict):
        raise ValueError("safetensors metadata must be a JSON object")
    return metadata


# JSON skeleton: scalars as themselves; containers and tensors as one-key tagged objects.
def _encode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = value
        return {"tensor": key}
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise TypeError(f"dict keys must be str or int, got {key!r}")
        return {"dict": [[key, _encode(item, tensors)] for key, item in value.items()]}
    if isinstance(value, tuple):
        return {"tuple": [_encode(item, tensors) for item in value]}
    if isinstance(value, list):
        return {"list": [_encode(item, tensors) for item in value]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} without pickle")


def _decode(value: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        raise ValueError(f"malformed state tree node with keys {sorted(value)}")
    ((tag, body),) = value.items()
    if tag == "tensor":
        if body not in tensors:
            raise ValueError(f"state tree names tensor {body!r}, which the blob lacks")
        return tensors[body]
    if tag == "dict":
        return {key: _decode(item, tensors) for key, item in body}
    if tag == "tuple":
        return tuple(_decode(item, tensors) for item in body)
    if tag == "list":
        return [_decode(item, tensors) for item in body]
    raise ValueError(f"unknown state tree tag {tag!r}")
