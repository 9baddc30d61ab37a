"""Caption decoding: greedy, beam search (GNMT length penalty) and sampling, batched over videos.

Pure given the model: they use only its step API (`encode`, `init_state`, `step`, see
`captioner.Captioner`) and never the global RNG. <pad> and <bos> are never generated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch

from hybrid_models.captioner import DecoderState, DecoderStep, EncodedVideo
from hybrid_models.vocabulary import BOS_INDEX, EOS_INDEX, PAD_INDEX


class StepModel(Protocol):
    def encode(self, features: torch.Tensor, mask: torch.Tensor) -> EncodedVideo: ...

    def init_state(self, encoded: EncodedVideo) -> DecoderState: ...

    def step(
        self, encoded: EncodedVideo, state: DecoderState, tokens: torch.Tensor
    ) -> DecoderStep: ...


@dataclass(frozen=True)
class Decoded:
    """Decoded captions: ids after <bos>, ending with <eos> unless cut at max_length, <pad> after.

    `attention` is over input frames (zeros after the end); `logits` are the raw per-step
    logits that produced each token (greedy only; None from beam search).
    """

    tokens: torch.Tensor  # (B, L) int64
    lengths: torch.Tensor  # (B,) tokens up to and including <eos>
    attention: torch.Tensor  # (B, L, T)
    log_probs: torch.Tensor  # (B,) Σ log p of the tokens
    logits: torch.Tensor | None = None  # (B, L, V)


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Run with dropout off, then give the model back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _check(max_length: int) -> None:
    if max_length <= 0:
        raise ValueError(f"max_length ({max_length}) must be > 0")


def _never_generated(log_probs: torch.Tensor) -> torch.Tensor:
    blocked = log_probs.clone()
    blocked[:, PAD_INDEX] = float("-inf")
    blocked[:, BOS_INDEX] = float("-inf")
    return blocked


def words_of(tokens: torch.Tensor) -> list[tuple[int, ...]]:
    """Each row's word ids before its first <eos>, specials dropped: what rewards score."""
    rows = []
    for row in tokens.tolist():
        words = []
        for token in row:
            if token == EOS_INDEX:
                break
            if token not in (PAD_INDEX, BOS_INDEX):
                words.append(token)
        rows.append(tuple(words))
    return rows


def greedy_decode(
    model: StepModel, features: torch.Tensor, mask: torch.Tensor, max_length: int
) -> Decoded:
    """The most likely next word at every step, for all videos at once (no gradients)."""
    _check(max_length)
    with torch.no_grad():
        return _greedy(model, features, mask, max_length)


def _greedy(
    model: StepModel, features: torch.Tensor, mask: torch.Tensor, max_length: int
) -> Decoded:
    encoded = model.encode(features, mask)
    state = model.init_state(encoded)
    batch = features.shape[0]
    previous = torch.full((batch,), BOS_INDEX, dtype=torch.long, device=features.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=features.device)
    tokens, attention, logits, log_probs = [], [], [], []
    for _ in range(max_length):
        out = model.step(encoded, state, previous)
        state = out.state
        step_log_probs = _never_generated(torch.log_softmax(out.logits, dim=-1))
        best, chosen = step_log_probs.max(dim=-1)
        live = ~finished
        chosen = torch.where(live, chosen, torch.full_like(chosen, PAD_INDEX))
        tokens.append(chosen)
        attention.append(out.attention * live.unsqueeze(1).to(out.attention.dtype))
        logits.append(out.logits)
        log_probs.append(torch.where(live, best, torch.zeros_like(best)))
        finished = finished | (chosen == EOS_INDEX)
        previous = chosen
        if bool(finished.all()):
            break
    token_tensor = torch.stack(tokens, dim=1)  # (B, L)
    return Decoded(
        tokens=token_tensor,
        lengths=(token_tensor != PAD_INDEX).sum(dim=1),
        attention=encoded.to_frames(torch.stack(attention, dim=1)),  # (B, L, T)
        log_probs=torch.stack(log_probs, dim=1).sum(dim=1),
        logits=torch.stack(logits, dim=1),
    )


