"""Every column name vidpipe writes, declared once.

Code that builds or reads tables uses these constants, so a rename is one
edit and a typo is an AttributeError rather than a silently empty column.
"""

# Manifest
VIDEO_ID = "video_id"
URI = "uri"
SPLIT = "split"
LABEL = "label"
LABELS = "labels"
CAPTIONS = "captions"
QUESTIONS = "questions"
QUESTION = "question"
ANSWER = "answer"
QUESTION_TYPE = "question_type"
START_S = "start_s"
END_S = "end_s"

# Frame features
FRAME_INDEX = "frame_index"
TIMESTAMP_S = "timestamp_s"
STREAM = "stream"
FEATURE = "feature"
DECODER = "decoder"
SPATIAL_MAP = "spatial_map"
EVENT_TIMESTAMP = "event_timestamp"

# Error rows (stage 1 failures and stage 2 dead letters)
STAGE = "stage"
ERROR_TYPE = "error_type"
MESSAGE = "message"
ATTEMPTS = "attempts"

# Predictions
MODEL_ID = "model_id"
FRAME_ORDER = "frame_order"
NUM_FRAMES = "num_frames"
FRAME_INDICES = "frame_indices"
PREDICTED_LABEL = "predicted_label"
TOP_K_LABELS = "top_k_labels"
TOP_K_SCORES = "top_k_scores"
SCORES = "scores"
CAPTION = "caption"
TOKENS = "tokens"
ATTENTION = "attention"
QUESTION_INDEX = "question_index"
SCORE = "score"
