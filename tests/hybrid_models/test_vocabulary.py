import json

import pytest
import torch

from hybrid_models.vocabulary import (
    ANSWER_UNK_INDEX,
    BOS_INDEX,
    EOS_INDEX,
    PAD_INDEX,
    SPECIALS,
    UNK_INDEX,
    AnswerVocabulary,
    Vocabulary,
    normalize_answer,
    pad_token_ids,
    tokenize,
)

CAPTIONS = [
    "A red circle moves to the left.",
    "the blue square gets larger",
    "a green triangle fades in",
    "The red square moves to the LEFT",
]


def test_tokenize_lowercases_and_strips_punctuation_at_word_ends():
    assert tokenize("Which way does the red circle move?") == [
        "which",
        "way",
        "does",
        "the",
        "red",
        "circle",
        "move",
    ]
    assert tokenize("  the top-left circle's  edge ... (fades) ") == [
        "the",
        "top-left",
        "circle's",
        "edge",
        "fades",
    ]
    assert tokenize("") == []


def test_build_orders_by_count_then_alphabetically_after_specials():
    vocab = Vocabulary.build(CAPTIONS)
    assert vocab.tokens[:4] == SPECIALS
    assert (PAD_INDEX, BOS_INDEX, EOS_INDEX, UNK_INDEX) == (0, 1, 2, 3)
    # the ×4, a/left/moves/red/square/to ×2 (alphabetical), then the words seen once.
    assert vocab.tokens[4:] == (
        "the",
        "a",
        "left",
        "moves",
        "red",
        "square",
        "to",
        "blue",
        "circle",
        "fades",
        "gets",
        "green",
        "in",
        "larger",
        "triangle",
    )
    frequent = Vocabulary.build(CAPTIONS, min_count=2)
    assert frequent.tokens[4:] == ("the", "a", "left", "moves", "red", "square", "to")


def test_encode_wraps_maps_unknown_and_truncates_keeping_eos():
    vocab = Vocabulary.build(CAPTIONS)
    the, red, circle = vocab.index("the"), vocab.index("red"), vocab.index("circle")
    assert vocab.encode("The red CIRCLE!") == [BOS_INDEX, the, red, circle, EOS_INDEX]
    assert vocab.encode("the purple circle", bos_eos=False) == [the, UNK_INDEX, circle]
    assert vocab.encode("the red circle", max_length=4) == [BOS_INDEX, the, red, EOS_INDEX]
    assert vocab.encode("the red circle", max_length=2, bos_eos=False) == [the, red]
    with pytest.raises(ValueError, match=r"max_length \(2\) must be > 2"):
        vocab.encode("the red circle", max_length=2)


def test_decode_stops_at_eos_and_drops_specials():
    vocab = Vocabulary.build(CAPTIONS)
    ids = vocab.encode("a red circle fades in") + [vocab.index("left"), PAD_INDEX]
    assert vocab.decode(ids) == "a red circle fades in"
    assert vocab.decode([BOS_INDEX, vocab.index("red"), UNK_INDEX, PAD_INDEX]) == "red"
    assert vocab.decode_words(torch.tensor([vocab.index("to"), EOS_INDEX])) == ["to"]
    with pytest.raises(ValueError, match=r"token id 99 is outside the vocabulary \(size 19\)"):
        vocab.decode([99])


def test_json_round_trip_and_rejects_bad_files():
    vocab = Vocabulary.build(CAPTIONS)
    again = Vocabulary.from_json(vocab.to_json())
    assert again == vocab and again.tokens == vocab.tokens
    assert again.encode(CAPTIONS[0]) == vocab.encode(CAPTIONS[0])
    with pytest.raises(ValueError, match="must start with"):
        Vocabulary.from_json(json.dumps({"kind": "vocabulary", "tokens": ["red", "<pad>"]}))
    with pytest.raises(ValueError, match="vocabulary token 'red' appears twice"):
        Vocabulary([*SPECIALS, "red", "red"])
    with pytest.raises(ValueError, match="expected a vocabulary JSON object, got kind 'answer"):
        Vocabulary.from_json(AnswerVocabulary.build(["left"]).to_json())


def test_build_rejects_bad_min_count():
    with pytest.raises(ValueError, match=r"min_count \(0\) must be > 0"):
        Vocabulary.build(CAPTIONS, min_count=0)


def test_answer_vocabulary():
    answers = AnswerVocabulary.build(["left", "Left.", "red", "three", "right", "left"])
    assert answers.answers == ("<unk>", "left", "red", "right", "three")
    assert answers.encode("LEFT") == 1
    assert answers.encode("purple") == ANSWER_UNK_INDEX == 0
    assert answers.decode(3) == "right"
    assert AnswerVocabulary.from_json(answers.to_json()) == answers
    assert AnswerVocabulary.build(["a", "a", "b"], min_count=2).answers == ("<unk>", "a")
    assert normalize_answer("  Top-Left! ") == "top-left"
    with pytest.raises(ValueError, match=r"answer index 5 is outside the vocabulary \(size 5\)"):
        answers.decode(5)


def test_pad_token_ids():
    batch = pad_token_ids([[1, 5, 2], [1, 2]])
    assert batch.dtype == torch.long
    assert batch.tolist() == [[1, 5, 2], [1, 2, PAD_INDEX]]
    with pytest.raises(ValueError, match="token sequence 1 is empty"):
        pad_token_ids([[1], []])
