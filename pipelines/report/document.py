"""The evaluation report: one JSON-ready dict, its contract, and `validate_report`.

The evaluation pipeline fills the dict; `report.json`, `report.html` and
`vidpipe report diff` all read it, so this docstring is THE contract.

A *metric* is a finite number or, when it could not be computed, the dict
`{"available": false, "reason": str}` -- never 0, never null, never NaN. A
*fraction* is a metric in [0, 1]. A *CI* is `[low, high]` with low <= high.
Keys marked "optional" may be absent or null; every other key is required.
Records (samples, examples, epochs) may carry extra keys; fixed dicts may not.

    {
      "report_id": str (safe as a folder name), "created_at": ISO 8601 str,
      "vidpipe_version": str,
      "inputs": {
        "manifest": uri, "predictions": {task: uri},
        "feature_set": lineage dict (as in feature_set.json) or null,
        "models": {model_id: {"config": dict, "lineage": dict}}},
      "counts": {
        "videos_in_manifest": int, "videos_evaluated": {task: int}, "dead_letters": int,
        "dead_letter_examples": [{"video_id", "stage", "error_type", "message"}],
        "missing_predictions": {task: int}},
      "timings_s": {stage: float >= 0},
      "action": optional {
        "model_id": str (a key of inputs.models), "class_names": [str], "num_videos": int,
        "metrics": {"top1", "top5", "mean_class_accuracy", "mAP": fraction, ...more fractions},
        "ci95": {metric name: CI},
        "per_class_ap": {class: fraction}, "per_class_accuracy": {class: fraction},
        "confusion_matrix": [[int]]  (rows = true class, columns = predicted, class_names
                                      order; the counts sum to num_videos),
        "pr_curves": {class: {"precision": [float], "recall": [float]}} (equal lengths),
        "pairs": [{"pair": "move_left/move_right", "accuracy": fraction, "num_videos": int}],
        "temporal_order": optional {
          "accuracy": {"original", "reversed", "shuffled": fraction},
          "changed_under_reversal", "changed_under_shuffle", "flipped_to_pair": fraction},
        "multi_label": optional {"mAP": fraction, "per_class_ap": {label: fraction},
                                 "excluded_classes": [str]},
        "attention_examples": [{"video_id", "true_label", "predicted_label",
                                "frame_indices": [int], "attention": [float >= 0]}]},
      "caption": optional {
        "model_id": str, "num_videos": int,
        "metrics": {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D",
                    "CIDEr", "SPICE": metric >= 0},
        "ci95": {metric name: CI},
        "samples": [{"video_id", "hypothesis": str, "references": [str],
                     "scores": {metric name: metric},
                     optional "tokens": [str], "frame_indices": [int],
                     "attention": [[float]] (one row per token, one column per frame)}],
        "error_analysis": optional {"hallucinated_objects", "wrong_attributes",
                                    "repetition": {"count": int, "examples": [dict]}}},
      "vqa": optional {
        "model_id": str, "num_questions": int, "metrics": {"accuracy": fraction},
        "ci95": {metric name: CI},
        "per_type": {question_type: {"accuracy": fraction, "count": int}},
        "samples": [{"video_id", "question", "question_type", "answer", "prediction": str,
                     "correct": bool, optional "frame_indices": [int], "attention": [float]}]},
      "training": optional {model_id: [{"epoch": int, "train_loss": float or null,
                                        ...more floats or null, e.g. "val_top1"}]},
      "ablations": optional {"columns": [str], "rows": [{column: str, number, bool or null}]}
    }

Tasks are "action", "caption" and "vqa". In training logs null stands for a
value that was not finite (a diverged loss); JSON has no NaN.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from typing import Any

from schemas import id_problem

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
TASKS = ("action", "caption", "vqa")
SECTIONS = ("action", "caption", "vqa", "training", "ablations")
ACTION_METRICS = ("top1", "top5", "mean_class_accuracy", "mAP")
CAPTION_METRICS = (
    "BLEU-1",
    "BLEU-2",
    "BLEU-3",
    "BLEU-4",
    "METEOR",
    "ROUGE-L",
    "CIDEr-D",
    "CIDEr",
    "SPICE",
)
VQA_METRICS = ("accuracy",)
FRAME_ORDERS = ("original", "reversed", "shuffled")
ERROR_KINDS = ("hallucinated_objects", "wrong_attributes", "repetition")
DEAD_LETTER_KEYS = ("video_id", "stage", "error_type", "message")

_TOP_KEYS = ("report_id", "created_at", "vidpipe_version", "inputs", "counts", "timings_s")
_NOT_COMPUTED = 'a metric that could not be computed must be {"available": false, "reason": ...}'


def unavailable(reason: str) -> dict[str, Any]:
    """How a metric that could not be computed appears in a report."""
    return {"available": False, "reason": reason}


def is_unavailable(value: object) -> bool:
    """True for `{"available": false, "reason": str}`."""
    return (
        isinstance(value, dict)
        and value.keys() == {"available", "reason"}
        and value["available"] is False
        and isinstance(value["reason"], str)
    )


def is_number(value: object) -> bool:
    """A finite int or float (bool is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_report(report: Any) -> list[str]:
    """Every way `report` breaks the contract above, one message each; [] when it holds."""
    problems: list[str] = []
    if not isinstance(report, dict):
        return [f"report must be a dict, got {type(report).__name__}"]
    check = _Checker(problems)
    check.keys("report", report, _TOP_KEYS, SECTIONS)
    report_id = report.get("report_id")
    if "report_id" in report and check.string("report_id", report_id):
        problem = id_problem(report_id)
        if problem is not None:
            problems.append(f"report_id: {problem}")
    created_at = report.get("created_at")
    if "created_at" in report and check.string("created_at", created_at):
        try:
            dt.datetime.fromisoformat(created_at)
        except ValueError:
            problems.append(f"created_at: {created_at!r} is not an ISO 8601 time")
    if "vidpipe_version" in report:
        check.string("vidpipe_version", report["vidpipe_version"])
    model_ids = _check_inputs(check, report["inputs"]) if "inputs" in report else None
    if "counts" in report:
        _check_counts(check, report["counts"])
    if "timings_s" in report and check.mapping("timings_s", report["timings_s"]):
        for stage, seconds in report["timings_s"].items():
            check.number(f"timings_s.{stage}", seconds, minimum=0.0)
    for name, section_check in (
        ("action", _check_action),
        ("caption", _check_caption),
        ("vqa", _check_vqa),
    ):
        section = report.get(name)
        if section is None or not check.mapping(name, section):
            continue
        section_check(check, section)
        model_id = section.get("model_id")
        if isinstance(model_id, str) and model_ids is not None and model_id not in model_ids:
            problems.append(f"{name}.model_id: {model_id!r} is not in inputs.models")
    if report.get("training") is not None:
        _check_training(check, report["training"])
    if report.get("ablations") is not None:
        _check_ablations(check, report["ablations"])
    return problems


def check_report(report: Any) -> None:
    """ValueError naming the first problem (and how many there are) unless `report` is valid."""
    problems = validate_report(report)
    if problems:
        raise ValueError(f"report is invalid: {problems[0]} ({len(problems)} problems)")


# ---------------------------------------------------------------------------
# Checks of the parts. Each appends "path: what is wrong" and returns whether
# the value had the right type, so callers skip checks that would only repeat it.


class _Checker:
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems

    def add(self, path: str, message: str) -> bool:
        self.problems.append(f"{path}: {message}")
        return False

    def expect(self, path: str, value: Any, kind: type, name: str) -> bool:
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return True
        return self.add(path, f"expected {name}, got {_describe(value)}")

    def mapping(self, path: str, value: Any) -> bool:
        return self.expect(path, value, dict, "an object")

    def sequence(self, path: str, value: Any) -> bool:
        return self.expect(path, value, list, "a list")

    def string(self, path: str, value: Any) -> bool:
        return self.expect(path, value, str, "a string")

    def count(self, path: str, value: Any) -> bool:
        if not self.expect(path, value, int, "an integer"):
            return False
        return value >= 0 or self.add(path, f"count ({value}) must be >= 0")

    def number(self, path: str, value: Any, minimum: float | None = None) -> bool:
        if not is_number(value):
            if isinstance(value, float):
                return self.add(path, f"{value} is not finite")
            return self.expect(path, value, float, "a number")
        if minimum is not None and value < minimum:
            return self.add(path, f"{value} must be >= {minimum:g}")
        return True

    def metric(self, path: str, value: Any, *, fraction: bool) -> bool:
        """A number (in [0, 1] for a fraction; >= 0 otherwise) or an unavailable marker."""
        if is_unavailable(value):
            return True
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return self.add(path, f"{value} is not a number; {_NOT_COMPUTED}")
        if isinstance(value, dict):
            return self.add(path, f"{value!r} is not a number; {_NOT_COMPUTED}")
        if not self.number(path, value, minimum=0.0):
            return False
        if fraction and value > 1:
            return self.add(path, f"{value} must be between 0 and 1")
        return True

    def metrics(self, path: str, values: Any, *, fraction: bool) -> bool:
        if not self.mapping(path, values):
            return False
        for name, value in values.items():
            self.metric(f"{path}.{name}", value, fraction=fraction)
        return True

    def strings(self, path: str, values: Any) -> bool:
        if not self.sequence(path, values):
            return False
        return all([self.string(f"{path}[{i}]", v) for i, v in enumerate(values)])

    def numbers(self, path: str, values: Any, minimum: float | None = None) -> bool:
        if not self.sequence(path, values):
            return False
        return all([self.number(f"{path}[{i}]", v, minimum) for i, v in enumerate(values)])

    def counts(self, path: str, values: Any) -> bool:
        if not self.sequence(path, values):
            return False
        return all([self.count(f"{path}[{i}]", v) for i, v in enumerate(values)])

    def keys(
        self,
        path: str,
        value: Mapping[str, Any],
        required: tuple[str, ...],
        optional: tuple[str, ...] = (),
        *,
        extra_allowed: bool = False,
    ) -> None:
        for key in required:
            if key not in value:
                self.add(path, f"missing key {key!r}")
        if not extra_allowed:
            for key in value:
                if key not in required and key not in optional:
                    self.add(path, f"unknown key {key!r}")

    def records(
        self,
        path: str,
        values: Any,
        required: tuple[str, ...],
        check_one: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        """A list of dicts that each hold `required` (extra keys allowed)."""
        if not self.sequence(path, values):
            return
        for index, record in enumerate(values):
            where = f"{path}[{index}]"
            if not self.mapping(where, record):
                continue
            self.keys(where, record, required, extra_allowed=True)
            if check_one is not None:
                check_one(where, record)

    def ci95(self, path: str, intervals: Any, metrics: Any) -> None:
        if not self.mapping(path, intervals):
            return
        known = metrics if isinstance(metrics, dict) else {}
        for name, interval in intervals.items():
            where = f"{path}.{name}"
            if name not in known:
                self.add(where, "is a CI for a metric that is not in metrics")
                continue
            if is_unavailable(known[name]):
                self.add(where, "is a CI for a metric that is unavailable")
                continue
            if not (isinstance(interval, list) and len(interval) == 2):
                self.add(where, f"expected [low, high], got {_describe(interval)}")
                continue
            if self.numbers(where, interval) and interval[0] > interval[1]:
                self.add(where, f"low ({interval[0]}) is above high ({interval[1]})")


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _check_inputs(check: _Checker, inputs: Any) -> set[str] | None:
    """The model ids in inputs.models, or None when there is no readable list of them."""
    if not check.mapping("inputs", inputs):
        return None
    check.keys("inputs", inputs, ("manifest", "predictions", "feature_set", "models"))
    if "manifest" in inputs:
        check.string("inputs.manifest", inputs["manifest"])
    predictions = inputs.get("predictions")
    if "predictions" in inputs and check.mapping("inputs.predictions", predictions):
        for task, uri in predictions.items():
            _check_task(check, "inputs.predictions", task)
            check.string(f"inputs.predictions.{task}", uri)
    feature_set = inputs.get("feature_set")
    if feature_set is not None:
        check.mapping("inputs.feature_set", feature_set)
    models = inputs.get("models")
    if "models" not in inputs or not check.mapping("inputs.models", models):
        return None
    for model_id, model in models.items():
        where = f"inputs.models.{model_id}"
        if check.mapping(where, model):
            check.keys(where, model, ("config", "lineage"))
            for key in ("config", "lineage"):
                if key in model:
                    check.mapping(f"{where}.{key}", model[key])
    return set(models)


def _check_task(check: _Checker, path: str, task: str) -> None:
    if task not in TASKS:
        check.add(path, f"unknown task {task!r}; expected one of {', '.join(TASKS)}")


def _check_counts(check: _Checker, counts: Any) -> None:
    if not check.mapping("counts", counts):
        return
    required = (
        "videos_in_manifest",
        "videos_evaluated",
        "dead_letters",
        "dead_letter_examples",
        "missing_predictions",
    )
    check.keys("counts", counts, required)
    for key in ("videos_in_manifest", "dead_letters"):
        if key in counts:
            check.count(f"counts.{key}", counts[key])
    for key in ("videos_evaluated", "missing_predictions"):
        per_task = counts.get(key)
        if key in counts and check.mapping(f"counts.{key}", per_task):
            for task, number in per_task.items():
                _check_task(check, f"counts.{key}", task)
                check.count(f"counts.{key}.{task}", number)
    examples = counts.get("dead_letter_examples")
    if "dead_letter_examples" in counts:
        check.records("counts.dead_letter_examples", examples, DEAD_LETTER_KEYS)
        dead_letters = counts.get("dead_letters")
        if (
            isinstance(examples, list)
            and isinstance(dead_letters, int)
            and len(examples) > dead_letters
        ):
            check.add(
                "counts.dead_letter_examples",
                f"{len(examples)} examples of {dead_letters} dead letters",
            )


def _check_weights(check: _Checker, path: str, weights: Any, num_frames: int | None) -> None:
    """Attention weights: numbers >= 0, one per frame index."""
    weights_ok = check.numbers(path, weights, minimum=0.0)
    if weights_ok and num_frames is not None and len(weights) != num_frames:
        check.add(path, f"has {len(weights)} weights for {num_frames} frame_indices")


def _frame_count(check: _Checker, path: str, record: dict[str, Any]) -> int | None:
    indices = record.get("frame_indices")
    return len(indices) if check.counts(f"{path}.frame_indices", indices) else None


def _check_action(check: _Checker, action: dict[str, Any]) -> None:
    required = (
        "model_id",
        "class_names",
        "num_videos",
        "metrics",
        "ci95",
        "per_class_ap",
        "per_class_accuracy",
        "confusion_matrix",
        "pr_curves",
        "pairs",
        "attention_examples",
    )
    check.keys("action", action, required, ("temporal_order", "multi_label"))
    if "model_id" in action:
        check.string("action.model_id", action["model_id"])
    num_videos = action.get("num_videos")
    if "num_videos" in action and not check.count("action.num_videos", num_videos):
        num_videos = None
    class_names: list[str] = []
    if "class_names" in action and check.strings("action.class_names", action["class_names"]):
        class_names = action["class_names"]
        if len(set(class_names)) != len(class_names):
            check.add("action.class_names", "repeats a class name")
    metrics = action.get("metrics")
    if "metrics" in action and check.metrics("action.metrics", metrics, fraction=True):
        check.keys("action.metrics", metrics, ACTION_METRICS, extra_allowed=True)
    if "ci95" in action:
        check.ci95("action.ci95", action["ci95"], metrics)
    for key in ("per_class_ap", "per_class_accuracy"):
        values = action.get(key)
        if key in action and check.metrics(f"action.{key}", values, fraction=True):
            _check_known_classes(check, f"action.{key}", values, class_names)
    if "confusion_matrix" in action:
        _check_confusion_matrix(check, action["confusion_matrix"], len(class_names), num_videos)
    curves = action.get("pr_curves")
    if "pr_curves" in action and check.mapping("action.pr_curves", curves):
        _check_known_classes(check, "action.pr_curves", curves, class_names)
        for name, curve in curves.items():
            _check_pr_curve(check, f"action.pr_curves.{name}", curve)

    def check_pair(path: str, pair: dict[str, Any]) -> None:
        if "pair" in pair:
            check.string(f"{path}.pair", pair["pair"])
        if "accuracy" in pair:
            check.metric(f"{path}.accuracy", pair["accuracy"], fraction=True)
        if "num_videos" in pair:
            check.count(f"{path}.num_videos", pair["num_videos"])

    if "pairs" in action:
        check.records(
            "action.pairs", action["pairs"], ("pair", "accuracy", "num_videos"), check_pair
        )
    if action.get("temporal_order") is not None:
        _check_temporal_order(check, action["temporal_order"])
    if action.get("multi_label") is not None:
        _check_multi_label(check, action["multi_label"])

    def check_example(path: str, example: dict[str, Any]) -> None:
        for key in ("video_id", "true_label", "predicted_label"):
            if key in example:
                check.string(f"{path}.{key}", example[key])
        num_frames = _frame_count(check, path, example)
        _check_weights(check, f"{path}.attention", example.get("attention"), num_frames)

    if "attention_examples" in action:
        required_keys = ("video_id", "true_label", "predicted_label", "frame_indices", "attention")
        check.records(
            "action.attention_examples", action["attention_examples"], required_keys, check_example
        )


def _check_known_classes(
    check: _Checker, path: str, values: dict[str, Any], class_names: list[str]
) -> None:
    unknown = [name for name in values if name not in class_names]
    if unknown and class_names:
        check.add(path, f"names classes that are not in class_names: {unknown}")


def _check_confusion_matrix(
    check: _Checker, matrix: Any, num_classes: int, num_videos: int | None
) -> None:
    path = "action.confusion_matrix"
    if not check.sequence(path, matrix):
        return
    rows_ok = all([check.counts(f"{path}[{i}]", row) for i, row in enumerate(matrix)])
    if not rows_ok:
        return
    shape_ok = len(matrix) == num_classes and all(len(row) == num_classes for row in matrix)
    if not shape_ok:
        check.add(path, f"must be {num_classes} x {num_classes} (one row and column per class)")
        return
    total = sum(map(sum, matrix))
    if num_videos is not None and total != num_videos:
        check.add(path, f"counts {total} videos but num_videos is {num_videos}")


def _check_pr_curve(check: _Checker, path: str, curve: Any) -> None:
    if not check.mapping(path, curve):
        return
    check.keys(path, curve, ("precision", "recall"))
    lengths = []
    for key in ("precision", "recall"):
        values = curve.get(key)
        if key in curve and check.numbers(f"{path}.{key}", values, minimum=0.0):
            lengths.append(len(values))
            if any(value > 1 for value in values):
                check.add(f"{path}.{key}", "holds values above 1")
    if len(lengths) == 2 and lengths[0] != lengths[1]:
        check.add(path, f"precision has {lengths[0]} points and recall {lengths[1]}")


def _check_temporal_order(check: _Checker, order: Any) -> None:
    path = "action.temporal_order"
    if not check.mapping(path, order):
        return
    changes = ("changed_under_reversal", "changed_under_shuffle", "flipped_to_pair")
    check.keys(path, order, ("accuracy", *changes))
    accuracy = order.get("accuracy")
    if "accuracy" in order and check.metrics(f"{path}.accuracy", accuracy, fraction=True):
        check.keys(f"{path}.accuracy", accuracy, FRAME_ORDERS)
    for key in changes:
        if key in order:
            check.metric(f"{path}.{key}", order[key], fraction=True)


def _check_multi_label(check: _Checker, multi: Any) -> None:
    path = "action.multi_label"
    if not check.mapping(path, multi):
        return
    check.keys(path, multi, ("mAP", "per_class_ap", "excluded_classes"))
    if "mAP" in multi:
        check.metric(f"{path}.mAP", multi["mAP"], fraction=True)
    if "per_class_ap" in multi:
        check.metrics(f"{path}.per_class_ap", multi["per_class_ap"], fraction=True)
    if "excluded_classes" in multi:
        check.strings(f"{path}.excluded_classes", multi["excluded_classes"])


def _check_caption(check: _Checker, caption: dict[str, Any]) -> None:
    required = ("model_id", "num_videos", "metrics", "ci95", "samples")
    check.keys("caption", caption, required, ("error_analysis",))
    if "model_id" in caption:
        check.string("caption.model_id", caption["model_id"])
    if "num_videos" in caption:
        check.count("caption.num_videos", caption["num_videos"])
    metrics = caption.get("metrics")
    if "metrics" in caption and check.metrics("caption.metrics", metrics, fraction=False):
        check.keys("caption.metrics", metrics, CAPTION_METRICS, extra_allowed=True)
    if "ci95" in caption:
        check.ci95("caption.ci95", caption["ci95"], metrics)

    def check_sample(path: str, sample: dict[str, Any]) -> None:
        for key in ("video_id", "hypothesis"):
            if key in sample:
                check.string(f"{path}.{key}", sample[key])
        if "references" in sample:
            check.strings(f"{path}.references", sample["references"])
        if "scores" in sample:
            check.metrics(f"{path}.scores", sample["scores"], fraction=False)
        if sample.get("attention") is None:
            return
        missing = [key for key in ("tokens", "frame_indices") if sample.get(key) is None]
        if missing:
            check.add(path, f"has attention but no {' or '.join(missing)}")
            return
        num_frames = _frame_count(check, path, sample)
        tokens = sample["tokens"]
        num_tokens = len(tokens) if check.strings(f"{path}.tokens", tokens) else None
        rows = sample["attention"]
        if not check.sequence(f"{path}.attention", rows):
            return
        if num_tokens is not None and len(rows) != num_tokens:
            check.add(f"{path}.attention", f"has {len(rows)} rows for {num_tokens} tokens")
        for index, row in enumerate(rows):
            _check_weights(check, f"{path}.attention[{index}]", row, num_frames)

    if "samples" in caption:
        check.records(
            "caption.samples", caption["samples"], ("video_id", "hypothesis", "references", "scores"),
            check_sample,
        )  # fmt: skip
    if caption.get("error_analysis") is not None:
        _check_error_analysis(check, caption["error_analysis"])


def _check_error_analysis(check: _Checker, analysis: Any) -> None:
    path = "caption.error_analysis"
    if not check.mapping(path, analysis):
        return
    check.keys(path, analysis, ERROR_KINDS)
    for kind in ERROR_KINDS:
        errors = analysis.get(kind)
        if kind not in analysis or not check.mapping(f"{path}.{kind}", errors):
            continue
        check.keys(f"{path}.{kind}", errors, ("count", "examples"), extra_allowed=True)
        if "count" in errors:
            check.count(f"{path}.{kind}.count", errors["count"])
        if "examples" in errors:
            check.records(f"{path}.{kind}.examples", errors["examples"], ())


def _check_vqa(check: _Checker, vqa: dict[str, Any]) -> None:
    required = ("model_id", "num_questions", "metrics", "ci95", "per_type", "samples")
    check.keys("vqa", vqa, required)
    if "model_id" in vqa:
        check.string("vqa.model_id", vqa["model_id"])
    if "num_questions" in vqa:
        check.count("vqa.num_questions", vqa["num_questions"])
    metrics = vqa.get("metrics")
    if "metrics" in vqa and check.metrics("vqa.metrics", metrics, fraction=True):
        check.keys("vqa.metrics", metrics, VQA_METRICS, extra_allowed=True)
    if "ci95" in vqa:
        check.ci95("vqa.ci95", vqa["ci95"], metrics)
    per_type = vqa.get("per_type")
    if "per_type" in vqa and check.mapping("vqa.per_type", per_type):
        for question_type, result in per_type.items():
            where = f"vqa.per_type.{question_type}"
            if not check.mapping(where, result):
                continue
            check.keys(where, result, ("accuracy", "count"))
            if "accuracy" in result:
                check.metric(f"{where}.accuracy", result["accuracy"], fraction=True)
            if "count" in result:
                check.count(f"{where}.count", result["count"])

    def check_sample(path: str, sample: dict[str, Any]) -> None:
        for key in ("video_id", "question", "question_type", "answer", "prediction"):
            if key in sample:
                check.string(f"{path}.{key}", sample[key])
        if "correct" in sample:
            check.expect(f"{path}.correct", sample["correct"], bool, "true or false")
        if sample.get("attention") is None:
            return
        if sample.get("frame_indices") is None:
            check.add(path, "has attention but no frame_indices")
            return
        num_frames = _frame_count(check, path, sample)
        _check_weights(check, f"{path}.attention", sample["attention"], num_frames)

    if "samples" in vqa:
        required_keys = ("video_id", "question", "question_type", "answer", "prediction", "correct")
        check.records("vqa.samples", vqa["samples"], required_keys, check_sample)


def _check_training(check: _Checker, training: Any) -> None:
    if not check.mapping("training", training):
        return

    def check_epoch(path: str, epoch: dict[str, Any]) -> None:
        for key, value in epoch.items():
            if key == "epoch":
                check.count(f"{path}.epoch", value)
            elif value is not None:
                check.number(f"{path}.{key}", value)

    for model_id, epochs in training.items():
        check.records(f"training.{model_id}", epochs, ("epoch", "train_loss"), check_epoch)


def _check_ablations(check: _Checker, ablations: Any) -> None:
    if not check.mapping("ablations", ablations):
        return
    check.keys("ablations", ablations, ("columns", "rows"))
    columns = ablations.get("columns")
    columns_ok = "columns" in ablations and check.strings("ablations.columns", columns)

    def check_row(path: str, row: dict[str, Any]) -> None:
        for key, value in row.items():
            if columns_ok and key not in columns:
                check.add(path, f"has key {key!r} that is not in columns")
            if not (value is None or isinstance(value, (str, bool)) or is_number(value)):
                check.add(f"{path}.{key}", f"expected a string, number, bool or null, got {_describe(value)}")  # fmt: skip

    if "rows" in ablations:
        check.records("ablations.rows", ablations["rows"], (), check_row)
