"""Our RunInference ModelHandler: a model folder loaded once per worker, videos run as padded batches.

`load_model()` reads ROOT/models/<id>/ (safetensors, never pickle); `run_inference(batch, model)`
pads variable-length videos, masks them and turns the outputs into one PredictionResult per
video: class scores, a caption with its attention over frames, or answers to its questions.
A non-finite output raises, so the batch goes to RunInference's dead-letter output.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from hybrid_models.sequences import pad_sequences
from pipelines.artifacts import LoadedModel, read_model
from pipelines.inference.examples import VideoExample

logger = logging.getLogger(__name__)

# What an action model's forward takes before the mask (the zoo's input kinds).
FEATURES, RGB_FLOW, MAPS = "features", "rgb+flow", "maps"
FEATURE_INPUTS = (FEATURES, RGB_FLOW, MAPS)
TASKS = ("action", "caption", "vqa")


@dataclass(frozen=True, kw_only=True)
class DecodingConfig:
    """How captions are decoded: greedy when beam_size is 1, else beam search."""

    beam_size: int = 1
    max_length: int = 20
    length_penalty: float = 0.0

    def __post_init__(self) -> None:
        if self.beam_size <= 0:
            raise ValueError(f"beam_size ({self.beam_size}) must be > 0")
        if self.max_length <= 0:
            raise ValueError(f"max_length ({self.max_length}) must be > 0")
        if self.length_penalty < 0:
            raise ValueError(f"length_penalty ({self.length_penalty}) must be >= 0")


@dataclass(frozen=True)
class ReadyModel:
    """A loaded model folder with what its outputs need to become rows."""

    loaded: LoadedModel
    task: str
    input_kind: str
    streams: tuple[str, ...]  # the streams its forward takes, in order
    class_names: tuple[str, ...] | None  # action
    multi_label: bool  # action: sigmoid scores instead of softmax
    vocabulary: Any = None  # caption: hybrid_models.vocabulary.Vocabulary
    question_vocabulary: Any = None  # vqa
    answers: Any = None  # vqa: hybrid_models.vocabulary.AnswerVocabulary
    device: str = "cpu"


def model_input_kind(meta: Mapping[str, Any]) -> str:
    """What the model's forward takes: the zoo entry's input kind (caption/VQA models: features)."""
    from hybrid_models import zoo

    entry = zoo.model_entry(str(meta["model"]))
    if entry.task in ("caption", "vqa"):
        return FEATURES
    return entry.inputs


def model_streams(
    meta: Mapping[str, Any], input_kind: str, feature_set_streams: Sequence[str]
) -> tuple[str, ...]:
    """The feature-set streams the model reads, in the order its forward takes them.

    Two-stream models read rgb and flow; the others the streams named by the model folder's
    `extra["streams"]` (caption and VQA models read several side by side), else the feature
    set's first stream (as training does).
    """
    if input_kind == RGB_FLOW:
        return ("rgb", "flow")
    named = meta.get("extra", {}).get("streams")
    if isinstance(named, str):
        named = [named]
    if named:
        return tuple(str(stream) for stream in named)
    return (str(feature_set_streams[0]),)


def multi_label_of(config: Any) -> bool:
    """Whether an action config scores classes independently (sigmoid)."""
    for holder in (config, getattr(config, "rgb", None), getattr(config, "temporal", None)):
        if holder is not None and hasattr(holder, "multi_label"):
            return bool(holder.multi_label)
    return False


def _json_text(value: Any) -> str:
    """A vocabulary as stored in model.json: its JSON text, or the object that text encodes."""
    return value if isinstance(value, str) else json.dumps(value)


def prepare_model(
    loaded: LoadedModel, feature_set_streams: Sequence[str], device: str
) -> ReadyModel:
    """`loaded` on `device` with the names and vocabularies its outputs are decoded with."""
    from hybrid_models.vocabulary import AnswerVocabulary, Vocabulary

    meta, extra = loaded.meta, loaded.extra
    task = loaded.task
    needed = {"action": ("class_names",), "caption": ("vocabulary",)}.get(
        task, ("question_vocabulary", "answers")
    )
    missing = [key for key in needed if key not in extra]
    if missing:
        raise ValueError(
            f"model {loaded.model_id!r} lacks {', '.join(missing)} in model.json's extra, "
            f"which its {task} predictions are decoded with"
        )
    input_kind = model_input_kind(meta)
    streams = model_streams(meta, input_kind, feature_set_streams)
    model = loaded.model.to(device).eval()
    loaded = LoadedModel(model=model, config=loaded.config, meta=meta)
    class_names = vocabulary = question_vocabulary = answers = None
    if task == "action":
        class_names = tuple(extra["class_names"])
    elif task == "caption":
        vocabulary = Vocabulary.from_json(_json_text(extra["vocabulary"]))
    elif task == "vqa":
        question_vocabulary = Vocabulary.from_json(_json_text(extra["question_vocabulary"]))
        stored = extra["answers"]
        answers = (
            AnswerVocabulary(stored)
            if isinstance(stored, list)
            else AnswerVocabulary.from_json(_json_text(stored))
        )
    return ReadyModel(
        loaded=loaded,
        task=task,
        input_kind=input_kind,
        streams=streams,
        class_names=class_names,
        multi_label=multi_label_of(loaded.config) if task == "action" else False,
        vocabulary=vocabulary,
        question_vocabulary=question_vocabulary,
        answers=answers,
        device=device,
    )


def check_device(device: str) -> None:
    """ValueError for a device this machine lacks: no silent fallback from GPU to CPU."""
    if device == "cpu":
        return
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was asked for but CUDA is not available")
        return
    raise ValueError(f"device {device!r} must be 'cpu' or 'cuda[:N]'")


# ---------------------------------------------------------------------------
# Pure inference: tensors in, plain dicts out


def _padded(arrays: Sequence[np.ndarray], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(  # type: ignore[return-value]
        tensor.to(device) for tensor in pad_sequences([torch.from_numpy(a) for a in arrays])
    )


def _check_finite(name: str, values: torch.Tensor, examples: Sequence[VideoExample]) -> None:
    finite = torch.isfinite(values.reshape(len(examples), -1)).all(dim=1)
    if not bool(finite.all()):
        bad = examples[int((~finite).nonzero()[0])]
        raise ValueError(
            f"video {bad.video_id!r}: the model's {name} are not finite (are its features?)"
        )


def predict_actions(ready: ReadyModel, examples: Sequence[VideoExample]) -> list[dict[str, Any]]:
    """Per video: `scores` (C,) class probabilities and `attention` (T,) or None."""
    model, device = ready.loaded.model, ready.device
    with torch.no_grad():
        if ready.input_kind == RGB_FLOW:
            rgb, mask = _padded([e.features["rgb"] for e in examples], device)  # (B, T, D)
            flow, _ = _padded([e.features["flow"] for e in examples], device)
            output = model(rgb, flow, mask)
        elif ready.input_kind == MAPS:
            maps, mask = _padded([e.spatial_map for e in examples], device)  # (B, T, C, H, W)
            output = model(maps, mask)
        else:
            (stream,) = ready.streams
            features, mask = _padded([e.features[stream] for e in examples], device)
            output = model(features, mask)
        logits = output.logits  # (B, C)
        probabilities = torch.sigmoid(logits) if ready.multi_label else logits.softmax(dim=-1)
        _check_finite("scores", probabilities, examples)
    scores = probabilities.float().cpu().numpy()
    attention = None if output.attention is None else output.attention.float().cpu().numpy()
    return [
        {
            "scores": scores[row],
            "attention": None if attention is None else attention[row, : example.num_frames],
        }
        for row, example in enumerate(examples)
    ]


def _joined(example: VideoExample, streams: Sequence[str]) -> np.ndarray:
    """The video's features of `streams` side by side per frame, as caption and VQA training
    concatenates them (rgb ‖ flow): (T, D·len(streams))."""
    if len(streams) == 1:
        return example.features[streams[0]]
    return np.concatenate([example.features[stream] for stream in streams], axis=-1)


def predict_captions(
    ready: ReadyModel, examples: Sequence[VideoExample], decoding: DecodingConfig
) -> list[dict[str, Any]]:
    """Per video: `tokens` (the caption's words) and `attention` (words, T) over its frames."""
    from hybrid_models.decoding import beam_search, greedy_decode
    from hybrid_models.vocabulary import EOS_INDEX, SPECIALS

    features, mask = _padded([_joined(e, ready.streams) for e in examples], ready.device)
    model = ready.loaded.model
    if decoding.beam_size == 1:
        decoded = greedy_decode(model, features, mask, decoding.max_length)
    else:
        decoded = beam_search(
            model,
            features,
            mask,
            decoding.beam_size,
            decoding.max_length,
            length_penalty=decoding.length_penalty,
        )
    _check_finite("attention weights", decoded.attention, examples)
    tokens = decoded.tokens.cpu().numpy()  # (B, L)
    attention = decoded.attention.float().cpu().numpy()  # (B, L, T)
    words_of = ready.vocabulary.tokens
    results = []
    for row, example in enumerate(examples):
        # Special tokens other than <eos> (an <unk>) are dropped with their attention row, so
        # the rows stay one per word.
        positions = []
        for position, token in enumerate(tokens[row]):
            if token == EOS_INDEX:
                break
            if token >= len(SPECIALS):
                positions.append(position)
        results.append(
            {
                "tokens": [words_of[tokens[row, p]] for p in positions],
                "attention": attention[row, positions, : example.num_frames],  # (W, T)
            }
        )
    return results


def predict_answers(ready: ReadyModel, examples: Sequence[VideoExample]) -> list[dict[str, Any]]:
    """Per video: `answers`, one dict per question (answer, score, attention (T,) over frames)."""
    from hybrid_models.vocabulary import pad_token_ids

    pairs = [(example, question) for example in examples for question in example.questions]
    if not pairs:
        return [{"answers": []} for _ in examples]
    encoded = []
    for example, question in pairs:
        ids = ready.question_vocabulary.encode(question.question, bos_eos=False)
        if not ids:
            raise ValueError(
                f"question {question.question_index} of video {example.video_id!r} has no words"
            )
        encoded.append(ids)
    features, mask = _padded(
        [_joined(example, ready.streams) for example, _ in pairs], ready.device
    )
    questions = pad_token_ids(encoded).to(ready.device)  # (Q, L)
    with torch.no_grad():
        output = ready.loaded.model(features, mask, questions)
        probabilities = output.logits.softmax(dim=-1)  # (Q, A)
    pair_examples = [example for example, _ in pairs]
    _check_finite("answer scores", probabilities, pair_examples)
    _check_finite("attention weights", output.attention, pair_examples)
    best_score, best = probabilities.max(dim=-1)
    attention = output.attention.float().cpu().numpy()  # (Q, T)
    by_video: dict[int, list[dict[str, Any]]] = {id(example): [] for example in examples}
    for row, (example, question) in enumerate(pairs):
        by_video[id(example)].append(
            {
                "question_index": question.question_index,
                "question": question.question,
                "question_type": question.question_type,
                "answer": ready.answers.decode(int(best[row])),
                "score": float(best_score[row]),
                "attention": attention[row, : example.num_frames],
            }
        )
    return [{"answers": by_video[id(example)]} for example in examples]


# ---------------------------------------------------------------------------
# The Beam side


class VideoModelHandler(ModelHandler[VideoExample, PredictionResult, ReadyModel]):
    """RunInference's handler for vidpipe's models; one PredictionResult per video example.

    The model is loaded once per worker process and shared by its threads (Beam's `shared`);
    batches hold at most `batch_size` videos (RunInference's own batching, or ours before it).
    """

    def __init__(
        self,
        model_uri: str,
        *,
        feature_set_streams: Sequence[str] = ("rgb",),
        batch_size: int = 16,
        decoding: DecodingConfig | None = None,
        device: str = "cpu",
    ):
        if batch_size <= 0:
            raise ValueError(f"batch_size ({batch_size}) must be > 0")
        self._model_uri = model_uri
        self._feature_set_streams = tuple(feature_set_streams)
        self._batch_size = batch_size
        self._decoding = decoding or DecodingConfig()
        self._device = device

    def load_model(self) -> ReadyModel:
        check_device(self._device)
        logger.info("loading model %s on %s", self._model_uri, self._device)
        return prepare_model(read_model(self._model_uri), self._feature_set_streams, self._device)

    def run_inference(
        self,
        batch: Sequence[VideoExample],
        model: ReadyModel,
        inference_args: dict[str, Any] | None = None,
    ) -> list[PredictionResult]:
        examples = list(batch)
        if not examples:
            return []
        if model.task == "action":
            outputs = predict_actions(model, examples)
        elif model.task == "caption":
            outputs = predict_captions(model, examples, self._decoding)
        elif model.task == "vqa":
            outputs = predict_answers(model, examples)
        else:
            raise ValueError(f"task {model.task!r} must be one of {', '.join(TASKS)}")
        return [
            PredictionResult(example, output, model.loaded.model_id)
            for example, output in zip(examples, outputs, strict=True)
        ]

    def batch_elements_kwargs(self) -> Mapping[str, Any]:
        return {"min_batch_size": 1, "max_batch_size": self._batch_size}

    def get_num_bytes(self, batch: Sequence[VideoExample]) -> int:
        return sum(example.num_bytes for example in batch)

    def get_metrics_namespace(self) -> str:
        return "vidpipe_infer"
