"""`render_html`: the report as one self-contained, printable HTML page for people.

Images are PNG data URIs and the CSS is inline; a Content-Security-Policy
forbids every request and every script, so the page works offline and text
that slipped past escaping still could not run. All text from data is escaped.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

import numpy as np

from pipelines.report import plots
from pipelines.report.document import (
    ERROR_KINDS,
    FRAME_ORDERS,
    check_report,
    is_number,
    is_unavailable,
    unavailable,
)

CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
MAX_ATTENTION_EXAMPLES = 6
MAX_SAMPLES = 20
MAX_WORD_MAPS = 3
MAX_ERROR_EXAMPLES = 5
SECTION_TITLES = {
    "counts": "Counts",
    "action": "Action recognition",
    "attention": "Attention over frames",
    "caption": "Captioning",
    "vqa": "Video question answering",
    "training": "Training curves",
    "ablations": "Ablations",
    "inputs": "Inputs and lineage",
}

_NOT_REPORTED = unavailable("not reported")

_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
       color: #1d1d1f; background: #fff; margin: 0; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 28px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; border-bottom: 2px solid #4c78a8; padding-bottom: 3px; margin: 32px 0 12px; }
h3 { font-size: 15px; margin: 20px 0 8px; }
code { font: 12.5px "DejaVu Sans Mono", monospace; background: #f2f4f7; padding: 1px 4px;
       border-radius: 3px; overflow-wrap: anywhere; }
.meta, .note { color: #555; }
.absent { color: #555; font-style: italic; }
nav a { margin-right: 12px; color: #2a5d9a; }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 13px; }
th, td { border: 1px solid #d4d8de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f2f4f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv td:first-child { color: #444; white-space: nowrap; }
table.overview thead { display: none; }
table.overview td { border: none; padding: 2px 12px 2px 0; }
.unavailable { color: #a4262c; font-style: italic; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0 16px; }
.card { border: 1px solid #d4d8de; border-radius: 6px; padding: 8px 14px; min-width: 150px; }
.card .name { color: #555; font-size: 12px; }
.card .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .ci { color: #555; font-size: 12px; }
.card .value.unavailable { font-size: 16px; color: #a4262c; }
.grid { display: flex; flex-wrap: wrap; gap: 6px 28px; align-items: flex-start; }
.grid h3:first-child { margin-top: 8px; }
.grid > div { max-width: 580px; }
figure { margin: 8px 0 16px; break-inside: avoid; }
figure img.plot { max-width: 100%; height: auto; }
figcaption { color: #444; font-size: 13px; margin-bottom: 6px; }
.strip { display: flex; flex-wrap: wrap; gap: 6px; }
.frame { width: 92px; text-align: center; font-size: 11px; color: #444; }
.frame img, .frame .placeholder { display: block; width: 84px; height: 84px; margin: 0 auto;
       border: solid #e6550d; image-rendering: pixelated; object-fit: contain; background: #eee; }
.frame .placeholder { display: flex; align-items: center; justify-content: center; color: #777;
       border-style: dashed; }
.bar { height: 7px; background: #eee; margin: 3px 4px 1px; }
.bar span { display: block; height: 100%; background: #e6550d; }
.correct { color: #1a7f37; } .wrong { color: #a4262c; }
ul.refs { margin: 0; padding-left: 18px; }
.scores { white-space: nowrap; font-size: 12px; }
@media print {
  body { font-size: 10pt; } main { max-width: none; padding: 0; } nav { display: none; }
  table, figure, .frame, .card { break-inside: avoid; }
}
"""


