import pytest
import torch
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

from hybrid_models.captioner import Captioner, CaptionerConfig
from hybrid_models.decoding import greedy_decode, sample_decode, words_of
from hybrid_models.rewards import CiderD, corpus_bleu, ngram_counts, scst_loss
from hybrid_models.sequences import pad_sequences
from hybrid_models.vocabulary import BOS_INDEX, PAD_INDEX

REFERENCES = {
    "v0": [
        "a red circle moves to the left",
        "the red circle moves left",
        "a red circle is moving to the left",
    ],
    "v1": ["the blue square gets larger", "a blue square grows", "the blue square is growing"],
    "v2": ["a green triangle fades in", "the green triangle appears", "a green triangle appears"],
    "v3": ["a red square moves up", "the red square moves up", "a red square goes up"],
    "v4": ["the blue circle fades out", "a blue circle disappears"],
}
CANDIDATES = {
    "v0": "a red circle moves to the left",  # matches a reference exactly
    "v1": "the blue blue blue square square gets larger larger",  # repeats: clipping matters
    "v2": "a green square fades in",  # one wrong word
    "v3": "",  # nothing
    "v4": "a blue circle fades out and then the blue circle disappears slowly",  # too long
}


def tokens(text):
    return text.split()


def test_cider_d_equals_coco_caption_cider():
    gts = {key: refs for key, refs in REFERENCES.items()}
    res = {key: [CANDIDATES[key]] for key in REFERENCES}
    expected_mean, expected = Cider().compute_score(gts, res)
    cider = CiderD.from_references([[tokens(r) for r in refs] for refs in REFERENCES.values()])
    scores = cider(
        [tokens(CANDIDATES[key]) for key in REFERENCES],
        [[tokens(r) for r in refs] for refs in REFERENCES.values()],
    )
    assert scores == pytest.approx(list(expected), abs=1e-6)
    assert sum(scores) / len(scores) == pytest.approx(expected_mean, abs=1e-6)
    assert scores[3] == 0.0 and scores[0] > scores[2] > 0


def test_cider_d_is_the_same_on_word_ids():
    texts = [*CANDIDATES.values(), *(r for refs in REFERENCES.values() for r in refs)]
    words = sorted({w for text in texts for w in text.split()})
    ids = {word: index + 4 for index, word in enumerate(words)}

    def encode(text):
        return tuple(ids[w] for w in text.split())

    as_words = CiderD.from_references([[tokens(r) for r in refs] for refs in REFERENCES.values()])
    as_ids = CiderD.from_references([[encode(r) for r in refs] for refs in REFERENCES.values()])
    for key, refs in REFERENCES.items():
        assert as_ids.score(encode(CANDIDATES[key]), [encode(r) for r in refs]) == pytest.approx(
            as_words.score(tokens(CANDIDATES[key]), [tokens(r) for r in refs]), abs=1e-12
        )


def test_cider_d_frequencies_come_from_the_fixed_corpus():
    corpus = [[tokens(r) for r in refs] for refs in REFERENCES.values()]
    cider = CiderD.from_references(corpus)
    refs = corpus[0]
    alone = cider.score(tokens(CANDIDATES["v0"]), refs)
    # Scoring other videos in between does not change a caption's reward.
    cider([tokens(CANDIDATES["v1"])], [corpus[1]])
    assert cider.score(tokens(CANDIDATES["v0"]), refs) == alone
    # A corpus in which "red" is everywhere makes it worth less.
    common_red = CiderD.from_references(corpus + [[["red"]]] * 20)
    assert common_red.num_documents == 25
    assert common_red.score(["red", "circle"], refs) < cider.score(["red", "circle"], refs)


def test_cider_d_rejects_bad_input():
    with pytest.raises(ValueError, match="references is empty"):
        CiderD.from_references([])
    with pytest.raises(ValueError, match="video 1 has no reference captions"):
        CiderD.from_references([[["a"]], []])
    cider = CiderD.from_references([[["a", "b"]]])
    with pytest.raises(ValueError, match="2 candidates but 1 reference lists"):
        cider([["a"], ["b"]], [[["a"]]])
    with pytest.raises(ValueError, match=r"sigma \(0\) must be > 0"):
        CiderD({}, 1, sigma=0)


def test_corpus_bleu_equals_coco_caption_bleu():
    gts = {key: refs for key, refs in REFERENCES.items()}
    res = {key: [CANDIDATES[key]] for key in REFERENCES}
    expected, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = corpus_bleu(
        [tokens(CANDIDATES[key]) for key in REFERENCES],
        [[tokens(r) for r in refs] for refs in REFERENCES.values()],
    )
    assert scores == pytest.approx(expected, abs=1e-9)
    perfect = corpus_bleu([tokens(REFERENCES["v0"][0])], [[tokens(REFERENCES["v0"][0])]])
    assert perfect == pytest.approx([1.0] * 4, abs=1e-9)


def test_ngram_counts():
    counts = ngram_counts(["a", "b", "a", "b"], 2)
    assert counts == {("a",): 2, ("b",): 2, ("a", "b"): 2, ("b", "a"): 1}


