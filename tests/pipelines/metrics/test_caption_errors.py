import json

import pytest

from pipelines.metrics import (
    CaptionErrorConfig,
    caption_error_report,
    caption_errors,
    object_lexicon,
)
from pipelines.metrics.caption_errors import repeated_ngrams, singular

CONFIG = CaptionErrorConfig()


def test_lexicon_is_given_objects_plus_words_after_colours_and_sizes():
    references = ["A small red circle moves left.", "Two blue squares grow", "it turns red and"]
    lexicon = object_lexicon(references, CaptionErrorConfig(objects={"Ball"}))
    assert lexicon == {"ball", "circle", "square"}
    assert object_lexicon(references, CaptionErrorConfig(derive_objects=False)) == set()


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("circles", "circle"),
        ("boxes", "box"),
        ("berries", "berry"),
        ("glass", "glass"),
        ("glasses", "glass"),
        ("horses", "horse"),
        ("bus", "bus"),
        ("dogs", "dog"),
        ("as", "as"),
    ],
)
def test_singular(word, expected):
    assert singular(word) == expected


LEXICON = frozenset({"circle", "square", "triangle", "ball"})


def test_hallucinated_object_is_named_in_no_reference():
    errors = caption_errors(
        "a red circle and two blue squares", ["A red circle moves left."], LEXICON, CONFIG
    )
    assert errors["hallucinated_objects"] == ["square"]
    # Plurals and other word forms of a named object are not hallucinations.
    errors = caption_errors("red circles", ["a red circle"], LEXICON, CONFIG)
    assert errors["hallucinated_objects"] == []


def test_wrong_attribute_is_one_no_reference_gives_that_object():
    references = ["a red circle and a blue square", "the red circle moves"]
    errors = caption_errors("a big blue circle", references, LEXICON, CONFIG)
    assert errors["wrong_attributes"] == [
        {"object": "circle", "attribute": "big"},
        {"object": "circle", "attribute": "blue"},
    ]
    # A wrong object is a hallucination, not a wrong attribute.
    errors = caption_errors("a blue triangle", references, LEXICON, CONFIG)
    assert errors["hallucinated_objects"] == ["triangle"]
    assert errors["wrong_attributes"] == []
    assert caption_errors("a red circle", references, LEXICON, CONFIG)["wrong_attributes"] == []


def test_repeated_ngrams_skip_stop_words_only_for_unigrams():
    errors = caption_errors("a red circle a red circle moves moves", [], LEXICON, CONFIG)
    assert errors["repeated_ngrams"] == {
        "1": [
            {"ngram": "circle", "count": 2},
            {"ngram": "moves", "count": 2},
            {"ngram": "red", "count": 2},
        ],
        "2": [{"ngram": "a red", "count": 2}, {"ngram": "red circle", "count": 2}],
        "3": [{"ngram": "a red circle", "count": 2}],
    }
    assert repeated_ngrams(["the", "the"], 2, CONFIG.stop_words) == {
        "1": [],
        "2": [],
    }


def test_report_counts_and_examples():
    references = {
        "v3": ["a red circle moves left"],
        "v1": ["a blue square grows"],
        "v2": ["a green triangle shrinks"],
    }
    hypotheses = {
        "v3": "a red square moves left left",  # square hallucinated, "left" repeated
        "v1": "a red square grows",  # red is wrong for the square
        "v2": "a green circle shrinks and a square",  # two hallucinations
    }
    report = caption_error_report(references, hypotheses, CaptionErrorConfig(num_examples=1))
    assert report["num_captions"] == 3
    assert report["object_lexicon"] == ["circle", "square", "triangle"]
    hallucinated = report["hallucinated_objects"]
    assert (hallucinated["num_captions"], hallucinated["num_errors"]) == (2, 3)
    assert hallucinated["by_object"] == {"circle": 1, "square": 2}
    assert hallucinated["examples"] == [
        {
            "video_id": "v2",
            "hypothesis": "a green circle shrinks and a square",
            "references": ["a green triangle shrinks"],
            "hallucinated_objects": ["circle", "square"],
        }
    ]
    wrong = report["wrong_attributes"]
    assert (wrong["num_captions"], wrong["num_errors"]) == (1, 1)
    assert wrong["examples"][0]["wrong_attributes"] == [{"object": "square", "attribute": "red"}]
    repetition = report["repetition"]
    assert (repetition["num_captions"], repetition["num_errors"]) == (1, 1)
    assert repetition["examples"][0]["video_id"] == "v3"
    assert list(report["per_video"]) == ["v1", "v2", "v3"]
    json.dumps(report, allow_nan=False)


def test_errors():
    with pytest.raises(ValueError, match=r"^references and hypotheses must have the same ids;"):
        caption_error_report({"a": ["x"]}, {"b": "x"})
    with pytest.raises(ValueError, match=r"^max_ngram \(0\) must be > 0$"):
        CaptionErrorConfig(max_ngram=0)
    with pytest.raises(ValueError, match=r"^objects must be a collection of words, not one"):
        CaptionErrorConfig(objects="circle")
