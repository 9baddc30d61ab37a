import dataclasses
import itertools
import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from hybrid_models.captioner import (
    Captioner,
    CaptionerConfig,
    CaptionOutput,
    MultiTaskCaptioner,
    MultiTaskCaptionerConfig,
    attention_penalty,
    caption_loss,
    multitask_loss,
)
from hybrid_models.decoding import greedy_decode
from hybrid_models.sequences import pad_sequences
from hybrid_models.vocabulary import BOS_INDEX, EOS_INDEX, PAD_INDEX

VARIANTS = list(itertools.product(["lstm", "hierarchical"], ["soft", "adaptive", "none"]))


def config(encoder="lstm", attention="soft", **overrides):
    values = dict(
        feature_dim=8,
        vocab_size=12,
        embed_dim=6,
        hidden_dim=10,
        attention_dim=7,
        encoder=encoder,
        shot_length=2,
        attention=attention,
    )
    values.update(overrides)
    return CaptionerConfig(**values)


def batch(seed=0):
    """Three videos of 6, 3 and 5 frames; captions of 4, 2 and 3 input tokens."""
    generator = torch.Generator().manual_seed(seed)
    features, mask = pad_sequences([torch.randn(t, 8, generator=generator) for t in (6, 3, 5)])
    tokens = torch.tensor(
        [
            [BOS_INDEX, 4, 5, 6, 7, EOS_INDEX],
            [BOS_INDEX, 8, EOS_INDEX, PAD_INDEX, PAD_INDEX, PAD_INDEX],
            [BOS_INDEX, 9, 10, EOS_INDEX, PAD_INDEX, PAD_INDEX],
        ]
    )
    return features, mask, tokens


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"hidden_dim": 0}, r"hidden_dim \(0\) must be > 0"),
        ({"shot_length": -1}, r"shot_length \(-1\) must be > 0"),
        ({"vocab_size": 4}, r"vocab_size \(4\) must be > 4 \(the special tokens\)"),
        ({"encoder": "gru"}, "encoder 'gru' must be 'lstm' or 'hierarchical'"),
        ({"attention": "hard"}, "attention 'hard' must be 'soft', 'adaptive' or 'none'"),
        ({"dropout": 1.0}, r"dropout \(1.0\) must be in \[0, 1\)"),
    ],
)
def test_config_rejects(overrides, message):
    with pytest.raises(ValueError, match=message):
        config(**overrides)


def test_multitask_config_rejects():
    with pytest.raises(ValueError, match=r"num_actions \(1\) must be > 1"):
        MultiTaskCaptionerConfig(feature_dim=8, vocab_size=12, num_actions=1)
    with pytest.raises(ValueError, match=r"action_weight \(-1.0\) must be finite and >= 0"):
        MultiTaskCaptionerConfig(feature_dim=8, vocab_size=12, num_actions=3, action_weight=-1.0)
    with pytest.raises(ValueError, match="caption_weight and action_weight cannot both be 0"):
        MultiTaskCaptionerConfig(
            feature_dim=8, vocab_size=12, num_actions=3, caption_weight=0, action_weight=0
        )


@pytest.mark.parametrize(("encoder", "attention"), VARIANTS)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_shapes_finite_and_every_parameter_learns(encoder, attention, bidirectional):
    torch.manual_seed(0)
    model = Captioner(config(encoder, attention, bidirectional=bidirectional, dropout=0.1))
    features, mask, tokens = batch()
    output = model(features, mask, tokens[:, :-1])
    steps = 6 if encoder == "lstm" else 3  # shots of 2 frames
    assert output.logits.shape == (3, 5, 12)
    assert output.attention.shape == (3, 5, steps)
    assert output.frame_attention.shape == (3, 5, 6)
    if attention == "adaptive":
        assert output.sentinel.shape == (3, 5)
        assert bool(((output.sentinel > 0) & (output.sentinel < 1)).all())
    else:
        assert output.sentinel is None
    assert bool(torch.isfinite(output.logits).all())
    loss, stats = caption_loss(output, tokens[:, 1:], label_smoothing=0.1, attention_weight=0.5)
    loss.backward()
    assert math.isfinite(stats["loss"])
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert bool(torch.isfinite(parameter.grad).all()), name
        assert float(parameter.grad.abs().sum()) > 0, name


