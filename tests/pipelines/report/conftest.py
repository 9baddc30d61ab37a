"""A small, realistic report (4 classes, a few samples) and tiny frames, for the report tests."""

import json

import numpy as np
import pytest

from schemas import FeatureSetSpec, lineage_record

CLASSES = ["move_left", "move_right", "grow", "shrink"]
SCRIPT_CAPTION = 'a red circle <script>alert("x")</script> moves & "left"'


def feature_set_lineage(backbone: str = "resnet18") -> dict:
    spec = FeatureSetSpec(
        backbone=backbone,
        weights="none",
        weights_digest="init-seed:0",
        input_size=32,
        resize_size=32,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        sampling="uniform:4",
        streams=("rgb",),
        flow=None,
        decoder="pyav",
        rotation="auto",
        dtype="float32",
        precision="fp32",
        spatial_map=False,
    )
    record = lineage_record("feature_set", spec.to_json(), feature_set_id=spec.feature_set_id)
    record = {**record, "created_at": "2025-01-01T00:00:00+00:00", "feature_dim": 512}
    return json.loads(json.dumps(record))  # as read back from feature_set.json: tuples are lists


def model_entry(hidden_dim: int) -> dict:
    config = {"feature_dim": 512, "hidden_dim": hidden_dim, "pooling": "attention"}
    return {"config": config, "lineage": {"kind": "model", "trained_on": "train", "epochs": 3}}


