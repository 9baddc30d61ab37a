"""`vidpipe evaluate` on Apache Beam: predictions joined to ground truth, metrics merged, one report.

manifest ─────────┬─► CoGroupByKey(video_id) ◄─ predictions of a task (parquetio)
                  │      └─► samples per metric ─► CombineGlobally(metric CombineFns)
                  └─► CoGroupByKey(video_id) ◄─ dead letters of every task ─► count, examples
counts of evaluated and missing videos ─► Count.PerElement
every result, as a side input ─► assemble the report, decode a few videos' frames, write_report
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import fsspec
import pyarrow.parquet as pq
from apache_beam.io import parquetio
from apache_beam.pvalue import AsSingleton, TaggedOutput

from pipelines.artifacts import read_model_meta, read_training_log
from pipelines.beam_options import beam_path, make_pipeline, runner_name
from pipelines.datasets.scene import PAIRED_ACTION, SHAPES
from pipelines.evaluation import joins
from pipelines.evaluation.combiners import (
    BootstrapConfig,
    CaptionFinish,
    DeadLetterCombineFn,
    MetricCombineFn,
    SingleLabelFinish,
)
from pipelines.evaluation.frames import decode_requested, frame_requests
from pipelines.evaluation.report import (
    action_section,
    assemble_report,
    caption_section,
    class_pairs,
    read_ablations,
    strip_private,
    training_section,
    vqa_section,
)
from pipelines.inference.pipeline import ERRORS_DIR, output_files, read_summary
from pipelines.inference.rows import class_names_of
from pipelines.metrics import (
    CaptionErrorConfig,
    CaptionMetrics,
    MultiLabelClassification,
    SingleLabelClassification,
    TemporalOrderCheck,
    VqaAccuracy,
)
from pipelines.report import read_report, write_report
from schemas import SPLITS, id_problem, read_manifest, resolve_uri
from schemas import columns as c
from workers import store

logger = logging.getLogger(__name__)

TASKS = ("action", "caption", "vqa")
# The object lexicon of the synthetic dataset's captions, for `objects=SYNTHETIC_OBJECTS`.
SYNTHETIC_OBJECTS = tuple(SHAPES)


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig:
    """What `vidpipe evaluate` was asked to do."""

    predictions: tuple[str, ...]  # ROOT/predictions/<name>, one folder per task
    manifest: str
    out: str  # ROOT/reports/<report_id>
    features: str | None = None  # the feature set whose lineage the report shows
    splits: tuple[str, ...] = ("test",)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    num_samples: int = 10  # caption and VQA samples shown in the report
    num_frame_videos: int = 3  # videos whose frames are decoded for the attention figure
    num_dead_letter_examples: int = 5
    spice: bool = True  # SPICE runs only where its jars are; otherwise it is marked unavailable
    objects: tuple[str, ...] | None = None  # caption error analysis: None derives them

    def __post_init__(self) -> None:
        if not self.predictions:
            raise ValueError("predictions must name at least one predictions folder")
        unknown = [split for split in self.splits if split not in SPLITS]
        if unknown or not self.splits:
            raise ValueError(f"splits {list(self.splits)} must be some of {', '.join(SPLITS)}")
        if self.num_samples <= 0:
            raise ValueError(f"num_samples ({self.num_samples}) must be > 0")
        for name in ("num_frame_videos", "num_dead_letter_examples"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} ({getattr(self, name)}) must be >= 0")


@dataclass(frozen=True, kw_only=True)
class TaskInput:
    """One predictions folder: its task, what made it, and its files as Beam reads them."""

    task: str
    uri: str
    summary: dict[str, Any]
    prediction_uris: tuple[str, ...]
    error_uris: tuple[str, ...]

    @property
    def model_id(self) -> str:
        return self.summary["model_id"]


@dataclass(frozen=True, kw_only=True)
class ReportFacts:
    """Everything the final step needs besides the merged metrics (small, picklable)."""

    report_id: str
    out_uri: str
    inputs: dict[str, Any]
    videos_in_manifest: int
    tasks: dict[str, dict[str, Any]]  # task -> model_id, class_names, frame_orders, timing
    training: dict[str, Any] | None
    ablations: dict[str, Any] | None
    decoder: str
    rotation: str
    num_frame_videos: int
    bootstrap: BootstrapConfig
    started: float  # time.time() when the evaluation began


@dataclass(frozen=True, kw_only=True)
class EvaluatePlan:
    config: EvaluateConfig
    tasks: tuple[TaskInput, ...]
    manifest_uri: str
    has_multi_labels: bool
    facts: ReportFacts


def _report_id(out_uri: str) -> str:
    report_id = out_uri.rstrip("/").rsplit("/", 1)[-1]
    problem = id_problem(report_id)
    if problem is not None:
        raise ValueError(f"the report folder's name must be a report id: {problem}")
    return report_id


def _version() -> str:
    try:
        return importlib.metadata.version("vidpipe")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _absolute(uri: str) -> str:
    """A local path made absolute; URLs as they are (read and written through fsspec)."""
    return uri.rstrip("/") if "://" in uri else os.path.abspath(uri)


def _task_input(uri: str) -> TaskInput:
    folder = beam_path(uri)
    summary = read_summary(folder)
    task = summary.get("task")
    if task not in TASKS:
        raise ValueError(f"{folder}: predictions.json names task {task!r}, not one of {TASKS}")
    predictions, errors = output_files(folder)
    if task == "action" and not summary.get("class_names"):
        if not predictions:
            raise ValueError(f"{folder}: action predictions without class names")
        fs, _ = fsspec.core.url_to_fs(folder)
        with fs.open(predictions[0], "rb") as handle:
            summary = {**summary, "class_names": class_names_of(pq.read_schema(handle))}
        if not summary["class_names"]:
            raise ValueError(f"{folder}: action predictions without class names")

    def named(paths: Sequence[str], subdir: str = "") -> tuple[str, ...]:
        prefix = f"{folder}/{subdir}/" if subdir else f"{folder}/"
        return tuple(prefix + path.rsplit("/", 1)[-1] for path in paths)

    return TaskInput(
        task=task,
        uri=folder,
        summary=summary,
        prediction_uris=named(predictions),
        error_uris=named(errors, ERRORS_DIR),
    )


def _model_entry(model_uri: str, model_id: str) -> dict[str, Any]:
    try:
        meta = read_model_meta(model_uri)
    except FileNotFoundError:
        logger.warning(
            "model %s is no longer at %s; the report lacks its config", model_id, model_uri
        )
        return {"config": {}, "lineage": {"model_id": model_id, "uri": model_uri, "found": False}}
    return {"config": meta["config"], "lineage": meta["lineage"]}


def plan_evaluate(config: EvaluateConfig, *, now: float | None = None) -> EvaluatePlan:
    """Read the manifest and the predictions folders' summaries; ValueError/FileNotFoundError."""
    started = time.time() if now is None else now
    out_uri = _absolute(config.out)
    report_id = _report_id(out_uri)
    # Relative video uris are taken from the manifest's folder, so it must be absolute.
    manifest_uri = _absolute(config.manifest)
    rows = list(manifest_rows(manifest_uri, config.splits))
    selected = [row for row in rows if row[joins.SELECTED_KEY]]
    if not selected:
        present = sorted({row[c.SPLIT] for row in rows})
        raise ValueError(
            f"manifest {config.manifest} has no videos in splits {', '.join(config.splits)} "
            f"(it has {', '.join(present) or 'none'})"
        )
    tasks = [_task_input(uri) for uri in config.predictions]
    seen: dict[str, str] = {}
    for task in tasks:
        if task.task in seen:
            raise ValueError(
                f"{seen[task.task]} and {task.uri} both hold {task.task} predictions; "
                "evaluate one model per task"
            )
        seen[task.task] = task.uri
    models, logs, ablations = {}, {}, None
    for task in tasks:
        model_uri = task.summary["model_uri"]
        models[task.model_id] = _model_entry(model_uri, task.model_id)
        logs[task.model_id] = read_training_log(model_uri)
        if ablations is None:
            ablations = read_ablations(model_uri.rstrip("/").rsplit("/", 1)[0])
    features_uri = config.features or tasks[0].summary.get("features_uri")
    feature_set = None
    if features_uri:
        try:
            feature_set = store.read_feature_set_record(features_uri)
        except FileNotFoundError:
            if config.features:
                raise
            logger.warning("feature set %s is gone; the report lacks its lineage", features_uri)
    spec = (feature_set or {}).get("spec", {})
    facts = ReportFacts(
        report_id=report_id,
        out_uri=out_uri,
        inputs={
            "manifest": manifest_uri,
            "predictions": {task.task: task.uri for task in tasks},
            "feature_set": feature_set,
            "models": models,
        },
        videos_in_manifest=len(selected),
        tasks={
            task.task: {
                "model_id": task.model_id,
                "class_names": task.summary.get("class_names"),
                "frame_orders": task.summary.get("frame_orders", ["original"]),
                "infer_s": task.summary.get("timings_s", {}).get("pipeline"),
            }
            for task in tasks
        },
        training=training_section(logs),
        ablations=ablations,
        decoder=spec.get("decoder", "auto"),
        rotation=spec.get("rotation", "apply"),
        num_frame_videos=config.num_frame_videos,
        bootstrap=config.bootstrap,
        started=started,
    )
    return EvaluatePlan(
        config=config,
        tasks=tuple(tasks),
        manifest_uri=manifest_uri,
        has_multi_labels=any(row[c.LABELS] is not None for row in selected),
        facts=facts,
    )