@pytest.mark.parametrize(("encoder", "attention"), VARIANTS)
def test_attention_sums_to_one_over_real_frames(encoder, attention):
    torch.manual_seed(0)
    model = Captioner(config(encoder, attention)).eval()
    features, mask, tokens = batch()
    output = model(features, mask, tokens[:, :-1])
    step_mask = output.encoded.step_mask
    assert torch.allclose(output.attention.sum(-1), torch.ones(3, 5), atol=1e-6)
    assert bool((output.attention * ~step_mask.unsqueeze(1) == 0).all())
    frames = output.frame_attention
    assert torch.allclose(frames.sum(-1), torch.ones(3, 5), atol=1e-6)
    assert bool((frames * ~mask.unsqueeze(1) == 0).all())


def test_hierarchical_shots_map_back_to_frames():
    torch.manual_seed(0)
    model = Captioner(config("hierarchical", "soft", shot_length=2)).eval()
    features, mask, tokens = batch()
    output = model(features, mask, tokens[:, :-1])
    encoded = output.encoded
    assert encoded.step_mask.tolist() == [[True] * 3, [True, True, False], [True, True, True]]
    assert encoded.frame_to_step[0].tolist() == [0, 0, 1, 1, 2, 2]
    assert encoded.step_sizes.tolist() == [[2, 2, 2], [2, 1, 0], [2, 2, 1]]
    # Video 1 has 3 frames: shot 0 covers frames 0-1 (weight halved), shot 1 frame 2 alone.
    shots, frames = output.attention[1, 0], output.frame_attention[1, 0]
    expected = torch.stack([shots[0] / 2, shots[0] / 2, shots[1], *torch.zeros(3)])
    assert torch.allclose(frames, expected)


@pytest.mark.parametrize(("encoder", "attention"), VARIANTS)
def test_padding_does_not_change_a_video(encoder, attention):
    torch.manual_seed(0)
    model = Captioner(config(encoder, attention)).eval()
    features, mask, tokens = batch()
    together = model(features, mask, tokens[:, :-1])
    alone = model(features[1:2, :3], mask[1:2, :3], tokens[1:2, :2])
    assert torch.allclose(together.logits[1, :2], alone.logits[0], atol=1e-5)
    steps = alone.attention.shape[-1]
    assert torch.allclose(together.attention[1, :2, :steps], alone.attention[0], atol=1e-5)
    assert torch.allclose(together.frame_attention[1, :2, :3], alone.frame_attention[0], atol=1e-5)


def test_attention_penalty_pinned():
    # One video: 2 real steps of 3, 2 real words of 3; τ = 2 / 2 = 1.
    attention = torch.tensor([[[0.25, 0.75, 0.0], [0.5, 0.5, 0.0], [0.9, 0.1, 0.0]]])
    step_mask = torch.tensor([[True, True, False]])
    token_mask = torch.tensor([[True, True, False]])
    # Received: step 0 gets 0.75, step 1 gets 1.25 -> (1 - 0.75)² + (1 - 1.25)² = 0.125.
    assert attention_penalty(attention, step_mask, token_mask).item() == pytest.approx(0.125)
    # Uniform attention over the real steps is never penalised, whatever the lengths.
    uniform = torch.tensor([[[1 / 3] * 3] * 4])
    penalty = attention_penalty(uniform, torch.ones(1, 3, dtype=torch.bool), torch.ones(1, 4) > 0)
    assert penalty.item() == pytest.approx(0.0, abs=1e-12)


def test_caption_loss_matches_an_independent_cross_entropy():
    torch.manual_seed(0)
    model = Captioner(config())
    features, mask, tokens = batch()
    output = model(features, mask, tokens[:, :-1])
    targets = tokens[:, 1:]
    terms = [
        -torch.log_softmax(output.logits[b, position], dim=0)[targets[b, position]]
        for b in range(3)
        for position in range(5)
        if targets[b, position] != PAD_INDEX
    ]
    expected = torch.stack(terms).mean()
    loss, stats = caption_loss(output, targets)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert stats["token_cross_entropy"] == pytest.approx(expected.item(), rel=1e-6)
    penalty = attention_penalty(output.attention, output.encoded.step_mask, targets != PAD_INDEX)
    weighted, _ = caption_loss(output, targets, attention_weight=2.0)
    assert weighted.item() == pytest.approx((expected + 2.0 * penalty).item(), rel=1e-6)
    with pytest.raises(ValueError, match=r"targets \(3, 4\) do not match logits \(3, 5\)"):
        caption_loss(output, targets[:, :4])
    with pytest.raises(ValueError, match=r"label_smoothing \(1.0\) must be in \[0, 1\)"):
        caption_loss(output, targets, label_smoothing=1.0)


