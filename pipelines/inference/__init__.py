"""Stage 2 inference on Apache Beam: features to per-video frames to RunInference to predictions.

`run_infer` is `vidpipe infer`; `VideoModelHandler` is the RunInference model handler.
"""

from pipelines.inference.examples import (
    FrameChunk,
    Question,
    VideoExample,
    assemble_video,
    frame_permutation,
    length_bucket,
    reorder,
    video_chunks,
)
from pipelines.inference.handler import (
    DecodingConfig,
    ReadyModel,
    VideoModelHandler,
    predict_actions,
    predict_answers,
    predict_captions,
    prepare_model,
)
from pipelines.inference.pipeline import (
    InferConfig,
    InferPlan,
    build_infer,
    plan_infer,
    read_parts,
    read_summary,
    run_infer,
)
from pipelines.inference.rows import class_names_of, prediction_rows, predictions_schema

__all__ = [
    "DecodingConfig",
    "FrameChunk",
    "InferConfig",
    "InferPlan",
    "Question",
    "ReadyModel",
    "VideoExample",
    "VideoModelHandler",
    "assemble_video",
    "build_infer",
    "class_names_of",
    "frame_permutation",
    "length_bucket",
    "plan_infer",
    "predict_actions",
    "predict_answers",
    "predict_captions",
    "prediction_rows",
    "predictions_schema",
    "prepare_model",
    "read_parts",
    "read_summary",
    "reorder",
    "run_infer",
    "video_chunks",
]
