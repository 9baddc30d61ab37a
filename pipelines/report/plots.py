"""The report's figures as PNG bytes, drawn on matplotlib's Agg canvas for embedding as data URIs.

Figures are `matplotlib.figure.Figure` objects (no pyplot: no global figure
state, no GUI backend), and text is never parsed as mathtext because class
names, words and ids come from users ("$5" must stay "$5").
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

DPI = 100
MAX_THUMBNAIL_SIDE = 128
MAX_LABEL_CHARS = 28
MAX_FIGURE_INCHES = 16.0
_STYLE = {
    "text.parse_math": False,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
}
_CHANCE_STYLE = {"color": "0.4", "linestyle": "--", "linewidth": 1}


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # No "Software" entry: the same figure gives the same bytes on every version.
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"


def thumbnail(frame: np.ndarray, max_side: int = MAX_THUMBNAIL_SIDE) -> np.ndarray:
    """`frame` (H, W, 3) shrunk by an integer factor until no side exceeds `max_side`."""
    step = max(1, math.ceil(max(frame.shape[:2]) / max_side))
    return frame[::step, ::step]  # (H', W', 3)


def image_png(frame: np.ndarray) -> bytes:
    """One frame (H, W, 3) uint8 as a PNG, shrunk to a thumbnail."""
    buffer = io.BytesIO()
    # Pillow (a dependency of matplotlib) writes RGB; matplotlib's imsave would add alpha.
    Image.fromarray(np.ascontiguousarray(thumbnail(frame))).save(buffer, format="png")
    return buffer.getvalue()


def confusion_matrix_png(matrix: Sequence[Sequence[int]], class_names: Sequence[str]) -> bytes:
    """Counts annotated in each cell, coloured by the fraction of the row's (true class's) videos."""
    counts = np.array(matrix, dtype=np.int64).reshape(len(class_names), len(class_names))  # (C, C)
    totals = counts.sum(axis=1, keepdims=True)  # (C, 1)
    fractions = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    size = len(class_names)
    # Past ~25 classes the figure stops growing and the labels shrink instead
    # (UCF101's 101 classes stay a 16-inch square); the per-class table has the numbers.
    side = min(MAX_FIGURE_INCHES, max(4.0, 0.6 * size + 2.2))
    label_size = min(9.0, max(3.0, 500.0 / max(size, 1)))
    with matplotlib.rc_context(_STYLE):
        figure = Figure(layout="constrained", figsize=(side, min(side, max(3.5, 0.5 * size + 1.8))))
        axes = figure.add_subplot()
        image = axes.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
        figure.colorbar(image, ax=axes, label="fraction of the true class", shrink=0.8)
        labels = [_short(name) for name in class_names]
        axes.set_xticks(range(size), labels, rotation=40, ha="right", fontsize=label_size)
        axes.set_yticks(range(size), labels, fontsize=label_size)
        axes.set_xlabel("predicted class")
        axes.set_ylabel("true class")
        if size <= 30:
            for (row, column), count in np.ndenumerate(counts):
                colour = "white" if fractions[row, column] > 0.55 else "black"
                axes.text(column, row, str(count), ha="center", va="center", color=colour)
        return _png(figure)


def bar_chart_png(
    values: Mapping[str, float | None],
    *,
    xlabel: str,
    title: str,
    reference: float | None = None,
    reference_label: str = "",
    notes: Mapping[str, str] | None = None,
) -> bytes:
    """Horizontal bars in [0, 1], one per name, top to bottom in the given order.

    A None value has no bar and reads "unavailable"; `notes` adds text after a
    bar (e.g. "n=12"); `reference` draws a dashed vertical line (a mean, chance).
    """
    names = list(values)
    notes = notes or {}
    height = min(MAX_FIGURE_INCHES * 2, max(1.6, 0.32 * len(names) + 1.0))
    label_size = min(9.0, max(3.0, 9.0 * (height - 1.0) / (0.32 * max(len(names), 1))))
    with matplotlib.rc_context(_STYLE):
        figure = Figure(layout="constrained", figsize=(5.6, height))
        axes = figure.add_subplot()
        positions = np.arange(len(names))
        widths = [values[name] or 0.0 for name in names]
        axes.barh(positions, widths, color="#4c78a8", height=0.7)
        for position, name in zip(positions, names, strict=True):
            text = "unavailable" if values[name] is None else f"{values[name]:.3f}"
            note = notes.get(name)
            if note:
                text = f"{text}  ({note})"
            axes.text(
                (values[name] or 0.0) + 0.01, position, text, va="center", fontsize=label_size - 1
            )
        if reference is not None:
            axes.axvline(reference, label=reference_label, **_CHANCE_STYLE)
            axes.legend(loc="lower right", fontsize=8)
        axes.set_yticks(positions, [_short(name) for name in names], fontsize=label_size)
        axes.invert_yaxis()
        axes.set_xlim(0.0, 1.25)  # room for the value text beside a full bar
        axes.set_xticks(np.linspace(0.0, 1.0, 6))
        axes.set_xlabel(xlabel)
        axes.set_title(title)
        return _png(figure)


def pr_curves_png(
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    average_precision: Mapping[str, float | None],
) -> bytes:
    """Precision against recall, one line per class, AP in the legend."""
    with matplotlib.rc_context(_STYLE):
        figure = Figure(layout="constrained", figsize=(4.8, 4.0))
        axes = figure.add_subplot()
        for name, curve in curves.items():
            ap = average_precision.get(name)
            label = f"{_short(name)} (AP {ap:.3f})" if ap is not None else _short(name)
            axes.plot(curve["recall"], curve["precision"], marker=".", label=label)
        axes.set_xlim(0.0, 1.02)
        axes.set_ylim(0.0, 1.05)
        axes.set_xlabel("recall")
        axes.set_ylabel("precision")
        axes.set_title("precision-recall per class (one-vs-rest)")
        if len(curves) <= 12:
            axes.legend(fontsize=7, loc="lower left")
        return _png(figure)


def training_curves_png(model_id: str, epochs: Sequence[Mapping[str, float | None]]) -> bytes:
    """Losses on the left, every other logged value (val_* metrics) on the right, per epoch."""
    keys = [key for key in dict.fromkeys(k for e in epochs for k in e) if key != "epoch"]
    losses = [key for key in keys if "loss" in key]
    others = [key for key in keys if "loss" not in key]
    x = [epoch["epoch"] for epoch in epochs]
    with matplotlib.rc_context(_STYLE):
        figure = Figure(layout="constrained", figsize=(9.0 if others else 5.0, 3.2))
        groups = [(losses, "loss")] + ([(others, "value")] if others else [])
        for index, (group, ylabel) in enumerate(groups):
            axes = figure.add_subplot(1, len(groups), index + 1)
            for key in group:
                # None (a value that was not finite, or not logged) leaves a gap.
                y = [math.nan if e.get(key) is None else e[key] for e in epochs]
                axes.plot(x, y, marker="o", markersize=3, label=_short(key))
            axes.set_xlabel("epoch")
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            axes.set_ylabel(ylabel)
            axes.legend(fontsize=7)
            axes.grid(alpha=0.3)
        figure.suptitle(f"training of {_short(model_id)}", fontsize=10)
        return _png(figure)


def word_attention_png(
    attention: Sequence[Sequence[float]],
    tokens: Sequence[str],
    frame_indices: Sequence[int],
    frames: np.ndarray | None = None,
) -> bytes:
    """Word-by-frame attention map: a row per generated word, a column per sampled frame.

    With `frames` (T, H, W, 3) the frames are drawn above their columns.
    """
    weights = np.array(attention, dtype=np.float64).reshape(len(tokens), len(frame_indices))
    num_tokens, num_frames = weights.shape  # (N, T)
    cell = 0.42  # inches per frame column
    with matplotlib.rc_context(_STYLE):
        strip_height = cell * 1.1 if frames is not None else 0.0
        figure = Figure(
            layout="constrained",
            figsize=(num_frames * cell + 2.4, num_tokens * 0.3 + strip_height + 1.2),
        )
        if frames is not None:
            grid = figure.add_gridspec(2, 1, height_ratios=[strip_height, num_tokens * 0.3])
            strip_axes = figure.add_subplot(grid[0])
            axes = figure.add_subplot(grid[1], sharex=strip_axes)
            thumbs = [thumbnail(frame, 48) for frame in frames]
            height = min(thumb.shape[0] for thumb in thumbs)
            width = min(thumb.shape[1] for thumb in thumbs)
            strip = np.concatenate([t[:height, :width] for t in thumbs], axis=1)  # (h, T*w, 3)
            strip_axes.imshow(strip, extent=(-0.5, num_frames - 0.5, 0, 1), aspect="auto")
            for boundary in range(1, num_frames):
                strip_axes.axvline(boundary - 0.5, color="white", linewidth=2)
            strip_axes.set_axis_off()
            owners = [strip_axes, axes]  # the colorbar narrows both, keeping columns aligned
        else:
            axes = figure.add_subplot()
            owners = [axes]
        image = axes.imshow(weights, cmap="Oranges", vmin=0.0, aspect="auto")
        figure.colorbar(image, ax=owners, label="attention", shrink=0.9, pad=0.02)
        axes.set_xticks(range(num_frames), [str(i) for i in frame_indices], fontsize=7)
        axes.set_yticks(range(num_tokens), [_short(token) for token in tokens])
        axes.set_xlabel("frame index")
        return _png(figure)
