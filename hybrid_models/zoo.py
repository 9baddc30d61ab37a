"""The one model dict: every model vidpipe can train, save and load, by name.

An entry says which task it serves, its config type, how to build it and what its forward
takes; presets are the entry's `defaults`. Checkpoints rebuild models through this dict.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from hybrid_models.captioner import (
    Captioner,
    CaptionerConfig,
    MultiTaskCaptioner,
    MultiTaskCaptionerConfig,
)
from hybrid_models.cnn_rnn import CNNRNNConfig, build_cnn_rnn
from hybrid_models.convlstm import ConvLSTMClassifier, ConvLSTMClassifierConfig
from hybrid_models.fusion import (
    FusedTemporalClassifier,
    FusedTemporalConfig,
    TwoStreamClassifier,
    TwoStreamConfig,
)
from hybrid_models.segments import TemporalSegmentClassifier, TemporalSegmentConfig
from hybrid_models.temporal_classifier import TemporalClassifier, TemporalClassifierConfig
from hybrid_models.video3d import Video3DClassifier, Video3DConfig
from hybrid_models.vqa import VideoQA, VQAConfig

Task = Literal["action", "caption", "vqa"]

# What an action model's forward takes before the (B, T) mask.
FEATURES = "features"  # features (B, T, D)
RGB_FLOW = "rgb+flow"  # rgb (B, T, D_rgb), flow (B, T, D_flow)
MAPS = "maps"  # maps (B, T, C, H, W)
CLIPS = "clips"  # clips (B, 3, T, H, W)
FRAMES = "frames"  # frames (B, T, 3, H, W)
# Captioners take features, mask and caption tokens (B, L); VQA models features, mask and
# question tokens (B, Lq).
FEATURES_TOKENS = "features+tokens"
FEATURES_QUESTION = "features+question"


@dataclass(frozen=True, kw_only=True)
class ModelEntry:
    task: Task
    config_type: type
    build: Callable[[Any], nn.Module]
    inputs: str  # one of the input kinds above (or the caption/VQA models' own)
    defaults: Mapping[str, Any] = field(default_factory=dict)  # the preset's config fields


MODELS: dict[str, ModelEntry] = {
    "lstm": ModelEntry(
        task="action",
        config_type=TemporalClassifierConfig,
        build=TemporalClassifier,
        inputs=FEATURES,
        defaults={"encoder": "lstm", "pooling": "last"},
    ),
    "gru": ModelEntry(
        task="action",
        config_type=TemporalClassifierConfig,
        build=TemporalClassifier,
        inputs=FEATURES,
        defaults={"encoder": "gru", "pooling": "last"},
    ),
    "bilstm": ModelEntry(
        task="action",
        config_type=TemporalClassifierConfig,
        build=TemporalClassifier,
        inputs=FEATURES,
        defaults={"encoder": "lstm", "bidirectional": True, "pooling": "last"},
    ),
    "lstm_attention": ModelEntry(
        task="action",
        config_type=TemporalClassifierConfig,
        build=TemporalClassifier,
        inputs=FEATURES,
        defaults={"encoder": "lstm", "pooling": "attention"},
    ),
    "mean_pool": ModelEntry(
        task="action",
        config_type=TemporalClassifierConfig,
        build=TemporalClassifier,
        inputs=FEATURES,
        defaults={"encoder": "none", "pooling": "mean"},
    ),
    "segments": ModelEntry(
        task="action",
        config_type=TemporalSegmentConfig,
        build=TemporalSegmentClassifier,
        inputs=FEATURES,
    ),
    "two_stream": ModelEntry(
        task="action", config_type=TwoStreamConfig, build=TwoStreamClassifier, inputs=RGB_FLOW
    ),
    "two_stream_attention_fusion": ModelEntry(
        task="action",
        config_type=FusedTemporalConfig,
        build=FusedTemporalClassifier,
        inputs=RGB_FLOW,
    ),
    "convlstm": ModelEntry(
        task="action",
        config_type=ConvLSTMClassifierConfig,
        build=ConvLSTMClassifier,
        inputs=MAPS,
    ),
    "r3d": ModelEntry(
        task="action",
        config_type=Video3DConfig,
        build=Video3DClassifier,
        inputs=CLIPS,
        defaults={"arch": "r3d_18"},
    ),
    "cnn_rnn": ModelEntry(
        task="action", config_type=CNNRNNConfig, build=build_cnn_rnn, inputs=FRAMES
    ),
    "caption_attention": ModelEntry(
        task="caption",
        config_type=CaptionerConfig,
        build=Captioner,
        inputs=FEATURES_TOKENS,
        defaults={"encoder": "lstm", "attention": "soft"},
    ),
    "caption_adaptive": ModelEntry(
        task="caption",
        config_type=CaptionerConfig,
        build=Captioner,
        inputs=FEATURES_TOKENS,
        defaults={"encoder": "lstm", "attention": "adaptive"},
    ),
    "caption_hierarchical": ModelEntry(
        task="caption",
        config_type=CaptionerConfig,
        build=Captioner,
        inputs=FEATURES_TOKENS,
        defaults={"encoder": "hierarchical", "attention": "soft"},
    ),
    "caption_no_attention": ModelEntry(
        task="caption",
        config_type=CaptionerConfig,
        build=Captioner,
        inputs=FEATURES_TOKENS,
        defaults={"encoder": "lstm", "attention": "none"},
    ),
    "caption_multitask": ModelEntry(
        task="caption",
        config_type=MultiTaskCaptionerConfig,
        build=MultiTaskCaptioner,
        inputs=FEATURES_TOKENS,
        defaults={"encoder": "lstm", "attention": "soft"},
    ),
    "vqa_attention": ModelEntry(
        task="vqa",
        config_type=VQAConfig,
        build=VideoQA,
        inputs=FEATURES_QUESTION,
        defaults={"video_encoder": "lstm", "attention": "question_guided", "fusion": "product"},
    ),
    "vqa_no_attention": ModelEntry(
        task="vqa",
        config_type=VQAConfig,
        build=VideoQA,
        inputs=FEATURES_QUESTION,
        defaults={"video_encoder": "none", "attention": "none", "fusion": "concat"},
    ),
    "vqa_coattention": ModelEntry(
        task="vqa",
        config_type=VQAConfig,
        build=VideoQA,
        inputs=FEATURES_QUESTION,
        defaults={"video_encoder": "lstm", "attention": "co_attention", "fusion": "product"},
    ),
    "vqa_mfb": ModelEntry(
        task="vqa",
        config_type=VQAConfig,
        build=VideoQA,
        inputs=FEATURES_QUESTION,
        defaults={
            "video_encoder": "lstm",
            "attention": "question_guided",
            "fusion": "factorized_bilinear",
        },
    ),
}


def model_entry(name: str) -> ModelEntry:
    """The entry called `name`; ValueError naming the known ones otherwise."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    return MODELS[name]


