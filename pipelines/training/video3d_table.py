"""The "3D CNN vs CNN-RNN" table: parameters, peak memory, throughput and test accuracy of trained
model folders, each measured end to end from decoded frames to class scores.
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import fsspec
import torch

from hybrid_models.cnn_rnn import CNNRNNClassifier
from hybrid_models.small_cnn import build_small_cnn
from hybrid_models.video3d import count_parameters
from hybrid_models.weights import load_weights_bytes
from pipelines.artifacts import read_model, read_training_log
from pipelines.training import multistage as ms

TABLE_JSON = "video3d_vs_cnn_rnn.json"
TABLE_MARKDOWN = "video3d_vs_cnn_rnn.md"

# Memory is the peak resident set size of a fresh child process per measurement, over the step
# alone: the peak (VmHWM) is reset once the model and its input batch are loaded, and "added" is
# that peak over the resident size then: what training (forward, backward, AdamW step) or
# inference (forward under `inference_mode`) adds. `ru_maxrss` cannot be reset, and the imports
# alone peak above a small model's step, which then read as 0. tracemalloc would not see it:
# torch allocates outside Python's allocator. Throughput is clips per second of CPU inference,
# median of timed batches. Linux only (/proc).


@dataclass(frozen=True, kw_only=True)
class Contender:
    """A row: a trained model folder, and the clip shape it is measured on."""

    name: str
    model_uri: str
    num_frames: int
    input_size: int

    def __post_init__(self) -> None:
        if self.num_frames <= 0 or self.input_size <= 0:
            raise ValueError(
                f"num_frames ({self.num_frames}) and input_size ({self.input_size}) must be > 0"
            )


@dataclass(frozen=True, kw_only=True)
class MeasureConfig:
    batch_size: int = 16
    threads: int = 1  # the same for every row: the numbers compare models, not machines
    timed_runs: int = 5

    def __post_init__(self) -> None:
        for name in ("batch_size", "threads", "timed_runs"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} ({getattr(self, name)}) must be > 0")


def end_to_end_model(model_uri: str) -> tuple[torch.nn.Module, str]:
    """The folder's model as frames/clips -> scores, and the input kind ("clips" or "frames").

    A multi-stage folder (temporal model + small_cnn weights file) becomes the CNN-RNN it was
    trained as: the backbone under the temporal model, so it is measured from pixels too.
    """
    loaded = read_model(model_uri)
    extra = loaded.extra
    if extra["inputs"] in ("clips", "frames"):
        return loaded.model, extra["inputs"]
    backbone = extra.get("backbone")
    if backbone is None:
        raise ValueError(
            f"model {loaded.model_id!r} reads stored features and has no backbone weights file; "
            "measure a multi-stage, cnn_rnn or r3d folder"
        )
    fs, path = fsspec.core.url_to_fs(model_uri)
    with fs.open(f"{path.rstrip('/')}/{backbone['weights_file']}", "rb") as f:
        weights = load_weights_bytes(ms.BACKBONE_NAME, f.read(), backbone["weights_file"])
    encoder = build_small_cnn(ms.backbone_config(), seed=0)  # every weight is overwritten next
    encoder.load_state_dict(weights.state_dict, strict=False)  # its head is an Identity
    return CNNRNNClassifier(encoder, loaded.model).eval(), "frames"


def _inputs(kind: str, batch_size: int, num_frames: int, size: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    if kind == "clips":
        pixels = torch.randn(batch_size, 3, num_frames, size, size, generator=generator)
    else:
        pixels = torch.randn(batch_size, num_frames, 3, size, size, generator=generator)
    mask = torch.ones(batch_size, num_frames, dtype=torch.bool)
    return pixels, mask


def _status_mib(field: str) -> float:
    """`VmRSS` (resident now) or `VmHWM` (peak since the last reset) of this process, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024  # the file says kB
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak_rss() -> None:
    """Sets VmHWM to the current resident size (Linux 4.0+), so the next peak is the step's own."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _measure_child(contender: Contender, config: MeasureConfig, mode: str, conn: Any) -> None:
    """Runs in a fresh process: one measurement, sent back as a dict."""
    torch.set_num_threads(config.threads)
    model, kind = end_to_end_model(contender.model_uri)
    pixels, mask = _inputs(kind, config.batch_size, contender.num_frames, contender.input_size)
    labels = torch.zeros(config.batch_size, dtype=torch.long)
    _reset_peak_rss()
    before = _status_mib("VmRSS")  # read after the reset: the peak can never be below it
    result: dict[str, Any] = {"parameters": count_parameters(model)}
    if mode == "train":
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        started = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(pixels, mask).logits, labels)
        loss.backward()
        optimizer.step()
        result["train_step_seconds"] = time.perf_counter() - started
    else:
        model.eval()
        with torch.inference_mode():
            model(pixels, mask)  # warm-up, and the memory peak
            runs = []
            for _ in range(config.timed_runs):
                started = time.perf_counter()
                model(pixels, mask)
                runs.append(time.perf_counter() - started)
        result["clips_per_second"] = config.batch_size / statistics.median(runs)
    peak = _status_mib("VmHWM")
    result[f"{mode}_peak_mib"] = peak
    result[f"{mode}_added_mib"] = peak - before
    conn.send(result)
    conn.close()


def measure(contender: Contender, config: MeasureConfig) -> dict[str, Any]:
    """Parameters, training and inference memory, and throughput of `contender`."""
    context = multiprocessing.get_context("spawn")
    result: dict[str, Any] = {}
    for mode in ("train", "infer"):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=_measure_child, args=(contender, config, mode, sender))
        process.start()
        sender.close()
        try:
            result.update(receiver.recv())
        except EOFError:
            raise RuntimeError(
                f"measuring {contender.name} ({mode}) failed in its process"
            ) from None
        finally:
            process.join()
    return result


def table_row(contender: Contender, measured: Mapping[str, Any]) -> dict[str, Any]:
    meta = read_model(contender.model_uri).meta
    extra = meta["extra"]
    metrics = extra["test_metrics"]
    pairs = [p for p in metrics.get("class_pairs", []) if p["num_videos"]]
    return {
        "model": contender.name,
        "zoo_model": meta["model"],
        "input": f"{contender.num_frames}×{contender.input_size}×{contender.input_size} RGB",
        "parameters": measured["parameters"],
        "train_seconds": _train_seconds(contender.model_uri, extra),
        "train_peak_mib": round(measured["train_peak_mib"], 1),
        "train_added_mib": round(measured["train_added_mib"], 1),
        "infer_peak_mib": round(measured["infer_peak_mib"], 1),
        "infer_added_mib": round(measured["infer_added_mib"], 1),
        "clips_per_second": round(measured["clips_per_second"], 1),
        "test_top_1": metrics.get("top_1"),
        "pairs_two_way_mean": sum(p["two_way_accuracy"] for p in pairs) / len(pairs)
        if pairs
        else None,
        "model_id": meta["model_id"],
    }


def _train_seconds(model_uri: str, extra: Mapping[str, Any]) -> float | None:
    """Seconds of all epochs of all stages, summed from the training log.

    `extra["train_seconds"]` times only the last process, so a resumed run would report the
    minutes of its resume, not the hours of its training.
    """
    epochs = [entry["seconds"] for entry in read_training_log(model_uri) if "seconds" in entry]
    return round(sum(epochs), 1) if epochs else extra.get("train_seconds")


def build_table(contenders: Sequence[Contender], config: MeasureConfig) -> dict[str, Any]:
    """Measure every contender (two fresh processes each) into {"columns", "rows", ...}."""
    table = build_table_from_rows([table_row(c, measure(c, config)) for c in contenders])
    return {
        **table,
        "measured_with": {
            "batch_size": config.batch_size,
            "threads": config.threads,
            "memory": "peak RSS of a fresh process during the step (VmHWM reset after loading); "
            "added = over the RSS with model + batch loaded",
            "throughput": f"CPU inference, median of {config.timed_runs} batches",
        },
    }


def build_table_from_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    return {"columns": columns, "rows": [dict(r) for r in rows]}


def table_markdown(table: Mapping[str, Any]) -> str:
    columns = [c for c in table["columns"] if c != "model_id"]

    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.3f}" if value <= 1 else f"{value:,.1f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in table["rows"]]
    return "\n".join(lines) + "\n"


def write_table(out: str, table: Mapping[str, Any]) -> None:
    fs, path = fsspec.core.url_to_fs(out)
    fs.makedirs(path, exist_ok=True)
    with fs.open(f"{path}/{TABLE_JSON}", "w") as f:
        json.dump(table, f, indent=2)
    with fs.open(f"{path}/{TABLE_MARKDOWN}", "w") as f:
        f.write(table_markdown(table))
