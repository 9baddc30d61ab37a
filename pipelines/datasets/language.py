"""Captions, question-answer pairs and tags of a synthetic scene, from templates.

Templated over a finite vocabulary so that captioning and VQA models can
learn them, with enough wording variety (chosen by a seeded rng) to matter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from pipelines.datasets.scene import COLOURS, SHAPES, Scene, SceneObject

NUM_CAPTIONS = 5
QUESTION_TYPES = ("colour", "shape", "direction", "count", "action")

_DIRECTION = {"move_left": "left", "move_right": "right", "move_up": "up", "move_down": "down"}
_TOWARD = {"left": "to the left", "right": "to the right", "up": "upwards", "down": "downwards"}
_FROM_TO = {
    "left": "from right to left",
    "right": "from left to right",
    "up": "from bottom to top",
    "down": "from top to bottom",
}
# The one-word answer to "what does the X do?".
ACTION_VERB = {
    "move_left": "move",
    "move_right": "move",
    "move_up": "move",
    "move_down": "move",
    "grow": "grow",
    "shrink": "shrink",
    "appear": "appear",
    "disappear": "disappear",
}
_DOES = {
    "move_left": "moves left",
    "move_right": "moves right",
    "move_up": "moves up",
    "move_down": "moves down",
    "grow": "grows",
    "shrink": "shrinks",
    "appear": "appears",
    "disappear": "disappears",
}
_NUMBER = {1: "one", 2: "two", 3: "three"}

# {obj} is "a|the <colour> <shape>"; {d}, {toward}, {from_to} describe a move.
_CAPTION_TEMPLATES = {
    "move": (
        "{obj} moves {toward}",
        "{obj} slides {d}",
        "{obj} travels {from_to}",
        "{obj} goes {d}",
        "{obj} moves {d} across the frame",
        "{obj} glides {toward}",
    ),
    "grow": (
        "{obj} grows bigger",
        "{obj} gets larger",
        "{obj} expands",
        "{obj} becomes bigger",
        "{obj} grows in size",
        "{obj} increases in size",
    ),
    "shrink": (
        "{obj} shrinks",
        "{obj} gets smaller",
        "{obj} becomes smaller",
        "{obj} shrinks in size",
        "{obj} decreases in size",
        "{obj} contracts",
    ),
    "appear": (
        "{obj} fades in",
        "{obj} appears",
        "{obj} slowly appears",
        "{obj} becomes visible",
        "{obj} comes into view",
        "{obj} gradually fades in",
    ),
    "disappear": (
        "{obj} fades out",
        "{obj} disappears",
        "{obj} slowly disappears",
        "{obj} becomes invisible",
        "{obj} vanishes",
        "{obj} gradually fades out",
    ),
}
_STILL = ("stays still", "stays in place")
_DRIFTING = ("drifts slowly", "drifts a little")
_CLAUSE_PROBABILITY = 0.4  # of mentioning a distractor in a caption, when there is one

_QUESTION_TEMPLATES = {
    "colour": ("what colour is the object that {does}?", "what colour is the {shape} that {does}?"),
    "shape": ("what shape is the {colour} object?", "what is the shape of the {colour} object?"),
    "direction": (
        "which way does the {colour} {shape} move?",
        "in which direction does the {colour} {shape} move?",
    ),
    "count": ("how many objects are there?", "how many shapes are in the video?"),
    "action": ("what does the {colour} {shape} do?", "what happens to the {colour} {shape}?"),
}


@dataclass(frozen=True)
class QuestionAnswer:
    question: str
    answer: str  # one word
    question_type: str


def captions(scene: Scene, rng: np.random.Generator) -> list[str]:
    """NUM_CAPTIONS distinct captions of the scene's action in varied wording."""
    primary = scene.primary
    group = ACTION_VERB[scene.action]
    templates = _CAPTION_TEMPLATES[group]
    chosen = rng.choice(len(templates), size=NUM_CAPTIONS, replace=False)
    direction = _DIRECTION.get(scene.action, "")
    result = []
    for index in chosen:
        article = ("a", "the")[int(rng.integers(2))]
        text = templates[index].format(
            obj=f"{article} {primary.colour} {primary.shape}",
            d=direction,
            toward=_TOWARD.get(direction, ""),
            from_to=_FROM_TO.get(direction, ""),
        )
        if scene.distractors and rng.random() < _CLAUSE_PROBABILITY:
            other = scene.distractors[int(rng.integers(len(scene.distractors)))]
            text += " while " + _distractor_phrase(other, primary, rng)
        result.append(text)
    return result


def _distractor_phrase(other: SceneObject, primary: SceneObject, rng: np.random.Generator) -> str:
    small = other.start.size <= 0.8 * min(primary.start.size, primary.end.size)
    verbs = _DRIFTING if other.moves() else _STILL
    verb = verbs[int(rng.integers(len(verbs)))]
    return f"a {'small ' if small else ''}{other.colour} {other.shape} {verb}"


def questions(scene: Scene, rng: np.random.Generator) -> list[QuestionAnswer]:
    """One question of every applicable type (direction only for moves), in QUESTION_TYPES order."""
    primary = scene.primary
    result = []
    for question_type in QUESTION_TYPES:
        if question_type == "direction" and scene.action not in _DIRECTION:
            continue
        templates = _QUESTION_TEMPLATES[question_type]
        template = templates[int(rng.integers(len(templates)))]
        if question_type == "colour":
            text = template.format(does=_DOES[scene.action], shape=primary.shape)
            answer = primary.colour
        elif question_type == "shape":
            # Any object: colours are unique within a scene, so the question is unambiguous.
            asked = scene.objects[int(rng.integers(len(scene.objects)))]
            text = template.format(colour=asked.colour)
            answer = asked.shape
        elif question_type == "direction":
            text = template.format(colour=primary.colour, shape=primary.shape)
            answer = _DIRECTION[scene.action]
        elif question_type == "count":
            text = template
            answer = _NUMBER[len(scene.objects)]
        else:
            text = template.format(colour=primary.colour, shape=primary.shape)
            answer = ACTION_VERB[scene.action]
        result.append(QuestionAnswer(text, answer, question_type))
    return result


def labels(scene: Scene) -> list[str]:
    """Sorted tags: the action and the colour and shape of every object (multi-label task)."""
    tags = {scene.action}
    for obj in scene.objects:
        tags.update((obj.colour, obj.shape))
    return sorted(tags)


def words(text: str) -> list[str]:
    """The words of a caption or question (lower case, punctuation dropped)."""
    return re.findall(r"[a-z]+", text.lower())


def _vocabulary() -> frozenset[str]:
    pieces: list[str] = ["a the small while"]
    pieces += [t for group in _CAPTION_TEMPLATES.values() for t in group]
    pieces += [t for group in _QUESTION_TEMPLATES.values() for t in group]
    pieces += [*_TOWARD.values(), *_FROM_TO.values(), *_DIRECTION.values(), *_DOES.values()]
    pieces += [*_STILL, *_DRIFTING, *ACTION_VERB.values(), *_NUMBER.values(), *COLOURS, *SHAPES]
    found = {w for piece in pieces for w in words(re.sub(r"\{\w+\}", " ", piece))}
    return frozenset(found)


# Every word a caption, question or answer can contain.
VOCABULARY = _vocabulary()