def config_from_dict(config_type: type, fields: Mapping[str, Any]) -> Any:
    """Build `config_type` from plain values (as JSON gives them back): nested config dicts
    become configs and lists become tuples where the field is typed as a tuple.
    """
    if not (isinstance(config_type, type) and dataclasses.is_dataclass(config_type)):
        raise TypeError(f"{config_type!r} is not a dataclass type")
    hints = typing.get_type_hints(config_type)
    known = {f.name for f in dataclasses.fields(config_type) if f.init}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(
            f"unknown field(s) {', '.join(map(repr, unknown))} for {config_type.__name__}; "
            f"expected some of {', '.join(sorted(known))}"
        )
    return config_type(**{name: _coerce(hints[name], value) for name, value in fields.items()})


def _coerce(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            if option is not type(None) and value is not None:
                return _coerce(option, value)
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return config_from_dict(hint, value)
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    return value


def build_model(name: str, *, seed: int = 0, **fields: Any) -> nn.Module:
    """Model `name` with its preset defaults overridden by `fields`, initialised from `seed`.

    Module constructors draw from torch's global RNG; they run inside `fork_rng` seeded with
    `seed`, so the same seed gives the same weights and the caller's RNG state is left as it was.
    """
    entry = model_entry(name)
    config = config_from_dict(entry.config_type, {**entry.defaults, **fields})
    return build_from_config(entry, config, seed=seed)


def build_from_config(entry: ModelEntry, config: Any, *, seed: int = 0) -> nn.Module:
    """`entry.build(config)` with seeded initialisation that leaves the global RNG untouched."""
    if not isinstance(config, entry.config_type):
        raise TypeError(
            f"config is a {type(config).__name__}, expected {entry.config_type.__name__}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return entry.build(config)