def render_html(report: dict[str, Any], *, frames: Mapping[str, np.ndarray] | None = None) -> str:
    """The whole page; `frames` maps a video id to its sampled frames (T, H, W, 3) uint8.

    A video's frames must match, one to one, the attention weights shown for
    it; a video without frames gets the weights alone and a note saying so.
    """
    check_report(report)
    frames = dict(frames or {})
    _check_frames(report, frames)
    sections = {"counts": _counts(report)}
    action = report.get("action")
    if action is not None:
        sections["action"] = _action(action)
        sections["attention"] = _attention(action, frames)
    if report.get("caption") is not None:
        sections["caption"] = _caption(report["caption"], frames)
    if report.get("vqa") is not None:
        sections["vqa"] = _vqa(report["vqa"], frames)
    if report.get("training"):
        sections["training"] = _training(report["training"])
    if report.get("ablations") is not None:
        sections["ablations"] = _ablations(report["ablations"])
    sections["inputs"] = _inputs(report)
    absent = [title for name, title in SECTION_TITLES.items() if name not in sections]
    nav = " ".join(f'<a href="#{name}">{SECTION_TITLES[name]}</a>' for name in sections)
    absent_line = (
        f'<p class="absent">Not in this report: {escape(", ".join(absent))}.</p>' if absent else ""
    )
    title = f"vidpipe report {report['report_id']}"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            "<body>",
            "<main>",
            _header(report),
            f"<nav>{nav}</nav>",
            absent_line,
            *sections.values(),
            "</main>",
            "</body>",
            "</html>",
            "",
        ]
    )


# ---------------------------------------------------------------------------
# Small pieces


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _e(value)
    return str(value) if isinstance(value, int) else f"{value:.3f}"


def _metric_cell(value: Any) -> str:
    """A table cell: the number, or "unavailable: reason" -- never a 0 standing in for it."""
    if is_unavailable(value):
        return f'<td class="unavailable">unavailable: {_e(value["reason"])}</td>'
    return f'<td class="num">{_number(value)}</td>'


def _metric_text(value: Any) -> str:
    if is_unavailable(value):
        return f'<span class="unavailable">unavailable: {_e(value["reason"])}</span>'
    return _number(value)


def _ci_text(interval: Sequence[float] | None) -> str:
    return "" if interval is None else f"[{interval[0]:.3f}, {interval[1]:.3f}]"


def _plain(value: Any) -> float | None:
    """A metric as a plot value: None when unavailable."""
    return None if is_unavailable(value) else float(value)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure(png: bytes, alt: str, caption: str = "") -> str:
    caption_html = f"<figcaption>{caption}</figcaption>" if caption else ""
    return (
        f'<figure>{caption_html}<img class="plot" src="{_data_uri(png)}" alt="{_e(alt)}"></figure>'
    )


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], css_class: str = "") -> str:
    """`header` is plain text (escaped here); `rows` hold ready HTML cells (<td>...</td>)."""
    head = "".join(f"<th>{_e(name)}</th>" for name in header)
    body = "".join(f"<tr>{''.join(cells)}</tr>" for cells in rows)
    class_attr = f' class="{css_class}"' if css_class else ""
    return f"<table{class_attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(value: Any) -> str:
    return f"<td>{_e(value)}</td>"


