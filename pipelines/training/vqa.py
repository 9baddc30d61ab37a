"""`vidpipe train --task vqa`: a video question-answering model trained on a feature set (answers
as classes), early-stopped on validation accuracy, scored on the test split overall and per
question type with the evaluation's own metric, and written as a model folder.

Stream selection, feature scaling folded into the model and resumable stages come from
`pipelines.training.caption`, which the two language tasks share.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn

from hybrid_models import zoo
from hybrid_models.decoding import eval_mode
from hybrid_models.sequences import pad_sequences
from hybrid_models.training.loop import TrainConfig
from hybrid_models.training.vqa import (
    VQAExample,
    vqa_batches,
    vqa_loss_fn,
    vqa_train_batches,
    vqa_val_fn,
)
from hybrid_models.video3d import count_parameters
from hybrid_models.vocabulary import AnswerVocabulary, Vocabulary, pad_token_ids
from pipelines.metrics.base import evaluate
from pipelines.metrics.vqa import AnsweredQuestion, VqaAccuracy
from pipelines.training.caption import (
    FeatureScaling,
    LanguageSummary,
    check_action_only_flags,
    check_streams,
    fold_scaling,
    parse_model_config,
    parse_streams,
    read_language_inputs,
)
from pipelines.training.common import (
    EpochHook,
    EpochRecorder,
    ModelFolder,
    Stopwatch,
    check_device,
    finish_run,
    fit_stage,
    jsonable,
    shared_fields,
    start_run,
)
from pipelines.training.data import TrainingVideo
from schemas import SPLITS
from schemas import columns as c

logger = logging.getLogger(__name__)

VQA_MODELS = tuple(name for name, entry in zoo.MODELS.items() if entry.task == "vqa")
EVAL_BATCH_SIZE = 256
STAGE = "train"  # the one stage, as training_log.jsonl names it


@dataclass(frozen=True, kw_only=True)
class VQATrainConfig:
    """What `vidpipe train --task vqa` was asked to do; written as train_config.json."""

    model: str
    features: str  # ROOT/features/<id>
    manifest: str
    out: str  # ROOT/models/<id>
    streams: tuple[str, ...] | None = None  # concatenated per frame; None: all of the set's
    epochs: int = 40
    batch_size: int = 32  # questions per batch
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    seed: int = 0
    patience: int | None = 10  # epochs without a better validation accuracy before stopping
    device: str = "cpu"
    amp: bool = False
    resume: bool = False
    progress: bool = True
    model_config: Mapping[str, Any] = field(default_factory=dict)  # zoo config overrides
    label_smoothing: float = 0.0
    temporal_jitter: float = 0.0  # each epoch, each question sees a random run of ≥ this share

    def __post_init__(self) -> None:
        if self.model not in VQA_MODELS:
            raise ValueError(
                f"model {self.model!r} is not a VQA model; expected one of {', '.join(VQA_MODELS)}"
            )
        for name in ("epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} ({getattr(self, name)}) must be > 0")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate ({self.learning_rate}) must be > 0")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay ({self.weight_decay}) must be >= 0")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing ({self.label_smoothing}) must be in [0, 1)")
        if not 0 <= self.temporal_jitter <= 1:
            raise ValueError(f"temporal_jitter ({self.temporal_jitter}) must be in [0, 1]")
        if self.patience is not None and self.patience <= 0:
            raise ValueError(f"patience ({self.patience}) must be > 0 or None")
        check_streams(self.streams)
        if self.amp and not self.device.startswith("cuda"):
            raise ValueError(f"amp needs a CUDA device, got device {self.device!r}")


def config_from_args(args: argparse.Namespace) -> VQATrainConfig:
    """The parsed `vidpipe train --task vqa` flags as a config; ValueError for bad ones."""
    check_action_only_flags(args, "vqa", allowed=("temporal_jitter",))
    if args.features is None:
        raise ValueError("--features is required for --task vqa")
    return VQATrainConfig(
        **shared_fields(args),
        streams=parse_streams(args.streams),
        model_config=parse_model_config(args.model_config),
        temporal_jitter=getattr(args, "temporal_jitter", None) or 0.0,
    )


@dataclass(frozen=True)
class HeldOutQuestion:
    """A test question as inference sees it: raw stored features, words, the true answer."""

    video_id: str
    features: torch.Tensor  # (T, D), not scaled
    question: tuple[int, ...]
    question_type: str
    answer: str


@dataclass(frozen=True, eq=False)
class VQAPlan:
    """A checked run: questions by split, the vocabularies, and the model to build."""

    config: VQATrainConfig
    folder: ModelFolder
    feature_set: dict
    streams: tuple[str, ...]
    question_vocabulary: Vocabulary
    answers: AnswerVocabulary
    question_types: tuple[str, ...]
    scaling: FeatureScaling
    train: list[VQAExample]  # scaled features
    val: list[VQAExample]
    test: list[HeldOutQuestion]
    model_fields: Mapping[str, Any]
    num_videos: Mapping[str, int]
    num_missing: int


def plan(config: VQATrainConfig) -> VQAPlan:
    """Read and check everything; raises ValueError or FileNotFoundError and writes nothing."""
    inputs = read_language_inputs(config, has=lambda v: bool(v.questions), what="questions")
    folder, record, streams, data = inputs.folder, inputs.record, inputs.streams, inputs.data
    by_split, frames, scaling = inputs.by_split, inputs.frames, inputs.scaling
    train_questions = [q for v in by_split["train"] for q in v.questions]
    question_vocabulary = Vocabulary.build(q[c.QUESTION] for q in train_questions)
    answers = AnswerVocabulary.build(q[c.ANSWER] for q in train_questions)
    if len(answers) < 3:  # <unk> and at least two answers
        raise ValueError(f"the training split has {len(answers) - 1} distinct answer(s); need >= 2")
    question_types = tuple(
        sorted({q[c.QUESTION_TYPE] for s in SPLITS for v in by_split[s] for q in v.questions})
    )

    def words(question: Mapping[str, Any]) -> tuple[int, ...]:
        return tuple(question_vocabulary.encode(question[c.QUESTION], bos_eos=False))

    def examples(videos: Sequence[TrainingVideo]) -> list[VQAExample]:
        return [
            VQAExample(
                features=scaled,
                question=words(q),
                answer=answers.encode(q[c.ANSWER]),
                question_type=question_types.index(q[c.QUESTION_TYPE]),
            )
            for v in videos
            for scaled in (scaling.apply(frames[v.video_id]),)
            for q in v.questions
            if words(q)
        ]

    test = [
        HeldOutQuestion(v.video_id, frames[v.video_id], words(q), q[c.QUESTION_TYPE], q[c.ANSWER])
        for v in by_split["test"]
        for q in v.questions
        if words(q)
    ]
    skipped = sum(1 for s in SPLITS for v in by_split[s] for q in v.questions if not words(q))
    if skipped:
        logger.warning("%d questions have no words and are left out", skipped)
    fields: dict[str, Any] = {
        "feature_dim": int(scaling.mean.shape[0]),
        "question_vocab_size": len(question_vocabulary),
        "num_answers": len(answers),
        **config.model_config,
    }
    entry = zoo.MODELS[config.model]
    zoo.config_from_dict(entry.config_type, {**entry.defaults, **fields})  # validates now
    return VQAPlan(
        config=config,
        folder=folder,
        feature_set=record,
        streams=streams,
        question_vocabulary=question_vocabulary,
        answers=answers,
        question_types=question_types,
        scaling=scaling,
        train=examples(by_split["train"]),
        val=examples(by_split["val"]),
        test=test,
        model_fields=fields,
        num_videos={split: len(by_split[split]) for split in SPLITS},
        num_missing=data.num_missing + len(data.videos) - len(frames),
    )


def predict_answers(
    model: nn.Module,
    questions: Sequence[HeldOutQuestion],
    answers: AnswerVocabulary,
    *,
    device: torch.device | str = "cpu",
) -> list[str]:
    """The top answer to each question, from raw features (the model has the scaling folded in)."""
    predicted: list[str] = []
    with torch.no_grad(), eval_mode(model):
        for start in range(0, len(questions), EVAL_BATCH_SIZE):
            chunk = questions[start : start + EVAL_BATCH_SIZE]
            features, mask = pad_sequences([q.features for q in chunk])  # (B, T, D), (B, T)
            tokens = pad_token_ids([q.question for q in chunk])  # (B, L)
            logits = model(features.to(device), mask.to(device), tokens.to(device)).logits
            predicted += [answers.decode(int(i)) for i in logits.argmax(dim=1).cpu()]
    return predicted


def score_test_split(
    model: nn.Module, vqa_plan: VQAPlan, *, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """Accuracy overall and per question type, by `pipelines.metrics.vqa` as the evaluation does."""
    predicted = predict_answers(model, vqa_plan.test, vqa_plan.answers, device=device)
    samples = [
        AnsweredQuestion(question_type=q.question_type, predicted_answer=p, answer=q.answer)
        for q, p in zip(vqa_plan.test, predicted, strict=True)
    ]
    return evaluate(VqaAccuracy(), samples)


def train(config: VQATrainConfig, *, on_epoch_end: EpochHook | None = None) -> LanguageSummary:
    """Plan and run one training (see `plan` and `run`)."""
    return run(plan(config), on_epoch_end=on_epoch_end)


def run(vqa_plan: VQAPlan, *, on_epoch_end: EpochHook | None = None) -> LanguageSummary:
    """Train, score the test split and write the model folder; `on_epoch_end(stage, state,
    record)` is called after each epoch once its state is saved.
    """
    config = vqa_plan.config
    folder = vqa_plan.folder
    start_run(folder, jsonable(config), resume=config.resume)
    clock = Stopwatch()
    device = check_device(config.device)
    model = zoo.build_model(config.model, seed=config.seed, **vqa_plan.model_fields)
    recorder = EpochRecorder(folder)
    result = fit_stage(
        STAGE,
        model,
        folder=folder,
        resume=config.resume,
        recorder=recorder,
        train_config=TrainConfig(
            epochs=config.epochs,
            learning_rate=config.learning_rate,
            weight_decay=config.weight_decay,
            patience=config.patience,
            monitor="val_accuracy",
            mode="max",
            seed=config.seed,
            device=config.device,
            amp=config.amp,
            progress=config.progress,
        ),
        train_batches=vqa_train_batches(
            vqa_plan.train,
            batch_size=config.batch_size,
            seed=config.seed,
            temporal_jitter=config.temporal_jitter,
        ),
        loss_fn=partial(vqa_loss_fn, label_smoothing=config.label_smoothing),
        val_fn=partial(
            vqa_val_fn,
            batches=vqa_batches(vqa_plan.val, batch_size=EVAL_BATCH_SIZE),
            type_names=vqa_plan.question_types,
        ),
        on_epoch_end=on_epoch_end,
    )
    final = fold_scaling(model, vqa_plan.scaling).to(device)
    metrics = score_test_split(final, vqa_plan, device=device)
    num_parameters = count_parameters(final)
    extra = {
        "inputs": zoo.MODELS[config.model].inputs,
        "streams": list(vqa_plan.streams),
        "spatial": False,
        "feature_set_id": vqa_plan.feature_set["feature_set_id"],
        "question_vocabulary": vqa_plan.question_vocabulary.to_json(),
        "answers": vqa_plan.answers.to_json(),
        "question_types": list(vqa_plan.question_types),
        "best_epoch": result.best_epoch,
        "best_val_accuracy": result.best_metric,
        "test_metrics": metrics,
        "num_parameters": num_parameters,
        "num_videos": dict(vqa_plan.num_videos),
        "num_questions": {
            "train": len(vqa_plan.train),
            "val": len(vqa_plan.val),
            "test": len(vqa_plan.test),
        },
        "num_missing": vqa_plan.num_missing,
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
        epochs_run=len(result.history),
    )


def describe(summary: LanguageSummary) -> str:
    """Lines for people: where the model is and its test accuracy, per question type too."""
    metrics = summary.test_metrics
    lines = [
        f"model {summary.meta['model']} at {summary.model_uri} "
        f"({summary.num_parameters:,} parameters, {summary.epochs_run} epochs, "
        f"{summary.train_seconds:.1f} s)",
        f"test: accuracy {metrics['accuracy']:.3f} on {metrics['num_questions']} questions",
    ]
    for question_type, entry in metrics["per_question_type"].items():
        lines.append(
            f"  {question_type}: {entry['accuracy']:.3f} "
            f"({entry['num_correct']}/{entry['num_questions']})"
        )
    return "\n".join(lines)