def sample_decode(
    model: StepModel,
    features: torch.Tensor,
    mask: torch.Tensor,
    max_length: int,
    generator: torch.Generator,
    *,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample captions -> tokens (B, L) and the log-probability of each (B, L), 0 after the end.

    Log-probabilities (of the distribution sharpened or flattened by `temperature`) keep their
    gradient, for SCST. All randomness comes from `generator`.
    """
    _check(max_length)
    if temperature <= 0:
        raise ValueError(f"temperature ({temperature}) must be > 0")
    encoded = model.encode(features, mask)
    state = model.init_state(encoded)
    batch, device = features.shape[0], features.device
    previous = torch.full((batch,), BOS_INDEX, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    tokens, log_probs = [], []
    for _ in range(max_length):
        out = model.step(encoded, state, previous)
        state = out.state
        step_log_probs = _never_generated(torch.log_softmax(out.logits / temperature, dim=-1))
        with torch.no_grad():
            # Draw where the generator lives, so a CPU generator also drives a GPU model.
            probs = step_log_probs.exp().to(generator.device)
            drawn = torch.multinomial(probs, 1, generator=generator).squeeze(1).to(device)
        live = ~finished
        drawn = torch.where(live, drawn, torch.full_like(drawn, PAD_INDEX))
        chosen_log_prob = step_log_probs.gather(1, drawn.unsqueeze(1)).squeeze(1)
        tokens.append(drawn)
        log_probs.append(torch.where(live, chosen_log_prob, torch.zeros_like(chosen_log_prob)))
        finished = finished | (drawn == EOS_INDEX)
        previous = drawn
        if bool(finished.all()):
            break
    return torch.stack(tokens, dim=1), torch.stack(log_probs, dim=1)


def gnmt_length_penalty(length: torch.Tensor, alpha: float) -> torch.Tensor:
    """((5 + |Y|) / 6)^α of Wu et al. (2016); α = 0 ranks by raw log-probability."""
    return ((5.0 + length.to(torch.float32)) / 6.0) ** alpha


def beam_search(
    model: StepModel,
    features: torch.Tensor,
    mask: torch.Tensor,
    beam_size: int,
    max_length: int,
    *,
    length_penalty: float = 0.0,
) -> Decoded:
    """The best caption per video by beam search, all videos' beams in one batch.

    Hypotheses are ranked by log p / ((5 + len) / 6)^α (len counts <eos>). A finished
    hypothesis stays in its beam with a frozen score and competes with live ones; the search
    stops when every beam of every video has finished or at `max_length`. No gradients.
    """
    _check(max_length)
    if beam_size <= 0:
        raise ValueError(f"beam_size ({beam_size}) must be > 0")
    if length_penalty < 0:
        raise ValueError(f"length_penalty ({length_penalty}) must be >= 0")
    with torch.no_grad():
        return _beam(model, features, mask, beam_size, max_length, length_penalty)


def _beam(
    model: StepModel,
    features: torch.Tensor,
    mask: torch.Tensor,
    beam_size: int,
    max_length: int,
    length_penalty: float,
) -> Decoded:
    batch, device = features.shape[0], features.device
    encoded = model.encode(features, mask)
    rows = torch.arange(batch, device=device).repeat_interleave(beam_size)  # (B·K,)
    encoded = encoded.select(rows)
    state = model.init_state(encoded)
    # Only the first beam is live at the start, so the K beams do not all pick the same word.
    scores = torch.full((batch, beam_size), float("-inf"), device=device)
    scores[:, 0] = 0.0
    lengths = torch.zeros(batch, beam_size, dtype=torch.long, device=device)
    finished = torch.zeros(batch, beam_size, dtype=torch.bool, device=device)
    previous = torch.full((batch * beam_size,), BOS_INDEX, dtype=torch.long, device=device)
    history = torch.zeros(batch * beam_size, 0, dtype=torch.long, device=device)
    attention = None
    offsets = (torch.arange(batch, device=device) * beam_size).unsqueeze(1)  # (B, 1)
    for _ in range(max_length):
        out = model.step(encoded, state, previous)
        log_probs = _never_generated(torch.log_softmax(out.logits, dim=-1))  # (B·K, V)
        vocab = log_probs.shape[1]
        done = finished.view(-1)
        # A finished beam continues only with <pad>, at no cost: one candidate, frozen score.
        frozen = torch.full_like(log_probs, float("-inf"))
        frozen[:, PAD_INDEX] = 0.0
        log_probs = torch.where(done.unsqueeze(1), frozen, log_probs)
        candidates = scores.unsqueeze(2) + log_probs.view(batch, beam_size, vocab)  # (B, K, V)
        new_lengths = lengths + (~finished).long()  # (B, K)
        ranked = candidates / gnmt_length_penalty(new_lengths, length_penalty).unsqueeze(2)
        _, flat = ranked.view(batch, -1).topk(beam_size, dim=1)  # (B, K)
        source = flat // vocab  # (B, K) beam each winner extends
        word = flat % vocab
        scores = candidates.view(batch, -1).gather(1, flat)
        lengths = new_lengths.gather(1, source)
        was_finished = finished.gather(1, source)
        finished = was_finished | (word == EOS_INDEX)
        parent = (source + offsets).view(-1)  # (B·K,) rows in the flat beam batch
        step_attention = out.attention.index_select(0, parent)
        step_attention = step_attention * (~was_finished).view(-1, 1).to(step_attention.dtype)
        history = torch.cat([history.index_select(0, parent), word.view(-1, 1)], dim=1)
        attention = (
            step_attention.unsqueeze(1)
            if attention is None
            else torch.cat([attention.index_select(0, parent), step_attention.unsqueeze(1)], dim=1)
        )  # (B·K, L, S)
        state = tuple(part.index_select(0, parent) for part in out.state)
        previous = word.view(-1)
        if bool(finished.all()):
            break
    final = scores / gnmt_length_penalty(lengths, length_penalty)
    best = final.argmax(dim=1)  # (B,)
    chosen = (best + offsets.squeeze(1)).long()
    tokens = history.index_select(0, chosen)
    return Decoded(
        tokens=tokens,
        lengths=(tokens != PAD_INDEX).sum(dim=1),
        attention=encoded.select(chosen).to_frames(attention.index_select(0, chosen)),
        log_probs=scores.gather(1, best.unsqueeze(1)).squeeze(1),
    )
