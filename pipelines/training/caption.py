"""`vidpipe train --task caption`: a captioner trained on a feature set with teacher forcing, the
doubly-stochastic attention penalty and a length curriculum, optionally fine-tuned by self-critical
sequence training (CIDEr-D reward, greedy baseline), and scored on the test split by pycocoevalcap.

Also the pieces the VQA task shares: stream selection, feature standardisation folded into the
model's first layer (so a model folder takes raw stored features), and a resumable training stage.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from hybrid_models import zoo
from hybrid_models.captioner import Captioner, MultiTaskCaptioner, MultiTaskCaptionerConfig
from hybrid_models.decoding import Decoded, beam_search, eval_mode, greedy_decode
from hybrid_models.rewards import CiderD
from hybrid_models.sequences import pad_sequences
from hybrid_models.training.captioning import (
    CaptionBatch,
    CaptionExample,
    caption_batches,
    caption_loss_fn,
    caption_train_batches,
    caption_val_fn,
    multitask_loss_fn,
    scst_loss_fn,
)
from hybrid_models.training.loop import TrainConfig
from hybrid_models.video3d import count_parameters
from hybrid_models.vocabulary import Vocabulary
from hybrid_models.vqa import VideoQA
from pipelines.metrics.captioning import caption_scores, java_problem
from pipelines.training.common import (
    EpochHook,
    EpochRecorder,
    ModelFolder,
    Stopwatch,
    check_device,
    check_out,
    finish_run,
    fit_stage,
    generator,
    jsonable,
    shared_fields,
    start_run,
)
from pipelines.training.data import TrainingData, TrainingVideo, load_training_data
from schemas import SPLITS
from workers import store

logger = logging.getLogger(__name__)

CAPTION_MODELS = tuple(name for name, entry in zoo.MODELS.items() if entry.task == "caption")
STREAMS = ("rgb", "flow")
EVAL_BATCH_SIZE = 64
CROSS_ENTROPY, SCST = "cross_entropy", "scst"  # the stages, as training_log.jsonl names them
_SCST_STREAM = 7  # generator stream of SCST batch order and sampling (see common.generator)
# Flags of `vidpipe train` that only the action task reads, with the value that means "not given".
ACTION_ONLY_FLAGS = {
    "stream": "rgb",
    "spatial": False,
    "multi_label": False,
    "multistage": False,
    "temporal_jitter": None,
    "sampling": None,
    "input_size": None,
}


# ------------------------------------------------------------------ shared with the VQA task


def parse_streams(text: str | None) -> tuple[str, ...] | None:
    """`--streams rgb,flow` as ("rgb", "flow"); None stays None (every stream of the set)."""
    if text is None:
        return None
    streams = tuple(part.strip() for part in text.split(",") if part.strip())
    return streams


def check_streams(streams: tuple[str, ...] | None) -> None:
    if streams is None:
        return
    if not streams or any(s not in STREAMS for s in streams) or len(set(streams)) != len(streams):
        raise ValueError(
            f"streams {list(streams)} must be distinct names among {', '.join(STREAMS)}"
        )


def resolve_streams(record: Mapping[str, Any], asked: tuple[str, ...] | None) -> tuple[str, ...]:
    """The streams a model reads, in the feature set's order; ValueError for one it lacks."""
    have = tuple(record["spec"]["streams"])
    if asked is None:
        return have
    missing = [s for s in asked if s not in have]
    if missing:
        raise ValueError(
            f"feature set {record['feature_set_id']} has no {', '.join(missing)} stream "
            f"(it has {', '.join(have)})"
        )
    return tuple(s for s in have if s in asked)


def video_frames(video: TrainingVideo, streams: Sequence[str], first_stream: str) -> torch.Tensor:
    """A video's stored features of `streams`, concatenated per frame: (T, D_1 + D_2 ...)."""
    parts = []
    for stream in streams:
        # load_training_data puts the feature set's first stream in `features`, flow in `flow`.
        array = video.features if stream == first_stream else video.flow
        if array is None:
            raise ValueError(f"video {video.video_id!r} has no {stream} features")
        parts.append(np.asarray(array, dtype=np.float32))
    # A copy: arrays read from Arrow may be read-only views.
    return torch.from_numpy(np.concatenate(parts, axis=1))


