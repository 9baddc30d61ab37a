import functools

import pytest
import torch

from hybrid_models.captioner import (
    Captioner,
    CaptionerConfig,
    MultiTaskCaptioner,
    MultiTaskCaptionerConfig,
)
from hybrid_models.decoding import greedy_decode, words_of
from hybrid_models.rewards import CiderD, corpus_bleu
from hybrid_models.training.captioning import (
    CaptionExample,
    caption_batches,
    caption_loss_fn,
    caption_train_batches,
    caption_val_fn,
    collate_captions,
    curriculum_order,
    epoch_generator,
    multitask_loss_fn,
    scst_loss_fn,
)
from hybrid_models.vocabulary import BOS_INDEX, EOS_INDEX, PAD_INDEX

LENGTHS = [7, 3, 9, 5, 3, 8, 4, 6, 5, 10]


def test_curriculum_grows_from_short_captions_to_all():
    def order(epoch, seed=0):
        return curriculum_order(LENGTHS, epoch, 5, generator=torch.Generator().manual_seed(seed))

    # full at epoch floor(0.5 · 4) = 2; epoch 0 allows ceil(0.3 · 10) = 3, epoch 1 ceil(6.5) = 7.
    assert [len(order(epoch)) for epoch in range(5)] == [3, 7, 10, 10, 10]
    first = order(0)
    assert sorted(LENGTHS[i] for i in first) == [3, 3, 4]
    assert sorted(LENGTHS[i] for i in order(1)) == [3, 3, 4, 5, 5, 6, 7]
    assert sorted(order(4)) == list(range(10))
    assert order(1) == order(1)  # deterministic for a seed
    assert order(4) != order(4, seed=1)  # the shuffle depends on it
    # Ties at the cut are broken by the seed: only one of the two shortest captions fits.
    cut = [
        curriculum_order(
            [3, 3, 9, 9], 0, 3, generator=torch.Generator().manual_seed(s), start_fraction=0.25
        )
        for s in range(8)
    ]
    assert {tuple(c) for c in cut} == {(0,), (1,)}


def test_curriculum_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    curriculum_order(LENGTHS, 0, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.random.get_rng_state(), state)


def test_single_epoch_and_last_epoch_see_everything():
    assert sorted(curriculum_order(LENGTHS, 0, 1, generator=torch.Generator())) == list(range(10))
    assert len(curriculum_order(LENGTHS, 6, 7, generator=torch.Generator(), full_at=1.0)) == 10


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epoch": 5}, r"epoch \(5\) must be in \[0, 5\)"),
        ({"num_epochs": 0, "epoch": 0}, r"num_epochs \(0\) must be > 0"),
        ({"start_fraction": 0.0}, r"start_fraction \(0.0\) must be in \(0, 1\]"),
        ({"full_at": 1.5}, r"full_at \(1.5\) must be in \[0, 1\]"),
    ],
)
def test_curriculum_rejects(kwargs, message):
    arguments = {"epoch": 0, "num_epochs": 5, **kwargs}
    epoch, num_epochs = arguments.pop("epoch"), arguments.pop("num_epochs")
    with pytest.raises(ValueError, match=message):
        curriculum_order(LENGTHS, epoch, num_epochs, generator=torch.Generator(), **arguments)


CAPTIONS = [[4, 5], [6, 7, 8], [9, 10], [11, 4, 6]]


def examples(with_actions=False):
    generator = torch.Generator().manual_seed(1)
    return [
        CaptionExample(
            features=torch.randn(length, 8, generator=generator),
            tokens=(BOS_INDEX, *words, EOS_INDEX),
            references=(tuple(words),),
            action=index % 3 if with_actions else None,
        )
        for index, (length, words) in enumerate(zip((4, 3, 5, 4), CAPTIONS, strict=True))
    ]


def model_config(**extra):
    return dict(feature_dim=8, vocab_size=12, embed_dim=6, hidden_dim=16, attention_dim=7, **extra)


def test_collate_and_batches():
    batch = collate_captions(examples(with_actions=True))
    assert batch.features.shape == (4, 5, 8) and batch.mask.sum(1).tolist() == [4, 3, 5, 4]
    assert batch.tokens.tolist()[0] == [BOS_INDEX, 4, 5, EOS_INDEX, PAD_INDEX]
    assert batch.actions.tolist() == [0, 1, 2, 0]
    assert batch.references[1] == ((6, 7, 8),)
    assert [len(b.references) for b in caption_batches(examples(), batch_size=3)] == [3, 1]
    mixed = [examples()[0], examples(with_actions=True)[1]]
    with pytest.raises(ValueError, match="some examples have an action and some do not"):
        collate_captions(mixed)
    with pytest.raises(ValueError, match=r"tokens \[4, 5\] must be <bos> ... <eos>"):
        CaptionExample(features=torch.zeros(2, 8), tokens=(4, 5))


