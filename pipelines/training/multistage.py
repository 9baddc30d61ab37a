"""Raw frames for the pixel models (3D CNN, CNN-RNN) and stage one of multi-stage training: a frame
CNN pretrained on ordered frame pairs (plus, multi-task, per-frame attribute tags, colour -> shape
bindings and object counts) of the training split, exported as a `small_cnn` backbone that serves action, caption and VQA.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import nn
from torch.nn import functional as F

from hybrid_models.backbones import IMAGENET_MEAN, IMAGENET_STD, backbone_spec
from hybrid_models.small_cnn import SmallCNN, SmallCNNConfig
from hybrid_models.weights import load_weights_bytes
from pipelines.datasets.language import words
from schemas import FeatureSetSpec, resolve_uri
from schemas import columns as c
from workers.decoding import Clip, InProcessDecoder
from workers.preprocess import normalize, resize_and_crop
from workers.sampling import parse_sampling, sample_indices

logger = logging.getLogger(__name__)

BACKBONE_NAME = "small_cnn"
BACKBONE_FILE = "small_cnn.safetensors"


@dataclass(frozen=True, kw_only=True)
class FrameSpec:
    """Which frames of a video a pixel model sees and how they are prepared, as stage 1 does."""

    sampling: str
    input_size: int
    resize_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    decoder: str = "auto"
    rotation: str = "apply"

    def __post_init__(self) -> None:
        object.__setattr__(self, "sampling", str(parse_sampling(self.sampling)))
        if self.input_size < 16:
            raise ValueError(f"input_size ({self.input_size}) must be >= 16")
        if self.resize_size < self.input_size:
            raise ValueError(
                f"resize_size ({self.resize_size}) must be >= input_size ({self.input_size})"
            )
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"mean {self.mean} and std {self.std} must have 3 values each")

    @classmethod
    def of_feature_set(cls, record: dict) -> FrameSpec:
        """The frames a feature set was computed from (its record's spec)."""
        spec = record["spec"]
        return cls(
            sampling=spec["sampling"],
            input_size=int(spec["input_size"]),
            resize_size=int(spec["resize_size"]),
            mean=tuple(spec["mean"]),
            std=tuple(spec["std"]),
            decoder=spec["decoder"],
            rotation=spec["rotation"],
        )


@dataclass(frozen=True)
class VideoFrames:
    """One video's decoded frames, ready for `to_model_input`."""

    video_id: str
    frame_index: np.ndarray  # (T,) the frames `spec.sampling` picks
    frames: torch.Tensor  # (T, 3, S, S) uint8
    all_frames: torch.Tensor | None = None  # (N, 3, S, S) uint8: every frame, when asked for


def decode_videos(
    rows: Sequence[dict], manifest_uri: str, spec: FrameSpec, *, keep_all: bool = False
) -> tuple[dict[str, VideoFrames], dict[str, str]]:
    """Frames of the manifest `rows` (in-process), and {video_id: why} for those that fail.

    With `keep_all`, every frame is decoded (pretraining draws its pairs from them) and the
    frames of `spec.sampling` are picked from those, by the sampler stage 1 uses.
    """
    decoded: dict[str, VideoFrames] = {}
    failed: dict[str, str] = {}
    with InProcessDecoder() as decoder:
        for row in rows:
            video_id = row[c.VIDEO_ID]
            outcome = decoder.decode(
                resolve_uri(row[c.URI], manifest_uri),
                "all" if keep_all else spec.sampling,
                decoder=spec.decoder,
                rotation=spec.rotation,
            )
            if not isinstance(outcome, Clip):
                failed[video_id] = f"{outcome.error_type}: {outcome.message}"
                continue
            frames = resize_and_crop(outcome.frames, resize=spec.resize_size, crop=spec.input_size)
            frame_index = np.asarray(outcome.frame_indices)
            every = None
            if keep_all:
                picked = sample_indices(spec.sampling, outcome.info.timestamps_s)
                position = {int(index): k for k, index in enumerate(frame_index)}
                every, frames = frames, frames[[position[i] for i in picked]]
                frame_index = np.asarray(picked)
            decoded[video_id] = VideoFrames(
                video_id=video_id,
                frame_index=frame_index,
                frames=frames,  # (T, 3, S, S) uint8
                all_frames=every,
            )
    if failed:
        logger.warning("%d of %d videos could not be decoded", len(failed), len(rows))
    return decoded, failed


def to_model_input(frames: torch.Tensor, spec: FrameSpec) -> torch.Tensor:
    """(T, 3, S, S) uint8 -> normalised float32, as stage 1 feeds its backbone."""
    return normalize(frames, mean=spec.mean, std=spec.std)


# ---------------------------------------------------------------------------- the objective

# Why ordered frame-pair differences rather than classifying single frames: paired actions
# (left/right, grow/shrink) show the same frames in opposite order, so one frame's label is
# ambiguous, and a frame classifier reaches its training labels by memorising each video's
# background (600-video benchmark: 0.89 training vs 0.12 validation frame accuracy). The
# difference of two frames of one video cancels what is constant in it (background, static
# distractors) and is signed by time, so the CNN learns what changes — position, size, opacity —
# which is what the temporal model needs. It uses only video labels and frame order.


@dataclass(frozen=True, kw_only=True)
class PretrainConfig:
    """Stage "pretrain": the frame CNN on ordered pairs of all frames of the training split."""

    epochs: int = 24
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    pairs_per_video: int = 8
    videos_per_batch: int = 16
    patience: int | None = 6
    # Pairs closer than this fraction of the video differ by little but noise; skip them.
    min_gap_fraction: float = 0.25
    # Both frames of a pair get the same random order of the RGB channels: the change, not the
    # colours, tells the action, and 420 videos are too few to learn that from colours alone.
    # With attribute heads, half of the pairs keep their colours, and only those train the tags.
    permute_colours: bool = True
    # Multi-task: weight of the per-frame attribute losses (tag BCE + count cross-entropy) beside
    # the pair objective; 0 trains the pair objective alone. See `attribute_targets`.
    attribute_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("epochs", "pairs_per_video", "videos_per_batch"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} ({getattr(self, name)}) must be > 0")
        if not 0 <= self.min_gap_fraction < 1:
            raise ValueError(f"min_gap_fraction ({self.min_gap_fraction}) must be in [0, 1)")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate ({self.learning_rate}) must be > 0")
        if self.patience is not None and self.patience <= 0:
            raise ValueError(f"patience ({self.patience}) must be > 0 or None")
        if not self.attribute_weight >= 0:
            raise ValueError(f"attribute_weight ({self.attribute_weight}) must be >= 0")


# Why attribute heads beside the pair objective: the pair objective cancels what is constant in a
# video, and that is exactly what captions and questions ask about (colour, shape, how many
# objects). Pretrained on order alone, the pooled features scored VQA 0.62 (colour 0.59, shape
# 0.48, count 0.51). The targets come from the training split's own annotations: every tag of the
# manifest's `labels` except the action label (a single frame cannot show an action), the answer
# of the video's `count` question, and *bindings*: for each colour in the video, which shape it
# has. Separate tags cannot tell which object is red in a scene of three objects, and VQA's "what
# shape is the yellow object?" needs exactly that, also for the small static distractors.
COUNT_QUESTION_TYPE = "count"
COLOUR_QUESTION_TYPE = "colour"
SHAPE_QUESTION_TYPE = "shape"


@dataclass(frozen=True)
class AttributeTargets:
    """Per-video targets of the attribute heads, aligned with the rows they were made from."""

    tag_names: tuple[str, ...]
    count_names: tuple[str, ...]
    colour_names: tuple[str, ...]  # the binding head has one row of shape logits per colour
    shape_names: tuple[str, ...]
    tags: torch.Tensor  # (V, K) float32 multi-hot
    counts: torch.Tensor  # (V,) int64 index into count_names; -1 where the video has none
    bindings: torch.Tensor  # (V, C) int64 index into shape_names; -1 where not known

    def select(self, positions: Sequence[int]) -> AttributeTargets:
        """The targets of the videos at `positions`, in that order."""
        index = torch.as_tensor(list(positions), dtype=torch.long)
        return replace(
            self, tags=self.tags[index], counts=self.counts[index], bindings=self.bindings[index]
        )


def attribute_targets(
    rows: Sequence[Mapping[str, Any]], *, names_of: AttributeTargets | None = None
) -> AttributeTargets:
    """Tag, count and binding targets of manifest `rows`; the names are those the rows show.

    Pass the training split's targets as `names_of` when making validation targets, so that the
    heads' outputs mean the same thing; names outside the training split's are ignored.
    """
    if names_of is None:
        tag_names = tuple(sorted({t for r in rows for t in _frame_tags(r)}))
        count_names = tuple(sorted({a for r in rows if (a := _count_answer(r)) is not None}))
        colour_names = tuple(sorted(_answers(rows, COLOUR_QUESTION_TYPE)))
        shape_names = tuple(sorted(_answers(rows, SHAPE_QUESTION_TYPE)))
    else:
        tag_names, count_names = names_of.tag_names, names_of.count_names
        colour_names, shape_names = names_of.colour_names, names_of.shape_names
    tag_index = {name: k for k, name in enumerate(tag_names)}
    count_index = {name: k for k, name in enumerate(count_names)}
    shape_index = {name: k for k, name in enumerate(shape_names)}
    tags = torch.zeros(len(rows), len(tag_names))
    counts = torch.full((len(rows),), -1, dtype=torch.long)
    bindings = torch.full((len(rows), len(colour_names)), -1, dtype=torch.long)
    colours, shapes = set(colour_names), set(shape_names)
    for i, row in enumerate(rows):
        for tag in _frame_tags(row):
            if tag in tag_index:
                tags[i, tag_index[tag]] = 1.0
        answer = _count_answer(row)
        if answer in count_index:
            counts[i] = count_index[answer]
        known = _bindings(row, colours, shapes)
        for k, colour in enumerate(colour_names):
            if colour in known:
                bindings[i, k] = shape_index[known[colour]]
    return AttributeTargets(
        tag_names=tag_names,
        count_names=count_names,
        colour_names=colour_names,
        shape_names=shape_names,
        tags=tags,
        counts=counts,
        bindings=bindings,
    )


def _frame_tags(row: Mapping[str, Any]) -> list[str]:
    return sorted({t for t in row.get(c.LABELS) or () if t != row.get(c.LABEL)})


def _count_answer(row: Mapping[str, Any]) -> str | None:
    for question in row.get(c.QUESTIONS) or ():
        if question[c.QUESTION_TYPE] == COUNT_QUESTION_TYPE:
            return question[c.ANSWER]
    return None


def _answers(rows: Sequence[Mapping[str, Any]], question_type: str) -> set[str]:
    return {
        q[c.ANSWER]
        for r in rows
        for q in r.get(c.QUESTIONS) or ()
        if q[c.QUESTION_TYPE] == question_type
    }


def _bindings(row: Mapping[str, Any], colours: set[str], shapes: set[str]) -> dict[str, str]:
    """Colour -> shape of the objects that the row's captions and questions bind: a caption's
    "red circle", "what shape is the red object?" answered "circle", and "what colour is the
    circle that ...?" answered "red". Shape questions ask for "the red object", so a colour names
    one object of the video: the head learns one shape per colour, and an unnamed colour (a
    distractor no text mentions) is left out of the loss rather than taught as absent.
    """
    bound: dict[str, str] = {}
    for caption in row.get(c.CAPTIONS) or ():
        for first, second in itertools.pairwise(words(caption)):
            if first in colours and second in shapes:
                bound[first] = second
    for question in row.get(c.QUESTIONS) or ():
        answer, kind = question[c.ANSWER], question[c.QUESTION_TYPE]
        for word in words(question[c.QUESTION]):
            if kind == SHAPE_QUESTION_TYPE and word in colours and answer in shapes:
                bound[word] = answer  # "what shape is the red object?"
            elif kind == COLOUR_QUESTION_TYPE and word in shapes and answer in colours:
                bound[answer] = word  # "what colour is the circle that ...?"
    return bound


def pretraining_model(
    encoder: nn.Module,
    feature_dim: int,
    num_classes: int,
    *,
    attributes: AttributeTargets | None = None,
) -> nn.ModuleDict:
    """The frame encoder, the linear head of the pair objective and, multi-task, linear heads for
    the tags, counts and colour -> shape bindings of `attributes`, as one trainable module.
    """
    heads: dict[str, nn.Module] = {"encoder": encoder, "head": nn.Linear(feature_dim, num_classes)}
    if attributes is not None:
        if attributes.tag_names:
            heads["tags"] = nn.Linear(feature_dim, len(attributes.tag_names))
        if attributes.count_names:
            heads["counts"] = nn.Linear(feature_dim, len(attributes.count_names))
        if attributes.colour_names and attributes.shape_names:
            num_logits = len(attributes.colour_names) * len(attributes.shape_names)
            heads["bindings"] = nn.Linear(feature_dim, num_logits)
    return nn.ModuleDict(heads)


def pair_batches(
    videos: Sequence[torch.Tensor],
    labels: torch.Tensor,
    spec: FrameSpec,
    *,
    pairs_per_video: int,
    videos_per_batch: int,
    generator: torch.Generator,
    min_gap_fraction: float = 0.0,
    permute_colours: bool = False,
    shuffle: bool = True,
    attributes: AttributeTargets | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of ordered frame pairs: "earlier" and "later" (N, 3, S, S), "labels" (N,).

    Each video of `videos` ((T_i, 3, S, S) uint8, T_i >= 2) gives `pairs_per_video` pairs
    drawn from `generator`, at least max(1, ⌈min_gap_fraction·T_i⌉) frames apart, the earlier
    frame first; with `permute_colours` both frames of a pair get one random channel order.
    With `attributes` (one row per video), batches also hold "tags" (N, K), "counts" (N,),
    "bindings" (N, C) and "true_colours" (N,) bool: colour tags and bindings need true colours,
    so then a random half of the pairs keep theirs (and only those train the tags and bindings).
    """
    if any(len(v) < 2 for v in videos):
        raise ValueError("every video needs at least 2 frames to make a pair")
    if attributes is not None and len(attributes.tags) != len(videos):
        raise ValueError(f"attributes has {len(attributes.tags)} rows for {len(videos)} videos")
    order = torch.randperm(len(videos), generator=generator) if shuffle else range(len(videos))
    order = list(order)
    for start in range(0, len(order), videos_per_batch):
        chosen = [int(i) for i in order[start : start + videos_per_batch]]
        earlier, later, pair_labels, tags, counts, bindings, kept = [], [], [], [], [], [], []
        for index in chosen:
            num_frames = len(videos[index])
            gap = min(num_frames - 1, max(1, math.ceil(min_gap_fraction * num_frames)))
            first = torch.randint(0, num_frames - gap, (pairs_per_video,), generator=generator)
            # Uniform over the frames at least `gap` after the first one.
            room = (num_frames - gap - first).double()  # (P,) choices for the second
            step = torch.rand(pairs_per_video, generator=generator, dtype=torch.float64) * room
            second = first + gap + step.long()
            first_frames, second_frames = videos[index][first], videos[index][second]
            if permute_colours:
                channels = torch.stack(
                    [torch.randperm(3, generator=generator) for _ in range(pairs_per_video)]
                )  # (P, 3)
                if attributes is not None:
                    keep = torch.rand(pairs_per_video, generator=generator) < 0.5  # (P,)
                    channels[keep] = torch.arange(3)
                    kept.append(keep)
                channels = channels.view(-1, 3, 1, 1).expand_as(first_frames)
                first_frames = first_frames.gather(1, channels)
                second_frames = second_frames.gather(1, channels)
            earlier.append(first_frames)  # (P, 3, S, S)
            later.append(second_frames)
            pair_labels.append(labels[index].expand(pairs_per_video))
            if attributes is not None:
                tags.append(attributes.tags[index].expand(pairs_per_video, -1))  # (P, K)
                counts.append(attributes.counts[index].expand(pairs_per_video))
                bindings.append(attributes.bindings[index].expand(pairs_per_video, -1))  # (P, C)
        batch = {
            "earlier": to_model_input(torch.cat(earlier), spec),  # (B·P, 3, S, S)
            "later": to_model_input(torch.cat(later), spec),
            "labels": torch.cat(pair_labels),  # (B·P,)
        }
        if attributes is not None:
            batch["tags"] = torch.cat(tags)  # (B·P, K)
            batch["counts"] = torch.cat(counts)  # (B·P,)
            batch["bindings"] = torch.cat(bindings)  # (B·P, C)
            batch["true_colours"] = (
                torch.cat(kept) if kept else torch.ones(len(batch["labels"]), dtype=torch.bool)
            )
        yield batch


def pair_loss(
    model: nn.ModuleDict, batch: dict[str, torch.Tensor], *, attribute_weight: float = 1.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy of the action named from f(later) − f(earlier), and its accuracy; with
    attribute heads and targets, + attribute_weight · (tag BCE and binding cross-entropy on the
    frames that keep their colours + count cross-entropy on every frame), reported as
    "tag_loss", "binding_accuracy" and "count_accuracy".
    """
    both = torch.cat([batch["earlier"], batch["later"]])  # (2N, 3, S, S): one BatchNorm batch
    features = model["encoder"](both)  # (2N, D)
    earlier, later = features.chunk(2)  # (N, D) each
    logits = model["head"](later - earlier)  # (N, C)
    loss = F.cross_entropy(logits, batch["labels"])
    accuracy = (logits.detach().argmax(dim=-1) == batch["labels"]).float().mean()
    stats = {"accuracy": float(accuracy)}
    true = batch["true_colours"].repeat(2) if "true_colours" in batch else None  # (2N,)
    true = slice(None) if true is None else true
    coloured = features[true]  # (M, D): the frames that show true colours
    if "tags" in model and "tags" in batch and len(coloured):
        tag_targets = batch["tags"].repeat(2, 1)[true]  # (M, K): both frames carry the tags
        # Summed over tags, not averaged: averaged, each tag weighs 1/K of the action and the
        # tags were barely learnt (BCE 0.69 -> 0.60 in 5 epochs, colour and shape in every frame).
        tag_loss = (
            F.binary_cross_entropy_with_logits(
                model["tags"](coloured), tag_targets, reduction="none"
            )
            .sum(dim=1)
            .mean()
        )
        loss = loss + attribute_weight * tag_loss
        stats["tag_loss"] = float(tag_loss.detach())
    if "bindings" in model and "bindings" in batch and len(coloured):
        targets = batch["bindings"].repeat(2, 1)[true]  # (M, C); -1: not known
        known = targets >= 0
        if bool(known.any()):
            logits = model["bindings"](coloured).view(*targets.shape, -1)  # (M, C, S)
            # Summed over the known colours of a frame, like the tags; averaged over frames.
            total = F.cross_entropy(logits[known], targets[known], reduction="sum")
            loss = loss + attribute_weight * total / len(coloured)
            hits = logits.detach()[known].argmax(dim=-1) == targets[known]
            stats["binding_accuracy"] = float(hits.float().mean())
    if "counts" in model and "counts" in batch:
        count_targets = batch["counts"].repeat(2)  # (2N,); -1: no count question
        known = count_targets >= 0
        if bool(known.any()):
            count_logits = model["counts"](features[known])  # (M, num_counts)
            count_loss = F.cross_entropy(count_logits, count_targets[known])
            loss = loss + attribute_weight * count_loss
            hits = count_logits.detach().argmax(dim=-1) == count_targets[known]
            stats["count_accuracy"] = float(hits.float().mean())
    return loss, stats


def pair_val_fn(model: nn.ModuleDict, batches: Sequence[dict[str, torch.Tensor]]) -> dict:
    """Loss and accuracy of the pair objective over fixed validation pairs (model in eval mode)."""
    device = next(model.parameters()).device
    sums: dict[str, float] = {}
    count = 0
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        loss, stats = pair_loss(model, batch)
        size = len(batch["labels"])
        for key, value in {"loss": float(loss), **stats}.items():
            sums[key] = sums.get(key, 0.0) + value * size
        count += size
    if count == 0:
        raise ValueError("no validation pairs")
    return {key: total / count for key, total in sums.items()}


# ---------------------------------------------------------------------------- export


def backbone_config() -> SmallCNNConfig:
    """The `small_cnn` backbone's own config (built on the meta device: no memory, no RNG draw)."""
    with torch.device("meta"):
        return backbone_spec(BACKBONE_NAME).build().config


def backbone_weights_bytes(encoder: SmallCNN) -> bytes:
    """`encoder`'s weights as a safetensors file that `small_cnn` loads as a backbone.

    The encoder must have the backbone's own shape (`BACKBONES["small_cnn"]`), else stage 1
    could not rebuild it; the head, if any, is left out.
    """
    expected = backbone_config()
    shape = ("widths", "coord_conv", "pool_grid", "first_stride")
    if not isinstance(encoder, SmallCNN) or any(
        getattr(encoder.config, name) != getattr(expected, name) for name in shape
    ):
        raise ValueError(f"encoder must be a SmallCNN shaped like the {BACKBONE_NAME} backbone")
    state = {
        key: tensor.detach().cpu().contiguous()
        for key, tensor in encoder.state_dict().items()
        if not key.startswith("head.")
    }
    return safetensors.torch.save(state)


def backbone_feature_set_id(
    weights: bytes, weights_uri: str, spec: FrameSpec
) -> tuple[str, FeatureSetSpec]:
    """The id of the feature set `vidpipe extract --backbone small_cnn --weights weights_uri
    --input-size S --sampling X` makes from these weights (default dtype, precision, decoder).
    """
    loaded = load_weights_bytes(BACKBONE_NAME, weights, weights_uri)
    feature_spec = FeatureSetSpec(
        backbone=BACKBONE_NAME,
        weights=weights_uri,
        weights_digest=loaded.digest,
        input_size=spec.input_size,
        resize_size=spec.input_size,  # weights files resize straight to the crop
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        sampling=spec.sampling,
        streams=("rgb",),
        flow=None,
        decoder=spec.decoder,
        rotation=spec.rotation,
        dtype="float32",
        precision="fp32",
        spatial_map=False,
    )
    return feature_spec.feature_set_id, feature_spec


def extract_command(manifest_uri: str, root: str, weights_uri: str, spec: FrameSpec) -> str:
    """The `vidpipe extract` line that stores features of the pretrained backbone."""
    return (
        f"vidpipe extract --manifest {manifest_uri} --out {root} --backbone {BACKBONE_NAME} "
        f"--weights {weights_uri} --input-size {spec.input_size} --sampling {spec.sampling}"
        + (f" --decoder {spec.decoder}" if spec.decoder != "auto" else "")
    )


def random_crop(num_frames: int, min_fraction: float, generator: torch.Generator) -> slice:
    """A random run of consecutive frames, at least ⌈min_fraction·T⌉ long (temporal jitter)."""
    shortest = max(1, math.ceil(min_fraction * num_frames))
    length = int(torch.randint(shortest, num_frames + 1, (1,), generator=generator))
    start = int(torch.randint(0, num_frames - length + 1, (1,), generator=generator))
    return slice(start, start + length)