def stream_widths(video: TrainingVideo, streams: Sequence[str], first_stream: str) -> list[int]:
    """The feature size of each of `streams`, in `video_frames` order."""
    return [
        np.asarray(video.features if stream == first_stream else video.flow).shape[1]
        for stream in streams
    ]


@dataclass(frozen=True)
class FeatureScaling:
    """Standardisation with training-split statistics: (x − mean) / std, mean per dimension and
    one std per stream (the root mean square of its dimensions' stds).

    Stored CNN features differ in scale by stream (flow features are several times larger than
    rgb ones here), which slows and destabilises training; `fold_scaling` moves the scaling
    into the model's first layer so that the saved model takes raw stored features. Why not a
    std per dimension: it blows up the near-constant dimensions (a grid cell the objects rarely
    reach), and the models then fit those: on one pretrained `small_cnn_grid` feature set a GRU
    fell from 0.889 to 0.622 test top-1 and VQA overfitted (train 0.97, validation 0.62).
    """

    mean: torch.Tensor  # (D,)
    std: torch.Tensor  # (D,)

    @classmethod
    def of(
        cls, videos: Sequence[torch.Tensor], *, widths: Sequence[int] | None = None
    ) -> FeatureScaling:
        """Statistics over every frame of `videos` (each (T, D)); `widths` are the streams' sizes
        in the order they are concatenated (default: one stream of D); a constant stream gets
        std 1.
        """
        if not videos:
            raise ValueError("videos is empty")
        frames = torch.cat(list(videos)).double()  # (ΣT, D)
        widths = [frames.shape[1]] if widths is None else list(widths)
        if sum(widths) != frames.shape[1] or min(widths) <= 0:
            raise ValueError(f"stream widths {widths} must be > 0 and add up to {frames.shape[1]}")
        mean = frames.mean(dim=0)
        variance = frames.var(dim=0, unbiased=False)  # (D,)
        stds = []
        for part in variance.split(widths):
            rms = float(part.mean().sqrt())
            stds.append(torch.full_like(part, rms if rms > 1e-6 else 1.0))
        return cls(mean.float(), torch.cat(stds).float())

    def apply(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) / self.std


# Fusion layers that read the (mean-pooled) video when VQA has no video encoder.
_FUSION_VIDEO_LAYERS = {
    "concat": ("mlp",),
    "product": ("video", "video_shared"),
    "bilinear": ("video",),
    "factorized_bilinear": ("video",),
}


def _first_layers(model: nn.Module) -> list[tuple[nn.Parameter, nn.Parameter]]:
    """(weight (O, ≥D), bias (O,)) of every layer that reads input features directly, linearly.

    Where frames go first: the recurrent encoder's input weights for captioners and VQA models
    with an encoder; for VQA without one (the mean of raw frames), the fusion layers that read
    the video. Other shapes cannot be folded and raise.
    """
    if isinstance(model, MultiTaskCaptioner):
        model = model.captioner
    if isinstance(model, Captioner):
        encoder = model.encoder if model.config.encoder == "lstm" else model.encoder.shot_encoder
        rnns = [encoder.rnn]
    elif isinstance(model, VideoQA):
        if model.config.video_encoder == "lstm":
            rnns = [model.video_encoder.rnn]
        elif model.config.attention == "none":
            layers = [getattr(model.fusion, n) for n in _FUSION_VIDEO_LAYERS[model.config.fusion]]
            return [(layer.weight, layer.bias) for layer in layers]
        else:
            raise ValueError(
                f"cannot fold feature scaling into a VQA model with attention "
                f"{model.config.attention!r} over raw frames (video_encoder 'none')"
            )
    else:
        raise TypeError(f"cannot fold feature scaling into a {type(model).__name__}")
    pairs = []
    for rnn in rnns:
        suffixes = ("", "_reverse") if rnn.bidirectional else ("",)
        for suffix in suffixes:
            pairs.append(
                (getattr(rnn, f"weight_ih_l0{suffix}"), getattr(rnn, f"bias_ih_l0{suffix}"))
            )
    return pairs


def fold_scaling(model: nn.Module, scaling: FeatureScaling) -> nn.Module:
    """A copy of `model` that takes raw features and computes what `model` does on scaled ones.

    W((x − μ)/σ) + b = (W/σ) x + (b − W(μ/σ)) on the first D input columns of every layer that
    reads the features. Input dropout sits before these layers and is off in eval mode, so the
    two agree exactly (up to float rounding) wherever the model is used for inference.
    """
    folded = copy.deepcopy(model)
    dim = scaling.mean.shape[0]
    with torch.no_grad():
        for weight, bias in _first_layers(folded):
            inputs = weight[:, :dim]  # (O, D): the columns that read the features
            shift = inputs @ (scaling.mean / scaling.std).to(inputs)  # (O,)
            bias.sub_(shift)
            inputs.div_(scaling.std.to(inputs))
    return folded


