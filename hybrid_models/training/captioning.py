"""Captioning pieces for the generic training loop: batches, length curriculum, losses, validation.

`*_loss_fn(model, batch) -> (loss, stats)` and `caption_val_fn(model) -> metrics` plug into
`fit`; their extra keyword arguments are bound with functools.partial.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from hybrid_models.captioner import (
    Captioner,
    MultiTaskCaptioner,
    MultiTaskOutput,
    caption_loss,
    multitask_loss,
)
from hybrid_models.decoding import beam_search, eval_mode, greedy_decode, words_of
from hybrid_models.rewards import CiderD, Reward, corpus_bleu, scst_loss
from hybrid_models.sequences import pad_sequences
from hybrid_models.vocabulary import BOS_INDEX, EOS_INDEX, PAD_INDEX, pad_token_ids

logger = logging.getLogger(__name__)

WordIds = tuple[int, ...]


@dataclass(frozen=True)
class CaptionExample:
    """One (video, caption) pair.

    `tokens` are the caption's ids with <bos> and <eos>; `references` are the word ids (no
    specials) of all the video's captions, for rewards and validation; `action` is its class
    for multi-task training.
    """

    features: torch.Tensor  # (T, D)
    tokens: WordIds
    references: tuple[WordIds, ...] = ()
    action: int | None = None

    def __post_init__(self) -> None:
        if self.features.dim() != 2 or self.features.shape[0] == 0:
            raise ValueError(
                f"features must be (T, D) with T > 0, got {tuple(self.features.shape)}"
            )
        if len(self.tokens) < 2 or self.tokens[0] != BOS_INDEX or self.tokens[-1] != EOS_INDEX:
            raise ValueError(f"tokens {list(self.tokens)} must be <bos> ... <eos>")


@dataclass(frozen=True)
class CaptionBatch:
    features: torch.Tensor  # (B, T, D)
    mask: torch.Tensor  # (B, T) bool
    tokens: torch.Tensor  # (B, L) <bos> w_1 ... <eos> <pad>...
    references: tuple[tuple[WordIds, ...], ...]
    actions: torch.Tensor | None = None  # (B,)

    def to(self, device: torch.device | str) -> CaptionBatch:
        return CaptionBatch(
            features=self.features.to(device),
            mask=self.mask.to(device),
            tokens=self.tokens.to(device),
            references=self.references,
            actions=None if self.actions is None else self.actions.to(device),
        )


def collate_captions(examples: Sequence[CaptionExample]) -> CaptionBatch:
    """Pad the examples' frames and tokens into one batch."""
    if not examples:
        raise ValueError("examples is empty")
    features, mask = pad_sequences([example.features for example in examples])
    actions = [example.action for example in examples]
    if any(action is None for action in actions) and any(a is not None for a in actions):
        raise ValueError("some examples have an action and some do not")
    return CaptionBatch(
        features=features,
        mask=mask,
        tokens=pad_token_ids([example.tokens for example in examples]),
        references=tuple(example.references for example in examples),
        actions=None if actions[0] is None else torch.tensor(actions, dtype=torch.long),
    )


def caption_batches(examples: Sequence[CaptionExample], *, batch_size: int) -> list[CaptionBatch]:
    """The examples in order, in batches (validation)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size ({batch_size}) must be > 0")
    return [
        collate_captions(examples[start : start + batch_size])
        for start in range(0, len(examples), batch_size)
    ]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A generator of its own for each (seed, epoch), so a resumed run sees the same batches."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def curriculum_order(
    caption_lengths: Sequence[int],
    epoch: int,
    num_epochs: int,
    *,
    generator: torch.Generator,
    start_fraction: float = 0.3,
    full_at: float = 0.5,
) -> list[int]:
    """Indices of the examples allowed at `epoch` (0-based), shuffled: short captions first.

    Schedule ("baby steps", Bengio et al. 2009): examples are ranked by caption length (ties
    in random order); epoch 0 allows the shortest `start_fraction` of them and the share grows
    linearly to all of them at epoch floor(full_at · (num_epochs − 1)), so the second half of
    training (and always the last epoch) sees every example.
    """
    count = len(caption_lengths)
    if count == 0:
        raise ValueError("caption_lengths is empty")
    if num_epochs <= 0:
        raise ValueError(f"num_epochs ({num_epochs}) must be > 0")
    if not 0 <= epoch < num_epochs:
        raise ValueError(f"epoch ({epoch}) must be in [0, {num_epochs})")
    if not 0.0 < start_fraction <= 1.0:
        raise ValueError(f"start_fraction ({start_fraction}) must be in (0, 1]")
    if not 0.0 <= full_at <= 1.0:
        raise ValueError(f"full_at ({full_at}) must be in [0, 1]")
    full_epoch = math.floor(full_at * (num_epochs - 1))
    if epoch >= full_epoch:
        fraction = 1.0
    else:
        fraction = start_fraction + (1.0 - start_fraction) * epoch / full_epoch
    tie_break = torch.randperm(count, generator=generator).tolist()
    by_length = sorted(
        tie_break, key=lambda index: caption_lengths[index]
    )  # stable: ties stay random
    allowed = by_length[: max(1, math.ceil(fraction * count))]
    shuffle = torch.randperm(len(allowed), generator=generator).tolist()
    return [allowed[position] for position in shuffle]


def caption_train_batches(
    examples: Sequence[CaptionExample],
    *,
    batch_size: int,
    num_epochs: int,
    seed: int,
    curriculum: bool = True,
) -> Callable[[int], list[CaptionBatch]]:
    """`train_batches(epoch)` for `fit`: shuffled batches, under the length curriculum if asked."""
    if batch_size <= 0:
        raise ValueError(f"batch_size ({batch_size}) must be > 0")
    if not examples:
        raise ValueError("examples is empty")
    lengths = [len(example.tokens) for example in examples]

    def train_batches(epoch: int) -> list[CaptionBatch]:
        generator = epoch_generator(seed, epoch)
        if curriculum:
            order = curriculum_order(lengths, epoch, num_epochs, generator=generator)
        else:
            order = torch.randperm(len(examples), generator=generator).tolist()
        chosen = [examples[index] for index in order]
        return caption_batches(chosen, batch_size=batch_size)

    return train_batches


def caption_loss_fn(
    model: Captioner,
    batch: CaptionBatch,
    *,
    label_smoothing: float = 0.0,
    attention_weight: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Teacher-forced token cross-entropy (+ doubly-stochastic attention penalty)."""
    output = model(batch.features, batch.mask, batch.tokens[:, :-1])
    return caption_loss(
        output,
        batch.tokens[:, 1:],
        label_smoothing=label_smoothing,
        attention_weight=attention_weight,
    )


