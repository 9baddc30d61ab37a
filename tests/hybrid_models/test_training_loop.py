"""The generic training loop (determinism, exact resume, early stopping) and the action-recognition
losses, validation and multi-stage training built on it.
"""

from __future__ import annotations

import functools
import math
import re

import pytest
import torch
from torch.nn import functional as F

from hybrid_models.training.action import (
    ActionBatch,
    action_loss_fn,
    action_val_fn,
    classification_loss,
    collate_videos,
    train_multistage,
)
from hybrid_models.training.loop import TrainConfig, TrainState, fit, move_batch
from hybrid_models.zoo import build_model
from tests.hybrid_models.test_action_models import build_case, case_batch

LOSS = functools.partial(action_loss_fn, multi_label=False)


def _videos(seed: int = 0, count: int = 12) -> tuple[list[tuple[torch.Tensor]], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 6, (count,), generator=g).tolist()
    videos = [(torch.randn(length, 8, generator=g),) for length in lengths]
    return videos, torch.arange(count) % 3


def _train_batches(videos, labels, batch_size: int = 4):
    def batches(epoch: int) -> list[ActionBatch]:
        order = torch.randperm(len(videos), generator=torch.Generator().manual_seed(epoch))
        groups = order.split(batch_size)
        return [collate_videos([videos[i] for i in group], labels[group]) for group in groups]

    return batches


def _model(seed: int = 0):
    return build_model(
        "lstm_attention", seed=seed, feature_dim=8, num_classes=3, hidden_dim=8, dropout=0.3
    )


def _fit(model, epochs: int, **overrides):
    videos, labels = _videos()
    val_batches = [collate_videos(videos[:6], labels[:6])]
    arguments = {
        "train_batches": _train_batches(videos, labels),
        "loss_fn": LOSS,
        "val_fn": functools.partial(action_val_fn, batches=val_batches, multi_label=False),
        "config": TrainConfig(epochs=epochs, learning_rate=1e-2, progress=False),
    }
    arguments.update(overrides)
    return fit(model, **arguments)


def _without_seconds(history):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


def _assert_same_weights(first, second):
    assert list(first) == list(second)
    for key in first:
        assert torch.equal(first[key], second[key]), key


def test_same_seed_same_weights_and_the_callers_rng_is_untouched():
    before = torch.get_rng_state()
    first, second = _model(), _model()
    result = _fit(first, 3)
    again = _fit(second, 3)
    assert torch.equal(torch.get_rng_state(), before)
    _assert_same_weights(first.state_dict(), second.state_dict())
    assert _without_seconds(result.history) == _without_seconds(again.history)
    assert [record["epoch"] for record in result.history] == [0, 1, 2]
    assert set(result.history[0]) == {
        "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"
    }  # fmt: skip


def test_the_training_seed_drives_dropout():
    first, second = _model(), _model()
    _fit(first, 1)
    _fit(second, 1, config=TrainConfig(epochs=1, learning_rate=1e-2, seed=1, progress=False))
    assert not torch.equal(first.head[1].weight, second.head[1].weight)


def test_resuming_after_epoch_two_gives_exactly_the_uninterrupted_weights():
    uninterrupted = _model()
    full = _fit(uninterrupted, 4)

    snapshots: dict[int, bytes] = {}
    interrupted = _model()
    _fit(
        interrupted,
        4,
        on_epoch_end=lambda state, record: snapshots.update({state.epoch: state.to_bytes()}),
    )
    assert sorted(snapshots) == [1, 2, 3, 4]
    state = TrainState.from_bytes(snapshots[2])  # as if read back after a crash in epoch 3
    assert state.epoch == 2 and len(state.history) == 2

    resumed_model = _model(seed=99)  # other initial weights: the state must replace them
    resumed = _fit(resumed_model, 4, start=state)
    _assert_same_weights(uninterrupted.state_dict(), resumed_model.state_dict())
    assert _without_seconds(resumed.history) == _without_seconds(full.history)
    assert resumed.best_epoch == full.best_epoch
    _assert_same_weights(full.best_state_dict, resumed.best_state_dict)