def parse_model_config(text: str) -> dict[str, Any]:
    """`--model-config` as a dict; ValueError when it is not a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--model-config is not JSON: {error}") from error
    if not isinstance(value, dict):
        raise ValueError(f"--model-config must be a JSON object, got {text!r}")
    return value


def check_action_only_flags(
    args: argparse.Namespace, task: str, *, allowed: Sequence[str] = ()
) -> None:
    """ValueError naming a flag of the action task given to `task` (it would be ignored);
    `allowed` names those that `task` reads too.
    """
    for name, unset in ACTION_ONLY_FLAGS.items():
        if name not in allowed and getattr(args, name, unset) != unset:
            flag = "--" + name.replace("_", "-")
            hint = "; caption and vqa read --streams" if name == "stream" else ""
            raise ValueError(f"{flag} is for --task action, not --task {task}{hint}")


# ------------------------------------------------------------------ the caption task


@dataclass(frozen=True, kw_only=True)
class CaptionTrainConfig:
    """What `vidpipe train --task caption` was asked to do; written as train_config.json."""

    model: str
    features: str  # ROOT/features/<id>
    manifest: str
    out: str  # ROOT/models/<id>
    streams: tuple[str, ...] | None = None  # concatenated per frame; None: all of the set's
    epochs: int = 40
    batch_size: int = 32  # (video, caption) pairs per batch
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    seed: int = 0
    patience: int | None = 10  # epochs without a better validation CIDEr-D before stopping
    device: str = "cpu"
    amp: bool = False
    resume: bool = False
    progress: bool = True
    model_config: Mapping[str, Any] = field(default_factory=dict)  # zoo config overrides
    curriculum: bool = True  # short captions first (see curriculum_order)
    attention_penalty: float = 0.1  # λ of the doubly-stochastic attention penalty
    label_smoothing: float = 0.0
    beam_size: int = 3  # test decoding and inference (greedy is scored too)
    length_penalty: float = 0.0  # GNMT α of beam search
    scst_epochs: int = 0  # self-critical fine-tuning after cross-entropy; 0: none
    scst_learning_rate: float = 5e-5
    scst_samples: int = 5  # sampled captions per video and SCST step
    scst_baseline: str = "greedy"  # "greedy" caption's reward, or "mean" of the other samples
    multitask_action_weight: float = 0.5  # caption_multitask: λ of the action loss

    def __post_init__(self) -> None:
        if self.model not in CAPTION_MODELS:
            raise ValueError(
                f"model {self.model!r} is not a captioning model; expected one of "
                f"{', '.join(CAPTION_MODELS)}"
            )
        for name in ("epochs", "batch_size", "beam_size", "scst_samples"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} ({getattr(self, name)}) must be > 0")
        for name in ("learning_rate", "scst_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} ({getattr(self, name)}) must be > 0")
        for name in ("weight_decay", "attention_penalty", "length_penalty", "scst_epochs"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} ({getattr(self, name)}) must be >= 0")
        if self.scst_baseline not in ("greedy", "mean"):
            raise ValueError(f"scst_baseline {self.scst_baseline!r} must be 'greedy' or 'mean'")
        if self.scst_baseline == "mean" and self.scst_samples < 2:
            raise ValueError(
                f"scst_baseline 'mean' needs scst_samples >= 2, got {self.scst_samples}"
            )
        if not self.multitask_action_weight >= 0:
            raise ValueError(
                f"multitask_action_weight ({self.multitask_action_weight}) must be >= 0"
            )
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing ({self.label_smoothing}) must be in [0, 1)")
        if self.patience is not None and self.patience <= 0:
            raise ValueError(f"patience ({self.patience}) must be > 0 or None")
        check_streams(self.streams)
        if self.amp and not self.device.startswith("cuda"):
            raise ValueError(f"amp needs a CUDA device, got device {self.device!r}")


def config_from_args(args: argparse.Namespace) -> CaptionTrainConfig:
    """The parsed `vidpipe train --task caption` flags as a config; ValueError for bad ones."""
    check_action_only_flags(args, "caption")
    if args.features is None:
        raise ValueError("--features is required for --task caption")
    return CaptionTrainConfig(
        **shared_fields(args),
        streams=parse_streams(args.streams),
        model_config=parse_model_config(args.model_config),
        curriculum=args.curriculum,
        attention_penalty=args.attention_penalty,
        beam_size=args.beam_size,
        length_penalty=args.length_penalty,
        scst_epochs=args.scst_epochs,
        scst_learning_rate=args.scst_lr,
        scst_samples=args.scst_samples,
        scst_baseline=getattr(args, "scst_baseline", "greedy"),
        multitask_action_weight=args.multitask_action_weight,
    )


@dataclass(frozen=True)
class HeldOutVideo:
    """A test video as inference sees it: raw stored features and its reference captions."""

    video_id: str
    features: torch.Tensor  # (T, D), not scaled
    captions: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class CaptionPlan:
    """A checked run: examples by split, the vocabulary, and the model to build."""

    config: CaptionTrainConfig
    folder: ModelFolder
    feature_set: dict
    streams: tuple[str, ...]
    vocabulary: Vocabulary
    class_names: tuple[str, ...]  # actions, for caption_multitask
    scaling: FeatureScaling
    train: list[CaptionExample]  # one per (video, caption), scaled features
    train_videos: list[CaptionExample]  # one per video with all its references (SCST)
    val: list[CaptionExample]  # one per video
    test: list[HeldOutVideo]
    max_length: int  # tokens decoded at most, <eos> included
    model_fields: Mapping[str, Any]
    num_missing: int


@dataclass(frozen=True, eq=False)
class LanguageSummary:
    """What a caption or VQA run leaves, for the command's report."""

    model_uri: str
    meta: dict[str, Any]
    test_metrics: dict[str, Any]
    num_parameters: int
    train_seconds: float
    epochs_run: int


