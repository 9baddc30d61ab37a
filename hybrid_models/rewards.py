"""CIDEr-D and BLEU in pure Python for in-process rewards and validation, and the SCST loss.

CIDEr-D follows coco-caption's `cider_scorer.py` number for number, with document frequencies
fixed in advance from a reference corpus, as self-critical training does (Rennie et al., CVPR
2017, https://arxiv.org/abs/1612.00563). Tokens are any hashable values: words or word ids.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence

import torch

from hybrid_models.decoding import eval_mode, greedy_decode, sample_decode, words_of

Tokens = Sequence[Hashable]
NGram = tuple[Hashable, ...]
Reward = Callable[[Sequence[Tokens], Sequence[Sequence[Tokens]]], list[float]]


def ngram_counts(tokens: Tokens, n: int) -> Counter[NGram]:
    """Counts of every 1..n-gram of `tokens`."""
    tokens = tuple(tokens)
    counts: Counter[NGram] = Counter()
    for k in range(1, n + 1):
        for start in range(len(tokens) - k + 1):
            counts[tokens[start : start + k]] += 1
    return counts


class _Vector:
    """One sentence as tf-idf weights per n-gram order, their norms, and its length."""

    __slots__ = ("weights", "norms", "length")

    def __init__(self, weights: list[dict[NGram, float]], norms: list[float], length: int):
        self.weights = weights
        self.norms = norms
        self.length = length


class CiderD:
    """CIDEr-D: n = 1..4 tf-idf cosine with clipping and a Gaussian length penalty (σ = 6), ×10.

    Document frequencies and log(number of documents) come from `from_references` on a fixed
    corpus (the training captions) and never from the captions being scored, so a reward does
    not depend on what else is in the batch. Matches coco-caption exactly, including its quirk
    of measuring a sentence's length by its number of bigrams. Reference sets are vectorised
    once and cached (a few KB per video), since SCST scores the same videos every epoch.
    """

    def __init__(
        self,
        document_frequency: dict[NGram, float],
        num_documents: int,
        *,
        n: int = 4,
        sigma: float = 6.0,
    ):
        if n <= 0:
            raise ValueError(f"n ({n}) must be > 0")
        if sigma <= 0:
            raise ValueError(f"sigma ({sigma}) must be > 0")
        if num_documents <= 0:
            raise ValueError(f"num_documents ({num_documents}) must be > 0")
        self.n = n
        self.sigma = sigma
        self.num_documents = num_documents
        self._document_frequency = dict(document_frequency)
        self._log_documents = math.log(float(num_documents))
        # Reference sets repeat every epoch; their vectors depend only on the fixed frequencies.
        self._reference_cache: dict[tuple[tuple[Hashable, ...], ...], list[_Vector]] = {}

    @classmethod
    def from_references(
        cls, references: Sequence[Sequence[Tokens]], *, n: int = 4, sigma: float = 6.0
    ) -> CiderD:
        """Frequencies from a corpus: one entry per video, each a list of reference captions."""
        if not references:
            raise ValueError("references is empty")
        frequency: dict[NGram, float] = defaultdict(float)
        for index, refs in enumerate(references):
            if not refs:
                raise ValueError(f"video {index} has no reference captions")
            for ngram in {g for ref in refs for g in ngram_counts(ref, n)}:
                frequency[ngram] += 1.0
        return cls(frequency, len(references), n=n, sigma=sigma)

    def _vector(self, tokens: Tokens) -> _Vector:
        weights: list[dict[NGram, float]] = [{} for _ in range(self.n)]
        squares = [0.0] * self.n
        length = 0
        for ngram, count in ngram_counts(tokens, self.n).items():
            order = len(ngram) - 1
            idf = self._log_documents - math.log(max(1.0, self._document_frequency.get(ngram, 0.0)))
            weight = float(count) * idf
            weights[order][ngram] = weight
            squares[order] += weight * weight
            if order == 1:  # coco-caption's length: the number of bigrams
                length += count
        return _Vector(weights, [math.sqrt(s) for s in squares], length)

    def _references(self, references: Sequence[Tokens]) -> list[_Vector]:
        key = tuple(tuple(ref) for ref in references)
        cached = self._reference_cache.get(key)
        if cached is None:
            cached = [self._vector(ref) for ref in key]
            self._reference_cache[key] = cached
        return cached

    def _similarity(self, hyp: _Vector, ref: _Vector) -> float:
        delta = float(hyp.length - ref.length)
        penalty = math.exp(-(delta**2) / (2 * self.sigma**2))
        total = 0.0
        for order in range(self.n):
            ref_weights = ref.weights[order]
            value = 0.0
            for ngram, weight in hyp.weights[order].items():
                ref_weight = ref_weights.get(ngram, 0.0)
                value += min(weight, ref_weight) * ref_weight  # clipping: the "D" of CIDEr-D
            if hyp.norms[order] != 0 and ref.norms[order] != 0:
                value /= hyp.norms[order] * ref.norms[order]
            total += value * penalty
        return total / self.n

    def score(self, candidate: Tokens, references: Sequence[Tokens]) -> float:
        """CIDEr-D of one candidate against its video's references."""
        if not references:
            raise ValueError("references is empty")
        hyp = self._vector(candidate)
        refs = self._references(references)
        return 10.0 * sum(self._similarity(hyp, ref) for ref in refs) / len(refs)

    def __call__(
        self, candidates: Sequence[Tokens], references: Sequence[Sequence[Tokens]]
    ) -> list[float]:
        """One score per candidate; `references[i]` are candidate i's video's references."""
        if len(candidates) != len(references):
            raise ValueError(f"{len(candidates)} candidates but {len(references)} reference lists")
        return [self.score(c, r) for c, r in zip(candidates, references, strict=True)]


