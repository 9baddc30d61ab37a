"""Tiny stage-2 inputs built for real: a feature store with bad parts, model folders, videos, a manifest.

Shared by the inference and evaluation tests. Features are random but seeded; the broken
inputs are the ones stage 2 must survive: a garbage part, a truncated part, a video listed in
a part with no rows, and a video whose features are NaN (the model's output is not finite).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from hybrid_models.zoo import build_model
from pipelines.artifacts import model_uri, write_model
from pipelines.datasets.video_writer import write_video
from schemas import FeatureSetSpec, manifest_table, write_manifest
from workers import store

CLASSES = ["move_left", "move_right", "grow", "shrink"]
FEATURE_DIM = 4
SIZE = 32
STAMP = "2025-01-01T00:00:00+00:00"

# video id -> (label, number of frames); the lengths vary so batches need padding.
GOOD_VIDEOS = {
    "v00": ("move_left", 3),
    "v01": ("move_right", 5),
    "v02": ("grow", 4),
    "v03": ("shrink", 6),
    "v04": ("move_left", 7),
    "v05": ("move_right", 4),
    "v06": ("grow", 9),
    "v07": ("shrink", 5),
    "v08": ("move_left", 6),
    "v09": ("grow", 3),
}
EMPTY_VIDEO = "v-empty"  # listed in a part's footer, no rows
NAN_VIDEO = "v-nan"  # NaN features: the model's scores are not finite
LOST_VIDEO = "v-lost"  # only in the truncated part
GARBAGE_PART = "part-0000garbage0000.parquet"
ALL_VIDEOS = [*GOOD_VIDEOS, EMPTY_VIDEO, NAN_VIDEO, LOST_VIDEO]


def spec(streams: tuple[str, ...] = ("rgb",)) -> FeatureSetSpec:
    return FeatureSetSpec(
        backbone="small_cnn", weights="none", weights_digest="init-seed:0", input_size=SIZE,
        resize_size=SIZE, mean=(0.5,) * 3, std=(0.25,) * 3, sampling="stride:2", streams=streams,
        flow="farneback" if "flow" in streams else None, decoder="pyav", rotation="apply",
        dtype="float32", precision="fp32", spatial_map=False,
    )  # fmt: skip


def frame_indices(num_frames: int) -> np.ndarray:
    return (np.arange(num_frames) * 2).astype(np.int32)


def video_features(video_id: str, num_frames: int, stream: str, seed: int) -> store.VideoFeatures:
    rng = np.random.default_rng([seed, int.from_bytes(video_id.encode(), "little") % 10_000])
    feature = rng.normal(size=(num_frames, FEATURE_DIM)).astype(np.float32)
    if video_id == NAN_VIDEO:
        feature[1] = np.nan
    return store.VideoFeatures(
        video_id=video_id, stream=stream, decoder="pyav", frame_index=frame_indices(num_frames),
        timestamp_s=frame_indices(num_frames) / 12.0, feature=feature, spatial_map=None,
    )  # fmt: skip


def make_feature_set(root: Path, *, streams: tuple[str, ...] = ("rgb",), seed: int = 0) -> str:
    """A feature set of GOOD_VIDEOS plus the broken inputs; returns its folder.

    Rows are committed shuffled within a part, so readers must sort frames themselves.
    """
    feature_spec = spec(streams)
    uri = store.feature_set_uri(str(root), feature_spec.feature_set_id)
    record = store.create_or_open_feature_set(
        uri, feature_spec, feature_dim=FEATURE_DIM, spatial_shape=None
    )
    good = list(GOOD_VIDEOS)
    groups = [good[:5], [*good[5:], NAN_VIDEO]]
    lengths = {**{v: n for v, (_, n) in GOOD_VIDEOS.items()}, NAN_VIDEO: 4, LOST_VIDEO: 5}
    for index, group in enumerate(groups):
        videos = [video_features(v, lengths[v], s, seed) for v in group for s in streams]
        table = store.features_table(
            videos, feature_dim=FEATURE_DIM, dtype="float32", spatial_shape=None,
            event_timestamp=STAMP,
        )  # fmt: skip
        order = np.random.default_rng(index).permutation(table.num_rows)
        listed = [*group, EMPTY_VIDEO] if index == 0 else group
        store.commit_part(uri, table.take(order), listed, lineage=record)
    lost = store.features_table(
        [video_features(LOST_VIDEO, 5, s, seed) for s in streams], feature_dim=FEATURE_DIM,
        dtype="float32", spatial_shape=None, event_timestamp=STAMP,
    )  # fmt: skip
    lost_path = Path(store.commit_part(uri, lost, [LOST_VIDEO], lineage=record))
    lost_path.write_bytes(lost_path.read_bytes()[:-40])  # cut inside the footer
    (Path(uri) / GARBAGE_PART).write_bytes(b"this is not a parquet file" * 20)
    return uri


def make_action_model(
    root: Path, name: str = "lstm-att", *, model: str = "lstm_attention", seed: int = 3, **fields
) -> str:
    """A small action model folder over FEATURE_DIM features and CLASSES; returns its folder."""
    sizes = {"feature_dim": FEATURE_DIM, "hidden_dim": 8, "attention_dim": 4, **fields}
    network = build_model(model, num_classes=len(CLASSES), seed=seed, **sizes)
    uri = model_uri(str(root), name)
    log = [
        {"epoch": 0, "train_loss": 1.4, "val_top1": 0.25},
        {"epoch": 1, "train_loss": float("nan"), "val_top1": 0.5},
    ]
    write_model(
        uri, network, network.config, name=model,
        extra={"class_names": CLASSES, "feature_set_id": spec().feature_set_id},
        training_log=log,
    )  # fmt: skip
    return uri


CAPTIONS = ["a red circle moves left", "a blue square grows", "the green triangle moves right"]
QUESTIONS = [
    {"question": "what colour is the shape?", "answer": "red", "question_type": "colour"},
    {"question": "which way does it move?", "answer": "left", "question_type": "direction"},
]


def make_caption_model(
    root: Path, name: str = "cap-att", *, streams: tuple[str, ...] | None = None
) -> str:
    """A small untrained soft-attention captioner whose vocabulary is CAPTIONS' words; with
    `streams` it reads them side by side (FEATURE_DIM each), as caption training records."""
    from hybrid_models.vocabulary import Vocabulary

    vocabulary = Vocabulary.build(CAPTIONS)
    network = build_model(
        "caption_attention", seed=5, feature_dim=FEATURE_DIM * len(streams or ("rgb",)),
        vocab_size=len(vocabulary),
        embed_dim=6, hidden_dim=8, attention_dim=5,
    )  # fmt: skip
    uri = model_uri(str(root), name)
    write_model(
        uri, network, network.config, name="caption_attention",
        extra={"vocabulary": vocabulary.to_json(), **({"streams": list(streams)} if streams else {})},
    )  # fmt: skip
    return uri


def make_vqa_model(root: Path, name: str = "vqa-att") -> str:
    """A small untrained question-guided VQA model over QUESTIONS' words and answers."""
    from hybrid_models.vocabulary import AnswerVocabulary, Vocabulary

    questions = Vocabulary.build(q["question"] for q in QUESTIONS)
    answers = AnswerVocabulary.build(["red", "left", "blue", "right"])
    network = build_model(
        "vqa_attention", seed=6, feature_dim=FEATURE_DIM, question_vocab_size=len(questions),
        num_answers=len(answers), embed_dim=6, hidden_dim=8, attention_dim=5, fusion_dim=8,
    )  # fmt: skip
    uri = model_uri(str(root), name)
    write_model(
        uri, network, network.config, name="vqa_attention",
        extra={"question_vocabulary": questions.to_json(), "answers": answers.to_json()},
    )  # fmt: skip
    return uri


