"""Prediction rows written by stage 2: actions, captions and answers.

Each row carries the model id and the frame order it was computed on
(original, reversed or shuffled) so the evaluation can check that a model
uses temporal order.
"""

import pyarrow as pa

from schemas import columns as c
from schemas._meta import versioned

FRAME_ORDERS = ("original", "reversed", "shuffled")

_COMMON = [
    pa.field(c.VIDEO_ID, pa.string(), nullable=False),
    pa.field(c.MODEL_ID, pa.string(), nullable=False),
    pa.field(c.FRAME_ORDER, pa.string(), nullable=False),
    pa.field(c.NUM_FRAMES, pa.int32(), nullable=False),
]

ACTION_PREDICTIONS_SCHEMA = versioned(
    "action_predictions",
    2,
    [
        *_COMMON,
        pa.field(c.PREDICTED_LABEL, pa.string(), nullable=False),
        pa.field(c.TOP_K_LABELS, pa.list_(pa.string()), nullable=False),
        pa.field(c.TOP_K_SCORES, pa.list_(pa.float32()), nullable=False),
        # Scores for every class in the model's class order (stored in file metadata).
        pa.field(c.SCORES, pa.list_(pa.float32()), nullable=False),
        pa.field(c.FRAME_INDICES, pa.list_(pa.int32()), nullable=False),
        # Attention over the frames (attention pooling); null for models without it.
        pa.field(c.ATTENTION, pa.list_(pa.float32())),
    ],
)

CAPTION_PREDICTIONS_SCHEMA = versioned(
    "caption_predictions",
    1,
    [
        *_COMMON,
        pa.field(c.CAPTION, pa.string(), nullable=False),
        pa.field(c.TOKENS, pa.list_(pa.string()), nullable=False),
        pa.field(c.FRAME_INDICES, pa.list_(pa.int32()), nullable=False),
        # One row per generated token: attention over the input frames.
        pa.field(c.ATTENTION, pa.list_(pa.list_(pa.float32())), nullable=False),
    ],
)

ANSWER_PREDICTIONS_SCHEMA = versioned(
    "answer_predictions",
    1,
    [
        *_COMMON,
        pa.field(c.QUESTION_INDEX, pa.int32(), nullable=False),
        pa.field(c.QUESTION, pa.string(), nullable=False),
        pa.field(c.QUESTION_TYPE, pa.string(), nullable=False),
        pa.field(c.ANSWER, pa.string(), nullable=False),
        pa.field(c.SCORE, pa.float32(), nullable=False),
        pa.field(c.FRAME_INDICES, pa.list_(pa.int32()), nullable=False),
        pa.field(c.ATTENTION, pa.list_(pa.float32()), nullable=False),
    ],
)

CLASS_NAMES_KEY = b"vidpipe.class_names"
