import functools

import pytest
import torch

from hybrid_models.training.vqa import (
    VQAExample,
    collate_questions,
    vqa_accuracy,
    vqa_batches,
    vqa_loss_fn,
    vqa_train_batches,
    vqa_val_fn,
)
from hybrid_models.vocabulary import PAD_INDEX
from hybrid_models.vqa import VideoQA, VQAConfig

TYPES = ("colour", "shape", "direction")


def test_accuracy_overall_and_per_type():
    metrics = vqa_accuracy(
        predictions=torch.tensor([1, 2, 3, 0, 4]),
        answers=torch.tensor([1, 2, 4, 0, 4]),
        question_types=torch.tensor([0, 1, 1, 2, 0]),
        type_names=TYPES,
    )
    # The <unk> answer (class 0) counts as wrong even though it was "predicted".
    assert metrics == {
        "accuracy": pytest.approx(3 / 5),
        "accuracy_colour": 1.0,
        "accuracy_shape": 0.5,
        "accuracy_direction": 0.0,
    }
    only_colour = vqa_accuracy(torch.tensor([1]), torch.tensor([1]), torch.tensor([0]), TYPES)
    assert only_colour == {"accuracy": 1.0, "accuracy_colour": 1.0}


def test_accuracy_rejects():
    one = torch.tensor([1])
    with pytest.raises(ValueError, match=r"question type 3 has no name in \['colour'"):
        vqa_accuracy(one, one, torch.tensor([3]), TYPES)
    with pytest.raises(ValueError, match="must have one shape"):
        vqa_accuracy(torch.tensor([1, 2]), one, one, TYPES)
    empty = torch.tensor([], dtype=torch.long)
    with pytest.raises(ValueError, match="no questions to score"):
        vqa_accuracy(empty, empty, empty, TYPES)


def examples():
    generator = torch.Generator().manual_seed(3)
    questions = [(4, 5, 6), (7, 8), (9, 10, 11), (4, 8), (5, 6, 7), (9, 4), (10, 11), (6,)]
    return [
        VQAExample(
            features=torch.randn(2 + index % 4, 8, generator=generator),
            question=question,
            answer=1 + index % 4,
            question_type=index % 3,
        )
        for index, question in enumerate(questions)
    ]


def test_collate_batches_and_validation():
    batch = collate_questions(examples()[:3])
    assert batch.features.shape == (3, 4, 8) and batch.mask.sum(1).tolist() == [2, 3, 4]
    assert batch.questions.tolist() == [[4, 5, 6], [7, 8, PAD_INDEX], [9, 10, 11]]
    assert batch.answers.tolist() == [1, 2, 3] and batch.question_types.tolist() == [0, 1, 2]
    assert [len(b.answers) for b in vqa_batches(examples(), batch_size=3)] == [3, 3, 2]
    with pytest.raises(ValueError, match="question is empty"):
        VQAExample(features=torch.zeros(2, 8), question=(), answer=1, question_type=0)
    with pytest.raises(ValueError, match=r"features must be \(T, D\) with T > 0, got \(0, 8\)"):
        VQAExample(features=torch.zeros(0, 8), question=(4,), answer=1, question_type=0)


def test_train_batches_shuffle_per_epoch_deterministically():
    batches = vqa_train_batches(examples(), batch_size=3, seed=0)
    first = torch.cat([b.answers for b in batches(0)])
    assert torch.equal(first, torch.cat([b.answers for b in batches(0)]))
    assert sorted(first.tolist()) == sorted(e.answer for e in examples())
    orders = {tuple(torch.cat([b.questions[:, 0] for b in batches(e)]).tolist()) for e in range(4)}
    assert len(orders) > 1


def test_temporal_jitter_gives_each_question_a_seeded_run_of_consecutive_frames():
    frames = torch.arange(8.0).view(8, 1).expand(8, 8)  # frame t holds t everywhere
    videos = [VQAExample(features=frames, question=(4 + k,), answer=1, question_type=0)
              for k in range(6)]  # fmt: skip
    batches = vqa_train_batches(videos, batch_size=6, seed=0, temporal_jitter=0.5)
    runs = set()
    for epoch in range(5):
        (batch,) = batches(epoch)
        for row, mask in zip(batch.features[:, :, 0], batch.mask, strict=True):
            kept = row[mask]
            assert len(kept) >= 4  # at least ⌈0.5 · 8⌉ frames
            assert kept.tolist() == list(range(int(kept[0]), int(kept[0]) + len(kept)))
            runs.add((int(kept[0]), len(kept)))
        again = batches(epoch)[0]
        assert torch.equal(batch.features, again.features) and torch.equal(batch.mask, again.mask)
    assert len(runs) > 3  # the runs differ across questions and epochs
    assert videos[0].features.shape == (8, 8)  # the examples are left as they were
    whole = vqa_train_batches(videos, batch_size=6, seed=0)(0)[0]
    assert bool(whole.mask.all())
    with pytest.raises(ValueError, match=r"temporal_jitter \(1.5\) must be in \[0, 1\]"):
        vqa_train_batches(videos, batch_size=6, seed=0, temporal_jitter=1.5)


def test_loss_fn_trains_and_val_fn_reports_per_type_accuracy():
    torch.manual_seed(0)
    model = VideoQA(
        VQAConfig(
            feature_dim=8,
            question_vocab_size=12,
            num_answers=5,
            embed_dim=6,
            hidden_dim=16,
            attention_dim=7,
            fusion_dim=16,
        )
    )
    batch = collate_questions(examples())
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    history = []
    for _ in range(40):
        loss, stats = functools.partial(vqa_loss_fn, label_smoothing=0.05)(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(stats)
    assert history[-1]["accuracy"] == 1.0 and history[-1]["loss"] < history[0]["loss"] / 2
    metrics = vqa_val_fn(model, batches=vqa_batches(examples(), batch_size=3), type_names=TYPES)
    assert model.training
    assert metrics == {
        "accuracy": 1.0,
        "accuracy_colour": 1.0,
        "accuracy_shape": 1.0,
        "accuracy_direction": 1.0,
    }
    fresh = VideoQA(model.config)
    with torch.no_grad():
        predictions = fresh.eval()(batch.features, batch.mask, batch.questions).logits.argmax(1)
    expected = vqa_accuracy(predictions, batch.answers, batch.question_types, TYPES)
    assert vqa_val_fn(fresh, batches=[batch], type_names=TYPES) == expected
