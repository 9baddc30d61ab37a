"""Captions, questions and tags of synthetic scenes: right facts, finite vocabulary, varied wording."""

import numpy as np
import pytest

from pipelines.datasets.language import (
    NUM_CAPTIONS,
    QUESTION_TYPES,
    VOCABULARY,
    QuestionAnswer,
    captions,
    labels,
    questions,
    words,
)
from pipelines.datasets.scene import ACTIONS, ObjectState, Scene, SceneObject, sample_scene


def state(x, y=30.0, size=12.0, opacity=1.0):
    return ObjectState(x=x, y=y, size=size, opacity=opacity)


RED_CIRCLE_LEFT = SceneObject(shape="circle", colour="red", start=state(50), end=state(14))
YELLOW_SQUARE = SceneObject(
    shape="square", colour="yellow", start=state(8, 8, 8), end=state(8, 8, 8)
)


def scene(primary=RED_CIRCLE_LEFT, distractors=(), action="move_left"):
    return Scene(
        action=action,
        size=64,
        num_frames=4,
        background=(40, 40, 40),
        noise_seeds=(1, 2, 3, 4),
        primary=primary,
        distractors=distractors,
    )


def test_move_left_captions_are_five_of_the_known_wordings():
    wordings = [
        "moves to the left",
        "slides left",
        "travels from right to left",
        "goes left",
        "moves left across the frame",
        "glides to the left",
    ]
    allowed = {f"{article} red circle {w}" for article in ("a", "the") for w in wordings}
    for seed in range(10):
        texts = captions(scene(), np.random.default_rng(seed))
        assert len(texts) == NUM_CAPTIONS == len(set(texts))
        assert set(texts) <= allowed


def test_captions_vary_with_the_seed_and_repeat_with_it():
    assert captions(scene(), np.random.default_rng(1)) == captions(
        scene(), np.random.default_rng(1)
    )
    seen = {tuple(captions(scene(), np.random.default_rng(seed))) for seed in range(10)}
    assert len(seen) > 5


def test_distractors_are_mentioned_sometimes_and_only_when_present():
    with_distractor = scene(distractors=(YELLOW_SQUARE,))
    texts = [
        t for seed in range(20) for t in captions(with_distractor, np.random.default_rng(seed))
    ]
    clauses = {t.split(" while ", 1)[1] for t in texts if " while " in t}
    assert clauses == {"a small yellow square stays still", "a small yellow square stays in place"}
    assert 0.2 < sum(" while " in t for t in texts) / len(texts) < 0.6
    alone = [t for seed in range(20) for t in captions(scene(), np.random.default_rng(seed))]
    assert not any(" while " in t for t in alone)


def test_questions_for_a_move_with_a_distractor():
    with_distractor = scene(distractors=(YELLOW_SQUARE,))
    asked = questions(with_distractor, np.random.default_rng(0))
    assert [qa.question_type for qa in asked] == list(QUESTION_TYPES)
    answers = {qa.question_type: qa.answer for qa in asked}
    assert answers["colour"] == "red"
    assert answers["direction"] == "left"
    assert answers["count"] == "two"
    assert answers["action"] == "move"
    shape_question = asked[1].question
    assert answers["shape"] == ("circle" if "red" in shape_question else "square")
    assert asked[0].question in (
        "what colour is the object that moves left?",
        "what colour is the circle that moves left?",
    )


def test_shape_questions_ask_about_every_object_over_seeds():
    with_distractor = scene(distractors=(YELLOW_SQUARE,))
    pairs = {
        (qa.question, qa.answer)
        for seed in range(20)
        for qa in questions(with_distractor, np.random.default_rng(seed))
        if qa.question_type == "shape"
    }
    assert {answer for _, answer in pairs} == {"circle", "square"}
    for question, answer in pairs:
        assert ("yellow" in question) == (answer == "square")


def test_no_direction_question_unless_the_primary_moves():
    grow = scene(
        primary=SceneObject(
            shape="triangle", colour="blue", start=state(30, size=10), end=state(30, size=25)
        ),
        action="grow",
    )
    asked = questions(grow, np.random.default_rng(0))
    assert [qa.question_type for qa in asked] == ["colour", "shape", "count", "action"]
    assert [qa.answer for qa in asked] == ["blue", "triangle", "one", "grow"]


def test_labels_are_the_sorted_action_colours_and_shapes():
    assert labels(scene(distractors=(YELLOW_SQUARE,))) == [
        "circle",
        "move_left",
        "red",
        "square",
        "yellow",
    ]
    assert labels(scene()) == ["circle", "move_left", "red"]


@pytest.mark.parametrize("action", ACTIONS)
def test_everything_said_is_in_the_finite_vocabulary(action):
    for seed in range(25):
        sampled = sample_scene(action, np.random.default_rng(seed), size=64, num_frames=4)
        rng = np.random.default_rng(seed)
        texts = captions(sampled, rng)
        asked = questions(sampled, rng)
        assert all(isinstance(qa, QuestionAnswer) for qa in asked)
        for text in [*texts, *(qa.question for qa in asked)]:
            assert text == text.lower().strip()
            assert set(words(text)) <= VOCABULARY, text
        for qa in asked:
            assert qa.answer in VOCABULARY
            assert words(qa.answer) == [qa.answer]  # one word
            assert sampled.primary.colour in texts[0]
    assert len(VOCABULARY) < 120
