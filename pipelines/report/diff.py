"""What changed between two reports: metrics (against the old CI), counts and lineage.

Scheduled jobs compare each night's report with the last one; `diff_reports`
gives them a JSON-ready dict and `format_diff` the lines a person reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pipelines.report.document import ERROR_KINDS, FRAME_ORDERS, is_unavailable

KeyPath = tuple[str, ...]

# Statuses of a metric or count; lineage entries are "changed", "added" or "removed".
CHANGED = "changed"
UNCHANGED = "unchanged"
APPEARED = "appeared"
DISAPPEARED = "disappeared"
BECAME_UNAVAILABLE = "became_unavailable"
BECAME_AVAILABLE = "became_available"
METRIC_STATUSES = (CHANGED, BECAME_UNAVAILABLE, BECAME_AVAILABLE, APPEARED, DISAPPEARED, UNCHANGED)
_MAX_VALUE_CHARS = 100


def diff_reports(
    old: dict[str, Any],
    new: dict[str, Any],
    *,
    old_path: str | None = None,
    new_path: str | None = None,
) -> dict[str, Any]:
    """A JSON-ready diff of two valid reports, `old` first.

    Every metric of either report appears under "metrics" with its status
    (unchanged ones too, so a job can tell "same" from "not measured"); a
    changed number carries its delta and whether it left the old 95% CI.
    """
    old_metrics, new_metrics = dict(_metrics(old)), dict(_metrics(new))
    metrics = [
        _metric_entry(path, old_metrics.get(path), new_metrics.get(path))
        for path in _union(old_metrics, new_metrics)
    ]
    old_counts, new_counts = dict(_counts(old)), dict(_counts(new))
    counts = [
        _count_entry(path, old_counts.get(path), new_counts.get(path))
        for path in _union(old_counts, new_counts)
    ]
    lineage: list[dict[str, Any]] = []
    for path, old_value, new_value in _lineage_pairs(old, new):
        _diff_values(path, old_value, new_value, lineage)
    summary = {status: sum(m["status"] == status for m in metrics) for status in METRIC_STATUSES}
    summary["outside_old_ci95"] = sum(bool(m.get("outside_old_ci95")) for m in metrics)
    summary["counts_changed"] = sum(c["status"] != UNCHANGED for c in counts)
    summary["lineage_differences"] = len(lineage)
    return {
        "old": _identity(old, old_path),
        "new": _identity(new, new_path),
        "lineage": lineage,
        "counts": counts,
        "metrics": metrics,
        "summary": summary,
    }


def format_diff(diff: dict[str, Any]) -> list[str]:
    """The lines a person reads: every difference, then a one-line summary."""
    lines = [
        f"old: {_identity_text(diff['old'])}",
        f"new: {_identity_text(diff['new'])}",
    ]
    for entry in diff["lineage"]:
        if entry["status"] == "added":
            text = f"added {_text(entry['new'])}"
        elif entry["status"] == "removed":
            text = f"removed, was {_text(entry['old'])}"
        else:
            text = f"{_text(entry['old'])} -> {_text(entry['new'])}"
        lines.append(f"lineage {entry['name']}: {text}")
    for entry in diff["counts"]:
        if entry["status"] != UNCHANGED:
            lines.append(f"count   {entry['name']}: {_change_text(entry)}")
    for entry in diff["metrics"]:
        if entry["status"] == UNCHANGED and entry["old"] == entry["new"]:
            continue  # an unavailable metric whose reason changed is still shown
        lines.append(f"metric  {entry['name']}: {_change_text(entry)}")
    s = diff["summary"]
    lines.append(
        f"summary: metrics changed {s[CHANGED]} (outside old CI {s['outside_old_ci95']}), "
        f"became unavailable {s[BECAME_UNAVAILABLE]}, became available {s[BECAME_AVAILABLE]}, "
        f"appeared {s[APPEARED]}, disappeared {s[DISAPPEARED]}, unchanged {s[UNCHANGED]}; "
        f"counts changed {s['counts_changed']}; lineage differences {s['lineage_differences']}"
    )
    return lines


# ---------------------------------------------------------------------------
# What is compared


def _metrics(report: dict[str, Any]) -> Iterator[tuple[KeyPath, tuple[Any, list[float] | None]]]:
    """(path, (metric, its CI or None)) for every metric of the report."""
    action = report.get("action")
    if action is not None:
        yield from _with_ci(("action", "metrics"), action["metrics"], action["ci95"])
        for key in ("per_class_accuracy", "per_class_ap"):
            yield from _with_ci(("action", key), action[key], {})
        for pair in action["pairs"]:
            yield ("action", "pairs", pair["pair"], "accuracy"), (pair["accuracy"], None)
        order = action.get("temporal_order")
        if order is not None:
            for name in FRAME_ORDERS:
                path = ("action", "temporal_order", "accuracy", name)
                yield path, (order["accuracy"][name], None)
            for key in ("changed_under_reversal", "changed_under_shuffle", "flipped_to_pair"):
                yield ("action", "temporal_order", key), (order[key], None)
        multi = action.get("multi_label")
        if multi is not None:
            yield ("action", "multi_label", "mAP"), (multi["mAP"], None)
            yield from _with_ci(
                ("action", "multi_label", "per_class_ap"), multi["per_class_ap"], {}
            )
    caption = report.get("caption")
    if caption is not None:
        yield from _with_ci(("caption", "metrics"), caption["metrics"], caption["ci95"])
    vqa = report.get("vqa")
    if vqa is not None:
        yield from _with_ci(("vqa", "metrics"), vqa["metrics"], vqa["ci95"])
        for name, result in vqa["per_type"].items():
            yield ("vqa", "per_type", name, "accuracy"), (result["accuracy"], None)


def _with_ci(
    prefix: KeyPath, metrics: dict[str, Any], intervals: dict[str, list[float]]
) -> Iterator[tuple[KeyPath, tuple[Any, list[float] | None]]]:
    for name, value in metrics.items():
        yield (*prefix, name), (value, intervals.get(name))


def _counts(report: dict[str, Any]) -> Iterator[tuple[KeyPath, int]]:
    counts = report["counts"]
    for key in ("videos_in_manifest", "dead_letters"):
        yield ("counts", key), counts[key]
    for key in ("videos_evaluated", "missing_predictions"):
        for task, number in counts[key].items():
            yield ("counts", key, task), number
    for section, key in (
        ("action", "num_videos"),
        ("caption", "num_videos"),
        ("vqa", "num_questions"),
    ):
        if report.get(section) is not None:
            yield (section, key), report[section][key]
    caption = report.get("caption")
    if caption is not None and caption.get("error_analysis") is not None:
        for kind in ERROR_KINDS:
            yield (
                ("caption", "error_analysis", kind, "count"),
                caption["error_analysis"][kind]["count"],
            )
    vqa = report.get("vqa")
    if vqa is not None:
        for name, result in vqa["per_type"].items():
            yield ("vqa", "per_type", name, "count"), result["count"]


def _lineage_pairs(old: dict[str, Any], new: dict[str, Any]) -> Iterator[tuple[KeyPath, Any, Any]]:
    """(path, old value, new value) of everything that says what was measured with what."""
    yield ("inputs",), old["inputs"], new["inputs"]
    for section in ("action", "caption", "vqa"):
        old_section, new_section = old.get(section), new.get(section)
        if old_section is None or new_section is None:
            continue  # a section that came or went shows up in its counts and metrics
        yield (section, "model_id"), old_section["model_id"], new_section["model_id"]
        if section == "action":
            yield ("action", "class_names"), old_section["class_names"], new_section["class_names"]


# ---------------------------------------------------------------------------
# Entries


def _union(old: dict[KeyPath, Any], new: dict[KeyPath, Any]) -> list[KeyPath]:
    return list(dict.fromkeys([*old, *new]))


def _name(path: KeyPath) -> str:
    return ".".join(path)


def _metric_entry(
    path: KeyPath,
    old: tuple[Any, list[float] | None] | None,
    new: tuple[Any, list[float] | None] | None,
) -> dict[str, Any]:
    old_value, old_ci = old if old is not None else (None, None)
    new_value = new[0] if new is not None else None
    entry: dict[str, Any] = {
        "name": _name(path),
        "path": list(path),
        "old": old_value,
        "new": new_value,
        "old_ci95": old_ci,
    }
    if old is None:
        entry["status"] = APPEARED
    elif new is None:
        entry["status"] = DISAPPEARED
    elif is_unavailable(old_value) and is_unavailable(new_value):
        entry["status"] = UNCHANGED  # still unavailable, perhaps for a new reason
    elif is_unavailable(new_value):
        entry["status"] = BECAME_UNAVAILABLE
    elif is_unavailable(old_value):
        entry["status"] = BECAME_AVAILABLE
    else:
        entry["status"] = CHANGED if new_value != old_value else UNCHANGED
        entry["delta"] = new_value - old_value
        if old_ci is not None:
            entry["outside_old_ci95"] = not old_ci[0] <= new_value <= old_ci[1]
    return entry


def _count_entry(path: KeyPath, old: int | None, new: int | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": _name(path), "path": list(path), "old": old, "new": new}
    if old is None:
        entry["status"] = APPEARED
    elif new is None:
        entry["status"] = DISAPPEARED
    else:
        entry["status"] = CHANGED if new != old else UNCHANGED
        entry["delta"] = new - old
    return entry


def _diff_values(path: KeyPath, old: Any, new: Any, out: list[dict[str, Any]]) -> None:
    """Appends one entry per leaf that differs; dicts are compared key by key."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in dict.fromkeys([*old, *new]):
            where = (*path, str(key))
            if key not in new:
                out.append(
                    {
                        "name": _name(where),
                        "path": list(where),
                        "status": "removed",
                        "old": old[key],
                        "new": None,
                    }
                )
            elif key not in old:
                out.append(
                    {
                        "name": _name(where),
                        "path": list(where),
                        "status": "added",
                        "old": None,
                        "new": new[key],
                    }
                )
            else:
                _diff_values(where, old[key], new[key], out)
    elif old != new or type(old) is not type(new):
        out.append(
            {"name": _name(path), "path": list(path), "status": "changed", "old": old, "new": new}
        )