@dataclass(frozen=True, eq=False)
class LanguageInputs:
    """The checked inputs caption and VQA training share: the folder to write, the feature set,
    the videos that have what the task learns (by split), their joined frames and the scaling."""

    folder: ModelFolder
    record: dict
    streams: tuple[str, ...]
    data: TrainingData
    by_split: Mapping[str, list[TrainingVideo]]
    frames: Mapping[str, torch.Tensor]  # video id -> (T, D) streams side by side, not scaled
    scaling: FeatureScaling


def read_language_inputs(
    config: Any, *, has: Callable[[TrainingVideo], bool], what: str
) -> LanguageInputs:
    """Read and check a caption or VQA config's inputs; `has(video)` keeps the videos with
    `what` (captions, questions). Raises ValueError or FileNotFoundError and writes nothing."""
    folder = ModelFolder(config.out.rstrip("/"))
    check_device(config.device)
    check_out(folder, jsonable(config), resume=config.resume)
    features_uri = config.features.rstrip("/")
    record = store.read_feature_set_record(features_uri)
    streams = resolve_streams(record, config.streams)
    data = load_training_data(features_uri, config.manifest)
    by_split = {split: [v for v in data.split(split) if has(v)] for split in SPLITS}
    for split in SPLITS:
        if not by_split[split]:
            raise ValueError(f"the {split} split has no videos with {what} and features")
    first = record["spec"]["streams"][0]
    frames = {v.video_id: video_frames(v, streams, first) for v in data.videos if has(v)}
    scaling = FeatureScaling.of(
        [frames[v.video_id] for v in by_split["train"]],
        widths=stream_widths(by_split["train"][0], streams, first),
    )
    return LanguageInputs(
        folder=folder, record=record, streams=streams, data=data, by_split=by_split,
        frames=frames, scaling=scaling,
    )  # fmt: skip


