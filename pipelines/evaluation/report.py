"""The report dict of `pipelines.report.document`, assembled from merged metric outputs.

Pure: combiner outputs and driver-side facts (models, lineage, training logs) in, one
validated dict out. A number that could not be computed becomes `unavailable(reason)`,
never 0 or null.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import fsspec

from pipelines.evaluation.joins import URI_KEY
from pipelines.metrics import bootstrap_ci
from pipelines.report import check_report, unavailable
from pipelines.report.document import CAPTION_METRICS, ERROR_KINDS

logger = logging.getLogger(__name__)

ABLATIONS_FILE = "ablations.json"


def metric(value: Any, reason: str) -> Any:
    """`value` when it is a finite number, else `unavailable(reason)` (or the marker it is)."""
    if isinstance(value, dict) and value.get("available") is False:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return unavailable(reason)


def _intervals(ci95: Mapping[str, Sequence[float]], metrics: Mapping[str, Any]) -> dict:
    """The CIs whose metric is a number, as [low, high] lists."""
    return {
        name: [float(low), float(high)]
        for name, (low, high) in ci95.items()
        if name in metrics and not isinstance(metrics[name], dict)
    }


def class_pairs(class_names: Sequence[str], partner_of: Mapping[str, str]) -> list[tuple[str, str]]:
    """Each time-reversed pair whose two classes are both model classes, once, in class order."""
    position = {name: i for i, name in enumerate(class_names)}
    return [
        (name, partner_of[name])
        for name in class_names
        if partner_of.get(name) in position and position[name] < position[partner_of[name]]
    ]


# ---------------------------------------------------------------------------
# Sections


def action_section(
    *,
    model_id: str,
    class_names: Sequence[str],
    single: Mapping[str, Any],
    multi: Mapping[str, Any] | None = None,
    temporal: Mapping[str, Any] | None = None,
    details: Sequence[tuple[str, dict]] = (),
) -> dict[str, Any]:
    """The "action" section from SingleLabelFinish's output (and the optional extras);
    `details` are (video id, attention record) of the videos whose attention is shown."""
    no_videos = (
        "no video of the manifest had both a label among the model's classes and a prediction"
    )
    accuracy = single["accuracy"]
    metrics = {
        "top1": metric(accuracy.get("top_1"), no_videos),
        "top5": metric(accuracy.get("top_5"), no_videos),
        "mean_class_accuracy": metric(single["mean_class_accuracy"], no_videos),
        "mAP": metric(single["mAP"], no_videos),
    }
    section: dict[str, Any] = {
        "model_id": model_id,
        "class_names": list(class_names),
        "num_videos": int(single["num_samples"]),
        "metrics": metrics,
        "ci95": _intervals(single.get("ci95", {}), metrics),
        "per_class_ap": {name: float(ap) for name, ap in single["per_class_ap"].items()},
        "per_class_accuracy": {
            name: float(value)
            for name, value in single["per_class_accuracy"].items()
            if value is not None
        },
        "confusion_matrix": single["confusion_matrix"]["counts"],
        "pr_curves": dict(single.get("pr_curves", {})),
        "pairs": [
            {
                "pair": "/".join(pair["classes"]),
                # The forced choice between the two classes: 0.5 for a model blind to order.
                "accuracy": metric(pair["two_way_accuracy"], "no video of this pair"),
                "num_videos": int(pair["num_videos"]),
            }
            for pair in single["class_pairs"]
        ],
        "attention_examples": [
            {
                "video_id": video_id,
                "true_label": detail["true_label"],
                "predicted_label": detail["predicted_label"],
                "frame_indices": [int(i) for i in detail["frame_indices"]],
                "attention": [float(a) for a in detail["attention"]],
                URI_KEY: detail[URI_KEY],
            }
            for video_id, detail in sorted(details)
        ],
    }
    if temporal is not None:
        section["temporal_order"] = temporal_order_section(temporal)
    if multi is not None:
        section["multi_label"] = {
            "mAP": metric(multi["mAP"], "no class has a positive video"),
            "per_class_ap": {name: float(ap) for name, ap in multi["per_class_ap"].items()},
            "excluded_classes": list(multi["classes_without_positives"]),
        }
    return section


def temporal_order_section(result: Mapping[str, Any]) -> dict[str, Any]:
    """TemporalOrderCheck's output in the report's shape."""
    accuracy = {
        order: metric(value["accuracy"], f"no predictions on {order} frames")
        for order, value in result["accuracy"].items()
    }
    return {
        "accuracy": accuracy,
        "changed_under_reversal": metric(
            result["changed_under_reversal"]["fraction"], "no predictions on reversed frames"
        ),
        "changed_under_shuffle": metric(
            result["changed_under_shuffling"]["fraction"], "no predictions on shuffled frames"
        ),
        "flipped_to_pair": metric(
            result["reversed_predicted_as_pair"]["fraction"],
            "no reversed predictions of a class with a time-reversed partner",
        ),
    }


def caption_section(
    *, model_id: str, result: Mapping[str, Any], details: Sequence[tuple[str, dict]]
) -> dict[str, Any]:
    """The "caption" section from CaptionFinish's output and the first videos' attention."""
    none = "no video of the manifest had both captions and a prediction"
    metrics = {name: metric(result.get(name), none) for name in CAPTION_METRICS}
    for name, value in metrics.items():
        if isinstance(value, float) and value < 0:
            metrics[name] = unavailable(f"{name} was negative ({value})")
    samples = []
    per_sample = result.get("per_sample", {})
    for video_id, detail in details:
        if video_id not in per_sample:
            continue
        sample = {
            "video_id": video_id,
            "hypothesis": detail["hypothesis"],
            "references": list(detail["references"]),
            "scores": {
                name: metric(value, f"{name} gave no score for this video")
                for name, value in per_sample[video_id].items()
            },
            "tokens": detail["tokens"],
            "frame_indices": detail["frame_indices"],
            "attention": detail["attention"],
            URI_KEY: detail[URI_KEY],
        }
        samples.append(sample)
    section: dict[str, Any] = {
        "model_id": model_id,
        "num_videos": int(result.get("num_samples", 0)),
        "metrics": metrics,
        "ci95": _intervals(result.get("ci95", {}), metrics),
        "samples": samples,
    }
    analysis = result.get("error_analysis")
    if analysis:
        section["error_analysis"] = {
            kind: {
                "count": analysis[kind]["num_captions"],
                "num_errors": analysis[kind]["num_errors"],
                "examples": analysis[kind]["examples"],
            }
            for kind in ERROR_KINDS
        }
    return section


def vqa_section(
    *,
    model_id: str,
    result: Mapping[str, Any],
    correct: Sequence[float],
    details: Sequence[tuple[Any, dict]],
    num_resamples: int,
    seed: int,
) -> dict[str, Any]:
    """The "vqa" section from VqaAccuracy's output, per-question correctness and samples."""
    none = "no question of the manifest had a predicted answer"
    metrics = {"accuracy": metric(result["accuracy"], none)}
    ci95 = {}
    if correct:
        ci95["accuracy"] = bootstrap_ci(list(correct), num_resamples=num_resamples, seed=seed)
    return {
        "model_id": model_id,
        "num_questions": int(result["num_questions"]),
        "metrics": metrics,
        "ci95": _intervals(ci95, metrics),
        "per_type": {
            question_type: {
                "accuracy": metric(value["accuracy"], "no question of this type"),
                "count": int(value["num_questions"]),
            }
            for question_type, value in result["per_question_type"].items()
        },
        "samples": [dict(record) for _, record in details],
    }