def make_report() -> dict:
    confusion = [[3, 1, 0, 0], [1, 3, 0, 0], [0, 0, 4, 0], [0, 0, 1, 3]]
    per_class_ap = {"move_left": 0.81, "move_right": 0.77, "grow": 1.0, "shrink": 0.92}
    return {
        "report_id": "eval-2025-01-02-a1b2",
        "created_at": "2025-01-02T03:04:05+00:00",
        "vidpipe_version": "0.1.0",
        "inputs": {
            "manifest": "memory://data/manifest.parquet",
            "predictions": {
                "action": "memory://root/predictions/action/lstm-att",
                "caption": "memory://root/predictions/caption/cap-lstm",
                "vqa": "memory://root/predictions/vqa/vqa-bilinear",
            },
            "feature_set": feature_set_lineage(),
            "models": {
                "lstm-att": model_entry(128),
                "cap-lstm": model_entry(256),
                "vqa-bilinear": model_entry(64),
            },
        },
        "counts": {
            "videos_in_manifest": 20,
            "videos_evaluated": {"action": 16, "caption": 3, "vqa": 3},
            "dead_letters": 2,
            "dead_letter_examples": [
                {
                    "video_id": "vid-019",
                    "stage": "decode",
                    "error_type": "InvalidDataError",
                    "message": "moov atom not found <b>",
                }
            ],
            "missing_predictions": {"action": 2, "caption": 0, "vqa": 0},
        },
        "timings_s": {"read": 0.52, "inference": 3.25, "metrics": 0.75},
        "action": {
            "model_id": "lstm-att",
            "class_names": list(CLASSES),
            "num_videos": 16,
            "metrics": {"top1": 0.8125, "top5": 1.0, "mean_class_accuracy": 0.8125, "mAP": 0.875},
            "ci95": {"top1": [0.625, 1.0], "mean_class_accuracy": [0.6, 1.0], "mAP": [0.7, 0.98]},
            "per_class_ap": per_class_ap,
            "per_class_accuracy": {
                "move_left": 0.75,
                "move_right": 0.75,
                "grow": 1.0,
                "shrink": 0.75,
            },
            "confusion_matrix": confusion,
            "pr_curves": {
                name: {"precision": [1.0, 1.0, ap, 0.5, 0.25], "recall": [0.0, 0.5, 0.75, 0.9, 1.0]}
                for name, ap in per_class_ap.items()
            },
            "pairs": [
                {"pair": "move_left/move_right", "accuracy": 0.75, "num_videos": 8},
                {"pair": "grow/shrink", "accuracy": 0.875, "num_videos": 8},
            ],
            "temporal_order": {
                "accuracy": {"original": 0.8125, "reversed": 0.25, "shuffled": 0.5},
                "changed_under_reversal": 0.875,
                "changed_under_shuffle": 0.5,
                "flipped_to_pair": 0.75,
            },
            "multi_label": {
                "mAP": 0.7,
                "per_class_ap": {"move_left": 0.6, "move_right": 0.7, "grow": 0.8},
                "excluded_classes": ["shrink"],
            },
            "attention_examples": [
                {
                    "video_id": "vid-000",
                    "true_label": "move_left",
                    "predicted_label": "move_left",
                    "frame_indices": [0, 8, 16, 23],
                    "attention": [0.1, 0.2, 0.6, 0.1],
                },
                {
                    "video_id": "vid-001",
                    "true_label": "grow",
                    "predicted_label": "shrink",
                    "frame_indices": [0, 8, 16, 23],
                    "attention": [0.25, 0.25, 0.25, 0.25],
                },
                {
                    "video_id": "vid-002",
                    "true_label": "shrink",
                    "predicted_label": "shrink",
                    "frame_indices": [1, 9, 17, 24],
                    "attention": [0.7, 0.1, 0.1, 0.1],
                },
            ],
        },
        "caption": {
            "model_id": "cap-lstm",
            "num_videos": 3,
            "metrics": {
                "BLEU-1": 0.71,
                "BLEU-2": 0.55,
                "BLEU-3": 0.42,
                "BLEU-4": 0.31,
                "METEOR": 0.24,
                "ROUGE-L": 0.58,
                "CIDEr-D": 0.93,
                "CIDEr": 1.12,
                "SPICE": {"available": False, "reason": "java was not found on PATH"},
            },
            "ci95": {"BLEU-4": [0.2, 0.4], "CIDEr-D": [0.6, 1.3]},
            "samples": [
                {
                    "video_id": "vid-000",
                    "hypothesis": "a red circle moves left",
                    "references": ["a red circle moves to the left", "the red circle slides left"],
                    "scores": {"BLEU-4": 0.48, "CIDEr-D": 1.52},
                    "tokens": ["a", "red", "circle", "moves", "left"],
                    "frame_indices": [0, 8, 16, 23],
                    "attention": [
                        [0.7, 0.1, 0.1, 0.1],
                        [0.4, 0.4, 0.1, 0.1],
                        [0.25, 0.25, 0.25, 0.25],
                        [0.1, 0.2, 0.3, 0.4],
                        [0.0, 0.1, 0.2, 0.7],
                    ],
                },
                {
                    "video_id": "vid-003",
                    "hypothesis": SCRIPT_CAPTION,
                    "references": ["a blue square grows"],
                    "scores": {"BLEU-4": 0.0, "CIDEr-D": 0.05},
                },
                {
                    "video_id": "vid-004",
                    "hypothesis": "a green green green triangle shrinks",
                    "references": ["a green triangle shrinks"],
                    "scores": {"BLEU-4": 0.21, "CIDEr-D": 0.87},
                },
            ],
            "error_analysis": {
                "hallucinated_objects": {
                    "count": 1,
                    "examples": [
                        {
                            "video_id": "vid-003",
                            "hypothesis": SCRIPT_CAPTION,
                            "references": ["a blue square grows"],
                            "hallucinated_objects": ["circle"],
                        }
                    ],
                },
                "wrong_attributes": {
                    "count": 1,
                    "examples": [
                        {
                            "video_id": "vid-003",
                            "hypothesis": SCRIPT_CAPTION,
                            "references": ["a blue square grows"],
                            "wrong_attributes": [{"object": "circle", "attribute": "red"}],
                        }
                    ],
                },
                "repetition": {
                    "count": 1,
                    "examples": [
                        {
                            "video_id": "vid-004",
                            "hypothesis": "a green green green triangle shrinks",
                            "references": ["a green triangle shrinks"],
                            "repeated_ngrams": {"1": [{"ngram": ["green"], "count": 3}]},
                        }
                    ],
                },
            },
        },
        "vqa": {
            "model_id": "vqa-bilinear",
            "num_questions": 3,
            "metrics": {"accuracy": 2 / 3},
            "ci95": {"accuracy": [0.0, 1.0]},
            "per_type": {
                "colour": {"accuracy": 1.0, "count": 1},
                "count": {"accuracy": 1.0, "count": 1},
                "direction": {"accuracy": 0.0, "count": 1},
            },
            "samples": [
                {
                    "video_id": "vid-000",
                    "question": "what colour is the circle?",
                    "question_type": "colour",
                    "answer": "red",
                    "prediction": "red",
                    "correct": True,
                    "frame_indices": [0, 8, 16, 23],
                    "attention": [0.4, 0.3, 0.2, 0.1],
                },
                {
                    "video_id": "vid-003",
                    "question": "how many shapes are there?",
                    "question_type": "count",
                    "answer": "1",
                    "prediction": "1",
                    "correct": True,
                },
                {
                    "video_id": "vid-004",
                    "question": "which way does the triangle move?",
                    "question_type": "direction",
                    "answer": "left",
                    "prediction": "right",
                    "correct": False,
                },
            ],
        },
        "training": {
            "lstm-att": [
                {"epoch": 1, "train_loss": 1.38, "val_loss": 1.30, "val_top1": 0.40},
                {"epoch": 2, "train_loss": 0.92, "val_loss": 0.95, "val_top1": 0.65},
                {"epoch": 3, "train_loss": 0.51, "val_loss": 0.70, "val_top1": 0.81},
            ],
            "cap-lstm": [
                {"epoch": 1, "train_loss": 4.1},
                {"epoch": 2, "train_loss": None},
                {"epoch": 3, "train_loss": 2.9},
            ],
        },
        "ablations": {
            "columns": ["model", "pooling", "top1", "reversed_pair_accuracy"],
            "rows": [
                {
                    "model": "mean-pool",
                    "pooling": "mean",
                    "top1": 0.5,
                    "reversed_pair_accuracy": 0.5,
                },
                {
                    "model": "lstm-last",
                    "pooling": "last",
                    "top1": 0.75,
                    "reversed_pair_accuracy": 0.8,
                },
                {
                    "model": "lstm-att",
                    "pooling": "attention",
                    "top1": 0.8125,
                    "reversed_pair_accuracy": 0.81,
                },
            ],
        },
    }


def make_frames(num_frames: int = 4, size: int = 32, seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8: a square moving left over a noisy background."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 40, size=(num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        left = size - 12 - t * (size - 12) // max(1, num_frames - 1)
        frames[t, 10:22, left : left + 10] = (230, 40, 40)
    return frames


@pytest.fixture
def report() -> dict:
    return make_report()


@pytest.fixture
def frames() -> dict:
    # vid-002 is left without frames on purpose: the page must say so and draw weights alone.
    return {"vid-000": make_frames(seed=0), "vid-001": make_frames(seed=1)}