def write_predictions(out: Path, task: str, rows: list[dict], *, model_id: str) -> str:
    """A predictions folder as `vidpipe infer` leaves it, from hand-made rows (no model needed)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines.inference.rows import predictions_schema
    from schemas import ERRORS_SCHEMA

    (out / "errors").mkdir(parents=True, exist_ok=True)
    schema = predictions_schema(task)
    full = [{"model_id": model_id, "frame_order": "original", **row} for row in rows]
    pq.write_table(pa.Table.from_pylist(full, schema=schema), out / "part-00000-of-00001.parquet")
    pq.write_table(ERRORS_SCHEMA.empty_table(), out / "errors" / "part-00000-of-00001.parquet")
    summary = {
        "task": task, "model_id": model_id, "model_uri": str(out.parent.parent / "models" / model_id),
        "frame_orders": ["original"], "timings_s": {"pipeline": 1.5},
    }  # fmt: skip
    (out / "predictions.json").write_text(json.dumps(summary))
    return str(out)


def vidpipe(argv: list[str]) -> int:
    """`vidpipe ARGV` in-process."""
    from pipelines import cli

    return cli.main(argv)


def make_videos(folder: Path, video_ids: list[str]) -> dict[str, str]:
    """A real H.264 video per video id (a square moving right); id -> file name."""
    folder.mkdir(parents=True, exist_ok=True)
    names = {}
    for number, video_id in enumerate(video_ids):
        num_frames = GOOD_VIDEOS[video_id][1]
        count = int(frame_indices(num_frames)[-1]) + 1
        frames = np.full((count, SIZE, SIZE, 3), 30, np.uint8)
        for t in range(count):
            x = (t * 2 + number) % (SIZE - 8)
            frames[t, 12:20, x : x + 8] = (220, 40, 40)
        names[video_id] = f"{video_id}.mp4"
        write_video(folder / names[video_id], frames, fps=12.0)
    return names


def make_manifest(path: Path, *, video_names: dict[str, str] | None = None, **columns) -> str:
    """A manifest of ALL_VIDEOS plus one video never extracted; extra columns by video id."""
    rows = []
    for video_id in [*ALL_VIDEOS, "v-never"]:
        label = GOOD_VIDEOS.get(video_id, ("grow", 0))[0]
        row = {
            "video_id": video_id,
            "uri": (video_names or {}).get(video_id, f"videos/{video_id}.mp4"),
            "split": "test",
            "label": label,
        }
        for column, values in columns.items():
            if video_id in values:
                row[column] = values[video_id]
        rows.append(row)
    rows.append({"video_id": "t-train", "uri": "videos/t.mp4", "split": "train", "label": "grow"})
    write_manifest(manifest_table(rows), str(path))
    return str(path)


def now() -> dt.datetime:
    return dt.datetime.fromisoformat(STAMP)