def test_train_batches_are_deterministic_per_seed_and_epoch():
    data = examples() * 3
    batches = caption_train_batches(data, batch_size=4, num_epochs=3, seed=0)
    again = caption_train_batches(data, batch_size=4, num_epochs=3, seed=0)
    assert all(torch.equal(a.tokens, b.tokens) for a, b in zip(batches(0), again(0), strict=True))
    # Curriculum: epoch 0 holds the shortest ceil(0.3 · 12) = 4 captions, epoch 2 all 12.
    assert sum(len(b.references) for b in batches(0)) == 4
    assert all(int((b.tokens != PAD_INDEX).sum(1).max()) == 4 for b in batches(0))
    assert sum(len(b.references) for b in batches(2)) == 12
    plain = caption_train_batches(data, batch_size=5, num_epochs=3, seed=0, curriculum=False)
    assert [len(b.references) for b in plain(0)] == [5, 5, 2]
    assert epoch_generator(0, 1).initial_seed() != epoch_generator(1, 0).initial_seed()


def train(model, loss_fn, batch, steps):
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    history = []
    for _ in range(steps):
        loss, stats = loss_fn(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(stats)
    return history


def test_caption_loss_fn_trains_and_val_fn_scores_the_decoded_captions():
    torch.manual_seed(0)
    model = Captioner(CaptionerConfig(**model_config()))
    data = examples()
    batch = collate_captions(data)
    loss_fn = functools.partial(caption_loss_fn, label_smoothing=0.05, attention_weight=0.1)
    history = train(model, loss_fn, batch, steps=40)
    assert history[-1]["loss"] < history[0]["loss"] / 3
    assert history[-1]["token_accuracy"] == 1.0
    cider = CiderD.from_references([e.references for e in data])
    val_fn = functools.partial(
        caption_val_fn, batches=caption_batches(data, batch_size=3), cider=cider, max_length=5
    )
    metrics = val_fn(model)
    assert model.training  # given back in its mode
    model.eval()
    decoded = words_of(greedy_decode(model, batch.features, batch.mask, 5).tokens)
    assert decoded == [tuple(c) for c in CAPTIONS]
    references = [e.references for e in data]
    assert metrics["cider_d"] == pytest.approx(sum(cider(decoded, references)) / 4)
    assert metrics["bleu_4"] == pytest.approx(corpus_bleu(decoded, references)[3])
    assert metrics["bleu_1"] == pytest.approx(1.0)
    assert metrics["token_accuracy"] == 1.0 and metrics["caption_length"] == 2.5
    beam = caption_val_fn(
        model, batches=[batch], cider=cider, max_length=5, beam_size=3, length_penalty=0.6
    )
    assert beam["cider_d"] == pytest.approx(metrics["cider_d"])


def test_multitask_loss_fn_learns_captions_and_actions():
    torch.manual_seed(0)
    config = MultiTaskCaptionerConfig(**model_config(num_actions=3, action_weight=1.0))
    model = MultiTaskCaptioner(config)
    batch = collate_captions(examples(with_actions=True))
    history = train(model, multitask_loss_fn, batch, steps=40)
    assert history[-1]["action_accuracy"] == 1.0
    assert history[-1]["caption_token_accuracy"] == 1.0
    assert history[-1]["loss"] < history[0]["loss"] / 3
    with pytest.raises(ValueError, match="multi-task training needs batches with actions"):
        multitask_loss_fn(model, collate_captions(examples()))


def test_scst_loss_fn_plugs_into_training():
    torch.manual_seed(0)
    model = Captioner(CaptionerConfig(**model_config()))
    data = examples()
    cider = CiderD.from_references([e.references for e in data])
    loss_fn = functools.partial(
        scst_loss_fn,
        reward=cider,
        generator=torch.Generator().manual_seed(0),
        max_length=4,
        num_samples=2,
    )
    history = train(model, loss_fn, collate_captions(data), steps=3)
    assert set(history[0]) == {"loss", "reward_sample", "reward_greedy", "advantage"}
    no_refs = collate_captions([CaptionExample(features=torch.zeros(2, 8), tokens=(1, 4, 2))])
    with pytest.raises(ValueError, match="SCST needs the references of every video in the batch"):
        loss_fn(model, no_refs)
