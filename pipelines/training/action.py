"""`vidpipe train --task action`: a zoo model trained on a feature set (or on frames decoded again),
early-stopped on validation, scored on test, written as a model folder that `vidpipe infer` loads.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from hybrid_models import zoo
from hybrid_models.cnn_rnn import CNNRNNClassifier
from hybrid_models.fusion import FusedTemporalConfig, TwoStreamConfig
from hybrid_models.segments import TemporalSegmentConfig
from hybrid_models.small_cnn import build_small_cnn
from hybrid_models.temporal_classifier import TemporalClassifierConfig, probabilities
from hybrid_models.training.action import ActionBatch, action_loss_fn, action_val_fn, collate_videos
from hybrid_models.training.loop import TrainConfig, TrainResult
from hybrid_models.video3d import count_parameters
from pipelines.datasets.scene import PAIRED_ACTION
from pipelines.metrics.base import evaluate
from pipelines.metrics.classification import (
    LabelledScores,
    MultiLabelClassification,
    MultiLabelScores,
    SingleLabelClassification,
)
from pipelines.training import multistage as ms
from pipelines.training.common import (
    EpochHook,
    EpochRecorder,
    ModelFolder,
    Standardization,
    Stopwatch,
    check_device,
    check_out,
    finish_run,
    fit_stage,
    fold_into_linear,
    generator,
    jsonable,
    start_run,
)
from pipelines.training.data import TrainingVideo, load_training_data
from schemas import SPLITS, read_manifest
from schemas import columns as c
from workers import store

logger = logging.getLogger(__name__)

FEATURE_KINDS = (zoo.FEATURES, zoo.RGB_FLOW, zoo.MAPS)
PIXEL_KINDS = (zoo.CLIPS, zoo.FRAMES)
# Zoo entries that are one TemporalClassifier over features: what a pretrained CNN can feed.
TEMPORAL_MODELS = ("lstm", "gru", "bilstm", "lstm_attention", "mean_pool")
STREAMS = ("rgb", "flow")
FUSION_DIM = 128  # two_stream_attention_fusion: both streams are projected to this width
EVAL_BATCH_SIZE = 64
ACTION_MODELS = tuple(name for name, entry in zoo.MODELS.items() if entry.task == "action")


@dataclass(frozen=True, kw_only=True)
class ActionTrainConfig:
    """What `vidpipe train --task action` was asked to do; written as train_config.json."""

    model: str
    manifest: str
    out: str
    features: str | None = None  # ROOT/features/<id>; pixel models may give sampling+input_size
    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    seed: int = 0
    patience: int | None = 10  # epochs without a better validation loss before stopping
    device: str = "cpu"
    amp: bool = False  # mixed precision (autocast + GradScaler); CUDA only
    resume: bool = False
    progress: bool = True
    stream: str = "rgb"  # the stream a single-stream feature model reads
    spatial: bool = False  # feature models read flattened spatial maps instead of pooled vectors
    multi_label: bool = False  # the manifest's `labels` with sigmoid/BCE instead of `label`
    model_config: Mapping[str, Any] = field(default_factory=dict)  # zoo config overrides
    temporal_jitter: float | None = None  # random crops keep >= this fraction of frames; None: off
    # Streams whose features are standardised (train-split mean/std) while training; the
    # statistics are folded into the model's first affine layer, so the saved model takes raw
    # features. Flow features vary ~10x less than RGB ones and are unlearnable without it.
    standardize: tuple[str, ...] = ()
    # Pixel models (r3d, cnn_rnn, multistage): frames decoded again as `features` was made, or:
    sampling: str | None = None
    input_size: int | None = None
    multistage: bool = False  # pretrain small_cnn on frames, frozen stage, fine-tune end to end
    pretrain: ms.PretrainConfig = field(default_factory=ms.PretrainConfig)
    finetune_epochs: int = 3
    finetune_learning_rate: float = 3e-4

    def __post_init__(self) -> None:
        if self.model not in ACTION_MODELS:
            raise ValueError(
                f"model {self.model!r} is not an action model; expected one of "
                f"{', '.join(ACTION_MODELS)}"
            )
        entry = zoo.MODELS[self.model]
        for name in ("epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} ({getattr(self, name)}) must be > 0")
        for name in ("learning_rate", "finetune_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} ({getattr(self, name)}) must be > 0")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay ({self.weight_decay}) must be >= 0")
        if self.patience is not None and self.patience <= 0:
            raise ValueError(f"patience ({self.patience}) must be > 0 or None")
        if self.finetune_epochs < 0:
            raise ValueError(f"finetune_epochs ({self.finetune_epochs}) must be >= 0")
        if self.stream not in STREAMS:
            raise ValueError(f"stream {self.stream!r} must be one of {', '.join(STREAMS)}")
        unknown = [name for name in self.standardize if name not in STREAMS]
        if unknown or len(set(self.standardize)) != len(self.standardize):
            raise ValueError(
                f"standardize {','.join(self.standardize)!r} must name distinct streams of "
                f"{', '.join(STREAMS)}"
            )
        if self.standardize and entry.inputs not in (zoo.FEATURES, zoo.RGB_FLOW):
            raise ValueError(f"standardize applies to feature-vector models, not {self.model!r}")
        if self.temporal_jitter is not None and not 0 < self.temporal_jitter <= 1:
            raise ValueError(f"temporal_jitter ({self.temporal_jitter}) must be in (0, 1]")
        if self.multistage and self.model not in TEMPORAL_MODELS:
            raise ValueError(
                f"multistage trains a small_cnn under a temporal model ({', '.join(TEMPORAL_MODELS)}"
                f"); model {self.model!r} is not one (cnn_rnn is multi-stage by itself)"
            )
        if self.uses_pixels:
            if self.multi_label:
                raise ValueError("multi_label is for feature models; pixel models are single-label")
            if self.features is None and (self.sampling is None or self.input_size is None):
                raise ValueError(
                    f"model {self.model!r} reads frames: give features (to decode the frames "
                    "that feature set was made from) or both sampling and input_size"
                )
            if self.features is not None and (self.sampling, self.input_size) != (None, None):
                raise ValueError("give either features or sampling and input_size, not both")
            if self.spatial or self.stream != "rgb":
                raise ValueError(
                    f"model {self.model!r} reads frames: spatial and stream do not apply"
                )
        else:
            if self.features is None:
                raise ValueError(f"model {self.model!r} reads a feature set: features is required")
            if (self.sampling, self.input_size) != (None, None):
                raise ValueError("sampling and input_size are for models that read frames")
            if entry.inputs != zoo.FEATURES and (self.spatial or self.stream != "rgb"):
                raise ValueError(
                    f"spatial and stream apply to single-stream feature models, not {self.model!r}"
                )
        if self.amp and not self.device.startswith("cuda"):
            raise ValueError(f"amp needs a CUDA device, got device {self.device!r}")

    @property
    def uses_pixels(self) -> bool:
        return self.multistage or zoo.MODELS[self.model].inputs in PIXEL_KINDS


@dataclass(frozen=True)
class Example:
    """One video as the model takes it: each input time-first, (T, ...), uint8 for frames."""

    video_id: str
    target: torch.Tensor  # () int64 class index, or (C,) float multi-hot
    inputs: tuple[torch.Tensor, ...]


@dataclass(frozen=True, eq=False)
class ActionPlan:
    """A checked run: the data by split, the model to build, and what its folder will record."""

    config: ActionTrainConfig
    folder: ModelFolder
    class_names: tuple[str, ...]
    examples: Mapping[str, list[Example]]  # split -> examples
    kind: str  # the input kind of the examples (FEATURES for a multistage run's temporal model)
    model_fields: Mapping[str, Any]  # the zoo config fields of the model to train
    frame_spec: ms.FrameSpec | None
    feature_set: dict | None  # the feature set's record, when one was read
    num_missing: int  # manifest videos left out: no features or not decodable
    every_frame: Mapping[str, torch.Tensor] = field(default_factory=dict)  # pretraining frames
    # video_id -> manifest row (multistage): attribute targets of the pretraining heads
    manifest_rows: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    standardization: Mapping[int, Standardization] = field(default_factory=dict)  # input index


@dataclass(frozen=True, eq=False)
class ActionSummary:
    model_uri: str
    meta: dict[str, Any]
    test_metrics: dict[str, Any]
    num_parameters: int
    train_seconds: float
    epochs_run: int

    @property
    def top_1(self) -> float | None:
        return self.test_metrics.get("top_1")


# ------------------------------------------------------------------------------- planning


def plan(config: ActionTrainConfig) -> ActionPlan:
    """Read and check everything; raises ValueError or FileNotFoundError and writes nothing."""
    folder = ModelFolder(config.out.rstrip("/"))
    check_device(config.device)
    check_out(folder, _train_config_json(config), resume=config.resume)
    if config.uses_pixels:
        return _plan_pixels(config, folder)
    return _plan_features(config, folder)


def _plan_features(config: ActionTrainConfig, folder: ModelFolder) -> ActionPlan:
    entry = zoo.MODELS[config.model]
    assert config.features is not None
    features_uri = config.features.rstrip("/")
    record = store.read_feature_set_record(features_uri)
    streams = record["spec"]["streams"]
    if entry.inputs == zoo.RGB_FLOW and "flow" not in streams:
        raise ValueError(
            f"model {config.model!r} reads rgb and flow, but feature set "
            f"{record['feature_set_id']} has only {', '.join(streams)} (extract with "
            "--streams rgb,flow)"
        )
    if config.stream not in streams:
        raise ValueError(
            f"feature set {record['feature_set_id']} has no {config.stream} stream "
            f"(it has {', '.join(streams)})"
        )
    spatial = config.spatial or entry.inputs == zoo.MAPS
    data = load_training_data(features_uri, config.manifest, spatial=spatial)
    videos = _labelled(data.videos, config.multi_label)
    class_names = _class_names(videos, config.multi_label)
    examples = {
        split: [
            Example(v.video_id, _target(v, class_names, config.multi_label), _inputs(v, config))
            for v in videos
            if v.split == split
        ]
        for split in SPLITS
    }
    _check_splits(examples)
    read = ["rgb", "flow"] if entry.inputs == zoo.RGB_FLOW else [config.stream]
    missing = [name for name in config.standardize if name not in read]
    if missing:
        raise ValueError(
            f"standardize names {', '.join(missing)}, which model {config.model!r} does not read "
            f"(it reads {', '.join(read)})"
        )
    standardization = {
        read.index(name): Standardization.of(
            torch.cat([e.inputs[read.index(name)] for e in examples["train"]])
        )
        for name in config.standardize
    }
    first = examples["train"][0].inputs
    fields = _model_fields(config.model, first, len(class_names), config.multi_label)
    fields = _merged(fields, config.model_config)
    model_config = zoo.config_from_dict(entry.config_type, {**entry.defaults, **fields})
    for index in standardization:
        _first_affine(model_config, index)  # ValueError now when it cannot be folded
    return ActionPlan(
        config=config,
        folder=folder,
        class_names=class_names,
        examples=examples,
        kind=entry.inputs,
        model_fields=fields,
        frame_spec=None,
        feature_set=record,
        num_missing=data.num_missing + len(data.videos) - len(videos),
        standardization=standardization,
    )


def _plan_pixels(config: ActionTrainConfig, folder: ModelFolder) -> ActionPlan:
    record = None
    if config.features is not None:
        record = store.read_feature_set_record(config.features.rstrip("/"))
        frame_spec = ms.FrameSpec.of_feature_set(record)
    else:
        assert config.sampling is not None and config.input_size is not None
        frame_spec = ms.FrameSpec(
            sampling=config.sampling, input_size=config.input_size, resize_size=config.input_size
        )
    rows = [
        row
        for row in read_manifest(config.manifest).to_pylist()
        if row[c.LABEL] is not None and row[c.SPLIT] in SPLITS
    ]
    if record is not None:
        # The same videos as the feature models: those the feature set holds.
        done, _ = store.committed_video_ids(config.features.rstrip("/"))
        rows = [row for row in rows if row[c.VIDEO_ID] in done]
    class_names = tuple(sorted({r[c.LABEL] for r in rows if r[c.SPLIT] == "train"}))
    if len(class_names) < 2:
        raise ValueError(f"the training split names {len(class_names)} class(es); need >= 2")
    multistage = config.multistage or config.model == "cnn_rnn"
    logger.info(
        "decoding %d videos (%s at %d px%s)",
        len(rows),
        frame_spec.sampling,
        frame_spec.input_size,
        ", every frame for pretraining" if multistage else "",
    )
    decoded, failed = ms.decode_videos(rows, config.manifest, frame_spec, keep_all=multistage)
    index = {name: i for i, name in enumerate(class_names)}
    examples: dict[str, list[Example]] = {split: [] for split in SPLITS}
    every_frame: dict[str, torch.Tensor] = {}
    unknown = 0
    for row in rows:
        frames = decoded.get(row[c.VIDEO_ID])
        if frames is None:
            continue
        if row[c.LABEL] not in index:
            unknown += 1  # a class the training split never shows cannot be learned
            continue
        target = torch.tensor(index[row[c.LABEL]], dtype=torch.long)
        examples[row[c.SPLIT]].append(Example(row[c.VIDEO_ID], target, (frames.frames,)))
        if frames.all_frames is not None:
            every_frame[row[c.VIDEO_ID]] = frames.all_frames
    _check_splits(examples)
    num_frames = len(examples["train"][0].inputs[0])
    if config.multistage:
        feature_dim = ms.backbone_config().feature_dim
        fields = _temporal_fields(feature_dim, len(class_names), False)
        kind = zoo.FEATURES
    else:
        fields = _model_fields(
            config.model, examples["train"][0].inputs, len(class_names), False, num_frames
        )
        kind = zoo.MODELS[config.model].inputs
    fields = _merged(fields, config.model_config)
    entry = zoo.MODELS[config.model]
    zoo.config_from_dict(entry.config_type, {**entry.defaults, **fields})
    return ActionPlan(
        config=config,
        folder=folder,
        class_names=class_names,
        examples=examples,
        kind=kind,
        model_fields=fields,
        frame_spec=frame_spec,
        feature_set=record,
        num_missing=len(failed) + unknown,
        every_frame=every_frame,
        manifest_rows={row[c.VIDEO_ID]: row for row in rows} if config.multistage else {},
    )


def _labelled(videos: Sequence[TrainingVideo], multi_label: bool) -> list[TrainingVideo]:
    if multi_label:
        return list(videos)
    return [v for v in videos if v.label is not None]


def _class_names(videos: Sequence[TrainingVideo], multi_label: bool) -> tuple[str, ...]:
    train = [v for v in videos if v.split == "train"]
    if multi_label:
        names = sorted({label for v in train for label in v.labels})
    else:
        names = sorted({v.label for v in train if v.label is not None})
    if len(names) < 2:
        raise ValueError(f"the training split names {len(names)} class(es); need >= 2")
    return tuple(names)


def _target(video: TrainingVideo, class_names: Sequence[str], multi_label: bool) -> torch.Tensor:
    if multi_label:
        hot = torch.zeros(len(class_names))
        for label in video.labels:
            if label in class_names:  # labels the training split never shows cannot be learned
                hot[class_names.index(label)] = 1.0
        return hot
    if video.label not in class_names:
        return torch.tensor(-1)  # a class absent from training: kept out by _check_splits
    return torch.tensor(class_names.index(video.label), dtype=torch.long)


def _inputs(video: TrainingVideo, config: ActionTrainConfig) -> tuple[torch.Tensor, ...]:
    kind = zoo.MODELS[config.model].inputs
    if kind == zoo.RGB_FLOW:
        return _tensor(video.features), _tensor(video.flow)
    if kind == zoo.MAPS:
        return (_tensor(video.spatial_map),)
    if config.spatial:
        return (_tensor(video.spatial_map).flatten(1),)  # (T, C·H·W)
    if config.stream == "flow":
        return (_tensor(video.flow),)
    return (_tensor(video.features),)


def _tensor(array: np.ndarray) -> torch.Tensor:
    # Arrays read from Arrow may be read-only views; a copy is small and owns its memory.
    return torch.from_numpy(np.array(array, dtype=np.float32))


def _check_splits(examples: dict[str, list[Example]]) -> None:
    for split in SPLITS:
        kept = [e for e in examples[split] if e.target.dim() == 1 or int(e.target) >= 0]
        if len(kept) < len(examples[split]):
            logger.warning(
                "%d %s videos have a class the training split lacks; left out",
                len(examples[split]) - len(kept),
                split,
            )
        examples[split] = kept
        if not kept:
            raise ValueError(f"the {split} split has no usable videos")


def _temporal_fields(feature_dim: int, num_classes: int, multi_label: bool) -> dict[str, Any]:
    return {"feature_dim": feature_dim, "num_classes": num_classes, "multi_label": multi_label}


def _model_fields(
    model: str,
    inputs: Sequence[torch.Tensor],
    num_classes: int,
    multi_label: bool,
    num_frames: int | None = None,
) -> dict[str, Any]:
    """The zoo config fields that follow from the data (sizes, classes) for `model`."""
    head = {"num_classes": num_classes, "multi_label": multi_label}
    if model in (*TEMPORAL_MODELS, "segments"):
        return {"feature_dim": inputs[0].shape[-1], **head}
    if model == "two_stream":
        # Each stream like the "lstm" preset: an LSTM read out at its last state.
        stream = {"encoder": "lstm", "pooling": "last", **head}
        return {
            "rgb": {"feature_dim": inputs[0].shape[-1], **stream},
            "flow": {"feature_dim": inputs[1].shape[-1], **stream},
        }
    if model == "two_stream_attention_fusion":
        return {
            "rgb_dim": inputs[0].shape[-1],
            "flow_dim": inputs[1].shape[-1],
            "fusion_dim": FUSION_DIM,
            "temporal": {"feature_dim": FUSION_DIM, "encoder": "lstm", "pooling": "last", **head},
        }
    if model == "convlstm":
        channels, height, width = inputs[0].shape[1:]
        return {"input_channels": channels, "height": height, "width": width, **head}
    if model == "r3d":
        return {"num_frames": min(num_frames or 8, 8), **head}
    if model == "cnn_rnn":
        channels = zoo.config_from_dict(
            zoo.MODELS["cnn_rnn"].config_type, {"temporal": _temporal_fields(32, 2, False)}
        ).conv_channels
        return {
            "temporal": {"feature_dim": channels[-1], "encoder": "lstm", "pooling": "last", **head}
        }
    raise AssertionError(f"no field rule for model {model!r}")


def _merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` on top; nested dicts (sub-configs) are merged key by key."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


# ------------------------------------------------------------------------------- batches


def make_batch(
    examples: Sequence[Example],
    kind: str,
    frame_spec: ms.FrameSpec | None,
    *,
    crops: torch.Generator | None = None,
    min_fraction: float | None = None,
) -> ActionBatch:
    """Pad `examples` into one batch; with `crops`, each video is a random run of its frames."""
    videos = []
    for example in examples:
        inputs = example.inputs
        if crops is not None and min_fraction is not None:
            window = ms.random_crop(len(inputs[0]), min_fraction, crops)
            inputs = tuple(x[window] for x in inputs)
        if kind in PIXEL_KINDS:
            assert frame_spec is not None
            frames = ms.to_model_input(inputs[0], frame_spec)  # (T, 3, S, S)
            inputs = (frames.transpose(0, 1),) if kind == zoo.CLIPS else (frames,)  # (3, T, S, S)
        videos.append(inputs)
    labels = torch.stack([e.target for e in examples])
    return collate_videos(videos, labels, time_dim=1 if kind == zoo.CLIPS else 0)


def epoch_batches(
    examples: Sequence[Example],
    kind: str,
    frame_spec: ms.FrameSpec | None,
    *,
    batch_size: int,
    seed: int,
    epoch: int,
    min_fraction: float | None,
) -> Iterator[ActionBatch]:
    """Epoch `epoch`'s shuffled batches: a pure function of (seed, epoch), so resuming repeats them."""
    order = torch.randperm(len(examples), generator=generator(seed, 1, epoch)).tolist()
    crops = generator(seed, 2, epoch) if min_fraction is not None else None
    starts = list(range(0, len(order), batch_size))
    if len(starts) > 1 and len(order) - starts[-1] == 1:
        # A last batch of one video joins the one before: BatchNorm cannot train on one sample.
        starts.pop()
    for start, stop in zip(starts, [*starts[1:], len(order)], strict=True):
        chosen = [examples[i] for i in order[start:stop]]
        yield make_batch(chosen, kind, frame_spec, crops=crops, min_fraction=min_fraction)