# ---------------------------------------------------------------------------
# Text


def _identity(report: dict[str, Any], path: str | None) -> dict[str, Any]:
    return {"report_id": report["report_id"], "created_at": report["created_at"], "path": path}


def _identity_text(identity: dict[str, Any]) -> str:
    where = f" {identity['path']}" if identity["path"] is not None else ""
    return f"{identity['report_id']} ({identity['created_at']}){where}"


def _number(value: int | float) -> str:
    return str(value) if isinstance(value, int) else format(value, ".4g")


def _value_text(value: Any) -> str:
    if is_unavailable(value):
        return f"unavailable ({value['reason']})"
    return _number(value)


def _text(value: Any) -> str:
    """A lineage value as compact JSON, cut short: the --json output holds it whole."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "…"


def _change_text(entry: dict[str, Any]) -> str:
    status, old, new = entry["status"], entry["old"], entry["new"]
    if status == APPEARED:
        return f"appeared, {_value_text(new)}"
    if status == DISAPPEARED:
        return f"disappeared, was {_value_text(old)}"
    text = f"{_value_text(old)} -> {_value_text(new)}"
    if "delta" not in entry:
        return text
    delta = entry["delta"]
    sign = "+" if delta >= 0 else "-"
    detail = f"{sign}{_number(abs(delta))}"
    if "outside_old_ci95" in entry:
        where = "outside" if entry["outside_old_ci95"] else "within"
        low, high = entry["old_ci95"]
        detail += f", {where} old 95% CI [{_number(low)}, {_number(high)}]"
    return f"{text} ({detail})"
