"""`vidpipe infer` on Apache Beam: feature parts to per-video frames to RunInference to Parquet.

    parts ─► inspect footers ─► read a part, its videos ─► assemble ─► dead letter
          unreadable file ─► dead letter
             ─► frame orders ─► batches per length bucket (within a bundle)
             ─► RunInference ─► failed batches again, one video each ─► dead letter
             ─► rows ─► WriteToParquet(OUT/part-*)    dead letters ─► WriteToParquet(OUT/errors/)
Nothing is dropped: every video that gets no prediction gets an error row, and
OUT/predictions.json counts both.

No feature crosses a shuffle: stage 1 commits a video's rows together in one part, so a part
is read whole and its videos assembled there, and batches are made within a bundle. A
GroupByKey would hold every feature of the job in memory on the in-process FnApiRunner
(peak RSS grew 2x from 2,000 to 10,000 videos with one; see benchmarks/infer.py).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io import parquetio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import RunInference
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from pipelines.artifacts import read_model
from pipelines.beam_options import beam_path, make_pipeline, runner_name
from pipelines.inference.examples import (
    FrameChunk,
    Question,
    VideoExample,
    assemble_video,
    length_bucket,
    video_chunks,
    with_frame_orders,
    with_questions,
)
from pipelines.inference.handler import (
    FEATURE_INPUTS,
    MAPS,
    DecodingConfig,
    VideoModelHandler,
    check_device,
    prepare_model,
)
from pipelines.inference.rows import (
    inference_error_rows,
    part_error_row,
    prediction_rows,
    predictions_schema,
    video_error_row,
)
from schemas import ERRORS_SCHEMA, FRAME_ORDERS, read_manifest, schema_version
from schemas import columns as c
from workers import store

logger = logging.getLogger(__name__)

SUMMARY_FILE = "predictions.json"
ERRORS_DIR = "errors"
PART_PREFIX = "part-"
PARQUET_SUFFIX = ".parquet"


@dataclass(frozen=True, kw_only=True)
class InferConfig:
    """What `vidpipe infer` was asked to do."""

    features: str  # ROOT/features/<feature_set_id>
    model: str  # ROOT/models/<model_id>
    out: str  # ROOT/predictions/<name>
    frame_orders: tuple[str, ...] = ("original",)
    batch_size: int = 16
    top_k: int = 5
    manifest: str | None = None  # the questions of a VQA model
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    device: str = "cpu"
    overwrite: bool = False

    def __post_init__(self) -> None:
        orders = tuple(self.frame_orders)
        unknown = [order for order in orders if order not in FRAME_ORDERS]
        if unknown:
            raise ValueError(f"frame orders {unknown} are not among {', '.join(FRAME_ORDERS)}")
        if len(set(orders)) != len(orders):
            raise ValueError(f"frame orders {list(orders)} repeat an order")
        if "original" not in orders:
            raise ValueError(f"frame orders {list(orders)} must include 'original'")
        object.__setattr__(self, "frame_orders", tuple(o for o in FRAME_ORDERS if o in orders))
        if self.batch_size <= 0:
            raise ValueError(f"batch_size ({self.batch_size}) must be > 0")
        if self.top_k <= 0:
            raise ValueError(f"top_k ({self.top_k}) must be > 0")


@dataclass(frozen=True)
class PartInfo:
    """A feature part whose footer could be read, and the videos it says it holds."""

    uri: str
    video_ids: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class InferPlan:
    """Everything resolved on the driver before the graph is built."""

    config: InferConfig
    features_uri: str
    model_uri: str
    out_uri: str
    task: str
    model_id: str
    feature_set: dict[str, Any]
    streams: tuple[str, ...]
    spatial_shape: tuple[int, int, int] | None
    feature_dim: int
    class_names: tuple[str, ...] | None
    part_uris: tuple[str, ...]
    manifest_uri: str | None = None  # VQA: read again by a worker for the questions
    run_timestamp: str  # ISO time stamped on every error row of the run

    @property
    def columns(self) -> list[str]:
        columns = [c.VIDEO_ID, c.FRAME_INDEX, c.STREAM, c.FEATURE]
        return [*columns, c.SPATIAL_MAP] if self.spatial_shape is not None else columns


def _input_dims(config: Any) -> dict[str, Any]:
    """What the model expects of each stream: a feature size, or (C, H, W) for spatial maps."""
    if hasattr(config, "rgb") and hasattr(config, "flow"):
        return {"rgb": config.rgb.feature_dim, "flow": config.flow.feature_dim}
    if hasattr(config, "rgb_dim"):
        return {"rgb": config.rgb_dim, "flow": config.flow_dim}
    if hasattr(config, "input_channels"):
        return {MAPS: (config.input_channels, config.height, config.width)}
    return {"features": config.feature_dim}


def _num_classes(config: Any) -> int | None:
    for holder in (config, getattr(config, "rgb", None), getattr(config, "temporal", None)):
        if holder is not None and hasattr(holder, "num_classes"):
            return int(holder.num_classes)
    return None


def plan_infer(config: InferConfig, *, now: dt.datetime | None = None) -> InferPlan:
    """Check the inputs and resolve the plan; ValueError/FileNotFoundError name what is wrong.

    Loads the model once here so a broken folder stops the job instead of dead-lettering
    every video.
    """
    check_device(config.device)
    # Features and predictions go through Beam's IO; the model folder through fsspec.
    features_uri, out_uri = beam_path(config.features), beam_path(config.out)
    model_uri = _absolute(config.model).rstrip("/")
    record = store.read_feature_set_record(features_uri)
    spec = record["spec"]
    loaded = read_model(model_uri)
    ready = prepare_model(loaded, spec["streams"], "cpu")
    task, input_kind = ready.task, ready.input_kind
    if input_kind not in FEATURE_INPUTS:
        raise ValueError(
            f"model {loaded.model_id!r} ({loaded.meta['model']}) reads {input_kind}, not stored "
            "features; vidpipe infer runs models over a feature set"
        )
    missing = [stream for stream in ready.streams if stream not in spec["streams"]]
    if missing:
        raise ValueError(
            f"model {loaded.model_id!r} needs the {', '.join(missing)} stream, but feature set "
            f"{record['feature_set_id']} has {', '.join(spec['streams'])}"
        )
    feature_dim = int(record["feature_dim"])
    spatial_shape = None
    for key, expected in _input_dims(loaded.config).items():
        if key == MAPS:
            stored = record.get("spatial_shape")
            if not stored:
                raise ValueError(
                    f"model {loaded.model_id!r} reads spatial maps, but feature set "
                    f"{record['feature_set_id']} has none (extract with --spatial-map)"
                )
            spatial_shape = tuple(int(s) for s in stored)
            if spatial_shape != tuple(expected):
                raise ValueError(
                    f"model {loaded.model_id!r} reads {tuple(expected)} maps, the feature set "
                    f"stores {spatial_shape}"
                )
        elif key != "features" and expected != feature_dim:
            raise ValueError(
                f"model {loaded.model_id!r} reads {expected}-dimensional {key} features, "
                f"feature set {record['feature_set_id']} stores {feature_dim}"
            )
        elif key == "features" and expected != feature_dim * len(ready.streams):
            # Caption and VQA models read their streams side by side (rgb ‖ flow).
            raise ValueError(
                f"model {loaded.model_id!r} reads {expected}-dimensional "
                f"{' + '.join(ready.streams)} features, feature set {record['feature_set_id']} "
                f"stores {feature_dim} per stream"
            )
    if task == "action":
        num_classes = _num_classes(loaded.config)
        if num_classes is not None and num_classes != len(ready.class_names):
            raise ValueError(
                f"model {loaded.model_id!r} has {num_classes} outputs but names "
                f"{len(ready.class_names)} classes"
            )
    trained_on = loaded.extra.get("feature_set_id")
    if trained_on is not None and trained_on != record["feature_set_id"]:
        logger.warning(
            "model %s was trained on feature set %s, running it on %s",
            loaded.model_id,
            trained_on,
            record["feature_set_id"],
        )
    manifest_uri = None
    if task == "vqa":
        if config.manifest is None:
            raise ValueError(f"model {loaded.model_id!r} answers questions: pass --manifest")
        manifest_uri = _absolute(config.manifest)
        num_asked = sum(1 for _ in manifest_questions(manifest_uri))  # validates it now
        logger.info("%d videos of %s have questions", num_asked, manifest_uri)
    elif config.manifest is not None:
        logger.info("--manifest is only read for VQA models; ignoring it")
    _check_out(out_uri, overwrite=config.overwrite)
    names = [path.rsplit("/", 1)[-1] for path in store.part_paths(features_uri)]
    return InferPlan(
        config=config,
        features_uri=features_uri,
        model_uri=model_uri,
        out_uri=out_uri,
        task=task,
        model_id=loaded.model_id,
        feature_set=record,
        streams=ready.streams,
        spatial_shape=spatial_shape,
        feature_dim=feature_dim,
        class_names=ready.class_names,
        part_uris=tuple(f"{features_uri}/{name}" for name in names),
        manifest_uri=manifest_uri,
        run_timestamp=(now or dt.datetime.now(dt.UTC)).isoformat(),
    )


def _absolute(uri: str) -> str:
    """A local path made absolute; URLs as they are."""
    return uri if "://" in uri else os.path.abspath(uri)


def manifest_questions(manifest_uri: str) -> Iterator[tuple[str, tuple[Question, ...]]]:
    """(video id, its questions) for every manifest video with questions.

    The pipeline reads the manifest in a worker rather than shipping its rows inside the
    graph, which runners limit in size.
    """
    table = read_manifest(manifest_uri)
    for row in table.select([c.VIDEO_ID, c.QUESTIONS]).to_pylist():
        questions = tuple(
            Question(
                question_index=index,
                question=qa[c.QUESTION],
                question_type=qa[c.QUESTION_TYPE],
            )
            for index, qa in enumerate(row[c.QUESTIONS] or ())
        )
        if questions:
            yield row[c.VIDEO_ID], questions


def _outputs(out_uri: str) -> list[str]:
    """Files an earlier run left in `out_uri`: parts, error parts, the summary."""
    fs, path = fsspec.core.url_to_fs(out_uri)
    found = []
    for folder in (path, f"{path}/{ERRORS_DIR}"):
        if fs.isdir(folder):
            found += [
                name
                for name in fs.ls(folder, detail=False)
                if name.rsplit("/", 1)[-1].startswith(PART_PREFIX)
                or name.endswith(f"/{SUMMARY_FILE}")
            ]
    return sorted(found)


def _check_out(out_uri: str, *, overwrite: bool) -> None:
    if _outputs(out_uri) and not overwrite:
        raise ValueError(f"{out_uri} already holds predictions; pass --overwrite to replace them")


def _clear_out(out_uri: str) -> None:
    """Removes an earlier run's outputs, and the temporary folders of a killed Beam write."""
    fs, path = fsspec.core.url_to_fs(out_uri)
    for name in _outputs(out_uri):
        fs.rm(name)
    for folder in (path, f"{path}/{ERRORS_DIR}"):
        if fs.isdir(folder):
            for name in fs.ls(folder, detail=False):
                if name.rsplit("/", 1)[-1].startswith("beam-temp-"):
                    fs.rm(name, recursive=True)