def plan(config: CaptionTrainConfig) -> CaptionPlan:
    """Read and check everything; raises ValueError or FileNotFoundError and writes nothing."""
    inputs = read_language_inputs(config, has=lambda v: bool(v.captions), what="captions")
    folder, record, streams, data = inputs.folder, inputs.record, inputs.streams, inputs.data
    by_split, frames, scaling = inputs.by_split, inputs.frames, inputs.scaling
    vocabulary = Vocabulary.build(c for v in by_split["train"] for c in v.captions)
    class_names = tuple(sorted({v.label for v in by_split["train"] if v.label is not None}))
    multitask = zoo.MODELS[config.model].config_type is MultiTaskCaptionerConfig
    if multitask:
        unlabelled = [v.video_id for s in SPLITS for v in by_split[s] if v.label not in class_names]
        if len(class_names) < 2 or unlabelled:
            raise ValueError(
                f"{config.model} needs an action label from the training split on every video "
                f"({len(class_names)} classes; unlabelled or unseen: {unlabelled[:3]})"
            )

    def references(video: TrainingVideo) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(vocabulary.encode(c, bos_eos=False)) for c in video.captions)

    def example(video: TrainingVideo, caption: str) -> CaptionExample:
        return CaptionExample(
            features=scaling.apply(frames[video.video_id]),
            tokens=tuple(vocabulary.encode(caption)),
            references=references(video),
            action=class_names.index(video.label) if multitask else None,
        )

    train = [example(v, caption) for v in by_split["train"] for caption in v.captions]
    longest = max(len(e.tokens) for e in train) - 1  # words + <eos>
    feature_dim = int(scaling.mean.shape[0])
    fields: dict[str, Any] = {"feature_dim": feature_dim, "vocab_size": len(vocabulary)}
    if multitask:
        fields |= {"num_actions": len(class_names), "action_weight": config.multitask_action_weight}
    fields |= dict(config.model_config)
    entry = zoo.MODELS[config.model]
    zoo.config_from_dict(entry.config_type, {**entry.defaults, **fields})  # validates now
    return CaptionPlan(
        config=config,
        folder=folder,
        feature_set=record,
        streams=streams,
        vocabulary=vocabulary,
        class_names=class_names if multitask else (),
        scaling=scaling,
        train=train,
        train_videos=[example(v, v.captions[0]) for v in by_split["train"]],
        val=[example(v, v.captions[0]) for v in by_split["val"]],
        test=[HeldOutVideo(v.video_id, frames[v.video_id], v.captions) for v in by_split["test"]],
        max_length=longest + 2,  # a little room beyond the longest training caption
        model_fields=fields,
        num_missing=data.num_missing + len(data.videos) - len(frames),
    )


@dataclass(frozen=True)
class ScstBatch:
    """A batch of videos for SCST with the seed its captions are sampled from, so an epoch's
    samples are a function of (seed, epoch, batch) and a resumed run draws the same ones."""

    batch: CaptionBatch
    seed: int

    def to(self, device: torch.device | str) -> ScstBatch:
        return ScstBatch(self.batch.to(device), self.seed)


def scst_batches(
    examples: Sequence[CaptionExample], *, batch_size: int, seed: int, epoch: int
) -> list[ScstBatch]:
    """Epoch `epoch`'s shuffled video batches for SCST, each with its own sampling seed."""
    order = torch.randperm(len(examples), generator=generator(seed, _SCST_STREAM, epoch)).tolist()
    batches = caption_batches([examples[i] for i in order], batch_size=batch_size)
    return [
        ScstBatch(batch, int(generator(seed, _SCST_STREAM, epoch, index).initial_seed()))
        for index, batch in enumerate(batches)
    ]


def scst_step_loss(
    model: nn.Module,
    batch: ScstBatch,
    *,
    reward: CiderD,
    max_length: int,
    num_samples: int,
    baseline: str = "greedy",
) -> tuple[torch.Tensor, dict[str, float]]:
    sampler = torch.Generator().manual_seed(batch.seed)
    return scst_loss_fn(
        model,
        batch.batch,
        reward=reward,
        generator=sampler,
        max_length=max_length,
        num_samples=num_samples,
        baseline=baseline,
    )


def decode_test(
    model: nn.Module,
    videos: Sequence[HeldOutVideo],
    vocabulary: Vocabulary,
    *,
    max_length: int,
    beam_size: int,
    length_penalty: float,
    device: torch.device | str = "cpu",
) -> dict[str, str]:
    """{video_id: caption} for raw-feature `videos`: greedy when beam_size is 1, else beam."""
    captions: dict[str, str] = {}
    with torch.no_grad(), eval_mode(model):
        for start in range(0, len(videos), EVAL_BATCH_SIZE):
            chunk = videos[start : start + EVAL_BATCH_SIZE]
            features, mask = pad_sequences([v.features for v in chunk])  # (B, T, D), (B, T)
            features, mask = features.to(device), mask.to(device)
            decoded: Decoded
            if beam_size == 1:
                decoded = greedy_decode(model, features, mask, max_length)
            else:
                decoded = beam_search(
                    model, features, mask, beam_size, max_length, length_penalty=length_penalty
                )
            for video, tokens in zip(chunk, decoded.tokens.cpu().tolist(), strict=True):
                captions[video.video_id] = vocabulary.decode(tokens)
    return captions


