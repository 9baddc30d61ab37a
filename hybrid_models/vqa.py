"""Video question answering: question LSTM, temporal attention guided by the question, and fusion.

Fusions: concatenation + MLP, element-wise product, bilinear, and factorised bilinear pooling
(MFB, Yu et al., ICCV 2017, https://arxiv.org/abs/1708.01471); parallel co-attention follows
Lu et al. (NeurIPS 2016, https://arxiv.org/abs/1606.00061) with frames in place of regions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from hybrid_models.attention import AdditiveAttention, masked_softmax
from hybrid_models.encoders import RecurrentConfig, RecurrentEncoder
from hybrid_models.sequences import check_mask, masked_mean
from hybrid_models.vocabulary import ANSWER_UNK_INDEX, PAD_INDEX, SPECIALS

VideoEncoderKind = Literal["lstm", "none"]
VQAAttention = Literal["question_guided", "none", "co_attention"]
FusionKind = Literal["concat", "product", "bilinear", "factorized_bilinear"]


@dataclass(frozen=True, kw_only=True)
class VQAConfig:
    """A video QA model.

    attention "none" is the classic global-feature baseline: the video is the mean of its raw
    frame features, with no temporal encoder (so it needs video_encoder "none") and no
    attention; it cannot tell a video from its reverse. `bilinear_dim` is the size v and q are
    projected to before nn.Bilinear (its weight is bilinear_dim² · fusion_dim); `mfb_factor` is
    MFB's k.
    """

    feature_dim: int
    question_vocab_size: int
    num_answers: int
    embed_dim: int = 64
    hidden_dim: int = 128
    attention_dim: int = 64
    fusion_dim: int = 128
    video_encoder: VideoEncoderKind = "lstm"
    bidirectional: bool = False
    attention: VQAAttention = "question_guided"
    fusion: FusionKind = "product"
    bilinear_dim: int = 32
    mfb_factor: int = 5
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "feature_dim",
            "embed_dim",
            "hidden_dim",
            "attention_dim",
            "fusion_dim",
            "bilinear_dim",
            "mfb_factor",
        ):
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"{name} ({value}) must be > 0")
        if self.question_vocab_size <= len(SPECIALS):
            raise ValueError(
                f"question_vocab_size ({self.question_vocab_size}) must be > {len(SPECIALS)}"
                " (the special tokens)"
            )
        if self.num_answers <= 1:
            raise ValueError(f"num_answers ({self.num_answers}) must be > 1")
        if self.video_encoder not in ("lstm", "none"):
            raise ValueError(f"video_encoder {self.video_encoder!r} must be 'lstm' or 'none'")
        if self.attention not in ("question_guided", "none", "co_attention"):
            raise ValueError(
                f"attention {self.attention!r} must be 'question_guided', 'none' or 'co_attention'"
            )
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion {self.fusion!r} must be one of {', '.join(FUSIONS)}")
        if self.attention == "none" and self.video_encoder != "none":
            raise ValueError(
                "attention 'none' averages the raw frame features and needs video_encoder 'none',"
                f" got {self.video_encoder!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout ({self.dropout}) must be in [0, 1)")

    @property
    def video_dim(self) -> int:
        if self.video_encoder == "none":
            return self.feature_dim
        return self.hidden_dim * (2 if self.bidirectional else 1)


@dataclass(frozen=True)
class VQAOutput:
    logits: torch.Tensor  # (B, A)
    attention: torch.Tensor  # (B, T) over frames; uniform for attention "none"
    question_attention: torch.Tensor | None  # (B, L) over question words, co-attention only


class ConcatFusion(nn.Module):
    """[v; q] -> MLP."""

    def __init__(self, video_dim: int, question_dim: int, config: VQAConfig):
        super().__init__()
        self.mlp = nn.Linear(video_dim + question_dim, config.fusion_dim)

    def forward(self, video: torch.Tensor, question: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.mlp(torch.cat([video, question], dim=1)))


class ProductFusion(nn.Module):
    """tanh(W_v v + W_q q + W_vq (v' ⊙ q')).

    The product needs v and q in one space; v' and q' are their linear maps into fusion_dim
    (v and q rarely share a size: raw CNN features are 512-d or more).
    """

    def __init__(self, video_dim: int, question_dim: int, config: VQAConfig):
        super().__init__()
        self.video = nn.Linear(video_dim, config.fusion_dim)  # W_v
        self.question = nn.Linear(question_dim, config.fusion_dim, bias=False)  # W_q
        self.video_shared = nn.Linear(video_dim, config.fusion_dim)
        self.question_shared = nn.Linear(question_dim, config.fusion_dim)
        self.product = nn.Linear(config.fusion_dim, config.fusion_dim, bias=False)  # W_vq

    def forward(self, video: torch.Tensor, question: torch.Tensor) -> torch.Tensor:
        joint = self.video_shared(video) * self.question_shared(question)
        return torch.tanh(self.video(video) + self.question(question) + self.product(joint))


class BilinearFusion(nn.Module):
    """relu(v'ᵀ W q' + b) with nn.Bilinear on v, q first projected to bilinear_dim."""

    def __init__(self, video_dim: int, question_dim: int, config: VQAConfig):
        super().__init__()
        self.video = nn.Linear(video_dim, config.bilinear_dim)
        self.question = nn.Linear(question_dim, config.bilinear_dim)
        self.bilinear = nn.Bilinear(config.bilinear_dim, config.bilinear_dim, config.fusion_dim)

    def forward(self, video: torch.Tensor, question: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bilinear(self.video(video), self.question(question)))


class FactorizedBilinearFusion(nn.Module):
    """MFB: z = SumPool_k((U v) ⊙ (V q)), then power and L2 normalisation.

    The power step is sign(z)·sqrt(|z| + ε): plain sqrt has an infinite gradient at 0.
    """

    def __init__(self, video_dim: int, question_dim: int, config: VQAConfig):
        super().__init__()
        self.factor = config.mfb_factor
        self.video = nn.Linear(video_dim, config.fusion_dim * config.mfb_factor)  # U
        self.question = nn.Linear(question_dim, config.fusion_dim * config.mfb_factor)  # V
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, video: torch.Tensor, question: torch.Tensor) -> torch.Tensor:
        joint = self.dropout(self.video(video) * self.question(question))  # (B, F·k)
        pooled = joint.view(joint.shape[0], -1, self.factor).sum(dim=2)  # (B, F)
        powered = torch.sign(pooled) * torch.sqrt(pooled.abs() + 1e-8)
        return F.normalize(powered, dim=1)


FUSIONS = {
    "concat": ConcatFusion,
    "product": ProductFusion,
    "bilinear": BilinearFusion,
    "factorized_bilinear": FactorizedBilinearFusion,
}


class ParallelCoAttention(nn.Module):
    """Frames and question words attend to each other through one affinity matrix.

    C = tanh(Qᵀ W_b V); H_v = tanh(W_v V + (W_q Q) C); H_q = tanh(W_q Q + (W_v V) Cᵀ);
    a_v = softmax(w_vᵀ H_v), a_q = softmax(w_qᵀ H_q); v̂ = Σ a_v v_t, q̂ = Σ a_q q_l.
    """

    def __init__(self, video_dim: int, question_dim: int, attention_dim: int):
        super().__init__()
        self.affinity = nn.Linear(video_dim, question_dim, bias=False)  # W_b
        self.video = nn.Linear(video_dim, attention_dim, bias=False)  # W_v
        self.question = nn.Linear(question_dim, attention_dim, bias=False)  # W_q
        self.video_score = nn.Linear(attention_dim, 1, bias=False)  # w_v
        self.question_score = nn.Linear(attention_dim, 1, bias=False)  # w_q

    def forward(
        self,
        video: torch.Tensor,
        video_mask: torch.Tensor,
        words: torch.Tensor,
        word_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> v̂ (B, Dv), q̂ (B, Dq), frame attention (B, T), word attention (B, L)."""
        affinity = torch.tanh(torch.einsum("bld,btd->blt", words, self.affinity(video)))
        # Padding must not carry information across through the affinity sums.
        pairs = word_mask.unsqueeze(2) & video_mask.unsqueeze(1)  # (B, L, T)
        affinity = affinity * pairs.to(affinity.dtype)
        video_keys = self.video(video)  # (B, T, A)
        word_keys = self.question(words)  # (B, L, A)
        video_hidden = torch.tanh(video_keys + torch.einsum("blt,bla->bta", affinity, word_keys))
        word_hidden = torch.tanh(word_keys + torch.einsum("blt,bta->bla", affinity, video_keys))
        video_weights = masked_softmax(self.video_score(video_hidden).squeeze(-1), video_mask)
        word_weights = masked_softmax(self.question_score(word_hidden).squeeze(-1), word_mask)
        attended_video = torch.einsum("bt,btd->bd", video_weights, video)
        attended_words = torch.einsum("bl,bld->bd", word_weights, words)
        return attended_video, attended_words, video_weights, word_weights