def _num_td(value: Any) -> str:
    return f'<td class="num">{_number(value)}</td>'


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested dicts as (dotted key, text) pairs; lists and scalars as compact JSON."""
    if isinstance(value, dict) and value:
        pairs = []
        for key, inner in value.items():
            pairs += _flatten(inner, f"{prefix}.{key}" if prefix else str(key))
        return pairs
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return [(prefix, text)]


def _kv_table(value: Mapping[str, Any]) -> str:
    rows = [(_td(key), f"<td><code>{_e(text)}</code></td>") for key, text in _flatten(value)]
    return _table(("key", "value"), rows, "kv")


def _section(name: str, content: Iterable[str]) -> str:
    return (
        f'<section id="{name}">\n<h2>{SECTION_TITLES[name]}</h2>\n'
        + "\n".join(content)
        + "\n</section>"
    )


def _cards(metrics: Mapping[str, Any], intervals: Mapping[str, Sequence[float]]) -> str:
    cards = []
    for name, value in metrics.items():
        if is_unavailable(value):
            value_html = '<div class="value unavailable">unavailable</div>'
            detail = f'<div class="ci unavailable">{_e(value["reason"])}</div>'
        else:
            value_html = f'<div class="value">{_number(value)}</div>'
            interval = intervals.get(name)
            detail = f'<div class="ci">95% CI {_ci_text(interval)}</div>' if interval else ""
        cards.append(
            f'<div class="card"><div class="name">{_e(name)}</div>{value_html}{detail}</div>'
        )
    return f'<div class="cards">{"".join(cards)}</div>'


def _metric_table(metrics: Mapping[str, Any], intervals: Mapping[str, Sequence[float]]) -> str:
    rows = [
        (_td(name), _metric_cell(value), f'<td class="num">{_ci_text(intervals.get(name))}</td>')
        for name, value in metrics.items()
    ]
    return _table(("metric", "value", "95% CI"), rows)


# ---------------------------------------------------------------------------
# Header sections


def _header(report: dict[str, Any]) -> str:
    """Ids and what was measured on what, at a glance; full lineage is in the last section."""
    inputs, counts = report["inputs"], report["counts"]
    feature_set = inputs["feature_set"]
    if feature_set is None:
        feature_set_html = '<span class="absent">none (the models read raw frames)</span>'
    else:
        feature_set_html = (
            f"<code>{_e(feature_set.get('feature_set_id', 'id not recorded'))}</code>"
        )
    models = [
        f"{task} <code>{_e(report[task]['model_id'])}</code>"
        for task in ("action", "caption", "vqa")
        if report.get(task) is not None
    ]
    evaluated = ", ".join(f"{_e(task)} {n}" for task, n in counts["videos_evaluated"].items())
    dead = counts["dead_letters"]
    dead_html = f'<span class="wrong">{dead}</span>' if dead else "0"
    rows = [
        (_td("manifest"), f"<td><code>{_e(inputs['manifest'])}</code></td>"),
        (_td("feature set"), f"<td>{feature_set_html}</td>"),
        (_td("models"), f"<td>{' · '.join(models) or 'none'}</td>"),
        (
            _td("videos"),
            f"<td>{counts['videos_in_manifest']} in the manifest; evaluated: {evaluated or 'none'}</td>",
        ),
        (_td("dead letters"), f'<td>{dead_html} (see <a href="#counts">Counts</a>)</td>'),
    ]
    return (
        '<header id="summary">'
        f"<h1>Evaluation report <code>{_e(report['report_id'])}</code></h1>"
        f'<p class="meta">created {_e(report["created_at"])} · vidpipe {_e(report["vidpipe_version"])}</p>'
        f"{_table(('', ''), rows, 'kv overview')}"
        "</header>"
    )


def _inputs(report: dict[str, Any]) -> str:
    inputs = report["inputs"]
    parts = [
        f"<p>Manifest: <code>{_e(inputs['manifest'])}</code></p>",
        _table(
            ("task", "predictions"),
            (
                (_td(task), f"<td><code>{_e(uri)}</code></td>")
                for task, uri in inputs["predictions"].items()
            ),
        ),
        '<div class="grid">',
    ]
    feature_set = inputs["feature_set"]
    if feature_set is None:
        parts.append(
            '<div><h3>Feature set</h3><p class="absent">None: the models read raw frames.</p></div>'
        )
    else:
        name = feature_set.get("feature_set_id", "")
        parts.append(
            f"<div><h3>Feature set <code>{_e(name)}</code></h3>{_kv_table(feature_set)}</div>"
        )
    for model_id, model in inputs["models"].items():
        parts.append(f"<div><h3>Model <code>{_e(model_id)}</code></h3>{_kv_table(model)}</div>")
    parts.append("</div>")
    return _section("inputs", parts)


def _counts(report: dict[str, Any]) -> str:
    counts = report["counts"]
    rows = [(_td("videos in the manifest"), _num_td(counts["videos_in_manifest"]))]
    rows += [
        (_td(f"videos evaluated ({task})"), _num_td(number))
        for task, number in counts["videos_evaluated"].items()
    ]
    rows += [
        (_td(f"missing predictions ({task})"), _num_td(number))
        for task, number in counts["missing_predictions"].items()
    ]
    rows.append((_td("dead letters"), _num_td(counts["dead_letters"])))
    parts = [_table(("what", "count"), rows, "kv")]
    examples = counts["dead_letter_examples"]
    if examples:
        parts += [
            f"<h3>Dead letters ({len(examples)} of {counts['dead_letters']} shown)</h3>",
            _table(
                ("video", "stage", "error type", "message"),
                (
                    [
                        f"<td><code>{_e(example[key])}</code></td>"
                        if key == "video_id"
                        else _td(example[key])
                        for key in ("video_id", "stage", "error_type", "message")
                    ]
                    for example in examples
                ),
            ),
        ]
    elif counts["dead_letters"]:
        parts.append('<p class="note">No dead-letter examples were kept.</p>')
    if report["timings_s"]:
        parts += [
            "<h3>Timings</h3>",
            _table(
                ("stage", "seconds"),
                ((_td(stage), _num_td(seconds)) for stage, seconds in report["timings_s"].items()),
            ),
        ]
    return _section("counts", parts)


# ---------------------------------------------------------------------------
# Action recognition


def _action(action: dict[str, Any]) -> str:
    class_names = action["class_names"]
    parts = [
        f"<p>Model <code>{_e(action['model_id'])}</code> on {action['num_videos']} videos, "
        f"{len(class_names)} classes.</p>",
        _cards(action["metrics"], action["ci95"]),
        '<div class="grid">',
    ]
    if class_names:
        parts.append(
            _figure(
                plots.confusion_matrix_png(action["confusion_matrix"], class_names),
                "confusion matrix",
                "Confusion matrix: rows are the true class, columns the predicted class.",
            )
        )
    ap = {
        name: _plain(action["per_class_ap"][name])
        for name in class_names
        if name in action["per_class_ap"]
    }
    mean_ap = action["metrics"].get("mAP")
    if ap:
        parts.append(
            _figure(
                plots.bar_chart_png(
                    ap,
                    xlabel="average precision",
                    title="average precision per class",
                    reference=_plain(mean_ap) if mean_ap is not None else None,
                    reference_label="mAP",
                ),
                "per-class average precision",
            )
        )
    parts += ["</div>", '<div class="grid">']
    if action["pr_curves"]:
        parts.append(
            _figure(plots.pr_curves_png(action["pr_curves"], ap), "precision-recall curves")
        )
    parts.append("<div>")  # the tables beside the PR curves
    per_class_rows = [
        (
            _td(name),
            _metric_cell(action["per_class_accuracy"].get(name, _NOT_REPORTED)),
            _metric_cell(action["per_class_ap"].get(name, _NOT_REPORTED)),
            _num_td(action["confusion_matrix"][index][index]),
            _num_td(sum(action["confusion_matrix"][index])),
        )
        for index, name in enumerate(class_names)
    ]
    parts += [
        "<h3>Per class</h3>",
        _table(("class", "accuracy", "AP", "correct", "videos"), per_class_rows),
    ]
    if action["pairs"]:
        parts += [
            "<h3>Time-reversed class pairs</h3>",
            '<p class="note">Classes that are the same frames in opposite order: a model that '
            "ignores order is at chance here.</p>",
            _table(
                ("pair", "accuracy", "videos"),
                (
                    (_td(p["pair"]), _metric_cell(p["accuracy"]), _num_td(p["num_videos"]))
                    for p in action["pairs"]
                ),
            ),
        ]
    order = action.get("temporal_order")
    if order is not None:
        rows = [
            (_td(f"accuracy on {name} frames"), _metric_cell(order["accuracy"][name]))
            for name in FRAME_ORDERS
        ]
        rows += [
            (
                _td("predictions changed by reversing the frames"),
                _metric_cell(order["changed_under_reversal"]),
            ),
            (
                _td("predictions changed by shuffling the frames"),
                _metric_cell(order["changed_under_shuffle"]),
            ),
            (
                _td("reversed videos predicted as the paired class"),
                _metric_cell(order["flipped_to_pair"]),
            ),
        ]
        parts += [
            "<h3>Temporal-order check</h3>",
            '<p class="note">The same videos with their frames reversed and shuffled: a model '
            "that reads order changes its predictions.</p>",
            _table(("check", "fraction"), rows),
        ]
    parts += ["</div>", "</div>"]
    multi = action.get("multi_label")
    if multi is not None:
        parts += ["<h3>Multi-label</h3>", _cards({"mAP": multi["mAP"]}, {})]
        values = {name: _plain(value) for name, value in multi["per_class_ap"].items()}
        if values:
            parts.append(
                _figure(
                    plots.bar_chart_png(
                        values, xlabel="average precision", title="multi-label AP per class"
                    ),
                    "multi-label average precision per class",
                )
            )
        if multi["excluded_classes"]:
            parts.append(
                '<p class="note">Left out of mAP (no positive video): '
                f"{_e(', '.join(multi['excluded_classes']))}.</p>"
            )
    return _section("action", parts)


def _check_frames(report: dict[str, Any], frames: dict[str, np.ndarray]) -> None:
    for video_id, array in frames.items():
        if not isinstance(array, np.ndarray):
            raise ValueError(
                f"frames[{video_id!r}] must be a numpy array, got {type(array).__name__}"
            )
        if array.ndim != 4 or array.shape[-1] != 3:
            raise ValueError(f"frames[{video_id!r}] has shape {array.shape}, expected (T, H, W, 3)")
        if array.dtype != np.uint8:
            raise ValueError(f"frames[{video_id!r}] has dtype {array.dtype}, expected uint8")
    shown: list[tuple[str, str, int]] = []
    action, caption, vqa = report.get("action"), report.get("caption"), report.get("vqa")
    if action is not None:
        shown += [
            ("action attention example", e["video_id"], len(e["attention"]))
            for e in action["attention_examples"][:MAX_ATTENTION_EXAMPLES]
        ]
    if caption is not None:
        shown += [
            ("caption sample", s["video_id"], len(s["frame_indices"]))
            for s in _with_attention(caption["samples"])[:MAX_WORD_MAPS]
        ]
    if vqa is not None:
        shown += [
            ("VQA sample", s["video_id"], len(s["attention"]))
            for s in _with_attention(vqa["samples"])[:MAX_ATTENTION_EXAMPLES]
        ]
    for where, video_id, num_weights in shown:
        if video_id in frames and len(frames[video_id]) != num_weights:
            raise ValueError(
                f"frames[{video_id!r}] holds {len(frames[video_id])} frames but its {where} "
                f"has attention over {num_weights}"
            )


def _with_attention(samples: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [sample for sample in samples if sample.get("attention") is not None]


def _frame_strip(
    video_id: str,
    frame_indices: Sequence[int],
    attention: Sequence[float],
    frames: np.ndarray | None,
) -> str:
    """The frames in a row, each faded, bordered and underlined by its attention weight."""
    largest = max(attention, default=0.0) or 1.0
    cells = []
    for position, (frame_index, weight) in enumerate(zip(frame_indices, attention, strict=True)):
        relative = weight / largest  # the strongest frame is fully opaque with a full bar
        style = f"opacity:{0.3 + 0.7 * relative:.2f};border-width:{1 + round(5 * relative)}px"
        label = f"frame {frame_index}, attention {weight:.3f}"
        if frames is None:
            picture = f'<div class="placeholder" style="{style}">#{frame_index}</div>'
        else:
            uri = _data_uri(plots.image_png(frames[position]))
            picture = f'<img src="{uri}" alt="{_e(video_id)} {label}" style="{style}">'
        cells.append(
            f'<div class="frame" title="{label}">{picture}'
            f'<div class="bar"><span style="width:{100 * relative:.0f}%"></span></div>'
            f"#{frame_index} · {weight:.3f}</div>"
        )
    note = (
        ""
        if frames is not None
        else '<p class="note">Frames unavailable for this video: only the weights are drawn.</p>'
    )
    return f'<div class="strip">{"".join(cells)}</div>{note}'


def _attention(action: dict[str, Any], frames: Mapping[str, np.ndarray]) -> str:
    examples = action["attention_examples"]
    if not examples:
        return _section(
            "attention", ['<p class="absent">The model has no attention over frames to show.</p>']
        )
    shown = examples[:MAX_ATTENTION_EXAMPLES]
    parts = [
        f'<p class="note">{len(shown)} of {len(examples)} videos. A frame\'s opacity, border and '
        "bar grow with its attention weight, relative to the video's largest; the number under "
        "each frame is the weight itself.</p>"
    ]
    for example in shown:
        correct = example["true_label"] == example["predicted_label"]
        verdict = (
            '<span class="correct">correct</span>'
            if correct
            else '<span class="wrong">wrong</span>'
        )
        parts.append(
            "<figure>"
            f"<figcaption><code>{_e(example['video_id'])}</code>: true "
            f"<b>{_e(example['true_label'])}</b>, predicted <b>{_e(example['predicted_label'])}</b> "
            f"({verdict})</figcaption>"
            + _frame_strip(
                example["video_id"],
                example["frame_indices"],
                example["attention"],
                frames.get(example["video_id"]),
            )
            + "</figure>"
        )
    return _section("attention", parts)


# ---------------------------------------------------------------------------
# Captioning and VQA


def _scores_text(scores: Mapping[str, Any]) -> str:
    return "<br>".join(f"{_e(name)} {_metric_text(value)}" for name, value in scores.items())


def _caption(caption: dict[str, Any], frames: Mapping[str, np.ndarray]) -> str:
    samples = caption["samples"]
    parts = [
        f"<p>Model <code>{_e(caption['model_id'])}</code> on {caption['num_videos']} videos.</p>",
        _metric_table(caption["metrics"], caption["ci95"]),
    ]
    if samples:
        shown = samples[:MAX_SAMPLES]
        rows = [
            (
                f"<td><code>{_e(sample['video_id'])}</code></td>",
                _td(sample["hypothesis"]),
                '<td><ul class="refs">'
                + "".join(f"<li>{_e(reference)}</li>" for reference in sample["references"])
                + "</ul></td>",
                f'<td class="scores">{_scores_text(sample["scores"])}</td>',
            )
            for sample in shown
        ]
        parts += [
            f"<h3>Samples ({len(shown)} of {len(samples)})</h3>",
            _table(("video", "generated caption", "references", "scores"), rows),
        ]
    for sample in _with_attention(samples)[:MAX_WORD_MAPS]:
        video_frames = frames.get(sample["video_id"])
        note = (
            "" if video_frames is not None else " Frames unavailable: the weights alone are drawn."
        )
        parts.append(
            _figure(
                plots.word_attention_png(
                    sample["attention"], sample["tokens"], sample["frame_indices"], video_frames
                ),
                f"word-by-frame attention for {sample['video_id']}",
                f"Attention of each generated word over the frames of <code>{_e(sample['video_id'])}</code>: "
                f"“{_e(sample['hypothesis'])}”.{note}",
            )
        )
    analysis = caption.get("error_analysis")
    if analysis is not None:
        parts += [
            "<h3>Error analysis</h3>",
            _table(
                ("error", "count"),
                (
                    (_td(kind.replace("_", " ")), _num_td(analysis[kind]["count"]))
                    for kind in ERROR_KINDS
                ),
            ),
        ]
        for kind in ERROR_KINDS:
            examples = analysis[kind]["examples"][:MAX_ERROR_EXAMPLES]
            if examples:
                parts += [
                    f"<h3>Examples: {_e(kind.replace('_', ' '))}</h3>",
                    _error_examples(examples),
                ]
    return _section("caption", parts)


def _error_examples(examples: Sequence[dict[str, Any]]) -> str:
    rows = []
    for example in examples:
        details = {
            k: v for k, v in example.items() if k not in ("video_id", "hypothesis", "references")
        }
        detail_html = "<br>".join(
            f"{_e(key)}: <code>{_e(json.dumps(value, ensure_ascii=False))}</code>"
            for key, value in details.items()
        )
        rows.append(
            (
                f"<td><code>{_e(example.get('video_id', ''))}</code></td>",
                _td(example.get("hypothesis", "")),
                _td(" | ".join(example.get("references", []))),
                f"<td>{detail_html}</td>",
            )
        )
    return _table(("video", "generated caption", "references", "details"), rows)


def _vqa(vqa: dict[str, Any], frames: Mapping[str, np.ndarray]) -> str:
    per_type = vqa["per_type"]
    parts = [
        f"<p>Model <code>{_e(vqa['model_id'])}</code> on {vqa['num_questions']} questions.</p>",
        _cards(vqa["metrics"], vqa["ci95"]),
    ]
    if per_type:
        parts += [
            '<div class="grid">',
            _table(
                ("question type", "accuracy", "questions"),
                (
                    (_td(name), _metric_cell(result["accuracy"]), _num_td(result["count"]))
                    for name, result in per_type.items()
                ),
            ),
            _figure(
                plots.bar_chart_png(
                    {name: _plain(result["accuracy"]) for name, result in per_type.items()},
                    xlabel="accuracy",
                    title="accuracy per question type",
                    notes={name: f"n={result['count']}" for name, result in per_type.items()},
                ),
                "accuracy per question type",
            ),
            "</div>",
        ]
    samples = vqa["samples"]
    if samples:
        shown = samples[:MAX_SAMPLES]
        rows = [
            (
                f"<td><code>{_e(s['video_id'])}</code></td>",
                _td(s["question_type"]),
                _td(s["question"]),
                _td(s["answer"]),
                _td(s["prediction"]),
                '<td class="correct">right</td>'
                if s["correct"]
                else '<td class="wrong">wrong</td>',
            )
            for s in shown
        ]
        parts += [
            f"<h3>Samples ({len(shown)} of {len(samples)})</h3>",
            _table(("video", "type", "question", "answer", "prediction", ""), rows),
        ]
    for sample in _with_attention(samples)[:MAX_ATTENTION_EXAMPLES]:
        parts.append(
            "<figure>"
            f"<figcaption>Attention of <code>{_e(sample['video_id'])}</code> for “{_e(sample['question'])}” "
            f"(answered {_e(sample['prediction'])})</figcaption>"
            + _frame_strip(
                sample["video_id"],
                sample["frame_indices"],
                sample["attention"],
                frames.get(sample["video_id"]),
            )
            + "</figure>"
        )
    return _section("vqa", parts)


# ---------------------------------------------------------------------------
# Training and ablations


def _training(training: dict[str, list[dict[str, Any]]]) -> str:
    parts = []
    for model_id, epochs in training.items():
        if not epochs:
            parts.append(f'<p class="absent">No epochs logged for <code>{_e(model_id)}</code>.</p>')
            continue
        last = epochs[-1]
        summary = ", ".join(
            f"{_e(key)} {_number(value) if value is not None else 'not finite'}"
            for key, value in last.items()
            if key != "epoch"
        )
        parts.append(
            _figure(
                plots.training_curves_png(model_id, epochs),
                f"training curves of {model_id}",
                f"<code>{_e(model_id)}</code>: {len(epochs)} epochs; last ({_e(last['epoch'])}): {summary}",
            )
        )
    return _section("training", parts)


def _ablations(ablations: dict[str, Any]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return "<td></td>"
        return _num_td(value) if is_number(value) else _td(value)

    columns = ablations["columns"]
    rows = [[cell(row.get(column)) for column in columns] for row in ablations["rows"]]
    return _section("ablations", [_table(columns, rows)])