def tiny_captioner(seed=0):
    torch.manual_seed(seed)
    config = CaptionerConfig(
        feature_dim=8, vocab_size=12, embed_dim=6, hidden_dim=12, attention_dim=7
    )
    return Captioner(config)


def toy_videos():
    generator = torch.Generator().manual_seed(5)
    features, mask = pad_sequences([torch.randn(t, 8, generator=generator) for t in (4, 3, 5, 2)])
    references = [
        [(4, 5, 6), (4, 5, 7)],
        [(8, 9), (8, 9, 10)],
        [(11, 4), (11, 4, 5)],
        [(6, 7), (6, 7, 8)],
    ]
    return features, mask, references


def test_scst_loss_is_the_self_critical_policy_gradient():
    model = tiny_captioner().eval()
    features, mask, references = toy_videos()
    cider = CiderD.from_references(references)
    loss, stats = scst_loss(
        model,
        features,
        mask,
        references,
        cider,
        torch.Generator().manual_seed(3),
        5,
        num_samples=2,
    )
    # Recompute from the same draws: sample, teacher-forced log p, rewards, advantage.
    repeated = features.repeat_interleave(2, 0), mask.repeat_interleave(2, 0)
    tokens, _ = sample_decode(model, *repeated, 5, torch.Generator().manual_seed(3))
    bos = torch.full((8, 1), BOS_INDEX)
    logits = model(*repeated, torch.cat([bos, tokens[:, :-1]], 1)).logits
    per_token = torch.log_softmax(logits, -1).gather(2, tokens.unsqueeze(2)).squeeze(2)
    sequence = (per_token * (tokens != PAD_INDEX)).sum(1)
    repeated_refs = [refs for refs in references for _ in range(2)]
    sample_rewards = torch.tensor(cider(words_of(tokens), repeated_refs))
    greedy = greedy_decode(model, features, mask, 5)
    greedy_rewards = torch.tensor(cider(words_of(greedy.tokens), references))
    advantage = sample_rewards - greedy_rewards.repeat_interleave(2)
    expected = -(advantage * sequence).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)
    assert stats["reward_greedy"] == pytest.approx(greedy_rewards.mean().item(), rel=1e-6)
    assert stats["advantage"] == pytest.approx(advantage.mean().item(), rel=1e-5, abs=1e-6)
    with pytest.raises(ValueError, match="3 reference lists for 4 videos"):
        scst_loss(model, features, mask, references[:3], cider, torch.Generator(), 5)


def test_scst_mean_baseline_centres_each_videos_samples():
    model = tiny_captioner().eval()
    features, mask, references = toy_videos()
    cider = CiderD.from_references(references)
    loss, stats = scst_loss(
        model, features, mask, references, cider, torch.Generator().manual_seed(3), 5,
        num_samples=3, baseline="mean",
    )  # fmt: skip
    repeated = features.repeat_interleave(3, 0), mask.repeat_interleave(3, 0)
    tokens, _ = sample_decode(model, *repeated, 5, torch.Generator().manual_seed(3))
    bos = torch.full((12, 1), BOS_INDEX)
    logits = model(*repeated, torch.cat([bos, tokens[:, :-1]], 1)).logits
    per_token = torch.log_softmax(logits, -1).gather(2, tokens.unsqueeze(2)).squeeze(2)
    sequence = (per_token * (tokens != PAD_INDEX)).sum(1)
    rewards = cider(words_of(tokens), [refs for refs in references for _ in range(3)])
    # Each sample against the mean of its video's two other samples, written out by hand.
    advantage = torch.tensor(
        [
            rewards[i] - (sum(rewards[3 * (i // 3) : 3 * (i // 3) + 3]) - rewards[i]) / 2
            for i in range(12)
        ]
    )
    assert loss.item() == pytest.approx(-(advantage * sequence).mean().item(), rel=1e-5, abs=1e-6)
    assert stats["advantage"] == pytest.approx(0.0, abs=1e-6)  # centred per video
    with pytest.raises(ValueError, match="the mean baseline needs num_samples >= 2, got 1"):
        scst_loss(model, features, mask, references, cider, torch.Generator(), 5, baseline="mean")
    with pytest.raises(ValueError, match="baseline 'best' must be 'greedy' or 'mean'"):
        scst_loss(model, features, mask, references, cider, torch.Generator(), 5, baseline="best")


def test_scst_raises_the_mean_reward_on_a_toy_problem():
    model = tiny_captioner(seed=1)
    features, mask, references = toy_videos()
    cider = CiderD.from_references(references)

    def greedy_reward():
        model.eval()
        decoded = greedy_decode(model, features, mask, 5)
        model.train()
        return sum(cider(words_of(decoded.tokens), references)) / 4

    before = greedy_reward()
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(40):
        loss, _ = scst_loss(model, features, mask, references, cider, generator, 5, num_samples=4)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = greedy_reward()
    assert after > before + 1.0, (before, after)