# ---------------------------------------------------------------------------
# Steps of the graph


def manifest_rows(manifest_uri: str, splits: Sequence[str]) -> Iterator[dict[str, Any]]:
    """The manifest's rows, each marked with whether its split is evaluated and its video's uri.

    The pipeline reads the manifest in a worker rather than shipping its rows inside the
    graph, which runners limit in size.
    """
    for row in read_manifest(manifest_uri).to_pylist():
        yield {
            **row,
            joins.SELECTED_KEY: row[c.SPLIT] in splits,
            joins.URI_KEY: resolve_uri(row[c.URI], manifest_uri),
        }


def _keyed(row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return row[c.VIDEO_ID], row


def _first(item: tuple[Any, Any]) -> Any:
    return item[0]


class _Route(beam.DoFn):
    """Emits a join function's (tag, value) pairs on the tagged outputs."""

    def __init__(self, join: Callable[..., list[tuple[str, Any]]], **kwargs: Any):
        self._join = join
        self._kwargs = kwargs

    def process(self, element: Any) -> Iterator[TaggedOutput]:
        for tag, value in self._join(element, **self._kwargs):
            yield TaggedOutput(tag, value)


def _read(pipeline: beam.Pipeline, label: str, uris: Sequence[str]) -> beam.PCollection:
    """The rows of some Parquet files, as dicts (nothing when there are none)."""
    if not uris:
        return pipeline | label >> beam.Create([])
    return (
        pipeline
        | f"{label}: files" >> beam.Create(list(uris))
        | label >> parquetio.ReadAllFromParquet()
    )


def build_evaluate(pipeline: beam.Pipeline, plan: EvaluatePlan) -> None:
    """Adds the evaluation graph of `plan` to `pipeline`; its last step writes the report."""
    config, facts = plan.config, plan.facts
    manifest = (
        pipeline
        | "Manifest" >> beam.Create([plan.manifest_uri])
        | "Manifest rows" >> beam.FlatMap(manifest_rows, config.splits)
        | "Key manifest" >> beam.Map(_keyed)
    )
    results: dict[str, beam.PCollection] = {}
    counts = []
    for task in plan.tasks:
        name = task.task
        predictions = _read(pipeline, f"Read {name} predictions", task.prediction_uris)
        joined = {
            "truth": manifest,
            "predictions": predictions | f"Key {name} predictions" >> beam.Map(_keyed),
        } | f"Join {name} to the manifest" >> beam.CoGroupByKey()
        if name == "action":
            class_names = tuple(task.summary["class_names"])
            pairs = class_pairs(class_names, PAIRED_ACTION)
            tagged = joined | "Action samples" >> beam.ParDo(
                _Route(joins.join_action, class_names=class_names)
            ).with_outputs(
                joins.COUNT, joins.SINGLE, joins.MULTI, joins.ORDERED, joins.ACTION_DETAIL
            )
            results["action_details"] = tagged[
                joins.ACTION_DETAIL
            ] | "Attention shown" >> beam.combiners.Top.Of(
                config.num_samples, key=_first, reverse=True
            )
            results["action_single"] = tagged[
                joins.SINGLE
            ] | "Classification" >> beam.CombineGlobally(
                MetricCombineFn(
                    SingleLabelClassification(
                        class_names=class_names, top_k=(1, 5), class_pairs=pairs
                    ),
                    SingleLabelFinish(bootstrap=config.bootstrap),
                )
            )
            if plan.has_multi_labels:
                results["action_multi"] = tagged[
                    joins.MULTI
                ] | "Multi-label" >> beam.CombineGlobally(
                    MetricCombineFn(MultiLabelClassification(class_names=class_names))
                )
            if len(task.summary.get("frame_orders", ())) > 1:
                results["action_temporal"] = tagged[
                    joins.ORDERED
                ] | "Temporal order" >> beam.CombineGlobally(
                    MetricCombineFn(TemporalOrderCheck(reversal_pairs=pairs))
                )
        elif name == "caption":
            tagged = joined | "Caption samples" >> beam.ParDo(
                _Route(joins.join_caption)
            ).with_outputs(joins.COUNT, joins.CAPTION, joins.CAPTION_DETAIL)
            errors = (
                CaptionErrorConfig(objects=frozenset(config.objects), derive_objects=False)
                if config.objects
                else CaptionErrorConfig()
            )
            results["caption"] = tagged[joins.CAPTION] | "Captioning" >> beam.CombineGlobally(
                MetricCombineFn(
                    CaptionMetrics(spice=config.spice),
                    CaptionFinish(bootstrap=config.bootstrap, errors=errors),
                )
            )
            results["caption_details"] = tagged[
                joins.CAPTION_DETAIL
            ] | "Caption samples shown" >> beam.combiners.Top.Of(
                config.num_samples, key=_first, reverse=True
            )
        else:
            tagged = joined | "VQA samples" >> beam.ParDo(_Route(joins.join_vqa)).with_outputs(
                joins.COUNT, joins.ANSWER, joins.ANSWER_DETAIL, joins.CORRECT
            )
            results["vqa"] = tagged[joins.ANSWER] | "VQA accuracy" >> beam.CombineGlobally(
                MetricCombineFn(VqaAccuracy())
            )
            results["vqa_correct"] = (
                tagged[joins.CORRECT] | "Correct answers" >> beam.combiners.ToList()
            )
            results["vqa_details"] = tagged[
                joins.ANSWER_DETAIL
            ] | "Answers shown" >> beam.combiners.Top.Of(
                config.num_samples, key=_first, reverse=True
            )
        counts.append(tagged[joins.COUNT])
    results["counts"] = (
        counts
        | "All counts" >> beam.Flatten()
        | "Count events" >> beam.combiners.Count.PerElement()
        | "Counts" >> beam.combiners.ToDict()
    )
    results["dead_letters"] = (
        {
            "truth": manifest,
            "dead_letters": _read(
                pipeline,
                "Read dead letters",
                [uri for task in plan.tasks for uri in task.error_uris],
            )
            | "Key dead letters" >> beam.Map(_keyed),
        }
        | "Join dead letters to the manifest" >> beam.CoGroupByKey()
        | "Dead letters of evaluated videos" >> beam.FlatMap(joins.join_dead_letters)
        | "Count dead letters"
        >> beam.CombineGlobally(DeadLetterCombineFn(config.num_dead_letter_examples))
    )
    _ = (
        pipeline
        | "Report" >> beam.Create([None])
        | "Write report"
        >> beam.Map(
            write_evaluation,
            facts=facts,
            **{name: AsSingleton(result) for name, result in results.items()},
        )
    )


def write_evaluation(_: Any, *, facts: ReportFacts, **results: Any) -> str:
    """Assembles, checks and writes the report (report.json and report.html); returns its path."""
    sections: dict[str, dict[str, Any] | None] = {}
    if "action" in facts.tasks:
        action = facts.tasks["action"]
        sections["action"] = action_section(
            model_id=action["model_id"],
            class_names=action["class_names"],
            single=results["action_single"],
            multi=results.get("action_multi"),
            temporal=results.get("action_temporal"),
            details=results["action_details"],
        )
    if "caption" in facts.tasks:
        sections["caption"] = caption_section(
            model_id=facts.tasks["caption"]["model_id"],
            result=results["caption"],
            details=results["caption_details"],
        )
    if "vqa" in facts.tasks:
        sections["vqa"] = vqa_section(
            model_id=facts.tasks["vqa"]["model_id"],
            result=results["vqa"],
            correct=results["vqa_correct"],
            details=results["vqa_details"],
            num_resamples=facts.bootstrap.num_resamples,
            seed=facts.bootstrap.seed,
        )
    events = results["counts"]
    for event in sorted(events):
        if not event.endswith((":evaluated", ":missing")):
            logger.warning("%s: %d", event, events[event])
    dead = results["dead_letters"]
    counts = {
        "videos_in_manifest": facts.videos_in_manifest,
        "videos_evaluated": {task: events.get(f"{task}:evaluated", 0) for task in facts.tasks},
        "dead_letters": dead["count"],
        "dead_letter_examples": dead["examples"],
        "missing_predictions": {task: events.get(f"{task}:missing", 0) for task in facts.tasks},
    }
    requests = frame_requests(sections, max_videos=facts.num_frame_videos)
    frames = decode_requested(requests, decoder=facts.decoder, rotation=facts.rotation)
    strip_private(sections)
    timings = {
        f"infer_{task}": info["infer_s"]
        for task, info in facts.tasks.items()
        if info.get("infer_s") is not None
    }
    timings["evaluate"] = time.time() - facts.started
    report = assemble_report(
        report_id=facts.report_id,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        vidpipe_version=_version(),
        inputs=facts.inputs,
        counts=counts,
        timings_s=timings,
        sections={**sections, "training": facts.training, "ablations": facts.ablations},
    )
    json_path, _ = write_report(report, facts.out_uri, frames=frames)
    return json_path


def run_evaluate(
    config: EvaluateConfig, beam_args: Sequence[str] = (), *, plan: EvaluatePlan | None = None
) -> dict[str, Any]:
    """Runs `vidpipe evaluate` on the runner `beam_args` name; returns the report it wrote."""
    plan = plan or plan_evaluate(config)
    pipeline = make_pipeline(beam_args)
    build_evaluate(pipeline, plan)
    logger.info(
        "evaluating %s on %s",
        ", ".join(task.uri for task in plan.tasks),
        runner_name(pipeline.options),
    )
    pipeline.run().wait_until_finish()
    return read_report(plan.facts.out_uri)