def fixed_batches(
    examples: Sequence[Example], kind: str, frame_spec: ms.FrameSpec | None, batch_size: int
) -> Iterator[ActionBatch]:
    for start in range(0, len(examples), batch_size):
        yield make_batch(examples[start : start + batch_size], kind, frame_spec)


# ------------------------------------------------------------------------------- scoring


def predict_scores(
    model: nn.Module,
    examples: Sequence[Example],
    kind: str,
    frame_spec: ms.FrameSpec | None,
    *,
    multi_label: bool,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """(N, C) class probabilities of `examples` (softmax, or sigmoid when multi-label)."""
    was_training = model.training
    model.eval()
    scores = []
    try:
        with torch.no_grad():
            for batch in fixed_batches(examples, kind, frame_spec, EVAL_BATCH_SIZE):
                batch = batch.to(device)
                logits = model(*batch.inputs, batch.mask).logits.float()
                scores.append(probabilities(logits, multi_label=multi_label).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(scores)


def class_pairs(class_names: Sequence[str]) -> list[tuple[str, str]]:
    """The order-reversed pairs of the synthetic benchmark among `class_names` (sorted)."""
    return sorted(
        {
            tuple(sorted((a, b)))
            for a, b in PAIRED_ACTION.items()
            if a in class_names and b in class_names
        }
    )


def classification_metrics(
    class_names: Sequence[str],
    examples: Sequence[Example],
    scores: np.ndarray,
    *,
    multi_label: bool,
) -> dict[str, Any]:
    """Test metrics for model.json: top-1/5, per class, per order-reversed pair (or mAP)."""
    if multi_label:
        samples = [
            MultiLabelScores(
                video_id=e.video_id,
                labels=[class_names[i] for i in np.flatnonzero(e.target.numpy() > 0.5)],
                scores=s,
            )
            for e, s in zip(examples, scores, strict=True)
        ]
        result = evaluate(MultiLabelClassification(class_names=class_names), samples)
        return {
            "num_videos": len(samples),
            "mAP": result["mAP"],
            "per_class_ap": result["per_class_ap"],
        }
    samples = [
        LabelledScores(video_id=e.video_id, label=class_names[int(e.target)], scores=s)
        for e, s in zip(examples, scores, strict=True)
    ]
    metric = SingleLabelClassification(
        class_names=class_names, top_k=(1, 5), class_pairs=class_pairs(class_names)
    )
    result = evaluate(metric, samples)
    return {
        "num_videos": result["num_samples"],
        "top_1": result["accuracy"]["top_1"],
        "top_5": result["accuracy"]["top_5"],
        "mean_class_accuracy": result["mean_class_accuracy"],
        "per_class_accuracy": result["per_class_accuracy"],
        "class_pairs": result["class_pairs"],
        "confusion_matrix": result["confusion_matrix"]["counts"],
    }


# ------------------------------------------------------------------------------- running


def train(
    config: ActionTrainConfig,
    *,
    on_epoch_end: EpochHook | None = None,
) -> ActionSummary:
    """Plan and run one training (see `plan` and `run`)."""
    return run(plan(config), on_epoch_end=on_epoch_end)


def run(
    action_plan: ActionPlan,
    *,
    on_epoch_end: EpochHook | None = None,
) -> ActionSummary:
    """Train, score the test split and write the model folder; `on_epoch_end(stage, state,
    record)` is called after each epoch, once its state is saved (an exception there stops the
    run with the folder resumable).
    """
    config = action_plan.config
    start_run(action_plan.folder, _train_config_json(config), resume=config.resume)
    clock = Stopwatch()
    if config.multistage or config.model == "cnn_rnn":
        outcome = _run_multistage(action_plan, on_epoch_end)
    else:
        outcome = _run_single(action_plan, on_epoch_end)
    model, extra = outcome.model, outcome.extra
    device = check_device(config.device)
    scores = predict_scores(
        model.to(device),
        outcome.test_examples,
        outcome.test_kind,
        action_plan.frame_spec,
        multi_label=config.multi_label,
        device=device,
    )
    test_metrics = classification_metrics(
        action_plan.class_names, outcome.test_examples, scores, multi_label=config.multi_label
    )
    num_parameters = count_parameters(model)
    extra = {
        **extra,
        "class_names": list(action_plan.class_names),
        "multi_label": config.multi_label,
        "test_metrics": test_metrics,
        "num_parameters": num_parameters,
        "num_videos": {split: len(action_plan.examples[split]) for split in SPLITS},
        "num_missing": action_plan.num_missing,
        "train_seconds": round(clock.seconds, 1),
    }
    meta = finish_run(
        action_plan.folder,
        model,
        outcome.config,
        name=outcome.name,
        extra=jsonable(extra),
        records=outcome.records,
        train_config=_train_config_json(config),
    )
    logger.info(
        "test metrics: %s",
        {k: test_metrics[k] for k in ("num_videos", "top_1") if k in test_metrics},
    )
    return ActionSummary(
        model_uri=action_plan.folder.uri,
        meta=meta,
        test_metrics=test_metrics,
        num_parameters=num_parameters,
        train_seconds=clock.seconds,
        epochs_run=outcome.epochs_run,
    )


@dataclass(frozen=True, eq=False)
class _Trained:
    """What a training path hands back to `run`: the model to write and how to score it."""

    model: nn.Module
    name: str  # its entry in the model dict
    config: Any  # its config
    extra: dict[str, Any]
    records: list[dict[str, Any]]  # the training log
    test_examples: list[Example]  # in the form the model takes
    test_kind: str
    epochs_run: int


def _train_config_json(config: ActionTrainConfig) -> dict[str, Any]:
    return jsonable(config)


def _train_config(
    config: ActionTrainConfig,
    *,
    epochs: int,
    learning_rate: float,
    patience: int | None,
    weight_decay: float | None = None,
) -> TrainConfig:
    return TrainConfig(
        epochs=epochs,
        learning_rate=learning_rate,
        weight_decay=config.weight_decay if weight_decay is None else weight_decay,
        patience=patience,
        monitor="val_loss",
        mode="min",
        seed=config.seed,
        device=config.device,
        amp=config.amp,
        progress=config.progress,
    )


def _fit_stage(
    stage: str, model: nn.Module, *, action_plan: ActionPlan, **fit_args: Any
) -> TrainResult:
    """`fit_stage` with the run's folder and resume flag."""
    return fit_stage(
        stage,
        model,
        folder=action_plan.folder,
        resume=action_plan.config.resume,
        **fit_args,
    )


def _action_fns(action_plan: ActionPlan, kind: str, examples: Mapping[str, list[Example]]):
    config = action_plan.config
    frame_spec = action_plan.frame_spec
    val_batches = list(fixed_batches(examples["val"], kind, frame_spec, EVAL_BATCH_SIZE))

    def train_batches(epoch: int) -> Iterator[ActionBatch]:
        return epoch_batches(
            examples["train"],
            kind,
            frame_spec,
            batch_size=config.batch_size,
            seed=config.seed,
            epoch=epoch,
            min_fraction=config.temporal_jitter,
        )

    loss_fn = partial(action_loss_fn, multi_label=config.multi_label)
    val_fn = partial(action_val_fn, batches=val_batches, multi_label=config.multi_label)
    return train_batches, loss_fn, val_fn


def _run_single(action_plan: ActionPlan, on_epoch_end: EpochHook | None) -> _Trained:
    config = action_plan.config
    entry = zoo.MODELS[config.model]
    model = zoo.build_model(config.model, seed=config.seed, **action_plan.model_fields)
    norms = action_plan.standardization
    examples = {
        split: [_standardized(e, norms) for e in items] if norms else items
        for split, items in action_plan.examples.items()
    }
    train_batches, loss_fn, val_fn = _action_fns(action_plan, action_plan.kind, examples)
    recorder = EpochRecorder(action_plan.folder)
    result = _fit_stage(
        "train",
        model,
        action_plan=action_plan,
        recorder=recorder,
        train_config=_train_config(
            config,
            epochs=config.epochs,
            learning_rate=config.learning_rate,
            patience=config.patience,
        ),
        train_batches=train_batches,
        loss_fn=loss_fn,
        val_fn=val_fn,
        on_epoch_end=on_epoch_end,
    )
    if norms:
        model = fold_standardization(
            model, norms, check=examples["val"], raw=action_plan.examples["val"]
        )
    extra = {"inputs": entry.inputs, "best_epoch": result.best_epoch, **_source_extra(action_plan)}
    if norms:
        extra["standardized_streams"] = list(config.standardize)  # folded in: takes raw features
    return _Trained(
        model=model,
        name=config.model,
        config=model.config,
        extra=extra,
        records=recorder.records,
        test_examples=action_plan.examples["test"],
        test_kind=action_plan.kind,
        epochs_run=len(result.history),
    )


def _source_extra(action_plan: ActionPlan) -> dict[str, Any]:
    """Where the inputs come from, as inference needs to know it."""
    config = action_plan.config
    record = action_plan.feature_set
    extra: dict[str, Any] = {
        "feature_set_id": None if record is None else record["feature_set_id"],
        "spatial": bool(config.spatial or zoo.MODELS[config.model].inputs == zoo.MAPS),
    }
    kind = zoo.MODELS[config.model].inputs
    if kind == zoo.RGB_FLOW:
        extra["streams"] = ["rgb", "flow"]
    elif kind in FEATURE_KINDS:
        extra["streams"] = [config.stream]
    else:
        extra["streams"] = ["rgb"]
        assert action_plan.frame_spec is not None
        extra["frames"] = jsonable(action_plan.frame_spec)
    return extra


def _run_multistage(action_plan: ActionPlan, on_epoch_end: EpochHook | None) -> _Trained:
    """Pretrain the frame CNN, train the temporal model on its frozen features, fine-tune both.

    `cnn_rnn` (the zoo's CNN-RNN with its small conv encoder) is written whole; with
    `multistage`, the encoder is the `small_cnn` backbone and the folder holds the temporal model
    plus the backbone as a weights file, ready for `vidpipe extract --weights`.
    """
    config = action_plan.config
    frame_spec = action_plan.frame_spec
    assert frame_spec is not None
    num_classes = len(action_plan.class_names)
    recorder = EpochRecorder(action_plan.folder)
    if config.model == "cnn_rnn":
        whole = zoo.build_model("cnn_rnn", seed=config.seed, **action_plan.model_fields)
        assert isinstance(whole, CNNRNNClassifier)
        encoder, temporal = whole.frame_encoder, whole.temporal
        feature_dim = whole.temporal.config.feature_dim
    else:
        encoder = build_small_cnn(ms.backbone_config(), seed=config.seed)
        feature_dim = encoder.config.feature_dim
        temporal = zoo.build_model(config.model, seed=config.seed, **action_plan.model_fields)
    epochs_run = 0

    # Stage "pretrain": the frame CNN on ordered frame pairs of the training split.
    pretrain = config.pretrain
    val = action_plan.examples["val"]
    train_attributes = val_attributes = None
    if config.multistage and pretrain.attribute_weight > 0:
        # Multi-task: tags and counts of the training split's own annotations (see multistage).
        rows = action_plan.manifest_rows
        train_attributes = ms.attribute_targets(
            [rows[e.video_id] for e in action_plan.examples["train"]]
        )
        val_attributes = ms.attribute_targets(
            [rows[e.video_id] for e in val], names_of=train_attributes
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        pair_model = ms.pretraining_model(
            encoder, feature_dim, num_classes, attributes=train_attributes
        )
    every_frame = action_plan.every_frame
    train_frames = [every_frame[e.video_id] for e in action_plan.examples["train"]]
    train_labels = torch.stack([e.target for e in action_plan.examples["train"]])

    def pair_batches(
        frames: Sequence[torch.Tensor],
        labels: torch.Tensor,
        gen: torch.Generator,
        shuffle: bool,
        attributes: ms.AttributeTargets | None,
    ) -> Iterator[dict[str, torch.Tensor]]:
        return ms.pair_batches(
            frames,
            labels,
            frame_spec,
            pairs_per_video=pretrain.pairs_per_video,
            videos_per_batch=pretrain.videos_per_batch,
            generator=gen,
            min_gap_fraction=pretrain.min_gap_fraction,
            permute_colours=pretrain.permute_colours and shuffle,  # not on validation pairs
            shuffle=shuffle,
            attributes=attributes,
        )

    val_labels = torch.stack([e.target for e in val])
    # Fixed pairs: every epoch is scored on the same validation pairs.
    val_pairs = list(
        pair_batches(
            [every_frame[e.video_id] for e in val],
            val_labels,
            generator(config.seed, 4),
            False,
            val_attributes,
        )
    )
    result = _fit_stage(
        "pretrain",
        pair_model,
        action_plan=action_plan,
        recorder=recorder,
        train_config=_train_config(
            config,
            epochs=pretrain.epochs,
            learning_rate=pretrain.learning_rate,
            patience=pretrain.patience,
            weight_decay=pretrain.weight_decay,
        ),
        train_batches=lambda epoch: pair_batches(
            train_frames, train_labels, generator(config.seed, 3, epoch), True, train_attributes
        ),
        loss_fn=partial(ms.pair_loss, attribute_weight=pretrain.attribute_weight),
        val_fn=lambda m: ms.pair_val_fn(m, val_pairs),
        on_epoch_end=on_epoch_end,
    )
    epochs_run += len(result.history)

    # Stage "frozen": the temporal model on the frozen CNN's features, computed once.
    features = _encoded(encoder, action_plan.examples, frame_spec, config.device)
    train_batches, loss_fn, val_fn = _action_fns(action_plan, zoo.FEATURES, features)
    frozen = _fit_stage(
        "frozen",
        temporal,
        action_plan=action_plan,
        recorder=recorder,
        train_config=_train_config(
            config,
            epochs=config.epochs,
            learning_rate=config.learning_rate,
            patience=config.patience,
        ),
        train_batches=train_batches,
        loss_fn=loss_fn,
        val_fn=val_fn,
        on_epoch_end=on_epoch_end,
    )
    epochs_run += len(frozen.history)

    # Stage "finetune": everything, end to end on frames, at the lower learning rate.
    combined = CNNRNNClassifier(encoder, temporal)
    finetune_best = None
    if config.finetune_epochs > 0:
        train_batches, loss_fn, val_fn = _action_fns(action_plan, zoo.FRAMES, action_plan.examples)
        before = {k: v.clone() for k, v in combined.state_dict().items()}
        finetune = _fit_stage(
            "finetune",
            combined,
            action_plan=action_plan,
            recorder=recorder,
            train_config=_train_config(
                config,
                epochs=config.finetune_epochs,
                learning_rate=config.finetune_learning_rate,
                patience=config.patience,
            ),
            train_batches=train_batches,
            loss_fn=loss_fn,
            val_fn=val_fn,
            on_epoch_end=on_epoch_end,
        )
        epochs_run += len(finetune.history)
        finetune_best = finetune.best_metric
        # Fine-tuning is kept only when it beats the frozen stage on validation loss.
        if frozen.best_metric is not None and (
            finetune_best is None or not finetune_best < frozen.best_metric
        ):
            logger.info(
                "fine-tuning did not improve validation loss (%s vs %s); keeping the frozen stage",
                finetune_best,
                frozen.best_metric,
            )
            combined.load_state_dict(before)
            finetune_best = None
    encoder.eval()
    stages = {
        "pretrain_best_epoch": result.best_epoch,
        "frozen_best_val_loss": frozen.best_metric,
        "finetune_kept": finetune_best is not None,
    }
    if config.model == "cnn_rnn":
        extra = {"inputs": zoo.FRAMES, "stages": stages, **_source_extra(action_plan)}
        return _Trained(
            model=combined,
            name="cnn_rnn",
            config=_cnn_rnn_config(action_plan),
            extra=extra,
            records=recorder.records,
            test_examples=action_plan.examples["test"],
            test_kind=zoo.FRAMES,
            epochs_run=epochs_run,
        )
    weights = ms.backbone_weights_bytes(encoder)
    action_plan.folder.write_bytes(ms.BACKBONE_FILE, weights)
    weights_uri = f"{action_plan.folder.uri}/{ms.BACKBONE_FILE}"
    feature_set_id, feature_spec = ms.backbone_feature_set_id(weights, weights_uri, frame_spec)
    root = (
        action_plan.folder.uri.rsplit("/models/", 1)[0]
        if "/models/" in action_plan.folder.uri
        else "ROOT"
    )
    extra = {
        "inputs": zoo.FEATURES,
        "streams": ["rgb"],
        "spatial": False,
        "feature_set_id": feature_set_id,
        "stages": stages,
        "backbone": {
            "name": ms.BACKBONE_NAME,
            "weights_file": ms.BACKBONE_FILE,
            "feature_set_spec": feature_spec.to_json(),
            "extract_command": ms.extract_command(config.manifest, root, weights_uri, frame_spec),
        },
    }
    test_features = _encoded(
        encoder, {"test": action_plan.examples["test"]}, frame_spec, config.device
    )
    return _Trained(
        model=temporal,
        name=config.model,
        config=temporal.config,
        extra=extra,
        records=recorder.records,
        test_examples=test_features["test"],
        test_kind=zoo.FEATURES,
        epochs_run=epochs_run,
    )


def _standardized(example: Example, norms: Mapping[int, Standardization]) -> Example:
    inputs = tuple(norms[i].apply(x) if i in norms else x for i, x in enumerate(example.inputs))
    return Example(example.video_id, example.target, inputs)


def _first_affine(config: Any, index: int) -> str:
    """Dotted name of the first affine map that input `index` meets in a model of `config`."""
    if isinstance(config, TwoStreamConfig):
        branch = ("rgb", "flow")[index]
        return f"{branch}.{_first_affine(getattr(config, branch), 0)}"
    if isinstance(config, FusedTemporalConfig):
        return ("rgb_projection", "flow_projection")[index]
    if isinstance(config, TemporalSegmentConfig):
        return "segment_model.0"  # after the per-segment mean, which is linear
    if isinstance(config, TemporalClassifierConfig):
        if config.projection_dim is not None:
            return "projection.0"
        if config.encoder != "none":
            return "encoder.rnn"
        if config.pooling != "attention":
            return "head.1"  # after a masked mean or the last frame, both linear
    raise ValueError(
        f"standardize cannot be folded into a {type(config).__name__} whose first step is not "
        "affine in its input"
    )


def fold_standardization(
    model: nn.Module,
    norms: Mapping[int, Standardization],
    *,
    check: Sequence[Example],
    raw: Sequence[Example],
) -> nn.Module:
    """A copy of `model`, trained on standardised inputs, that takes raw ones: each input's
    statistics folded into the first affine map it meets. `check` (standardised) and `raw`
    (the same videos) confirm that the outputs did not change.
    """
    folded = copy.deepcopy(model)
    with torch.no_grad():
        for index, norm in norms.items():
            target = folded.get_submodule(_first_affine(model.config, index))
            if isinstance(target, nn.Linear):
                weight, bias = fold_into_linear(target.weight, target.bias, norm)
                target.weight.copy_(weight)
                target.bias.copy_(bias)
                continue
            assert isinstance(target, (nn.LSTM, nn.GRU)), type(target)
            for suffix in ("", "_reverse") if target.bidirectional else ("",):
                weight = getattr(target, f"weight_ih_l0{suffix}")
                bias = getattr(target, f"bias_ih_l0{suffix}")
                new_weight, new_bias = fold_into_linear(weight, bias, norm)
                weight.copy_(new_weight)
                bias.copy_(new_bias)
    kind = zoo.RGB_FLOW if len(check[0].inputs) == 2 else zoo.FEATURES
    multi_label = bool(getattr(model.config, "multi_label", False))
    before = predict_scores(model, check, kind, None, multi_label=multi_label)
    after = predict_scores(folded, raw, kind, None, multi_label=multi_label)
    if not np.allclose(before, after, atol=1e-4):
        raise RuntimeError("folding the standardisation changed the model's outputs")
    return folded


def _cnn_rnn_config(action_plan: ActionPlan):
    entry = zoo.MODELS["cnn_rnn"]
    return zoo.config_from_dict(entry.config_type, {**entry.defaults, **action_plan.model_fields})


def _encoded(
    encoder: nn.Module,
    examples: Mapping[str, Sequence[Example]],
    frame_spec: ms.FrameSpec,
    device: str,
) -> dict[str, list[Example]]:
    """Examples whose input is the encoder's (T, D) features of their frames (eval mode)."""
    target = check_device(device)
    encoder = encoder.to(target)
    was_training = encoder.training
    encoder.eval()
    result: dict[str, list[Example]] = {}
    try:
        with torch.no_grad():
            for split, items in examples.items():
                result[split] = [
                    Example(
                        e.video_id,
                        e.target,
                        (
                            encoder(ms.to_model_input(e.inputs[0], frame_spec).to(target))
                            .float()
                            .cpu(),
                        ),
                    )
                    for e in items
                ]
    finally:
        encoder.train(was_training)
    return result
