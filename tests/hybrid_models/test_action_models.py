"""Action models, parametrised over the model dict: shapes, gradients, padding, overfitting,
order sensitivity, and each model's own maths against an independent computation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch.nn import functional as F

from hybrid_models.cnn_rnn import CNNRNNClassifier, CNNRNNConfig, ConvFrameEncoder
from hybrid_models.convlstm import (
    ConvLSTMCell,
    ConvLSTMConfig,
    ConvLSTMPredictor,
    next_map_mse,
)
from hybrid_models.fusion import AttentionFusion, TwoStreamConfig
from hybrid_models.segments import TemporalSegmentConfig, segment_weights
from hybrid_models.sequences import reverse_padded
from hybrid_models.temporal_classifier import (
    TemporalClassifier,
    TemporalClassifierConfig,
    probabilities,
)
from hybrid_models.training.action import ActionBatch, classification_loss, collate_videos, predict
from hybrid_models.video3d import (
    ARCHITECTURES,
    Video3DClassifier,
    Video3DConfig,
    count_parameters,
    resample_indices,
)
from hybrid_models.zoo import MODELS, build_from_config, build_model, config_from_dict

NUM_CLASSES = 3


TEMPORAL = {"feature_dim": 8, "num_classes": NUM_CLASSES, "hidden_dim": 16, "attention_dim": 8}


@dataclass(frozen=True)
class Case:
    """How to build a tiny instance of a model-dict entry and make one video for it."""

    fields: dict[str, Any]
    make: Callable[[torch.Generator, int], tuple[torch.Tensor, ...]]  # (generator, T) -> streams
    time_dim: int = 0
    lengths: tuple[int, ...] = (6, 4, 2)
    learning_rate: float = 1e-2


def _features(dim: int) -> Callable[[torch.Generator, int], tuple[torch.Tensor, ...]]:
    return lambda g, length: (torch.randn(length, dim, generator=g),)


def _rgb_flow(g: torch.Generator, length: int) -> tuple[torch.Tensor, ...]:
    return torch.randn(length, 8, generator=g), torch.randn(length, 6, generator=g)


CASES: dict[str, Case] = {
    "lstm": Case(TEMPORAL, _features(8)),
    "gru": Case(TEMPORAL, _features(8)),
    "bilstm": Case(TEMPORAL, _features(8)),
    "lstm_attention": Case(TEMPORAL, _features(8)),
    "mean_pool": Case({**TEMPORAL, "projection_dim": 8}, _features(8)),
    "segments": Case(
        {"feature_dim": 8, "num_classes": NUM_CLASSES, "hidden_dim": 16}, _features(8)
    ),
    "two_stream": Case(
        {
            "rgb": TEMPORAL,
            "flow": {**TEMPORAL, "feature_dim": 6, "encoder": "gru", "pooling": "mean"},
            "alpha": 0.6,
            "learn_alpha": True,
        },
        _rgb_flow,
    ),
    "two_stream_attention_fusion": Case(
        {"rgb_dim": 8, "flow_dim": 6, "fusion_dim": 8, "temporal": TEMPORAL}, _rgb_flow
    ),
    "convlstm": Case(
        {"input_channels": 4, "height": 6, "width": 6, "hidden_channels": 8},
        lambda g, length: (torch.randn(length, 4, 6, 6, generator=g),),
    ),
    "r3d": Case(
        {"num_frames": 4},
        lambda g, length: (torch.randn(3, length, 32, 32, generator=g),),
        time_dim=1,
        lengths=(4, 3, 2),
        learning_rate=1e-3,
    ),
    "cnn_rnn": Case(
        {"conv_channels": (4, 8), "temporal": {**TEMPORAL, "pooling": "last"}},
        lambda g, length: (torch.rand(length, 3, 16, 16, generator=g),),
    ),
}
ACTION_MODELS = sorted(name for name, entry in MODELS.items() if entry.task == "action")


def case_config(name: str) -> Any:
    fields = {**MODELS[name].defaults, **CASES[name].fields}
    if name in ("segments", "convlstm", "r3d"):
        fields["num_classes"] = NUM_CLASSES
    return config_from_dict(MODELS[name].config_type, fields)


def build_case(name: str, seed: int = 0) -> torch.nn.Module:
    return build_from_config(MODELS[name], case_config(name), seed=seed)


def case_batch(name: str, seed: int = 0, lengths: tuple[int, ...] | None = None) -> ActionBatch:
    case = CASES[name]
    g = torch.Generator().manual_seed(seed)
    lengths = case.lengths if lengths is None else lengths
    videos = [case.make(g, length) for length in lengths]
    labels = torch.arange(len(lengths)) % NUM_CLASSES
    return collate_videos(videos, labels, time_dim=case.time_dim)


def test_every_action_model_has_a_test_case():
    assert sorted(CASES) == ACTION_MODELS


@pytest.mark.parametrize("name", ACTION_MODELS)
def test_output_shapes_are_finite_and_attention_is_a_distribution(name):
    model = build_case(name).eval()
    batch = case_batch(name)
    with torch.no_grad():
        output = predict(model, batch)
    assert output.logits.shape == (3, NUM_CLASSES)
    assert torch.isfinite(output.logits).all()
    padding = ~batch.mask
    if output.attention is not None:  # (B, T): a distribution over each video's real frames
        assert torch.allclose(output.attention.sum(dim=1), torch.ones(3))
        assert bool((output.attention[padding] == 0).all())
    if output.fusion_weights is not None:  # (B, T, 2): a distribution over streams per frame
        assert torch.allclose(output.fusion_weights.sum(dim=-1), batch.mask.float())
        assert bool((output.fusion_weights[padding] == 0).all())
    has_attention = name in ("lstm_attention", "two_stream_attention_fusion")
    assert (output.attention is not None) == has_attention
    assert (output.fusion_weights is not None) == (name == "two_stream_attention_fusion")


@pytest.mark.parametrize("name", ACTION_MODELS)
def test_every_parameter_gets_a_finite_gradient(name):
    model = build_case(name).train()
    batch = case_batch(name)
    loss = classification_loss(predict(model, batch).logits, batch.labels, multi_label=False)
    loss.backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert torch.isfinite(parameter.grad).all(), parameter_name


@pytest.mark.parametrize("name", ACTION_MODELS)
def test_padding_does_not_change_a_videos_output(name):
    model = build_case(name).eval()
    case = CASES[name]
    batch = case_batch(name)
    with torch.no_grad():
        together = predict(model, batch)
        for index, length in enumerate(case.lengths):
            video = [stream[index : index + 1] for stream in batch.inputs]
            time_dim = case.time_dim + 1
            alone_inputs = tuple(stream.narrow(time_dim, 0, length) for stream in video)
            alone = predict(
                model,
                ActionBatch(
                    inputs=alone_inputs,
                    mask=batch.mask[index : index + 1, :length],
                    labels=batch.labels[index : index + 1],
                ),
            )
            assert torch.allclose(alone.logits[0], together.logits[index], atol=1e-5)
            if together.attention is not None:
                assert torch.allclose(
                    alone.attention[0], together.attention[index, :length], atol=1e-6
                )


@pytest.mark.parametrize("name", ACTION_MODELS)
def test_overfits_six_videos(name):
    case = CASES[name]
    batch = case_batch(name, seed=1, lengths=case.lengths + case.lengths)
    if name == "r3d":  # 16×16 clips of two frames: the 33M-parameter net is slow on CPU
        batch = ActionBatch(
            inputs=(batch.inputs[0][:, :, :2, :16, :16],),
            mask=batch.mask[:, :2],
            labels=batch.labels,
        )
        model = build_model("r3d", num_classes=NUM_CLASSES, num_frames=2).train()
    else:
        model = build_case(name).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=case.learning_rate)
    first_loss = None
    for _ in range(300):
        logits = predict(model, batch).logits
        loss = classification_loss(logits, batch.labels, multi_label=False)
        first_loss = loss.item() if first_loss is None else first_loss
        if loss.item() < 0.1 * first_loss and bool((logits.argmax(1) == batch.labels).all()):
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1 * first_loss
    assert torch.equal(logits.argmax(1), batch.labels)


def _ramps(g: torch.Generator, count: int, length: int = 5, dim: int = 8) -> torch.Tensor:
    """(count, T, D) sequences drifting along one fixed direction from random starts; their
    reverses drift the other way, like "move right" against "move left".
    """
    direction = torch.ones(dim) / dim**0.5
    start = torch.randn(count, 1, dim, generator=g)
    position = torch.linspace(0, 2, length).view(1, length, 1)
    return start + position * direction + 0.05 * torch.randn(count, length, dim, generator=g)


def test_lstm_tells_a_sequence_from_its_reverse_and_mean_pooling_cannot():
    g = torch.Generator().manual_seed(3)
    train, held_out = _ramps(g, 8), _ramps(g, 8)
    mask = torch.ones(16, 5, dtype=torch.bool)
    labels = torch.tensor([0] * 8 + [1] * 8)
    accuracy = {}
    for name in ("lstm", "mean_pool"):
        model = build_model(name, feature_dim=8, num_classes=2, hidden_dim=16).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        features = torch.cat([train, train.flip(1)])  # (16, T, D): sequences, then reverses
        for _ in range(60):
            loss = F.cross_entropy(model(features, mask).logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = model(torch.cat([held_out, held_out.flip(1)]), mask).logits
        accuracy[name] = float((logits.argmax(1) == labels).float().mean())
        if name == "mean_pool":
            # Chance by construction: a sequence and its reverse get the same logits.
            assert torch.allclose(logits[:8], logits[8:], atol=1e-6)
    assert accuracy == {"lstm": 1.0, "mean_pool": 0.5}


def test_mean_pool_logits_ignore_order_even_with_padding():
    model = build_model("mean_pool", feature_dim=8, num_classes=3).eval()
    batch = case_batch("mean_pool")
    features, mask = batch.inputs[0], batch.mask
    with torch.no_grad():
        assert torch.allclose(
            model(features, mask).logits,
            model(reverse_padded(features, mask), mask).logits,
            atol=1e-6,
        )


def test_temporal_classifier_attention_pooling_matches_the_formula():
    config = TemporalClassifierConfig(
        feature_dim=4, num_classes=2, encoder="none", pooling="attention", attention_dim=3
    )
    model = TemporalClassifier(config).eval()
    g = torch.Generator().manual_seed(0)
    features = torch.randn(2, 3, 4, generator=g)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    output = model(features, mask)
    pooling = model.attention
    energies = torch.tanh(features @ pooling.project.weight.T + pooling.project.bias)
    energies = (energies @ pooling.score.weight.T).squeeze(-1)  # e_t = wᵀ tanh(W h_t + b)
    alpha = torch.softmax(energies.masked_fill(~mask, float("-inf")), dim=1)
    context = (alpha.unsqueeze(-1) * features).sum(1)
    head = model.head[1]
    assert torch.allclose(output.attention, alpha, atol=1e-6)
    assert torch.allclose(output.logits, context @ head.weight.T + head.bias, atol=1e-6)


def test_bidirectional_last_pooling_joins_both_directions_final_states():
    model = build_model("bilstm", feature_dim=8, num_classes=3, hidden_dim=5).eval()
    batch = case_batch("bilstm")
    features, mask = batch.inputs[0], batch.mask
    with torch.no_grad():
        states, final = model.encoder(features, mask)  # (B, T, 10), (B, 10)
        for index, length in enumerate(CASES["bilstm"].lengths):
            assert torch.allclose(final[index, :5], states[index, length - 1, :5], atol=1e-6)
            assert torch.allclose(final[index, 5:], states[index, 0, 5:], atol=1e-6)


def test_multi_label_probabilities_are_independent_sigmoids():
    logits = torch.tensor([[0.0, 2.0, -1.0]])
    assert torch.allclose(probabilities(logits, multi_label=True), torch.sigmoid(logits))
    assert torch.allclose(
        probabilities(logits, multi_label=False).sum(), torch.tensor(1.0), atol=1e-6
    )


def test_segment_weights_split_real_frames_into_equal_segments():
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [True] * 2 + [False] * 4])
    weights = segment_weights(mask, 3)
    expected = torch.tensor(
        [
            [[1 / 2, 1 / 2, 0, 0, 0, 0], [0, 0, 1 / 2, 1 / 2, 0, 0], [0, 0, 0, 0, 1 / 2, 1 / 2]],
            [[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [0, 0, 1 / 2, 1 / 2, 0, 0]],
            # Two frames, three segments: segment s takes frame ⌊2s/3⌋ = 0, 0, 1.
            [[1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0]],
        ]
    )
    assert torch.allclose(weights, expected)


@pytest.mark.parametrize("multi_label", [False, True])
def test_segment_consensus_is_the_mean_of_segment_probabilities(multi_label):
    model = build_model(
        "segments", feature_dim=8, num_classes=3, hidden_dim=16, multi_label=multi_label
    ).eval()
    batch = case_batch("segments")
    features, mask = batch.inputs[0], batch.mask
    with torch.no_grad():
        logits = model(features, mask).logits
        # Independently: segment s of a 6-frame video is frames 2s, 2s+1.
        means = features[0].view(3, 2, 8).mean(1)  # (S, D)
        segment_logits = model.segment_model(means)  # (S, C)
    squash = torch.sigmoid if multi_label else lambda x: torch.softmax(x, dim=-1)
    expected = squash(segment_logits).mean(0)
    assert torch.allclose(probabilities(logits[0], multi_label=multi_label), expected, atol=1e-6)


def test_two_stream_late_fusion_mixes_probabilities_with_alpha():
    model = build_case("two_stream").eval()
    batch = case_batch("two_stream")
    rgb, flow = batch.inputs
    with torch.no_grad():
        fused = model(rgb, flow, batch.mask).logits
        rgb_out, flow_out = model.branch_outputs(rgb, flow, batch.mask)
        alpha = torch.sigmoid(model.alpha_logit)
    assert torch.allclose(model.alpha, torch.tensor(0.6))
    expected = alpha * rgb_out.logits.softmax(-1) + (1 - alpha) * flow_out.logits.softmax(-1)
    assert torch.allclose(fused.softmax(-1), expected, atol=1e-6)
    assert torch.allclose(fused.exp().sum(-1), torch.ones(3), atol=1e-6)  # logits are log P


@pytest.mark.parametrize(("alpha", "stream"), [(1.0, "rgb"), (0.0, "flow")])
def test_two_stream_with_fixed_alpha_at_an_end_is_that_stream(alpha, stream):
    fields = {**CASES["two_stream"].fields, "alpha": alpha, "learn_alpha": False}
    model = build_model("two_stream", **fields).eval()
    assert not any("alpha" in name for name, _ in model.named_parameters())
    batch = case_batch("two_stream")
    with torch.no_grad():
        fused = model(*batch.inputs, batch.mask).logits
        branch = dict(
            zip(("rgb", "flow"), model.branch_outputs(*batch.inputs, batch.mask), strict=True)
        )
    assert torch.allclose(fused.softmax(-1), branch[stream].logits.softmax(-1), atol=1e-6)


def test_two_stream_multi_label_fusion_mixes_sigmoids():
    fields = CASES["two_stream"].fields
    model = build_model(
        "two_stream",
        rgb={**fields["rgb"], "multi_label": True},
        flow={**fields["flow"], "multi_label": True},
        alpha=0.25,
    ).eval()
    batch = case_batch("two_stream")
    with torch.no_grad():
        fused = model(*batch.inputs, batch.mask).logits
        rgb_out, flow_out = model.branch_outputs(*batch.inputs, batch.mask)
    expected = 0.25 * rgb_out.logits.sigmoid() + 0.75 * flow_out.logits.sigmoid()
    assert torch.allclose(fused.sigmoid(), expected, atol=1e-6)


def test_attention_fusion_with_hand_set_weights():
    fusion = AttentionFusion(2)
    with torch.no_grad():
        fusion.score.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 0, 1.0, 0]]))
        fusion.score.bias.zero_()
    first, second = torch.tensor([[2.0, 5.0]]), torch.tensor([[0.0, -1.0]])
    fused, weights = fusion(first, second)
    # Scores (2, 0): α = softmax = (e²/(e²+1), 1/(e²+1)).
    a = torch.exp(torch.tensor(2.0)) / (torch.exp(torch.tensor(2.0)) + 1)
    assert torch.allclose(weights, torch.stack([a, 1 - a]).view(1, 2))
    assert torch.allclose(fused, a * first + (1 - a) * second)


def test_convlstm_cell_follows_the_peephole_equations():
    cell = ConvLSTMCell(2, 3, 3, 4, 5)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for peephole in (cell.peephole_i, cell.peephole_f, cell.peephole_o):
            peephole.copy_(torch.randn(3, 4, 5, generator=g))
    x = torch.randn(2, 2, 4, 5, generator=g)
    h, c = torch.randn(2, 3, 4, 5, generator=g), torch.randn(2, 3, 4, 5, generator=g)
    new_h, new_c = cell(x, (h, c))
    # Independently, with W_x· and W_h· as separate convolutions as in Shi et al. (2015).
    weight, bias = cell.gates.weight, cell.gates.bias
    w_x, w_h = weight[:, :2], weight[:, 2:]

    def conv(index: int) -> torch.Tensor:
        rows = slice(3 * index, 3 * index + 3)
        return F.conv2d(x, w_x[rows], bias[rows], padding=1) + F.conv2d(h, w_h[rows], padding=1)

    i = torch.sigmoid(conv(0) + cell.peephole_i * c)
    f = torch.sigmoid(conv(1) + cell.peephole_f * c)
    expected_c = f * c + i * torch.tanh(conv(2))
    o = torch.sigmoid(conv(3) + cell.peephole_o * expected_c)
    assert torch.allclose(new_c, expected_c, atol=1e-5)
    assert torch.allclose(new_h, o * torch.tanh(expected_c), atol=1e-5)


def _moving_blobs(starts: list[tuple[int, int]], steps: list[tuple[int, int]], length: int = 6):
    """(B, T, 1, 8, 8) maps of one 2×2 blob per sequence moving one cell per frame."""
    maps = torch.zeros(len(starts), length, 1, 8, 8)
    for index, ((row, col), (d_row, d_col)) in enumerate(zip(starts, steps, strict=True)):
        for t in range(length):
            r, c = (row + d_row * t) % 8, (col + d_col * t) % 8
            maps[index, t, 0, r : r + 2, c : c + 2] = 1.0
    return maps


def test_convlstm_predictor_beats_copying_the_last_map():
    train = _moving_blobs([(1, 0), (4, 1), (0, 3), (5, 5)], [(0, 1), (0, 1), (1, 0), (1, 0)])
    test = _moving_blobs([(3, 2), (2, 4)], [(0, 1), (1, 0)])
    mask = torch.ones(train.shape[:2], dtype=torch.bool)
    config = ConvLSTMConfig(input_channels=1, height=8, width=8, hidden_channels=8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = ConvLSTMPredictor(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(60):
        loss = next_map_mse(model(train, mask), train, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test_mask = torch.ones(test.shape[:2], dtype=torch.bool)
    with torch.no_grad():
        model_error = float(next_map_mse(model(test, test_mask), test, test_mask))
    copy_error = float(next_map_mse(test, test, test_mask))  # predict map t+1 = map t
    assert model_error < 0.5 * copy_error


def test_next_map_mse_skips_pairs_that_touch_padding():
    maps = torch.arange(8, dtype=torch.float32).view(2, 4, 1, 1, 1)  # values 0..7
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    predictions = torch.zeros_like(maps)
    # Pairs (t, t+1) with both real: row 0 targets 1, 2, 3; row 1 target 5.
    expected = (1 + 4 + 9 + 25) / 4
    assert float(next_map_mse(predictions, maps, mask)) == pytest.approx(expected)
    with pytest.raises(ValueError, match="^no video in the batch has two real frames"):
        next_map_mse(predictions, maps, torch.tensor([[True] + [False] * 3] * 2))


def test_video3d_resamples_each_clip_to_num_frames():
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3, [True] + [False] * 5])
    assert resample_indices(mask, 4).tolist() == [[0, 2, 3, 5], [0, 1, 1, 2], [0, 0, 0, 0]]


def test_video3d_seeded_init_leaves_the_global_rng_alone():
    before = torch.get_rng_state()
    config = Video3DConfig(num_classes=3, arch="mc3_18")
    first = Video3DClassifier(config, generator=torch.Generator().manual_seed(5))
    second = Video3DClassifier(config, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), before)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert count_parameters(first) == 11_491_779


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_video_resnet_runs_on_a_tiny_clip(arch):
    model = Video3DClassifier(
        Video3DConfig(num_classes=2, arch=arch, num_frames=2),
        generator=torch.Generator().manual_seed(0),
    ).eval()
    with torch.no_grad():
        output = model(torch.rand(1, 3, 2, 16, 16), torch.ones(1, 2, dtype=torch.bool))
    assert output.logits.shape == (1, 2)
    assert torch.isfinite(output.logits).all()


def test_r3d_parameter_count():
    model = build_model("r3d", num_classes=3)
    assert count_parameters(model) == 33_167_811
    model.backbone.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 512 * 3 + 3


def test_cnn_rnn_freeze_keeps_batchnorm_in_eval_through_train_calls():
    model = build_case("cnn_rnn")
    model.freeze_frame_encoder()
    model.train()
    norms = [m for m in model.frame_encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(not m.training for m in norms)
    assert all(not p.requires_grad for p in model.frame_encoder.parameters())
    assert all(p.requires_grad for p in model.temporal.parameters())
    running = [m.running_mean.clone() for m in norms]
    batch = case_batch("cnn_rnn")
    predict(model, batch).logits.sum().backward()
    assert all(torch.equal(a, m.running_mean) for a, m in zip(running, norms, strict=True))
    assert all(p.grad is None for p in model.frame_encoder.parameters())
    model.unfreeze_frame_encoder()
    assert all(m.training for m in norms)
    assert all(p.requires_grad for p in model.frame_encoder.parameters())


def test_cnn_rnn_shares_the_frame_encoder_across_frames():
    config = CNNRNNConfig(
        conv_channels=(4,), temporal=TemporalClassifierConfig(**{**TEMPORAL, "feature_dim": 4})
    )
    encoder = ConvFrameEncoder(3, config.conv_channels).eval()
    model = CNNRNNClassifier(encoder, TemporalClassifier(config.temporal)).eval()
    frames = torch.rand(1, 3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(1, 3, dtype=torch.bool)
    expected = model.temporal(encoder(frames[0]).unsqueeze(0), mask)  # frames one by one
    with torch.no_grad():
        assert torch.allclose(model(frames, mask).logits, expected.logits, atol=1e-6)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: TemporalClassifierConfig(feature_dim=8, num_classes=3, hidden_dim=0),
            "hidden_dim (0) must be > 0",
        ),
        (
            lambda: TemporalClassifierConfig(feature_dim=8, num_classes=3, pooling="max"),
            "pooling 'max' must be one of last, mean, attention",
        ),
        (
            lambda: TemporalClassifierConfig(
                feature_dim=8, num_classes=3, encoder="none", bidirectional=True
            ),
            "encoder 'none' takes neither bidirectional nor num_layers != 1",
        ),
        (
            lambda: TemporalSegmentConfig(feature_dim=8, num_classes=3, num_segments=0),
            "num_segments (0) must be > 0",
        ),
        (
            lambda: TwoStreamConfig(
                rgb=TemporalClassifierConfig(feature_dim=8, num_classes=3),
                flow=TemporalClassifierConfig(feature_dim=8, num_classes=4),
            ),
            "rgb.num_classes (3) must equal flow.num_classes (4)",
        ),
        (
            lambda: TwoStreamConfig(
                rgb=TemporalClassifierConfig(feature_dim=8, num_classes=3),
                flow=TemporalClassifierConfig(feature_dim=8, num_classes=3),
                alpha=1.0,
                learn_alpha=True,
            ),
            "alpha (1.0) must be in (0, 1) when learned",
        ),
        (
            lambda: ConvLSTMConfig(input_channels=1, height=4, width=4, kernel_size=2),
            "kernel_size (2) must be odd and > 0",
        ),
        (
            lambda: Video3DConfig(num_classes=3, arch="r50"),
            "arch 'r50' must be one of r3d_18, mc3_18, r2plus1d_18",
        ),
        (
            lambda: CNNRNNConfig(
                conv_channels=(4, 8),
                temporal=TemporalClassifierConfig(feature_dim=4, num_classes=3),
            ),
            "temporal.feature_dim (4) must equal conv_channels[-1] (8)",
        ),
    ],
)
def test_configs_name_the_bad_value(build, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        build()


def test_models_reject_a_mask_that_does_not_fit():
    model = build_case("lstm")
    features = torch.zeros(2, 3, 8)
    with pytest.raises(ValueError, match=r"^mask shape \(2, 2\) does not match features \(2, 3\)$"):
        model(features, torch.ones(2, 2, dtype=torch.bool))
    convlstm = build_case("convlstm")
    with pytest.raises(
        ValueError, match=r"^maps must be \(B, T, 4, 6, 6\), got \(2, 3, 4, 5, 5\)$"
    ):
        convlstm(torch.zeros(2, 3, 4, 5, 5), torch.ones(2, 3, dtype=torch.bool))