def training_section(logs: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any] | None:
    """Training curves per model: epochs with numbers (non-finite as null); None when empty."""
    training = {}
    for model_id, entries in logs.items():
        epochs = []
        for entry in entries:
            if "epoch" not in entry or "train_loss" not in entry:
                continue
            epoch = {"epoch": int(entry["epoch"])}
            for key, value in entry.items():
                if key == "epoch":
                    continue
                if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
                    if key == "train_loss":
                        epoch[key] = None
                    continue
                epoch[key] = float(value) if math.isfinite(value) else None
            epochs.append(epoch)
        if epochs:
            training[model_id] = epochs
    return training or None


def read_ablations(models_root: str) -> dict[str, Any] | None:
    """ROOT/models/ablations.json when it exists and has the report's shape, else None."""
    fs, path = fsspec.core.url_to_fs(models_root)
    target = f"{path.rstrip('/')}/{ABLATIONS_FILE}"
    if not fs.exists(target):
        return None
    try:
        with fs.open(target, "r") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as error:
        logger.warning("ignoring %s: %s", target, error)
        return None
    ok = (
        isinstance(data, dict)
        and isinstance(data.get("columns"), list)
        and all(isinstance(name, str) for name in data["columns"])
        and isinstance(data.get("rows"), list)
        and all(isinstance(row, dict) and set(row) <= set(data["columns"]) for row in data["rows"])
    )
    if not ok:
        logger.warning(
            'ignoring %s: expected {"columns": [str], "rows": [{column: value}]}', target
        )
        return None
    return {"columns": data["columns"], "rows": data["rows"]}


def strip_private(sections: Mapping[str, dict[str, Any] | None]) -> None:
    """Removes the keys the pipeline carries for itself (the videos' uris) from `sections`."""
    for name, key in (("action", "attention_examples"), ("caption", "samples"), ("vqa", "samples")):
        for sample in (sections.get(name) or {}).get(key, []):
            sample.pop(URI_KEY, None)


def assemble_report(
    *,
    report_id: str,
    created_at: str,
    vidpipe_version: str,
    inputs: dict[str, Any],
    counts: dict[str, Any],
    timings_s: dict[str, float],
    sections: Mapping[str, dict[str, Any] | None],
) -> dict[str, Any]:
    """The whole report; ValueError naming the first problem when it breaks the contract."""
    report = {
        "report_id": report_id,
        "created_at": created_at,
        "vidpipe_version": vidpipe_version,
        "inputs": inputs,
        "counts": counts,
        "timings_s": {stage: round(float(s), 3) for stage, s in timings_s.items()},
        **{name: section for name, section in sections.items() if section is not None},
    }
    check_report(report)
    return report
