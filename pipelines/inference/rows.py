"""Prediction rows and dead-letter rows as the schemas in `schemas.predictions` and ERRORS_SCHEMA want.

Pure: a PredictionResult or a failed element in, row dicts out, for WriteToParquet.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from apache_beam.ml.inference.base import PredictionResult

from schemas import (
    ACTION_PREDICTIONS_SCHEMA,
    ANSWER_PREDICTIONS_SCHEMA,
    CAPTION_PREDICTIONS_SCHEMA,
    CLASS_NAMES_KEY,
)
from schemas import columns as c

STAGE = "infer"
SCHEMAS = {
    "action": ACTION_PREDICTIONS_SCHEMA,
    "caption": CAPTION_PREDICTIONS_SCHEMA,
    "vqa": ANSWER_PREDICTIONS_SCHEMA,
}


def predictions_schema(task: str, class_names: Sequence[str] | None = None) -> pa.Schema:
    """The task's prediction schema; an action schema carries the class order in its metadata."""
    schema = SCHEMAS[task]
    if class_names is None:
        return schema
    return schema.with_metadata(
        {**schema.metadata, CLASS_NAMES_KEY: json.dumps(list(class_names)).encode()}
    )


def class_names_of(schema: pa.Schema) -> list[str] | None:
    """The class order stored in an action predictions file's metadata, if any."""
    text = (schema.metadata or {}).get(CLASS_NAMES_KEY)
    return None if text is None else json.loads(text)


def _floats(values: np.ndarray) -> list[float]:
    return np.asarray(values, dtype=np.float32).tolist()


def prediction_rows(
    result: PredictionResult, *, task: str, class_names: Sequence[str] | None, top_k: int
) -> list[dict[str, Any]]:
    """The rows of one video's PredictionResult: one per video (action, caption) or question."""
    example, output = result.example, result.inference
    common = {
        c.VIDEO_ID: example.video_id,
        c.MODEL_ID: result.model_id,
        c.FRAME_ORDER: example.frame_order,
        c.NUM_FRAMES: example.num_frames,
    }
    frame_indices = [int(i) for i in example.frame_indices]
    if task == "action":
        assert class_names is not None
        scores = np.asarray(output["scores"], dtype=np.float32)
        # Stable sort of the negated scores: ties go to the lower class index, as argmax does.
        best = np.argsort(-scores, kind="stable")[: min(top_k, len(scores))]
        return [
            {
                **common,
                c.PREDICTED_LABEL: class_names[int(best[0])],
                c.TOP_K_LABELS: [class_names[int(i)] for i in best],
                c.TOP_K_SCORES: _floats(scores[best]),
                c.SCORES: _floats(scores),
                c.FRAME_INDICES: frame_indices,
                c.ATTENTION: None if output["attention"] is None else _floats(output["attention"]),
            }
        ]
    if task == "caption":
        return [
            {
                **common,
                c.CAPTION: " ".join(output["tokens"]),
                c.TOKENS: list(output["tokens"]),
                c.FRAME_INDICES: frame_indices,
                c.ATTENTION: [_floats(row) for row in output["attention"]],
            }
        ]
    if task == "vqa":
        return [
            {
                **common,
                c.QUESTION_INDEX: answer["question_index"],
                c.QUESTION: answer["question"],
                c.QUESTION_TYPE: answer["question_type"],
                c.ANSWER: answer["answer"],
                c.SCORE: float(answer["score"]),
                c.FRAME_INDICES: frame_indices,
                c.ATTENTION: _floats(answer["attention"]),
            }
            for answer in output["answers"]
        ]
    raise ValueError(f"task {task!r} must be one of {', '.join(SCHEMAS)}")


# ---------------------------------------------------------------------------
# Dead letters


def exception_text(error: tuple) -> tuple[str, str]:
    """(type name, message) from Beam's dead-letter error: (type, repr, traceback lines)."""
    exc_type, representation, trace = error
    name = getattr(exc_type, "__name__", str(exc_type))
    # The traceback's last line is "Type: message", i.e. str(exception) with its type.
    last = "".join(trace).rstrip().rsplit("\n", 1)[-1] if trace else ""
    prefix = f"{getattr(exc_type, '__module__', '')}.{name}: "
    for head in (prefix, f"{name}: "):
        if last.startswith(head):
            return name, last[len(head) :]
    return name, representation


def error_row(
    video_id: str, error_type: str, message: str, *, uri: str | None, event_timestamp: str
) -> dict[str, Any]:
    """One ERRORS_SCHEMA row of stage "infer"."""
    return {
        c.VIDEO_ID: video_id,
        c.URI: uri,
        c.STAGE: STAGE,
        c.ERROR_TYPE: error_type,
        c.MESSAGE: message,
        c.ATTEMPTS: 1,
        c.EVENT_TIMESTAMP: dt.datetime.fromisoformat(event_timestamp),
    }


def part_error_row(failed: tuple[str, tuple], *, event_timestamp: str) -> dict[str, Any]:
    """A feature file that cannot be read: one row naming the file (its videos are unknown)."""
    part_uri, error = failed
    error_type, message = exception_text(error)
    name = part_uri.rstrip("/").rsplit("/", 1)[-1]
    return error_row(
        name,
        error_type,
        f"feature file {part_uri} cannot be read, so its videos have no predictions: {message}",
        uri=part_uri,
        event_timestamp=event_timestamp,
    )


def video_error_row(
    failed: tuple[tuple[str, Any], tuple], *, features_uri: str, event_timestamp: str
) -> dict[str, Any]:
    """A video whose frames could not be assembled (no frames, a missing stream, ...)."""
    (video_id, _), error = failed
    error_type, message = exception_text(error)
    return error_row(
        video_id, error_type, message, uri=features_uri, event_timestamp=event_timestamp
    )


def inference_error_rows(
    failed: tuple[Sequence[Any], tuple], *, features_uri: str, event_timestamp: str
) -> list[dict[str, Any]]:
    """A batch the model failed on, alone: one row per video example in it."""
    batch, error = failed
    error_type, message = exception_text(error)
    return [
        error_row(
            example.video_id,
            error_type,
            f"inference on {example.frame_order} frames failed: {message}",
            uri=features_uri,
            event_timestamp=event_timestamp,
        )
        for example in batch
    ]
