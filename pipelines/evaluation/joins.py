"""Predictions joined to ground truth, one video at a time: what each metric and count receives.

Pure functions over one CoGroupByKey result `(video_id, {"truth": [...], "predictions": [...]})`.
Each returns (tag, value) pairs; the pipeline routes every tag to its combiner. Count events
("action:missing", ...) are tagged "count", so nothing is dropped without being counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pipelines.metrics import (
    AnsweredQuestion,
    CaptionSample,
    LabelledScores,
    MultiLabelScores,
    OrderedPrediction,
)
from pipelines.metrics.vqa import is_correct
from schemas import columns as c

COUNT = "count"
SINGLE, MULTI, ORDERED, ACTION_DETAIL = "single", "multi", "ordered", "action_detail"
CAPTION, CAPTION_DETAIL = "caption", "caption_detail"
ANSWER, ANSWER_DETAIL, CORRECT = "answer", "answer_detail", "correct"
DEAD_LETTER = "dead_letter"
URI_KEY = "_uri"  # the video's resolved uri, carried to the frame decoding; not reported
SELECTED_KEY = "_selected"  # whether the manifest row is in the evaluated splits

Tagged = list[tuple[str, Any]]


def _truth(grouped: Mapping[str, Iterable[Any]]) -> dict[str, Any] | None:
    rows = list(grouped.get("truth", ()))
    if len(rows) > 1:
        raise ValueError(f"manifest repeats video {rows[0][c.VIDEO_ID]!r}")
    return rows[0] if rows else None


def _by_order(video_id: str, predictions: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    by_order: dict[str, dict[str, Any]] = {}
    for row in predictions:
        order = row[c.FRAME_ORDER]
        if order in by_order:
            raise ValueError(
                f"video {video_id!r} has two predictions on {order} frames: is the predictions "
                "folder the output of two runs?"
            )
        by_order[order] = row
    return by_order


def join_action(
    element: tuple[str, Mapping[str, Iterable[Any]]], *, class_names: Sequence[str]
) -> Tagged:
    """Samples of the single-label, multi-label and temporal-order metrics for one video."""
    video_id, grouped = element
    truth = _truth(grouped)
    if truth is None or not truth[SELECTED_KEY]:
        return []
    label, labels = truth[c.LABEL], truth[c.LABELS]
    if label is None and labels is None:
        return []
    by_order = _by_order(video_id, grouped.get("predictions", ()))
    original = by_order.get("original")
    if original is None:
        return [(COUNT, "action:missing")]
    known = set(class_names)
    tagged: Tagged = [(COUNT, "action:evaluated")]
    if original.get(c.ATTENTION) is not None:
        detail = {
            "true_label": label,
            "predicted_label": original[c.PREDICTED_LABEL],
            c.FRAME_INDICES: list(original[c.FRAME_INDICES]),
            c.ATTENTION: list(original[c.ATTENTION]),
            URI_KEY: truth[URI_KEY],
        }
        tagged.append((ACTION_DETAIL, (video_id, detail)))
    if label is not None:
        if label in known:
            tagged.append(
                (SINGLE, LabelledScores(video_id=video_id, label=label, scores=original[c.SCORES]))
            )
            tagged += [
                (
                    ORDERED,
                    OrderedPrediction(
                        video_id=video_id,
                        frame_order=order,
                        label=label,
                        predicted_label=row[c.PREDICTED_LABEL],
                    ),
                )
                for order, row in sorted(by_order.items())
            ]
        else:
            tagged.append((COUNT, "action:label_not_in_classes"))
    if labels is not None:
        tagged.append(
            (
                MULTI,
                MultiLabelScores(
                    video_id=video_id,
                    labels=[name for name in labels if name in known],
                    scores=original[c.SCORES],
                ),
            )
        )
    return tagged


def join_caption(element: tuple[str, Mapping[str, Iterable[Any]]]) -> Tagged:
    """The caption sample (hypothesis and references) and its attention for one video."""
    video_id, grouped = element
    truth = _truth(grouped)
    if truth is None or not truth[SELECTED_KEY] or not truth[c.CAPTIONS]:
        return []
    original = _by_order(video_id, grouped.get("predictions", ())).get("original")
    if original is None:
        return [(COUNT, "caption:missing")]
    detail = {
        "hypothesis": original[c.CAPTION],
        "references": list(truth[c.CAPTIONS]),
        c.TOKENS: list(original[c.TOKENS]),
        c.FRAME_INDICES: list(original[c.FRAME_INDICES]),
        c.ATTENTION: [list(row) for row in original[c.ATTENTION]],
        URI_KEY: truth[URI_KEY],
    }
    return [
        (COUNT, "caption:evaluated"),
        (
            CAPTION,
            CaptionSample(
                video_id=video_id,
                hypothesis=original[c.CAPTION],
                references=list(truth[c.CAPTIONS]),
            ),
        ),
        (CAPTION_DETAIL, (video_id, detail)),
    ]


def join_vqa(element: tuple[str, Mapping[str, Iterable[Any]]]) -> Tagged:
    """Each answered question of one video: its accuracy sample and its sample record.

    A prediction whose question text differs from the manifest's question at that index (the
    manifest changed since inference) is not scored: it counts as unanswered.
    """
    video_id, grouped = element
    truth = _truth(grouped)
    if truth is None or not truth[SELECTED_KEY] or not truth[c.QUESTIONS]:
        return []
    answers: dict[int, dict[str, Any]] = {}
    for row in grouped.get("predictions", ()):
        if row[c.FRAME_ORDER] != "original":
            continue
        index = row[c.QUESTION_INDEX]
        if index in answers:
            raise ValueError(f"video {video_id!r} has two answers to question {index}")
        answers[index] = row
    tagged: Tagged = []
    for index, qa in enumerate(truth[c.QUESTIONS]):
        row = answers.get(index)
        if row is None or row[c.QUESTION] != qa[c.QUESTION]:
            tagged.append((COUNT, "vqa:unanswered_questions"))
            continue
        correct = is_correct(row[c.ANSWER], qa[c.ANSWER])
        tagged += [
            (
                ANSWER,
                AnsweredQuestion(
                    question_type=qa[c.QUESTION_TYPE],
                    predicted_answer=row[c.ANSWER],
                    answer=qa[c.ANSWER],
                ),
            ),
            (CORRECT, float(correct)),
            (
                ANSWER_DETAIL,
                (
                    (video_id, index),
                    {
                        "video_id": video_id,
                        "question": qa[c.QUESTION],
                        "question_type": qa[c.QUESTION_TYPE],
                        "answer": qa[c.ANSWER],
                        "prediction": row[c.ANSWER],
                        "correct": correct,
                        "frame_indices": list(row[c.FRAME_INDICES]),
                        "attention": list(row[c.ATTENTION]),
                        URI_KEY: truth[URI_KEY],
                    },
                ),
            ),
        ]
    answered = any(tag == ANSWER for tag, _ in tagged)
    return [(COUNT, "vqa:evaluated" if answered else "vqa:missing"), *tagged]


def join_dead_letters(element: tuple[str, Mapping[str, Iterable[Any]]]) -> list[dict[str, Any]]:
    """Dead letters of evaluated videos, and of ids the manifest lacks (unreadable files).

    Dead letters of videos in splits not evaluated belong to another report.
    """
    _, grouped = element
    truth = _truth(grouped)
    if truth is not None and not truth[SELECTED_KEY]:
        return []
    return list(grouped.get("dead_letters", ()))