def test_early_stopping_returns_the_best_epochs_weights():
    scripted = iter([3.0, 2.0, 2.5, 2.6, 1.0, 0.5])
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    model = _model()
    result = _fit(
        model,
        6,
        val_fn=lambda model: {"loss": next(scripted)},
        config=TrainConfig(epochs=6, learning_rate=1e-2, patience=2, progress=False),
        on_epoch_end=lambda state, record: snapshots.update({state.epoch: state.model_state}),
    )
    # Epochs 2 and 3 do not beat epoch 1's 2.0: with patience 2 training stops after epoch 3.
    assert result.stopped_early
    assert [record["val_loss"] for record in result.history] == [3.0, 2.0, 2.5, 2.6]
    assert (result.best_epoch, result.best_metric) == (1, 2.0)
    _assert_same_weights(result.best_state_dict, snapshots[2])  # weights after epoch index 1
    _assert_same_weights(model.state_dict(), snapshots[4])  # the model holds the last weights
    assert result.state.epoch == 4 and result.state.epochs_without_improvement == 2


def test_mode_max_tracks_the_highest_value():
    scripted = iter([0.2, 0.5, 0.4])
    result = _fit(
        _model(),
        3,
        val_fn=lambda model: {"accuracy": next(scripted)},
        config=TrainConfig(
            epochs=3, learning_rate=1e-2, monitor="val_accuracy", mode="max", progress=False
        ),
    )
    assert (result.best_epoch, result.best_metric, result.stopped_early) == (1, 0.5, False)


def test_validation_runs_in_eval_mode_without_gradients():
    seen = []

    def val_fn(model):
        seen.append((model.training, torch.is_grad_enabled()))
        return {"loss": 1.0}

    _fit(_model(), 2, val_fn=val_fn)
    assert seen == [(False, False), (False, False)]


def test_dict_batches_are_moved_and_passed_through():
    videos, labels = _videos(count=4)
    batch = collate_videos(videos, labels)
    as_dict = {
        "features": batch.inputs[0],
        "mask": batch.mask,
        "labels": batch.labels,
        "ids": ["a"],
    }
    assert move_batch(as_dict, "cpu")["ids"] == ["a"]

    def loss_fn(model, batch):
        logits = model(batch["features"], batch["mask"]).logits
        return F.cross_entropy(logits, batch["labels"]), {}

    result = _fit(
        build_model("lstm_attention", feature_dim=8, num_classes=3, hidden_dim=8),
        5,
        train_batches=lambda epoch: [as_dict],
        loss_fn=loss_fn,
        val_fn=None,
        config=TrainConfig(epochs=5, learning_rate=1e-2, monitor="train_loss", progress=False),
    )
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"epochs": 0}, "epochs (0) must be > 0"),
        ({"epochs": 1, "learning_rate": 0.0}, "learning_rate (0.0) must be > 0"),
        ({"epochs": 1, "grad_clip": 0.0}, "grad_clip (0.0) must be > 0 or None"),
        ({"epochs": 1, "patience": 0}, "patience (0) must be > 0 or None"),
        ({"epochs": 1, "mode": "up"}, "mode 'up' must be 'min' or 'max'"),
        ({"epochs": 1, "device": "gpu0"}, "device 'gpu0' is not a torch device"),
        ({"epochs": 1, "amp": True}, "amp needs a CUDA device, got device 'cpu'"),
    ],
)
def test_train_config_names_the_bad_value(fields, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        TrainConfig(**fields)


def test_fit_refuses_what_it_cannot_do():
    with pytest.raises(
        ValueError, match=r"^monitor 'val_loss' needs a val_fn; without one monitor 'train_loss'$"
    ):
        _fit(_model(), 1, val_fn=None)
    with pytest.raises(
        ValueError,
        match=r"^monitor 'val_acc' is not among the epoch's values epoch, lr, seconds, train_accuracy, train_loss, val_accuracy, val_loss$",
    ):
        _fit(_model(), 1, config=TrainConfig(epochs=1, monitor="val_acc", progress=False))
    with pytest.raises(ValueError, match=r"^train_batches\(0\) yielded no batches$"):
        _fit(_model(), 1, train_batches=lambda epoch: [])

    def nan_loss(model, batch):
        return LOSS(model, batch)[0] * math.nan, {}

    with pytest.raises(FloatingPointError, match="^loss is nan at epoch 0, batch 0$"):
        _fit(_model(), 1, loss_fn=nan_loss)


def test_cross_entropy_with_label_smoothing_matches_the_formula():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    labels = torch.tensor([0, 2])
    log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    eps = 0.1
    targets = torch.full((2, 3), eps / 3) + (1 - eps) * F.one_hot(labels, 3)
    expected = -(targets * log_p).sum(1).mean()
    got = classification_loss(logits, labels, multi_label=False, label_smoothing=eps)
    assert float(got) == pytest.approx(float(expected), abs=1e-6)
    plain = classification_loss(logits, labels, multi_label=False)
    assert float(plain) == pytest.approx(float(-(log_p[0, 0] + log_p[1, 2]) / 2), abs=1e-6)


def test_multi_label_loss_is_binary_cross_entropy_per_class():
    logits = torch.tensor([[1.0, -2.0]])
    labels = torch.tensor([[1.0, 1.0]])
    expected = (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(2.0))) / 2
    got = classification_loss(logits, labels, multi_label=True)
    assert float(got) == pytest.approx(expected, abs=1e-6)
    with pytest.raises(
        ValueError, match=r"^single-label labels must be \(B,\) int64, got \(1, 2\) torch.float32$"
    ):
        classification_loss(logits, labels, multi_label=False)


