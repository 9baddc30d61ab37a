import itertools
import math

import pytest
import torch
from torch import nn

from hybrid_models.captioner import Captioner, CaptionerConfig, DecoderStep, EncodedVideo
from hybrid_models.decoding import (
    beam_search,
    eval_mode,
    gnmt_length_penalty,
    greedy_decode,
    sample_decode,
    words_of,
)
from hybrid_models.sequences import pad_sequences
from hybrid_models.vocabulary import BOS_INDEX, EOS_INDEX, PAD_INDEX

VARIANTS = list(itertools.product(["lstm", "hierarchical"], ["soft", "adaptive", "none"]))


def captioner(encoder="lstm", attention="soft", seed=0):
    torch.manual_seed(seed)
    model = Captioner(
        CaptionerConfig(
            feature_dim=8,
            vocab_size=12,
            embed_dim=6,
            hidden_dim=10,
            attention_dim=7,
            encoder=encoder,
            shot_length=2,
            attention=attention,
        )
    )
    return model.eval()


def videos(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return pad_sequences([torch.randn(t, 8, generator=generator) for t in (6, 3, 5)])


def teacher_forced_log_probs(model, features, mask, tokens):
    """Log p of each token of `tokens` (B, L) under teacher forcing from <bos>."""
    bos = torch.full((tokens.shape[0], 1), BOS_INDEX)
    logits = model(features, mask, torch.cat([bos, tokens[:, :-1]], dim=1)).logits
    return torch.log_softmax(logits, dim=-1).gather(2, tokens.unsqueeze(2)).squeeze(2)


@pytest.mark.parametrize(("encoder", "attention"), VARIANTS)
def test_greedy_step_logits_equal_the_teacher_forced_forward(encoder, attention):
    model = captioner(encoder, attention)
    features, mask = videos()
    decoded = greedy_decode(model, features, mask, max_length=7)
    length = decoded.tokens.shape[1]
    bos = torch.full((3, 1), BOS_INDEX)
    with torch.no_grad():
        forward = model(features, mask, torch.cat([bos, decoded.tokens[:, :-1]], dim=1))
    for row in range(3):
        real = int(decoded.lengths[row])
        assert torch.allclose(decoded.logits[row, :real], forward.logits[row, :real], atol=1e-5)
        assert torch.allclose(
            decoded.attention[row, :real], forward.frame_attention[row, :real], atol=1e-5
        )
    assert decoded.tokens.shape == (3, length) and decoded.attention.shape == (3, length, 6)


@pytest.mark.parametrize(("encoder", "attention"), VARIANTS)
def test_decoded_attention_covers_real_frames_until_the_end(encoder, attention):
    model = captioner(encoder, attention, seed=3)
    features, mask = videos()
    for decoded in (
        greedy_decode(model, features, mask, max_length=7),
        beam_search(model, features, mask, beam_size=3, max_length=7),
    ):
        for row in range(3):
            real = int(decoded.lengths[row])
            sums = decoded.attention[row].sum(-1)
            assert torch.allclose(sums[:real], torch.ones(real), atol=1e-5)
            assert bool((sums[real:] == 0).all())
            assert bool((decoded.attention[row][:, ~mask[row]] == 0).all())
        tokens = decoded.tokens
        assert not bool((tokens == BOS_INDEX).any())
        # <pad> only after the end
        for row, length in zip(tokens.tolist(), decoded.lengths.tolist(), strict=True):
            assert PAD_INDEX not in row[:length] and set(row[length:]) <= {PAD_INDEX}


@pytest.mark.parametrize(("encoder", "attention"), VARIANTS)
@pytest.mark.parametrize("length_penalty", [0.0, 0.8])
def test_beam_of_one_is_greedy(encoder, attention, length_penalty):
    model = captioner(encoder, attention, seed=1)
    features, mask = videos(seed=1)
    greedy = greedy_decode(model, features, mask, max_length=6)
    beam = beam_search(
        model, features, mask, beam_size=1, max_length=6, length_penalty=length_penalty
    )
    assert torch.equal(beam.tokens, greedy.tokens)
    assert torch.allclose(beam.log_probs, greedy.log_probs, atol=1e-5)
    assert torch.allclose(beam.attention, greedy.attention, atol=1e-6)


@pytest.mark.parametrize(("encoder", "attention"), VARIANTS)
def test_beam_log_probs_are_those_of_its_tokens(encoder, attention):
    model = captioner(encoder, attention, seed=2)
    features, mask = videos(seed=2)
    beam = beam_search(model, features, mask, beam_size=3, max_length=6)
    with torch.no_grad():
        per_token = teacher_forced_log_probs(model, features, mask, beam.tokens)
    real = beam.tokens != PAD_INDEX
    assert torch.allclose((per_token * real).sum(1), beam.log_probs, atol=1e-5)


class TableModel(nn.Module):
    """A hand-made language model: the next token's probabilities depend on the previous token only."""

    def __init__(self, table: dict[int, dict[int, float]], vocab_size: int = 12):
        super().__init__()
        probs = torch.full((vocab_size, vocab_size), 1e-9)
        for previous, following in table.items():
            for token, p in following.items():
                probs[previous, token] = p
        self.register_buffer("log_table", torch.log(probs / probs.sum(1, keepdim=True)))

    def encode(self, features, mask):
        batch, frames = mask.shape
        return EncodedVideo(
            states=features,
            step_mask=mask,
            final=features[:, 0],
            mean=features.mean(1),
            keys=None,
            frame_mask=mask,
            frame_to_step=torch.arange(frames).expand(batch, -1),
            step_sizes=mask.float(),
        )

    def init_state(self, encoded):
        zeros = encoded.final.new_zeros(encoded.final.shape[0], 1)
        return zeros, zeros

    def step(self, encoded, state, tokens):
        uniform = encoded.step_mask.float() / encoded.step_mask.sum(1, keepdim=True)
        return DecoderStep(self.log_table[tokens], state, uniform, None)


# From <bos>: "4" (0.5) or "5" (0.4). After 4: 6 (0.4), 7 (0.3) or end (0.3). After 5: end (0.9).
TABLE = {
    BOS_INDEX: {4: 0.5, 5: 0.4, EOS_INDEX: 0.1},
    4: {6: 0.4, 7: 0.3, EOS_INDEX: 0.3},
    5: {EOS_INDEX: 0.9, 6: 0.1},
    6: {EOS_INDEX: 1.0},
    7: {EOS_INDEX: 1.0},
}


def test_beam_search_beats_greedy_on_a_hand_made_case():
    model = TableModel(TABLE)
    features, mask = torch.zeros(1, 2, 3), torch.ones(1, 2, dtype=torch.bool)
    greedy = greedy_decode(model, features, mask, max_length=5)
    assert greedy.tokens.tolist() == [[4, 6, EOS_INDEX]]  # p = 0.5 · 0.4 · 1 = 0.2
    beam = beam_search(model, features, mask, beam_size=2, max_length=5)
    assert beam.tokens.tolist() == [[5, EOS_INDEX, PAD_INDEX]]  # p = 0.4 · 0.9 = 0.36
    assert beam.log_probs.item() == pytest.approx(math.log(0.36), abs=1e-5)
    assert greedy.log_probs.item() == pytest.approx(math.log(0.2), abs=1e-5)


def test_length_penalty_prefers_longer_captions_when_strong():
    model = TableModel(TABLE)
    features, mask = torch.zeros(1, 2, 3), torch.ones(1, 2, dtype=torch.bool)
    # log 0.36 / (7/6)^α against log 0.2 / (8/6)^α: the longer one wins once α > 3.3.
    mild = beam_search(model, features, mask, beam_size=3, max_length=5, length_penalty=1.0)
    assert mild.tokens.tolist() == [[5, EOS_INDEX, PAD_INDEX]]
    strong = beam_search(model, features, mask, beam_size=3, max_length=5, length_penalty=5.0)
    assert strong.tokens.tolist() == [[4, 6, EOS_INDEX]]
    assert gnmt_length_penalty(torch.tensor(3), 1.0).item() == pytest.approx(8 / 6)


def test_max_length_cuts_captions_without_eos():
    model = TableModel({BOS_INDEX: {4: 1.0}, 4: {4: 1.0}})
    features, mask = torch.zeros(2, 2, 3), torch.ones(2, 2, dtype=torch.bool)
    for decoded in (
        greedy_decode(model, features, mask, max_length=3),
        beam_search(model, features, mask, beam_size=2, max_length=3),
    ):
        assert decoded.tokens.tolist() == [[4, 4, 4], [4, 4, 4]]
        assert decoded.lengths.tolist() == [3, 3]


def test_sampling_is_seeded_leaves_the_global_rng_alone_and_scores_its_tokens():
    model = captioner("lstm", "adaptive")
    features, mask = videos()
    global_state = torch.random.get_rng_state()
    first = sample_decode(model, features, mask, 6, torch.Generator().manual_seed(7))
    again = sample_decode(model, features, mask, 6, torch.Generator().manual_seed(7))
    other = sample_decode(model, features, mask, 6, torch.Generator().manual_seed(8))
    assert torch.equal(torch.random.get_rng_state(), global_state)
    tokens, log_probs = first
    assert torch.equal(tokens, again[0]) and torch.allclose(log_probs, again[1])
    assert not torch.equal(tokens, other[0])
    real = tokens != PAD_INDEX
    assert bool((log_probs[~real] == 0).all()) and bool((log_probs[real] < 0).all())
    with torch.no_grad():
        expected = teacher_forced_log_probs(model, features, mask, tokens)
    assert torch.allclose(log_probs, expected * real, atol=1e-5)
    log_probs.sum().backward()
    assert model.output.weight.grad is not None


def test_sampling_follows_the_model_distribution():
    model = TableModel(TABLE)
    features, mask = torch.zeros(400, 2, 3), torch.ones(400, 2, dtype=torch.bool)
    tokens, _ = sample_decode(model, features, mask, 4, torch.Generator().manual_seed(0))
    first = tokens[:, 0]
    # p(4) = 0.5, p(5) = 0.4, p(<eos>) = 0.1; 400 draws keep each share within ±0.08.
    assert float((first == 4).float().mean()) == pytest.approx(0.5, abs=0.08)
    assert float((first == 5).float().mean()) == pytest.approx(0.4, abs=0.08)


def test_words_of_strips_specials_and_stops_at_eos():
    tokens = torch.tensor([[4, 5, EOS_INDEX, 6], [EOS_INDEX, 4, 0, 0], [7, 7, 7, 7]])
    assert words_of(tokens) == [(4, 5), (), (7, 7, 7, 7)]


def test_eval_mode_restores_the_mode():
    model = captioner()
    model.train()
    with eval_mode(model):
        assert not model.training
    assert model.training


def test_decoding_rejects_bad_arguments():
    model = captioner()
    features, mask = videos()
    with pytest.raises(ValueError, match=r"max_length \(0\) must be > 0"):
        greedy_decode(model, features, mask, max_length=0)
    with pytest.raises(ValueError, match=r"beam_size \(0\) must be > 0"):
        beam_search(model, features, mask, beam_size=0, max_length=3)
    with pytest.raises(ValueError, match=r"length_penalty \(-1.0\) must be >= 0"):
        beam_search(model, features, mask, beam_size=2, max_length=3, length_penalty=-1.0)
    with pytest.raises(ValueError, match=r"temperature \(0.0\) must be > 0"):
        sample_decode(model, features, mask, 3, torch.Generator(), temperature=0.0)