def score_test_split(
    model: nn.Module,
    caption_plan: CaptionPlan,
    *,
    meteor: Any = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """pycocoevalcap scores of greedy and beam decoding of the test split, and a few samples.

    `model` takes raw features (folded). Per-sample scores are left out: the evaluation
    report recomputes them from the predictions.
    """
    config = caption_plan.config
    references = {v.video_id: list(v.captions) for v in caption_plan.test}
    result: dict[str, Any] = {"num_videos": len(references)}
    for name, beam_size in (("greedy", 1), ("beam", config.beam_size)):
        hypotheses = decode_test(
            model,
            caption_plan.test,
            caption_plan.vocabulary,
            max_length=caption_plan.max_length,
            beam_size=beam_size,
            length_penalty=config.length_penalty,
            device=device,
        )
        scores = caption_scores(references, hypotheses, spice=False, meteor=meteor)
        scores.pop("per_sample", None)
        scores["beam_size"] = beam_size
        scores["samples"] = {k: hypotheses[k] for k in sorted(hypotheses)[:5]}
        result[name] = scores
    return result


def _start_meteor() -> Any:
    """One METEOR scorer (a JVM, ~10 s to start) for every scoring of a run; None without Java."""
    if java_problem() is not None:
        return None
    from pycocoevalcap.meteor.meteor import Meteor

    return Meteor()


def _stop_meteor(meteor: Any) -> None:
    if meteor is None:
        return
    process = meteor.meteor_p
    process.stdin.close()  # METEOR exits at the end of its input
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.stdout.close()
    process.stderr.close()


def train(config: CaptionTrainConfig, *, on_epoch_end: EpochHook | None = None) -> LanguageSummary:
    """Plan and run one training (see `plan` and `run`)."""
    return run(plan(config), on_epoch_end=on_epoch_end)


def run(caption_plan: CaptionPlan, *, on_epoch_end: EpochHook | None = None) -> LanguageSummary:
    """Train (cross-entropy, then SCST if asked), score the test split, write the model folder.

    `on_epoch_end(stage, state, record)` is called after each epoch once its state is saved (an
    exception there stops the run with the folder resumable).
    """
    config = caption_plan.config
    folder = caption_plan.folder
    start_run(folder, jsonable(config), resume=config.resume)
    clock = Stopwatch()
    device = check_device(config.device)
    model = zoo.build_model(config.model, seed=config.seed, **caption_plan.model_fields)
    cider = CiderD.from_references([e.references for e in caption_plan.train_videos])
    val_fn = partial(
        caption_val_fn,
        batches=caption_batches(caption_plan.val, batch_size=EVAL_BATCH_SIZE),
        cider=cider,
        max_length=caption_plan.max_length,
    )
    recorder = EpochRecorder(folder)
    loss = multitask_loss_fn if isinstance(model, MultiTaskCaptioner) else caption_loss_fn
    cross_entropy = fit_stage(
        CROSS_ENTROPY,
        model,
        folder=folder,
        resume=config.resume,
        recorder=recorder,
        train_config=_train_config(config, config.epochs, config.learning_rate),
        train_batches=caption_train_batches(
            caption_plan.train,
            batch_size=config.batch_size,
            num_epochs=config.epochs,
            seed=config.seed,
            curriculum=config.curriculum,
        ),
        loss_fn=partial(
            loss,
            label_smoothing=config.label_smoothing,
            attention_weight=config.attention_penalty,
        ),
        val_fn=val_fn,
        on_epoch_end=on_epoch_end,
    )
    epochs_run = len(cross_entropy.history)
    meteor = _start_meteor()
    try:
        metrics: dict[str, Any] = {}
        stages: dict[str, Any] = {
            "cross_entropy_best_epoch": cross_entropy.best_epoch,
            "cross_entropy_best_val_cider_d": cross_entropy.best_metric,
        }
        if config.scst_epochs > 0:
            before = fold_scaling(model, caption_plan.scaling)
            metrics["cross_entropy"] = score_test_split(
                before.to(device), caption_plan, meteor=meteor, device=device
            )
            ce_weights = copy.deepcopy(model.state_dict())
            scst = fit_stage(
                SCST,
                model,
                folder=folder,
                resume=config.resume,
                recorder=recorder,
                train_config=_train_config(config, config.scst_epochs, config.scst_learning_rate),
                train_batches=lambda epoch: scst_batches(
                    caption_plan.train_videos,
                    batch_size=config.batch_size,
                    seed=config.seed,
                    epoch=epoch,
                ),
                loss_fn=partial(
                    scst_step_loss,
                    reward=cider,
                    max_length=caption_plan.max_length,
                    num_samples=config.scst_samples,
                    baseline=config.scst_baseline,
                ),
                val_fn=val_fn,
                on_epoch_end=on_epoch_end,
            )
            epochs_run += len(scst.history)
            # SCST is kept only when it beats cross-entropy on validation CIDEr-D.
            kept = cross_entropy.best_metric is None or (
                scst.best_metric is not None and scst.best_metric > cross_entropy.best_metric
            )
            if not kept:
                logger.info(
                    "SCST did not raise validation CIDEr-D (%s vs %s); keeping cross-entropy",
                    scst.best_metric,
                    cross_entropy.best_metric,
                )
                model.load_state_dict(ce_weights)
            stages |= {
                "scst_best_epoch": scst.best_epoch,
                "scst_best_val_cider_d": scst.best_metric,
                "scst_kept": kept,
            }
        final = fold_scaling(model, caption_plan.scaling).to(device)
        metrics |= score_test_split(final, caption_plan, meteor=meteor, device=device)
    finally:
        _stop_meteor(meteor)
    entry = zoo.MODELS[config.model]
    num_parameters = count_parameters(final)
    extra = {
        "inputs": entry.inputs,
        "streams": list(caption_plan.streams),
        "spatial": False,
        "feature_set_id": caption_plan.feature_set["feature_set_id"],
        "vocabulary": caption_plan.vocabulary.to_json(),
        "max_length": caption_plan.max_length,
        "beam_size": config.beam_size,
        "length_penalty": config.length_penalty,
        "class_names": list(caption_plan.class_names),
        "stages": stages,
        "test_metrics": metrics,
        "num_parameters": num_parameters,
        "num_videos": {
            "train": len(caption_plan.train_videos),
            "val": len(caption_plan.val),
            "test": len(caption_plan.test),
        },
        "num_missing": caption_plan.num_missing,
        "train_seconds": round(clock.seconds, 1),
    }
    meta = finish_run(
        folder,
        final,
        final.config,
        name=config.model,
        extra=jsonable(extra),
        records=recorder.records,
        train_config=jsonable(config),
    )
    return LanguageSummary(
        model_uri=folder.uri,
        meta=meta,
        test_metrics=metrics,
        num_parameters=num_parameters,
        train_seconds=clock.seconds,
        epochs_run=epochs_run,
    )


def _train_config(config: CaptionTrainConfig, epochs: int, learning_rate: float) -> TrainConfig:
    return TrainConfig(
        epochs=epochs,
        learning_rate=learning_rate,
        weight_decay=config.weight_decay,
        patience=config.patience,
        monitor="val_cider_d",
        mode="max",
        seed=config.seed,
        device=config.device,
        amp=config.amp,
        progress=config.progress,
    )


def _score_line(name: str, scores: Mapping[str, Any]) -> str:
    shown = []
    for key in ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D"):
        value = scores.get(key)
        shown.append(f"{key} {value:.3f}" if isinstance(value, float) else f"{key} n/a")
    return f"  {name}: " + ", ".join(shown)


def describe(summary: LanguageSummary) -> str:
    """Lines for people: where the model is and how its captions of the test split scored."""
    metrics = summary.test_metrics
    lines = [
        f"model {summary.meta['model']} at {summary.model_uri} "
        f"({summary.num_parameters:,} parameters, {summary.epochs_run} epochs, "
        f"{summary.train_seconds:.1f} s)",
        f"test ({metrics['num_videos']} videos):",
        _score_line("greedy", metrics["greedy"]),
        _score_line(f"beam {metrics['beam']['beam_size']}", metrics["beam"]),
    ]
    if "cross_entropy" in metrics:
        before = metrics["cross_entropy"]
        lines.append("before SCST (cross-entropy only):")
        lines.append(_score_line("greedy", before["greedy"]))
        lines.append(_score_line(f"beam {before['beam']['beam_size']}", before["beam"]))
    return "\n".join(lines)