def multitask_loss_fn(
    model: MultiTaskCaptioner,
    batch: CaptionBatch,
    *,
    label_smoothing: float = 0.0,
    attention_weight: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """λ_caption · caption loss + λ_action · action cross-entropy (λs from the model's config)."""
    if batch.actions is None:
        raise ValueError("multi-task training needs batches with actions")
    output = model(batch.features, batch.mask, batch.tokens[:, :-1])
    return multitask_loss(
        output,
        batch.tokens[:, 1:],
        batch.actions,
        model.config,
        label_smoothing=label_smoothing,
        attention_weight=attention_weight,
    )


def scst_loss_fn(
    model: Captioner | MultiTaskCaptioner,
    batch: CaptionBatch,
    *,
    reward: Reward,
    generator: torch.Generator,
    max_length: int,
    num_samples: int = 1,
    baseline: str = "greedy",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Self-critical fine-tuning on a batch with one row per video and its references.

    `generator` is advanced by every call: bind one seeded generator per run.
    """
    if any(not refs for refs in batch.references):
        raise ValueError("SCST needs the references of every video in the batch")
    return scst_loss(
        model,
        batch.features,
        batch.mask,
        batch.references,
        reward,
        generator,
        max_length,
        num_samples=num_samples,
        baseline=baseline,
    )


def caption_val_fn(
    model: Captioner | MultiTaskCaptioner,
    *,
    batches: Sequence[CaptionBatch],
    cider: CiderD,
    max_length: int,
    beam_size: int = 1,
    length_penalty: float = 0.0,
) -> dict[str, float]:
    """Decode every video and score it in-process: CIDEr-D, BLEU-1..4, teacher-forced accuracy.

    `cider` holds document frequencies from the training captions (so scores are comparable
    across epochs); BLEU is coco-caption's corpus BLEU on word ids. Batches should hold one row
    per video; they are moved to the model's device. The model is evaluated with dropout off
    and given back in its mode.
    """
    if not batches:
        raise ValueError("batches is empty")
    candidates: list[WordIds] = []
    references: list[tuple[WordIds, ...]] = []
    correct = total = 0
    device = next(model.parameters()).device
    with torch.no_grad(), eval_mode(model):
        for batch in (b.to(device) for b in batches):
            if any(not refs for refs in batch.references):
                raise ValueError("validation needs the references of every video")
            if beam_size == 1:
                decoded = greedy_decode(model, batch.features, batch.mask, max_length)
            else:
                decoded = beam_search(
                    model,
                    batch.features,
                    batch.mask,
                    beam_size,
                    max_length,
                    length_penalty=length_penalty,
                )
            candidates += words_of(decoded.tokens)
            references += batch.references
            output = model(batch.features, batch.mask, batch.tokens[:, :-1])
            logits = output.caption.logits if isinstance(output, MultiTaskOutput) else output.logits
            targets = batch.tokens[:, 1:]
            real = targets != PAD_INDEX
            correct += int(((logits.argmax(dim=-1) == targets) & real).sum())
            total += int(real.sum())
    cider_scores = cider(candidates, references)
    bleu = corpus_bleu(candidates, references)
    metrics = {
        "cider_d": float(np.mean(cider_scores)),
        **{f"bleu_{n}": score for n, score in enumerate(bleu, start=1)},
        "token_accuracy": correct / max(total, 1),
        "caption_length": float(np.mean([len(c) for c in candidates])),
    }
    logger.info("caption validation: %s", metrics)
    return metrics
