"""Video QA pieces for the generic training loop: batches, the loss, and accuracy per question type.

`vqa_loss_fn(model, batch) -> (loss, stats)` and `vqa_val_fn(model) -> metrics` plug into
`fit`; their extra keyword arguments are bound with functools.partial.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from hybrid_models.decoding import eval_mode
from hybrid_models.sequences import pad_sequences
from hybrid_models.vocabulary import ANSWER_UNK_INDEX, pad_token_ids
from hybrid_models.vqa import VideoQA, vqa_loss

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VQAExample:
    """One question about one video: word ids (no <bos>/<eos> needed), answer class, type index."""

    features: torch.Tensor  # (T, D)
    question: tuple[int, ...]
    answer: int
    question_type: int

    def __post_init__(self) -> None:
        if self.features.dim() != 2 or self.features.shape[0] == 0:
            raise ValueError(
                f"features must be (T, D) with T > 0, got {tuple(self.features.shape)}"
            )
        if not self.question:
            raise ValueError("question is empty")
        if self.answer < 0:
            raise ValueError(f"answer ({self.answer}) must be >= 0")
        if self.question_type < 0:
            raise ValueError(f"question_type ({self.question_type}) must be >= 0")


@dataclass(frozen=True)
class VQABatch:
    features: torch.Tensor  # (B, T, D)
    mask: torch.Tensor  # (B, T) bool
    questions: torch.Tensor  # (B, L) token ids, <pad> after
    answers: torch.Tensor  # (B,)
    question_types: torch.Tensor  # (B,)

    def to(self, device: torch.device | str) -> VQABatch:
        return VQABatch(
            features=self.features.to(device),
            mask=self.mask.to(device),
            questions=self.questions.to(device),
            answers=self.answers.to(device),
            question_types=self.question_types.to(device),
        )


def collate_questions(examples: Sequence[VQAExample]) -> VQABatch:
    if not examples:
        raise ValueError("examples is empty")
    features, mask = pad_sequences([example.features for example in examples])
    return VQABatch(
        features=features,
        mask=mask,
        questions=pad_token_ids([example.question for example in examples]),
        answers=torch.tensor([example.answer for example in examples], dtype=torch.long),
        question_types=torch.tensor(
            [example.question_type for example in examples], dtype=torch.long
        ),
    )


def vqa_batches(examples: Sequence[VQAExample], *, batch_size: int) -> list[VQABatch]:
    """The examples in order, in batches (validation)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size ({batch_size}) must be > 0")
    return [
        collate_questions(examples[start : start + batch_size])
        for start in range(0, len(examples), batch_size)
    ]


def vqa_train_batches(
    examples: Sequence[VQAExample], *, batch_size: int, seed: int, temporal_jitter: float = 0.0
) -> Callable[[int], list[VQABatch]]:
    """`train_batches(epoch)` for `fit`: a fresh shuffle per (seed, epoch).

    With `temporal_jitter` f > 0, each example's frames are a random run of at least ⌈f·T⌉
    consecutive frames, drawn anew each epoch (as the action task's `--temporal-jitter`).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size ({batch_size}) must be > 0")
    if not examples:
        raise ValueError("examples is empty")
    if not 0.0 <= temporal_jitter <= 1.0:
        raise ValueError(f"temporal_jitter ({temporal_jitter}) must be in [0, 1]")

    def train_batches(epoch: int) -> list[VQABatch]:
        state = np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0]
        generator = torch.Generator().manual_seed(int(state))
        order = torch.randperm(len(examples), generator=generator).tolist()
        chosen = [examples[index] for index in order]
        if temporal_jitter > 0:
            chosen = [jittered(e, temporal_jitter, generator) for e in chosen]
        return vqa_batches(chosen, batch_size=batch_size)

    return train_batches


def jittered(example: VQAExample, min_fraction: float, generator: torch.Generator) -> VQAExample:
    """`example` with its frames cut to a random run of at least ⌈min_fraction·T⌉ of them.

    Why: each video is asked 4–5 questions, and the models fit the training questions within a
    few epochs by memorising the videos' frames; a different run of frames each epoch forces
    them to read what the question asks (measured on the 600-video benchmark: see docs/models.md).
    """
    num_frames = example.features.shape[0]
    shortest = max(1, math.ceil(min_fraction * num_frames))
    length = int(torch.randint(shortest, num_frames + 1, (1,), generator=generator))
    start = int(torch.randint(0, num_frames - length + 1, (1,), generator=generator))
    return replace(example, features=example.features[start : start + length])


def vqa_loss_fn(
    model: VideoQA, batch: VQABatch, *, label_smoothing: float = 0.0
) -> tuple[torch.Tensor, dict[str, float]]:
    output = model(batch.features, batch.mask, batch.questions)
    return vqa_loss(output, batch.answers, label_smoothing=label_smoothing)


def vqa_accuracy(
    predictions: torch.Tensor,
    answers: torch.Tensor,
    question_types: torch.Tensor,
    type_names: Sequence[str],
) -> dict[str, float]:
    """Accuracy overall and per question type ("accuracy_<type>", types with no questions left out).

    An answer unseen in training (<unk>) counts as wrong whatever is predicted.
    """
    if not (predictions.shape == answers.shape == question_types.shape):
        raise ValueError(
            f"predictions {tuple(predictions.shape)}, answers {tuple(answers.shape)} and"
            f" question_types {tuple(question_types.shape)} must have one shape"
        )
    if predictions.numel() == 0:
        raise ValueError("no questions to score")
    if int(question_types.max()) >= len(type_names) or int(question_types.min()) < 0:
        raise ValueError(
            f"question type {int(question_types.max())} has no name in {list(type_names)}"
        )
    correct = (predictions == answers) & (answers != ANSWER_UNK_INDEX)
    metrics = {"accuracy": float(correct.float().mean())}
    for index, name in enumerate(type_names):
        of_type = question_types == index
        if bool(of_type.any()):
            metrics[f"accuracy_{name}"] = float(correct[of_type].float().mean())
    return metrics


def vqa_val_fn(
    model: VideoQA, *, batches: Sequence[VQABatch], type_names: Sequence[str]
) -> dict[str, float]:
    """Accuracy of the model's top answer on every batch, overall and per question type.

    Batches are moved to the model's device; the model is given back in its mode.
    """
    if not batches:
        raise ValueError("batches is empty")
    predictions, answers, types = [], [], []
    device = next(model.parameters()).device
    with torch.no_grad(), eval_mode(model):
        for batch in (b.to(device) for b in batches):
            logits = model(batch.features, batch.mask, batch.questions).logits
            predictions.append(logits.argmax(dim=1).cpu())
            answers.append(batch.answers.cpu())
            types.append(batch.question_types.cpu())
    metrics = vqa_accuracy(torch.cat(predictions), torch.cat(answers), torch.cat(types), type_names)
    logger.info("vqa validation: %s", metrics)
    return metrics
