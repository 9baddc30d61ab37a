"""Video captioning: recurrent or hierarchical (shot-level) encoder, LSTM decoder, temporal attention.

Soft attention follows Show, Attend and Tell (Xu et al., 2015) over time as in Yao et al.
(2015); adaptive attention adds the visual sentinel of Lu et al. (CVPR 2017,
https://arxiv.org/abs/1612.01887); the hierarchical encoder follows Pan et al. (CVPR 2016).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from hybrid_models.attention import AdditiveAttention, masked_softmax
from hybrid_models.encoders import RecurrentConfig, RecurrentEncoder
from hybrid_models.sequences import check_mask, masked_mean
from hybrid_models.vocabulary import PAD_INDEX, SPECIALS

EncoderKind = Literal["lstm", "hierarchical"]
AttentionKind = Literal["soft", "adaptive", "none"]

DecoderState = tuple[torch.Tensor, torch.Tensor]  # LSTMCell (h, c), each (B, H)


@dataclass(frozen=True, kw_only=True)
class CaptionerConfig:
    """A captioner; `shot_length` is used by the hierarchical encoder only."""

    feature_dim: int
    vocab_size: int
    embed_dim: int = 64
    hidden_dim: int = 128
    attention_dim: int = 64
    encoder: EncoderKind = "lstm"
    bidirectional: bool = True
    shot_length: int = 4
    attention: AttentionKind = "soft"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("feature_dim", "embed_dim", "hidden_dim", "attention_dim", "shot_length"):
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"{name} ({value}) must be > 0")
        if self.vocab_size <= len(SPECIALS):
            raise ValueError(
                f"vocab_size ({self.vocab_size}) must be > {len(SPECIALS)} (the special tokens)"
            )
        if self.encoder not in ("lstm", "hierarchical"):
            raise ValueError(f"encoder {self.encoder!r} must be 'lstm' or 'hierarchical'")
        if self.attention not in ("soft", "adaptive", "none"):
            raise ValueError(f"attention {self.attention!r} must be 'soft', 'adaptive' or 'none'")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout ({self.dropout}) must be in [0, 1)")

    @property
    def encoder_dim(self) -> int:
        return self.hidden_dim * (2 if self.bidirectional else 1)


@dataclass(frozen=True, kw_only=True)
class MultiTaskCaptionerConfig(CaptionerConfig):
    """A captioner plus an action head on the shared encoder; loss weights are part of the model."""

    num_actions: int
    caption_weight: float = 1.0
    action_weight: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_actions <= 1:
            raise ValueError(f"num_actions ({self.num_actions}) must be > 1")
        for name in ("caption_weight", "action_weight"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} ({value}) must be finite and >= 0")
        if self.caption_weight == 0 and self.action_weight == 0:
            raise ValueError("caption_weight and action_weight cannot both be 0")


@dataclass(frozen=True)
class EncodedVideo:
    """The encoder's output, computed once per video and reused at every decoding step.

    `states` are the steps attention runs over: frames, or shots for the hierarchical encoder.
    `frame_to_step[b, t]` is the step covering frame t and `step_sizes` its number of real
    frames, so attention over steps maps back to frames (`to_frames`).
    """

    states: torch.Tensor  # (B, S, E)
    step_mask: torch.Tensor  # (B, S) bool
    final: torch.Tensor  # (B, E_final)
    mean: torch.Tensor  # (B, E) masked mean of states
    keys: torch.Tensor | None  # (B, S, A) attention keys W h + b; None without attention
    frame_mask: torch.Tensor  # (B, T) bool
    frame_to_step: torch.Tensor  # (B, T) int64
    step_sizes: torch.Tensor  # (B, S) float, frames per step (0 on padding)

    def select(self, index: torch.Tensor) -> EncodedVideo:
        """Rows `index` of every field (beam search repeats and reorders videos)."""
        values = {}
        for field in fields(self):
            value = getattr(self, field.name)
            values[field.name] = None if value is None else value.index_select(0, index)
        return EncodedVideo(**values)

    def to_frames(self, attention: torch.Tensor) -> torch.Tensor:
        """Attention over steps (B, ..., S) -> over frames (B, ..., T).

        A step's weight is shared evenly by its real frames, so each row still sums to 1.
        """
        batch, steps = attention.shape[0], attention.shape[-1]
        flat = attention.reshape(batch, -1, steps)  # (B, M, S)
        per_frame = flat / self.step_sizes.clamp(min=1.0).unsqueeze(1)
        index = self.frame_to_step.unsqueeze(1).expand(-1, flat.shape[1], -1)  # (B, M, T)
        frames = per_frame.gather(2, index) * self.frame_mask.unsqueeze(1).to(flat.dtype)
        return frames.reshape(*attention.shape[:-1], -1)  # (B, ..., T)


@dataclass(frozen=True)
class DecoderStep:
    logits: torch.Tensor  # (B, V)
    state: DecoderState
    attention: torch.Tensor  # (B, S) over encoder steps
    sentinel: torch.Tensor | None  # (B,) β, adaptive attention only


@dataclass(frozen=True)
class CaptionOutput:
    """Teacher-forced outputs; `attention` is over encoder steps (shots when hierarchical)."""

    logits: torch.Tensor  # (B, L, V)
    attention: torch.Tensor  # (B, L, S)
    sentinel: torch.Tensor | None  # (B, L) β, adaptive attention only
    encoded: EncodedVideo

    @property
    def frame_attention(self) -> torch.Tensor:
        """Attention over input frames (B, L, T)."""
        return self.encoded.to_frames(self.attention)


@dataclass(frozen=True)
class MultiTaskOutput:
    caption: CaptionOutput
    action_logits: torch.Tensor  # (B, A)


class HierarchicalEncoder(nn.Module):
    """A shot-level LSTM over chunks of `shot_length` consecutive frames, then an RNN over the shots."""

    def __init__(self, config: CaptionerConfig):
        super().__init__()
        self.shot_length = config.shot_length
        self.shot_encoder = RecurrentEncoder(
            RecurrentConfig(input_dim=config.feature_dim, hidden_dim=config.hidden_dim)
        )
        self.video_encoder = RecurrentEncoder(
            RecurrentConfig(
                input_dim=config.hidden_dim,
                hidden_dim=config.hidden_dim,
                bidirectional=config.bidirectional,
            )
        )

    def forward(
        self, features: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> shot states (B, N, E), final (B, E), shot mask (B, N), frame_to_shot (B, T), sizes (B, N)."""
        batch, frames, dim = features.shape
        shot = self.shot_length
        num_shots = -(-frames // shot)
        extra = num_shots * shot - frames
        chunks = F.pad(features, (0, 0, 0, extra)).reshape(batch * num_shots, shot, dim)
        chunk_mask = F.pad(mask, (0, extra)).reshape(batch * num_shots, shot)
        real = chunk_mask.any(dim=1)  # (B·N,) shots holding at least one frame
        real_index = real.nonzero().squeeze(1)
        _, shot_final = self.shot_encoder(chunks[real_index], chunk_mask[real_index])  # (K, H)
        shot_states = shot_final.new_zeros(batch * num_shots, shot_final.shape[1])
        shot_states = shot_states.index_copy(0, real_index, shot_final)
        shot_states = shot_states.view(batch, num_shots, -1)  # (B, N, H)
        shot_mask = real.view(batch, num_shots)
        states, final = self.video_encoder(shot_states, shot_mask)
        frame_to_shot = (torch.arange(frames, device=features.device) // shot).expand(batch, -1)
        sizes = chunk_mask.view(batch, num_shots, shot).sum(dim=2).to(features.dtype)
        return states, final, shot_mask, frame_to_shot, sizes


class Captioner(nn.Module):
    """Encoder-decoder captioner with a step API (`encode`, `init_state`, `step`) for decoding.

    `forward` is teacher forcing and runs the very same `step` once per input token, so
    training and decoding cannot disagree.
    """

    def __init__(self, config: CaptionerConfig):
        super().__init__()
        self.config = config
        self.input_dropout = nn.Dropout(config.dropout)
        if config.encoder == "lstm":
            self.encoder = RecurrentEncoder(
                RecurrentConfig(
                    input_dim=config.feature_dim,
                    hidden_dim=config.hidden_dim,
                    bidirectional=config.bidirectional,
                )
            )
        else:
            self.encoder = HierarchicalEncoder(config)
        encoder_dim = config.encoder_dim
        self.init_h = nn.Linear(encoder_dim, config.hidden_dim)
        self.init_c = nn.Linear(encoder_dim, config.hidden_dim)
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=PAD_INDEX)
        self.dropout = nn.Dropout(config.dropout)
        if config.attention == "adaptive":
            # Lu et al.: frames live in the decoder's space so the sentinel can stand in for them.
            self.visual = nn.Linear(encoder_dim, config.hidden_dim)
            context_dim = config.hidden_dim
            self.attention = AdditiveAttention(context_dim, config.hidden_dim, config.attention_dim)
            self.sentinel_input = nn.Linear(config.embed_dim + context_dim, config.hidden_dim)
            self.sentinel_hidden = nn.Linear(config.hidden_dim, config.hidden_dim, bias=False)
            self.sentinel_key = nn.Linear(config.hidden_dim, config.attention_dim)
            output_dim = config.hidden_dim
        else:
            context_dim = encoder_dim
            if config.attention == "soft":
                self.attention = AdditiveAttention(
                    encoder_dim, config.hidden_dim, config.attention_dim
                )
            output_dim = config.hidden_dim + context_dim
        self.cell = nn.LSTMCell(config.embed_dim + context_dim, config.hidden_dim)
        self.output = nn.Linear(output_dim, config.vocab_size)

    def encode(self, features: torch.Tensor, mask: torch.Tensor) -> EncodedVideo:
        check_mask(features, mask)
        batch, frames = mask.shape
        inputs = self.input_dropout(features)
        if self.config.encoder == "lstm":
            states, final = self.encoder(inputs, mask)  # (B, T, E), (B, E)
            step_mask = mask
            frame_to_step = torch.arange(frames, device=mask.device).expand(batch, -1)
            step_sizes = mask.to(features.dtype)
        else:
            states, final, step_mask, frame_to_step, step_sizes = self.encoder(inputs, mask)
        if self.config.attention == "adaptive":
            states = torch.relu(self.visual(states)) * step_mask.unsqueeze(-1)  # (B, S, H)
        keys = self.attention.project_keys(states) if self.config.attention != "none" else None
        return EncodedVideo(
            states=states,
            step_mask=step_mask,
            final=final,
            mean=masked_mean(states, step_mask),
            keys=keys,
            frame_mask=mask,
            frame_to_step=frame_to_step,
            step_sizes=step_sizes,
        )

    def init_state(self, encoded: EncodedVideo) -> DecoderState:
        return torch.tanh(self.init_h(encoded.final)), torch.tanh(self.init_c(encoded.final))

    def step(self, encoded: EncodedVideo, state: DecoderState, tokens: torch.Tensor) -> DecoderStep:
        """One decoder step: previous tokens (B,) and state -> next-token logits and new state."""
        hidden, memory = state
        words = self.dropout(self.embedding(tokens))  # (B, E_w)
        sentinel = None
        if self.config.attention == "soft":
            # Show-Attend-Tell: the previous hidden state chooses where to look.
            context, weights = self.attention(
                encoded.states, encoded.step_mask, hidden, encoded.keys
            )
            hidden, memory = self.cell(torch.cat([words, context], dim=1), (hidden, memory))
            features = torch.cat([hidden, context], dim=1)
        elif self.config.attention == "adaptive":
            inputs = torch.cat([words, encoded.mean], dim=1)
            gate = torch.sigmoid(self.sentinel_input(inputs) + self.sentinel_hidden(hidden))
            hidden, memory = self.cell(inputs, (hidden, memory))
            visual_sentinel = gate * torch.tanh(memory)  # s_t (B, H)
            query = self.attention.query(hidden).unsqueeze(1)  # Lu et al. attend with h_t
            energies = self.attention.score(torch.tanh(encoded.keys + query)).squeeze(-1)  # (B, S)
            sentinel_energy = self.attention.score(
                torch.tanh(self.sentinel_key(visual_sentinel) + query.squeeze(1))
            )  # (B, 1)
            weights = masked_softmax(energies, encoded.step_mask)
            joint_mask = F.pad(encoded.step_mask, (0, 1), value=True)
            joint = masked_softmax(torch.cat([energies, sentinel_energy], dim=1), joint_mask)
            sentinel = joint[:, -1]  # β: how much the word relies on the language model
            context = torch.einsum("bs,bsh->bh", weights, encoded.states)
            beta = sentinel.unsqueeze(1)
            features = beta * visual_sentinel + (1 - beta) * context + hidden
        else:
            context = encoded.mean
            # The mean is attention with equal weights; report them so outputs keep one shape.
            weights = encoded.step_mask.to(context.dtype)
            weights = weights / weights.sum(dim=1, keepdim=True)
            hidden, memory = self.cell(torch.cat([words, context], dim=1), (hidden, memory))
            features = torch.cat([hidden, context], dim=1)
        logits = self.output(self.dropout(features))
        return DecoderStep(logits, (hidden, memory), weights, sentinel)

    def teacher_forced(self, encoded: EncodedVideo, tokens_in: torch.Tensor) -> CaptionOutput:
        """Run `step` over the given input tokens (B, L) (<bos> w_1 ... w_{L-1})."""
        if tokens_in.dim() != 2 or tokens_in.shape[0] != encoded.states.shape[0]:
            raise ValueError(
                f"tokens_in must be (B={encoded.states.shape[0]}, L), got {tuple(tokens_in.shape)}"
            )
        state = self.init_state(encoded)
        logits, attention, sentinels = [], [], []
        for position in range(tokens_in.shape[1]):
            out = self.step(encoded, state, tokens_in[:, position])
            state = out.state
            logits.append(out.logits)
            attention.append(out.attention)
            sentinels.append(out.sentinel)
        sentinel = torch.stack(sentinels, dim=1) if self.config.attention == "adaptive" else None
        return CaptionOutput(
            logits=torch.stack(logits, dim=1),  # (B, L, V)
            attention=torch.stack(attention, dim=1),  # (B, L, S)
            sentinel=sentinel,
            encoded=encoded,
        )

    def forward(
        self, features: torch.Tensor, mask: torch.Tensor, tokens_in: torch.Tensor
    ) -> CaptionOutput:
        return self.teacher_forced(self.encode(features, mask), tokens_in)


class MultiTaskCaptioner(nn.Module):
    """A captioner and an action classifier sharing the video encoder (its final state)."""

    def __init__(self, config: MultiTaskCaptionerConfig):
        super().__init__()
        self.config = config
        self.captioner = Captioner(config)
        self.action_dropout = nn.Dropout(config.dropout)
        self.action_head = nn.Linear(config.encoder_dim, config.num_actions)

    # The step API delegates, so decoding and SCST work on the multi-task model as is.
    def encode(self, features: torch.Tensor, mask: torch.Tensor) -> EncodedVideo:
        return self.captioner.encode(features, mask)

    def init_state(self, encoded: EncodedVideo) -> DecoderState:
        return self.captioner.init_state(encoded)

    def step(self, encoded: EncodedVideo, state: DecoderState, tokens: torch.Tensor) -> DecoderStep:
        return self.captioner.step(encoded, state, tokens)

    def forward(
        self, features: torch.Tensor, mask: torch.Tensor, tokens_in: torch.Tensor
    ) -> MultiTaskOutput:
        encoded = self.captioner.encode(features, mask)
        caption = self.captioner.teacher_forced(encoded, tokens_in)
        return MultiTaskOutput(caption, self.action_head(self.action_dropout(encoded.final)))


def attention_penalty(
    attention: torch.Tensor, step_mask: torch.Tensor, token_mask: torch.Tensor
) -> torch.Tensor:
    """Show-Attend-Tell's doubly-stochastic penalty over time, averaged over videos.

    Per video Σ_t (τ − Σ_l α_{l,t})² over real steps t and real words l, with τ = L_real/T_real:
    the total attention a step would get if every word spread its unit of attention evenly,
    so the penalty asks each frame (or shot) to be looked at by some word. Show-Attend-Tell's
    τ = 1 assumes as many words as locations, which does not hold for captions of videos.
    """
    words = token_mask.to(attention.dtype)
    steps = step_mask.to(attention.dtype)
    received = torch.einsum("bls,bl->bs", attention, words)  # (B, S)
    tau = words.sum(dim=1, keepdim=True) / steps.sum(dim=1, keepdim=True)  # (B, 1)
    return (((tau - received) ** 2) * steps).sum(dim=1).mean()


def caption_loss(
    output: CaptionOutput,
    targets: torch.Tensor,
    *,
    label_smoothing: float = 0.0,
    attention_weight: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Token cross-entropy averaged over real target tokens (+ λ · attention penalty).

    `targets` (B, L) are the input tokens shifted by one (w_1 ... <eos>), <pad> after.
    """
    if targets.shape != output.logits.shape[:2]:
        raise ValueError(
            f"targets {tuple(targets.shape)} do not match logits {tuple(output.logits.shape[:2])}"
        )
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing ({label_smoothing}) must be in [0, 1)")
    if attention_weight < 0:
        raise ValueError(f"attention_weight ({attention_weight}) must be >= 0")
    token_mask = targets != PAD_INDEX
    cross_entropy = F.cross_entropy(
        output.logits.reshape(-1, output.logits.shape[-1]),  # (B·L, V)
        targets.reshape(-1),
        ignore_index=PAD_INDEX,
        label_smoothing=label_smoothing,
    )
    penalty = attention_penalty(output.attention, output.encoded.step_mask, token_mask)
    loss = cross_entropy + attention_weight * penalty
    with torch.no_grad():
        correct = (output.logits.argmax(dim=-1) == targets) & token_mask
        accuracy = correct.sum() / token_mask.sum().clamp(min=1)
    stats = {
        "loss": float(loss.detach()),
        "token_cross_entropy": float(cross_entropy.detach()),
        "attention_penalty": float(penalty.detach()),
        "token_accuracy": float(accuracy),
    }
    return loss, stats


def multitask_loss(
    output: MultiTaskOutput,
    targets: torch.Tensor,
    actions: torch.Tensor,
    config: MultiTaskCaptionerConfig,
    *,
    label_smoothing: float = 0.0,
    attention_weight: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """λ_caption · caption loss + λ_action · action cross-entropy, λs from the model's config."""
    if actions.shape != output.action_logits.shape[:1]:
        raise ValueError(
            f"actions {tuple(actions.shape)} must be ({output.action_logits.shape[0]},)"
        )
    caption, stats = caption_loss(
        output.caption,
        targets,
        label_smoothing=label_smoothing,
        attention_weight=attention_weight,
    )
    action = F.cross_entropy(output.action_logits, actions)
    loss = config.caption_weight * caption + config.action_weight * action
    with torch.no_grad():
        action_accuracy = (output.action_logits.argmax(dim=1) == actions).float().mean()
    return loss, {
        **{f"caption_{key}": value for key, value in stats.items()},
        "loss": float(loss.detach()),
        "action_cross_entropy": float(action.detach()),
        "action_accuracy": float(action_accuracy),
    }