def corpus_bleu(
    candidates: Sequence[Tokens], references: Sequence[Sequence[Tokens]], *, max_n: int = 4
) -> list[float]:
    """Corpus BLEU-1..max_n as coco-caption's `Bleu` computes it ("closest" reference length).

    Modified n-gram precisions are pooled over the corpus, with coco-caption's tiny additive
    constants, and one brevity penalty from the summed candidate and closest reference lengths.
    """
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates but {len(references)} reference lists")
    if not candidates:
        raise ValueError("candidates is empty")
    tiny, small = 1e-15, 1e-9
    correct = [0] * max_n
    guessed = [0] * max_n
    candidate_length = reference_length = 0
    for candidate, refs in zip(candidates, references, strict=True):
        if not refs:
            raise ValueError("a candidate has no references")
        counts = ngram_counts(candidate, max_n)
        most: Counter[NGram] = Counter()
        for ref in refs:
            for ngram, count in ngram_counts(ref, max_n).items():
                most[ngram] = max(most[ngram], count)
        length = len(candidate)
        candidate_length += length
        # Closest reference length, the shorter one on ties (coco-caption's "closest").
        reference_length += min((abs(len(ref) - length), len(ref)) for ref in refs)[1]
        for k in range(max_n):
            guessed[k] += max(0, length - k)
        for ngram, count in counts.items():
            correct[len(ngram) - 1] += min(count, most[ngram])
    ratio = (candidate_length + tiny) / (reference_length + small)
    scores = []
    product = 1.0
    for k in range(max_n):
        product *= (correct[k] + tiny) / (guessed[k] + small)
        score = product ** (1.0 / (k + 1))
        if ratio < 1:
            score *= math.exp(1 - 1 / ratio)
        scores.append(score)
    return scores


def scst_loss(
    model: torch.nn.Module,
    features: torch.Tensor,
    mask: torch.Tensor,
    references: Sequence[Sequence[Tokens]],
    reward: Reward,
    generator: torch.Generator,
    max_length: int,
    *,
    num_samples: int = 1,
    baseline: str = "greedy",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Self-critical policy gradient: sampled captions rewarded relative to a baseline.

    advantage = r(sample) − b; loss = −mean over samples of advantage · Σ log p(token) summed
    over the sample's real tokens (<eos> included). `baseline` "greedy": b = r(greedy caption),
    decoded in eval mode without gradients (Rennie et al. 2017); "mean": b = the mean reward of
    the video's *other* samples (needs num_samples >= 2; Luo 2020,
    https://arxiv.org/abs/2003.09971), which centres the advantages of each video. Rewards see
    word ids only (no <bos>/<eos>/<pad>); the greedy reward is reported either way.
    """
    if len(references) != features.shape[0]:
        raise ValueError(f"{len(references)} reference lists for {features.shape[0]} videos")
    if num_samples <= 0:
        raise ValueError(f"num_samples ({num_samples}) must be > 0")
    if baseline not in ("greedy", "mean"):
        raise ValueError(f"baseline {baseline!r} must be 'greedy' or 'mean'")
    if baseline == "mean" and num_samples < 2:
        raise ValueError(f"the mean baseline needs num_samples >= 2, got {num_samples}")
    repeated_features = features.repeat_interleave(num_samples, dim=0)  # (B·S, T, D)
    repeated_mask = mask.repeat_interleave(num_samples, dim=0)
    tokens, log_probs = sample_decode(
        model, repeated_features, repeated_mask, max_length, generator=generator
    )
    with torch.no_grad(), eval_mode(model):
        greedy = greedy_decode(model, features, mask, max_length)
    repeated_refs = [refs for refs in references for _ in range(num_samples)]
    sample_rewards = torch.tensor(reward(words_of(tokens), repeated_refs), dtype=torch.float32)
    greedy_rewards = torch.tensor(reward(words_of(greedy.tokens), references), dtype=torch.float32)
    if baseline == "greedy":
        reference_rewards = greedy_rewards.repeat_interleave(num_samples)  # (B·S,)
    else:
        per_video = sample_rewards.view(-1, num_samples)  # (B, S)
        others = (per_video.sum(dim=1, keepdim=True) - per_video) / (num_samples - 1)
        reference_rewards = others.reshape(-1)  # (B·S,)
    advantage = (sample_rewards - reference_rewards).to(log_probs.device)
    sequence_log_probs = log_probs.sum(dim=1)  # padding positions hold 0
    loss = -(advantage * sequence_log_probs).mean()
    stats = {
        "loss": float(loss.detach()),
        "reward_sample": float(sample_rewards.mean()),
        "reward_greedy": float(greedy_rewards.mean()),
        "advantage": float(advantage.mean()),
    }
    return loss, stats
