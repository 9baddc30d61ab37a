import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from hybrid_models.sequences import pad_sequences, reverse_padded
from hybrid_models.vocabulary import PAD_INDEX
from hybrid_models.vqa import (
    FUSIONS,
    FactorizedBilinearFusion,
    ProductFusion,
    VideoQA,
    VQAConfig,
    vqa_loss,
)

# attention "none" is the mean of raw features, so it only exists without a video encoder.
ENCODINGS = [
    ("lstm", "question_guided"),
    ("lstm", "co_attention"),
    ("none", "question_guided"),
    ("none", "co_attention"),
    ("none", "none"),
]
VARIANTS = [(v, a, f) for v, a in ENCODINGS for f in FUSIONS]


def config(video_encoder="lstm", attention="question_guided", fusion="product", **overrides):
    values = dict(
        feature_dim=8,
        question_vocab_size=12,
        num_answers=5,
        embed_dim=6,
        hidden_dim=10,
        attention_dim=7,
        fusion_dim=9,
        bilinear_dim=4,
        mfb_factor=3,
        video_encoder=video_encoder,
        attention=attention,
        fusion=fusion,
    )
    values.update(overrides)
    return VQAConfig(**values)


def model_for(*variant, seed=0, **overrides):
    torch.manual_seed(seed)
    return VideoQA(config(*variant, **overrides))


def batch(seed=0):
    generator = torch.Generator().manual_seed(seed)
    features, mask = pad_sequences([torch.randn(t, 8, generator=generator) for t in (6, 3, 5)])
    questions = torch.tensor([[4, 5, 6, 7], [8, 9, PAD_INDEX, PAD_INDEX], [10, 11, 4, PAD_INDEX]])
    return features, mask, questions


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"hidden_dim": 0}, r"hidden_dim \(0\) must be > 0"),
        ({"mfb_factor": 0}, r"mfb_factor \(0\) must be > 0"),
        ({"num_answers": 1}, r"num_answers \(1\) must be > 1"),
        ({"question_vocab_size": 3}, r"question_vocab_size \(3\) must be > 4"),
        ({"video_encoder": "gru"}, "video_encoder 'gru' must be 'lstm' or 'none'"),
        ({"attention": "spatial"}, "attention 'spatial' must be 'question_guided', 'none' or"),
        ({"fusion": "sum"}, "fusion 'sum' must be one of concat, product, bilinear, factorized"),
        (
            {"attention": "none"},
            "attention 'none' averages the raw frame features and needs video_encoder 'none',"
            " got 'lstm'",
        ),
        ({"dropout": -0.1}, r"dropout \(-0.1\) must be in \[0, 1\)"),
    ],
)
def test_config_rejects(overrides, message):
    with pytest.raises(ValueError, match=message):
        config(**overrides)


@pytest.mark.parametrize(("video_encoder", "attention", "fusion"), VARIANTS)
def test_shapes_finite_and_every_parameter_learns(video_encoder, attention, fusion):
    model = model_for(video_encoder, attention, fusion, dropout=0.1)
    features, mask, questions = batch()
    output = model(features, mask, questions)
    assert output.logits.shape == (3, 5) and output.attention.shape == (3, 6)
    assert bool(torch.isfinite(output.logits).all())
    if attention == "co_attention":
        assert output.question_attention.shape == (3, 4)
        assert torch.allclose(output.question_attention.sum(1), torch.ones(3), atol=1e-6)
        assert bool((output.question_attention[questions == PAD_INDEX] == 0).all())
    else:
        assert output.question_attention is None
    loss, stats = vqa_loss(output, torch.tensor([1, 2, 3]), label_smoothing=0.1)
    loss.backward()
    assert 0.0 <= stats["accuracy"] <= 1.0
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert bool(torch.isfinite(parameter.grad).all()), name
        assert float(parameter.grad.abs().sum()) > 0, name


@pytest.mark.parametrize(("video_encoder", "attention", "fusion"), VARIANTS)
def test_padding_changes_nothing(video_encoder, attention, fusion):
    model = model_for(video_encoder, attention, fusion).eval()
    features, mask, questions = batch()
    together = model(features, mask, questions)
    alone = model(features[1:2, :3], mask[1:2, :3], questions[1:2, :2])
    assert torch.allclose(together.logits[1], alone.logits[0], atol=1e-5)
    assert torch.allclose(together.attention[1, :3], alone.attention[0], atol=1e-5)
    assert torch.allclose(together.attention.sum(1), torch.ones(3), atol=1e-6)
    assert bool((together.attention[~mask] == 0).all())


@pytest.mark.parametrize("attention", ["question_guided", "co_attention"])
def test_bidirectional_video_encoder(attention):
    model = model_for("lstm", attention, "product", bidirectional=True)
    features, mask, questions = batch()
    output = model(features, mask, questions)
    vqa_loss(output, torch.tensor([1, 2, 3]))[0].backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and float(parameter.grad.abs().sum()) > 0, name
    model.eval()
    together = model(features, mask, questions)
    alone = model(features[2:, :5], mask[2:, :5], questions[2:, :3])
    assert torch.allclose(together.logits[2], alone.logits[0], atol=1e-5)