def test_multitask_loss_weighs_caption_and_action():
    torch.manual_seed(0)
    settings = dict(config().__dict__)
    multitask_config = MultiTaskCaptionerConfig(
        **settings, num_actions=3, caption_weight=0.7, action_weight=0.2
    )
    model = MultiTaskCaptioner(multitask_config)
    features, mask, tokens = batch()
    actions = torch.tensor([0, 2, 1])
    output = model(features, mask, tokens[:, :-1])
    assert isinstance(output.caption, CaptionOutput)
    assert output.action_logits.shape == (3, 3)
    caption, _ = caption_loss(output.caption, tokens[:, 1:])
    action = F.cross_entropy(output.action_logits, actions)
    loss, stats = multitask_loss(output, tokens[:, 1:], actions, multitask_config)
    assert loss.item() == pytest.approx((0.7 * caption + 0.2 * action).item(), rel=1e-6)
    assert set(stats) >= {"loss", "caption_token_cross_entropy", "action_accuracy"}
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and float(parameter.grad.abs().sum()) > 0, name
    with pytest.raises(ValueError, match=r"actions \(2,\) must be \(3,\)"):
        multitask_loss(output, tokens[:, 1:], actions[:2], multitask_config)


def test_tokens_in_must_match_the_batch():
    model = Captioner(config())
    features, mask, tokens = batch()
    with pytest.raises(ValueError, match=r"tokens_in must be \(B=3, L\), got \(2, 5\)"):
        model(features, mask, tokens[:2, :-1])


# Four videos, four distinct short captions: every variant must learn to say each one.
OVERFIT_CAPTIONS = [[4, 5], [6, 7, 8], [9, 10], [11, 4, 6]]


def overfit(model, steps=60):
    generator = torch.Generator().manual_seed(1)
    features, mask = pad_sequences([torch.randn(t, 8, generator=generator) for t in (4, 3, 5, 4)])
    sequences = [[BOS_INDEX, *words, EOS_INDEX] for words in OVERFIT_CAPTIONS]
    tokens = torch.full((4, 5), PAD_INDEX)
    for row, sequence in enumerate(sequences):
        tokens[row, : len(sequence)] = torch.tensor(sequence)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(steps):
        loss, _ = caption_loss(model(features, mask, tokens[:, :-1]), tokens[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    decoded = greedy_decode(model, features, mask, max_length=6)
    return [row[: row.index(EOS_INDEX)] for row in decoded.tokens.tolist()]


@pytest.mark.parametrize(("encoder", "attention"), VARIANTS)
def test_every_variant_overfits_four_captions(encoder, attention):
    torch.manual_seed(0)
    model = Captioner(config(encoder, attention, hidden_dim=16))
    assert overfit(model) == OVERFIT_CAPTIONS


@pytest.mark.parametrize("multitask", [False, True])
def test_rebuilds_from_json_config_and_safetensors(tmp_path, multitask):
    torch.manual_seed(0)
    if multitask:
        settings = dataclasses.asdict(config("hierarchical", "adaptive"))
        original = MultiTaskCaptioner(MultiTaskCaptionerConfig(**settings, num_actions=4)).eval()
    else:
        original = Captioner(config("hierarchical", "adaptive")).eval()
    text = json.dumps(dataclasses.asdict(original.config))
    save_file(original.state_dict(), tmp_path / "weights.safetensors")
    kind = type(original.config)
    rebuilt = type(original)(kind(**json.loads(text))).eval()
    rebuilt.load_state_dict(load_file(tmp_path / "weights.safetensors"))
    assert rebuilt.config == original.config
    features, mask, tokens = batch()
    with torch.no_grad():
        expected, again = original(features, mask, tokens), rebuilt(features, mask, tokens)
    if multitask:
        assert torch.equal(expected.action_logits, again.action_logits)
        expected, again = expected.caption, again.caption
    assert torch.equal(expected.logits, again.logits)