class VideoQA(nn.Module):
    """(features (B, T, D), mask (B, T), questions (B, L) token ids, <pad> after) -> answers."""

    def __init__(self, config: VQAConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(
            config.question_vocab_size, config.embed_dim, padding_idx=PAD_INDEX
        )
        self.question_encoder = RecurrentEncoder(
            RecurrentConfig(input_dim=config.embed_dim, hidden_dim=config.hidden_dim)
        )
        self.input_dropout = nn.Dropout(config.dropout)
        if config.video_encoder == "lstm":
            self.video_encoder = RecurrentEncoder(
                RecurrentConfig(
                    input_dim=config.feature_dim,
                    hidden_dim=config.hidden_dim,
                    bidirectional=config.bidirectional,
                )
            )
        video_dim, question_dim = config.video_dim, config.hidden_dim
        if config.attention == "question_guided":
            self.attention = AdditiveAttention(video_dim, question_dim, config.attention_dim)
        elif config.attention == "co_attention":
            self.co_attention = ParallelCoAttention(video_dim, question_dim, config.attention_dim)
        self.fusion = FUSIONS[config.fusion](video_dim, question_dim, config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.fusion_dim, config.num_answers)

    def forward(
        self, features: torch.Tensor, mask: torch.Tensor, questions: torch.Tensor
    ) -> VQAOutput:
        check_mask(features, mask)
        if questions.dim() != 2 or questions.shape[0] != features.shape[0]:
            raise ValueError(
                f"questions must be (B={features.shape[0]}, L) token ids,"
                f" got {tuple(questions.shape)}"
            )
        word_mask = questions != PAD_INDEX
        words = self.dropout(self.embedding(questions))  # (B, L, E)
        word_states, question = self.question_encoder(words, word_mask)  # (B, L, H), (B, H)
        frames = self.input_dropout(features)
        question_attention = None
        if self.config.attention == "none":
            video = masked_mean(frames, mask)  # (B, D)
            attention = mask.to(frames.dtype) / mask.sum(dim=1, keepdim=True)
        else:
            steps = (
                frames
                if self.config.video_encoder == "none"
                else self.video_encoder(frames, mask)[0]
            )
            if self.config.attention == "question_guided":
                video, attention = self.attention(steps, mask, question)
            else:
                video, question, attention, question_attention = self.co_attention(
                    steps, mask, word_states, word_mask
                )
        fused = self.fusion(video, question)  # (B, F)
        return VQAOutput(self.classifier(self.dropout(fused)), attention, question_attention)


def vqa_loss(
    output: VQAOutput, answers: torch.Tensor, *, label_smoothing: float = 0.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """Answer cross-entropy; answers of class 0 (<unk>: unseen in training) are left out."""
    if answers.shape != output.logits.shape[:1]:
        raise ValueError(f"answers {tuple(answers.shape)} must be ({output.logits.shape[0]},)")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing ({label_smoothing}) must be in [0, 1)")
    known = answers != ANSWER_UNK_INDEX
    if not bool(known.any()):
        raise ValueError("every answer in the batch is <unk>")
    loss = F.cross_entropy(output.logits[known], answers[known], label_smoothing=label_smoothing)
    with torch.no_grad():
        accuracy = (output.logits.argmax(dim=1) == answers)[known].float().mean()
    return loss, {"loss": float(loss.detach()), "accuracy": float(accuracy)}