def test_rebuilds_from_json_config_and_safetensors(tmp_path):
    original = model_for("lstm", "co_attention", "factorized_bilinear").eval()
    text = json.dumps(dataclasses.asdict(original.config))
    save_file(original.state_dict(), tmp_path / "weights.safetensors")
    rebuilt = VideoQA(VQAConfig(**json.loads(text))).eval()
    rebuilt.load_state_dict(load_file(tmp_path / "weights.safetensors"))
    features, mask, questions = batch()
    with torch.no_grad():
        assert torch.equal(
            original(features, mask, questions).logits, rebuilt(features, mask, questions).logits
        )


def test_no_attention_baseline_ignores_frame_order_and_the_recurrent_model_does_not():
    features, mask, questions = batch()
    backwards = reverse_padded(features, mask)
    baseline = model_for("none", "none", "concat").eval()
    assert torch.allclose(
        baseline(features, mask, questions).logits,
        baseline(backwards, mask, questions).logits,
        atol=1e-6,
    )
    recurrent = model_for("lstm", "question_guided", "concat").eval()
    assert not torch.allclose(
        recurrent(features, mask, questions).logits,
        recurrent(backwards, mask, questions).logits,
        atol=1e-4,
    )
    uniform = baseline(features, mask, questions).attention
    assert torch.allclose(uniform[1], torch.tensor([1 / 3] * 3 + [0.0] * 3))


def test_product_fusion_formula():
    torch.manual_seed(0)
    fusion = ProductFusion(5, 4, config(fusion_dim=3))
    v, q = torch.randn(2, 5), torch.randn(2, 4)

    def linear(layer, x):
        bias = 0 if layer.bias is None else layer.bias.detach().numpy()
        return x @ layer.weight.detach().numpy().T + bias

    vn, qn = v.numpy(), q.numpy()
    shared = linear(fusion.video_shared, vn) * linear(fusion.question_shared, qn)
    expected = np.tanh(
        linear(fusion.video, vn) + linear(fusion.question, qn) + linear(fusion.product, shared)
    )
    assert np.allclose(fusion(v, q).detach().numpy(), expected, atol=1e-6)


def test_factorized_bilinear_pooling_formula():
    torch.manual_seed(0)
    fusion = FactorizedBilinearFusion(5, 4, config(fusion_dim=3, mfb_factor=2)).eval()
    v, q = torch.randn(2, 5), torch.randn(2, 4)
    u_weight, u_bias = fusion.video.weight.detach().numpy(), fusion.video.bias.detach().numpy()
    w_weight = fusion.question.weight.detach().numpy()
    w_bias = fusion.question.bias.detach().numpy()
    joint = (v.numpy() @ u_weight.T + u_bias) * (q.numpy() @ w_weight.T + w_bias)  # (2, 6)
    pooled = np.stack([joint[:, 0:2].sum(1), joint[:, 2:4].sum(1), joint[:, 4:6].sum(1)], 1)
    powered = np.sign(pooled) * np.sqrt(np.abs(pooled) + 1e-8)
    expected = powered / np.linalg.norm(powered, axis=1, keepdims=True)
    out = fusion(v, q)
    assert np.allclose(out.detach().numpy(), expected, atol=1e-6)
    assert torch.allclose(out.norm(dim=1), torch.ones(2))
    # The power step keeps a finite gradient where the pooled value is exactly 0.
    zero = torch.zeros(1, 5, requires_grad=True)
    fusion(zero, torch.zeros(1, 4)).sum().backward()
    assert bool(torch.isfinite(zero.grad).all())


def test_loss_leaves_out_unseen_answers():
    model = model_for()
    features, mask, questions = batch()
    output = model(features, mask, questions)
    loss, _ = vqa_loss(output, torch.tensor([0, 2, 3]))
    expected = F.cross_entropy(output.logits[1:], torch.tensor([2, 3]))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="every answer in the batch is <unk>"):
        vqa_loss(output, torch.tensor([0, 0, 0]))
    with pytest.raises(ValueError, match=r"answers \(2,\) must be \(3,\)"):
        vqa_loss(output, torch.tensor([1, 2]))


def test_questions_must_match_the_batch():
    model = model_for()
    features, mask, questions = batch()
    with pytest.raises(ValueError, match=r"questions must be \(B=3, L\) token ids, got \(4,\)"):
        model(features, mask, questions[0])


@pytest.mark.parametrize(("video_encoder", "attention", "fusion"), VARIANTS)
def test_every_variant_answers_eight_questions_after_training(video_encoder, attention, fusion):
    model = model_for(video_encoder, attention, fusion, hidden_dim=16, fusion_dim=16)
    generator = torch.Generator().manual_seed(2)
    features, mask = pad_sequences(
        [torch.randn(t, 8, generator=generator) for t in (4, 3, 5, 6, 2, 4, 5, 3)]
    )
    questions = torch.randint(4, 12, (8, 3), generator=generator)
    questions[::2, 2] = PAD_INDEX
    answers = torch.tensor([1, 2, 3, 4, 1, 2, 3, 4])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(40):
        loss, _ = vqa_loss(model(features, mask, questions), answers)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    assert model(features, mask, questions).logits.argmax(1).tolist() == answers.tolist()