def test_validation_weighs_every_video_equally_and_restores_the_mode():
    model = build_case("lstm").train()
    batch = case_batch("lstm", lengths=(5, 4, 3, 2))
    split = [
        ActionBatch(inputs=(batch.inputs[0][:1],), mask=batch.mask[:1], labels=batch.labels[:1]),
        ActionBatch(inputs=(batch.inputs[0][1:],), mask=batch.mask[1:], labels=batch.labels[1:]),
    ]
    whole = action_val_fn(model, batches=[batch], multi_label=False)
    parts = action_val_fn(model, batches=split, multi_label=False)
    assert model.training
    assert parts["loss"] == pytest.approx(whole["loss"], abs=1e-6)
    assert parts["accuracy"] == whole["accuracy"]


def test_collate_videos_pads_clips_along_their_time_axis():
    clips = [(torch.ones(3, 4, 2, 2),), (torch.ones(3, 2, 2, 2),)]
    batch = collate_videos(clips, torch.tensor([0, 1]), time_dim=1)
    assert batch.inputs[0].shape == (2, 3, 4, 2, 2)
    assert batch.mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert float(batch.inputs[0][1, :, 2:].abs().sum()) == 0.0
    with pytest.raises(ValueError, match="^stream 1 has other lengths than stream 0$"):
        collate_videos([(torch.ones(3, 2), torch.ones(2, 2))], torch.tensor([0]))


def test_multistage_trains_the_temporal_model_then_everything():
    model = build_case("cnn_rnn")
    g = torch.Generator().manual_seed(0)
    videos = [(torch.rand(length, 3, 8, 8, generator=g),) for length in (3, 2, 3, 2)]
    batch = collate_videos(videos, torch.tensor([0, 1, 2, 0]))
    encoder_before = {k: v.clone() for k, v in model.frame_encoder.state_dict().items()}
    temporal_before = {k: v.clone() for k, v in model.temporal.state_dict().items()}
    stages = []
    after_frozen = {}

    def on_epoch_end(stage, state, record):
        stages.append(stage)
        if stage == "frozen":
            after_frozen.update(
                {
                    k[len("frame_encoder.") :]: v
                    for k, v in state.model_state.items()
                    if k.startswith("frame_encoder.")
                }
            )

    result = train_multistage(
        model,
        train_batches=lambda epoch: [batch],
        loss_fn=LOSS,
        val_fn=None,
        frozen_config=TrainConfig(
            epochs=2, learning_rate=1e-2, monitor="train_loss", progress=False
        ),
        finetune_config=TrainConfig(
            epochs=1, learning_rate=1e-3, monitor="train_loss", progress=False
        ),
        on_epoch_end=on_epoch_end,
    )
    assert stages == ["frozen", "frozen", "finetune"]
    _assert_same_weights(encoder_before, after_frozen)  # weights and BatchNorm statistics
    assert not all(
        torch.equal(v, model.temporal.state_dict()[k]) for k, v in temporal_before.items()
    )
    assert not torch.equal(encoder_before["0.weight"], model.frame_encoder.state_dict()["0.weight"])
    assert not model.frame_encoder_frozen
    assert result.finetune.history[0]["lr"] == 1e-3
    with pytest.raises(
        ValueError,
        match=r"^finetune learning_rate \(0\.01\) must be lower than the frozen stage's \(0\.01\)$",
    ):
        train_multistage(
            model,
            train_batches=lambda epoch: [batch],
            loss_fn=LOSS,
            val_fn=None,
            frozen_config=TrainConfig(epochs=1, learning_rate=1e-2, monitor="train_loss"),
            finetune_config=TrainConfig(epochs=1, learning_rate=1e-2, monitor="train_loss"),
        )