# ---------------------------------------------------------------------------
# Steps of the graph (module-level functions: they pickle by reference)


def inspect_part(uri: str, *, columns: Sequence[str], feature_dim: int) -> PartInfo:
    """The videos a part lists in its footer; raises when the file is not a readable feature part."""
    with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        schema = pq.ParquetFile(handle).schema_arrow
    missing = [name for name in columns if name not in schema.names]
    if missing:
        raise ValueError(f"feature file {uri} lacks the columns {', '.join(missing)}")
    feature_type = schema.field(c.FEATURE).type
    if not pa.types.is_fixed_size_list(feature_type) or feature_type.list_size != feature_dim:
        raise ValueError(
            f"feature file {uri} stores {feature_type} features, expected {feature_dim} values"
        )
    listed = (schema.metadata or {}).get(store.VIDEO_IDS_KEY)
    return PartInfo(uri=uri, video_ids=tuple(json.loads(listed)) if listed else ())


def read_part_videos(
    info: PartInfo, *, columns: Sequence[str], streams: Sequence[str], spatial: bool
) -> list[tuple[str, dict[str, list[Any]]]]:
    """Every video of one part: (video id, {"chunks": its frame chunks, "listed": [part uri]}).

    A video the footer lists without rows gets no chunks (its assembly fails: a dead letter);
    one with rows but not listed is still predicted. The whole part is read at once: parts
    hold one batch of videos, and reading it here keeps its rows out of any shuffle.
    """
    with FileSystems.open(info.uri, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        table = pq.ParquetFile(handle).read(columns=list(columns))
    chunks: dict[str, list[FrameChunk]] = {}
    for video_id, chunk in video_chunks(table, streams, spatial=spatial):
        chunks.setdefault(video_id, []).append(chunk)
    listed = set(info.video_ids)
    return [
        (
            video_id,
            {"chunks": chunks.get(video_id, []), "listed": [info.uri] * (video_id in listed)},
        )
        for video_id in sorted(listed | set(chunks))
    ]


def _unread_part(failed: tuple[PartInfo, Any]) -> tuple[str, Any]:
    info, error = failed
    return info.uri, error


def _assemble(
    grouped: tuple[str, dict[str, Iterable[Any]]],
    *,
    streams: Sequence[str],
    spatial_shape: tuple[int, int, int] | None,
) -> VideoExample:
    video_id, parts = grouped
    return assemble_video(video_id, parts["chunks"], streams, spatial_shape=spatial_shape)


def _with_questions(
    example: VideoExample, questions: dict[str, tuple[Question, ...]]
) -> list[VideoExample]:
    asked = questions.get(example.video_id)
    if not asked:
        return []  # a video without questions has nothing to answer
    return [with_questions(example, asked)]


class BatchByLength(beam.DoFn):
    """Batches of at most `batch_size` videos of one length bucket, made within a bundle.

    Unlike a GroupByKey it holds only one unfinished batch per bucket, so memory does not
    grow with the number of videos. Global windows only, as the inference graph has.
    """

    def __init__(self, batch_size: int):
        if batch_size <= 0:
            raise ValueError(f"batch_size ({batch_size}) must be > 0")
        self._batch_size = batch_size
        self._pending: dict[int, list[VideoExample]] = {}

    def start_bundle(self) -> None:
        self._pending = {}

    def process(self, example: VideoExample) -> Iterator[list[VideoExample]]:
        bucket = length_bucket(example.num_frames)
        batch = self._pending.setdefault(bucket, [])
        batch.append(example)
        if len(batch) == self._batch_size:
            del self._pending[bucket]
            yield batch

    def finish_bundle(self) -> Iterator[WindowedValue]:
        window = GlobalWindow()
        for bucket in sorted(self._pending):
            yield WindowedValue(self._pending[bucket], window.max_timestamp(), (window,))
        self._pending = {}


def _singles(failed: tuple[Sequence[VideoExample], Any]) -> list[list[VideoExample]]:
    batch, _ = failed
    return [[example] for example in batch]


def build_infer(pipeline: beam.Pipeline, plan: InferPlan) -> None:
    """Adds the inference graph of `plan` to `pipeline`: predictions and dead letters to OUT."""
    config, stamp = plan.config, plan.run_timestamp
    parts = pipeline | "List feature parts" >> beam.Create(plan.part_uris)
    inspected, unreadable = (
        parts
        | "Inspect parts"
        >> beam.Map(
            inspect_part, columns=plan.columns, feature_dim=plan.feature_dim
        ).with_exception_handling()
    )
    per_video, unread = (
        inspected
        | "Read parts"
        >> beam.FlatMap(
            read_part_videos,
            columns=plan.columns,
            streams=plan.streams,
            spatial=plan.spatial_shape is not None,
        ).with_exception_handling()
    )
    videos, unassembled = (
        per_video
        | "Assemble videos"
        >> beam.Map(
            _assemble, streams=plan.streams, spatial_shape=plan.spatial_shape
        ).with_exception_handling()
    )
    if plan.task == "vqa":
        questions = (
            pipeline
            | "Manifest" >> beam.Create([plan.manifest_uri])
            | "Manifest questions" >> beam.FlatMap(manifest_questions)
        )
        # The questions as a side input (they are small): joining by CoGroupByKey would hold
        # every video's features in memory on the FnApiRunner.
        videos = videos | "Videos with questions" >> beam.FlatMap(
            _with_questions, questions=beam.pvalue.AsDict(questions)
        )
    batches = (
        videos
        | "Frame orders" >> beam.FlatMap(with_frame_orders, config.frame_orders)
        | "Batch by length" >> beam.ParDo(BatchByLength(config.batch_size))
    )
    handler = VideoModelHandler(
        plan.model_uri,
        feature_set_streams=plan.feature_set["spec"]["streams"],
        batch_size=config.batch_size,
        decoding=config.decoding,
        device=config.device,
    ).with_no_batching()  # batched above, by length bucket
    results, failed = batches | "RunInference" >> RunInference(handler).with_exception_handling()
    # A failed batch may hold one bad video among good ones: run each alone, and only the
    # videos that fail alone become dead letters.
    retried, failed_alone = (
        failed.failed_inferences
        | "Split failed batches" >> beam.FlatMap(_singles)
        | "RunInference one by one" >> RunInference(handler).with_exception_handling()
    )
    # Rows before the Flatten: the FnApiRunner buffers a Flatten's whole input, and a
    # PredictionResult still carries its video's features.
    rows = [
        predictions
        | label
        >> beam.FlatMap(
            prediction_rows, task=plan.task, class_names=plan.class_names, top_k=config.top_k
        )
        for label, predictions in (
            ("Prediction rows", results),
            ("Prediction rows of retried videos", retried),
        )
    ]
    _ = (
        rows
        | "All predictions" >> beam.Flatten()
        | "Write predictions"
        >> parquetio.WriteToParquet(
            f"{plan.out_uri}/{PART_PREFIX.rstrip('-')}",
            schema=predictions_schema(plan.task, plan.class_names),
            file_name_suffix=PARQUET_SUFFIX,
            codec="zstd",
        )
    )
    error_rows = (
        unreadable | "Unreadable part rows" >> beam.Map(part_error_row, event_timestamp=stamp),
        unread
        | "Unread part uris" >> beam.Map(_unread_part)
        | "Unread part rows" >> beam.Map(part_error_row, event_timestamp=stamp),
        unassembled
        | "Unassembled video rows"
        >> beam.Map(video_error_row, features_uri=plan.features_uri, event_timestamp=stamp),
        failed_alone.failed_inferences
        | "Failed inference rows"
        >> beam.FlatMap(
            inference_error_rows, features_uri=plan.features_uri, event_timestamp=stamp
        ),
    )
    _ = (
        error_rows
        | "All dead letters" >> beam.Flatten()
        | "Write dead letters"
        >> parquetio.WriteToParquet(
            f"{plan.out_uri}/{ERRORS_DIR}/{PART_PREFIX.rstrip('-')}",
            schema=ERRORS_SCHEMA,
            file_name_suffix=PARQUET_SUFFIX,
            codec="zstd",
        )
    )


# ---------------------------------------------------------------------------
# Running and summarising


def run_infer(
    config: InferConfig, beam_args: Sequence[str] = (), *, plan: InferPlan | None = None
) -> dict[str, Any]:
    """Runs `vidpipe infer` on the runner `beam_args` name; returns the predictions.json summary."""
    plan = plan or plan_infer(config)
    if config.overwrite:
        _clear_out(plan.out_uri)
    pipeline = make_pipeline(beam_args)
    build_infer(pipeline, plan)
    logger.info(
        "running inference of %s over %d feature parts on %s",
        plan.model_id,
        len(plan.part_uris),
        runner_name(pipeline.options),
    )
    started = time.perf_counter()
    pipeline.run().wait_until_finish()
    elapsed = time.perf_counter() - started
    summary = summarize(plan, elapsed_s=elapsed, runner=runner_name(pipeline.options))
    fs, path = fsspec.core.url_to_fs(plan.out_uri)
    temporary = f"{path}/{SUMMARY_FILE}.tmp"
    with fs.open(temporary, "w") as handle:
        json.dump(summary, handle, indent=2, sort_keys=True)
    fs.mv(temporary, f"{path}/{SUMMARY_FILE}")
    return summary


def output_files(out_uri: str) -> tuple[list[str], list[str]]:
    """(prediction parts, error parts) under a predictions folder, as fsspec paths."""
    fs, path = fsspec.core.url_to_fs(out_uri)

    def parts(folder: str) -> list[str]:
        if not fs.isdir(folder):
            return []
        return sorted(
            name
            for name in fs.ls(folder, detail=False)
            if name.rsplit("/", 1)[-1].startswith(PART_PREFIX) and name.endswith(PARQUET_SUFFIX)
        )

    return parts(path), parts(f"{path}/{ERRORS_DIR}")


def read_parts(
    out_uri: str, *, errors: bool = False, columns: Sequence[str] | None = None
) -> pa.Table:
    """The prediction rows (or with `errors`, the dead letters) of a predictions folder."""
    fs, _ = fsspec.core.url_to_fs(out_uri)
    predictions, error_parts = output_files(out_uri)
    paths = error_parts if errors else predictions
    tables = []
    for path in paths:
        with fs.open(path, "rb") as handle:
            tables.append(pq.read_table(handle, columns=list(columns) if columns else None))
    if not tables:
        return ERRORS_SCHEMA.empty_table() if errors else pa.table({})
    return pa.concat_tables(tables)


def summarize(plan: InferPlan, *, elapsed_s: float, runner: str) -> dict[str, Any]:
    """What a run wrote, counted from the files themselves (so any runner's output is counted)."""
    predictions = read_parts(plan.out_uri, columns=[c.VIDEO_ID, c.FRAME_ORDER])
    errors = read_parts(plan.out_uri, errors=True, columns=[c.VIDEO_ID, c.ERROR_TYPE])
    by_order: dict[str, int] = {}
    for order in predictions.column(c.FRAME_ORDER).to_pylist() if predictions.num_rows else []:
        by_order[order] = by_order.get(order, 0) + 1
    by_type: dict[str, int] = {}
    for error_type in errors.column(c.ERROR_TYPE).to_pylist():
        by_type[error_type] = by_type.get(error_type, 0) + 1
    video_ids = set(predictions.column(c.VIDEO_ID).to_pylist()) if predictions.num_rows else set()
    prediction_files, error_files = output_files(plan.out_uri)
    schema = predictions_schema(plan.task, plan.class_names)
    return {
        "task": plan.task,
        "schema": list(schema_version(schema) or ()),
        "model_id": plan.model_id,
        "model_uri": plan.model_uri,
        "feature_set_id": plan.feature_set["feature_set_id"],
        "features_uri": plan.features_uri,
        "streams": list(plan.streams),
        "frame_orders": list(plan.config.frame_orders),
        "class_names": list(plan.class_names) if plan.class_names is not None else None,
        "num_predictions": predictions.num_rows,
        "num_predictions_by_frame_order": dict(sorted(by_order.items())),
        "num_videos": len(video_ids),
        "num_dead_letters": errors.num_rows,
        "num_dead_letters_by_type": dict(sorted(by_type.items())),
        "num_feature_parts": len(plan.part_uris),
        "files": [path.rsplit("/", 1)[-1] for path in prediction_files],
        "error_files": [f"{ERRORS_DIR}/{path.rsplit('/', 1)[-1]}" for path in error_files],
        "runner": runner,
        "started_at": plan.run_timestamp,
        "timings_s": {"pipeline": round(elapsed_s, 3)},
        "config": {
            "batch_size": plan.config.batch_size,
            "top_k": plan.config.top_k,
            "device": plan.config.device,
            "decoding": {
                "beam_size": plan.config.decoding.beam_size,
                "max_length": plan.config.decoding.max_length,
                "length_penalty": plan.config.decoding.length_penalty,
            },
            "manifest": plan.manifest_uri,
        },
    }


def read_summary(out_uri: str) -> dict[str, Any]:
    """The predictions.json of a predictions folder; FileNotFoundError when there is none."""
    fs, path = fsspec.core.url_to_fs(out_uri)
    target = f"{path.rstrip('/')}/{SUMMARY_FILE}"
    if not fs.exists(target):
        raise FileNotFoundError(f"no predictions at {out_uri} ({SUMMARY_FILE} is missing)")
    with fs.open(target, "r") as handle:
        return json.load(handle)
