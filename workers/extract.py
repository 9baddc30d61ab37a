"""Stage 1 on Ray Data: decode → sample → CNN → feature store, exactly once per video.

`plan_extract` checks everything a user can get wrong (manifest, flags,
weights) and writes nothing; `run_extract` executes a plan. Decoding runs in
an actor pool of CPU workers, the CNN in an actor pool that takes GPUs when
there are any, and Ray Data streams between them with its own back-pressure.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import fsspec
import safetensors.torch

from hybrid_models.backbones import backbone_spec, preprocessing_for
from hybrid_models.weights import load_weights
from schemas import FeatureSetSpec, read_manifest, resolve_uri
from schemas import columns as c
from workers import store
from workers.extract_config import ExtractConfig
from workers.flow import FlowConfig
from workers.progress import ExtractProgress
from workers.sampling import parse_sampling
from workers.stages import OK, DecodeSettings, DecodeStage, EmbedSettings, EmbedStage

log = logging.getLogger(__name__)


def read_weights(uri: str) -> bytes:
    """The bytes of a weights file at a local path or fsspec URL."""
    with fsspec.open(uri, "rb") as f:
        return f.read()


@dataclass(frozen=True)
class ExtractPlan:
    config: ExtractConfig
    spec: FeatureSetSpec
    feature_dim: int
    spatial_shape: tuple[int, int, int] | None
    feature_set_uri: str
    videos: list[dict] = field(repr=False)  # {video_id, uri} for every selected manifest row
    weights_bytes: bytes | None = field(repr=False)


@dataclass(frozen=True)
class ExtractSummary:
    feature_set_id: str
    feature_set_uri: str
    num_selected: int  # videos of the manifest this run covers
    num_already_done: int  # committed before this run (features or error row)
    num_extracted: int  # newly committed with features
    num_failed: int  # newly committed as error rows
    num_failed_total: int  # error rows for the selected videos, old and new
    num_frames: int  # frames embedded by this run (all streams)
    elapsed_s: float

    @property
    def frames_per_second(self) -> float:
        return self.num_frames / self.elapsed_s if self.elapsed_s > 0 else 0.0


def plan_extract(config: ExtractConfig) -> ExtractPlan:
    """Everything the run needs, checked up front; raises ValueError/ManifestError/FileNotFoundError."""
    sampling = parse_sampling(config.sampling)
    spec_of_backbone = backbone_spec(config.backbone)  # ValueError for an unknown name
    manifest = read_manifest(config.manifest)
    rows = manifest.select([c.VIDEO_ID, c.URI, c.SPLIT]).to_pylist()
    if config.splits is not None:
        rows = [r for r in rows if r[c.SPLIT] in config.splits]
    if config.limit is not None:
        rows = rows[: config.limit]
    videos = [
        {c.VIDEO_ID: r[c.VIDEO_ID], c.URI: resolve_uri(r[c.URI], config.manifest)} for r in rows
    ]

    loaded = load_weights(config.backbone, config.weights, read_bytes=read_weights)
    preprocessing = preprocessing_for(spec_of_backbone, loaded, config.input_size)
    spec_of_backbone.check_input_size(preprocessing.crop_size)
    flow = FlowConfig() if "flow" in config.streams else None
    digest = loaded.digest if loaded is not None else f"init-seed:{config.seed}"
    spec = FeatureSetSpec(
        backbone=config.backbone,
        weights=config.weights,
        weights_digest=digest,
        input_size=preprocessing.crop_size,
        resize_size=preprocessing.resize_size,
        mean=tuple(preprocessing.mean),
        std=tuple(preprocessing.std),
        sampling=str(sampling),
        streams=tuple(config.streams),
        flow=flow.describe() if flow else None,
        decoder=config.decoder,
        rotation=config.rotation,
        dtype=config.dtype,
        precision=config.precision,
        spatial_map=config.spatial_map,
    )
    weights_bytes = None
    if loaded is not None:
        weights_bytes = safetensors.torch.save(
            {k: v.contiguous() for k, v in loaded.state_dict.items()}
        )
    return ExtractPlan(
        config=config,
        spec=spec,
        feature_dim=spec_of_backbone.feature_dim,
        spatial_shape=spec_of_backbone.spatial_map_shape(spec.input_size)
        if config.spatial_map
        else None,
        feature_set_uri=store.feature_set_uri(config.root, spec.feature_set_id),
        videos=videos,
        weights_bytes=weights_bytes,
    )


def run_extract(plan: ExtractPlan) -> ExtractSummary:
    """Extract the plan's videos that are not committed yet; a second run does nothing."""
    started = time.monotonic()
    record = store.create_or_open_feature_set(
        plan.feature_set_uri,
        plan.spec,
        feature_dim=plan.feature_dim,
        spatial_shape=plan.spatial_shape,
    )
    removed = store.clean_temporaries(plan.feature_set_uri)
    if removed:
        log.info("removed %d temporary files left by an interrupted run", removed)
    done, failed = store.committed_video_ids(plan.feature_set_uri)
    todo = [v for v in plan.videos if v[c.VIDEO_ID] not in done and v[c.VIDEO_ID] not in failed]
    selected_ids = {v[c.VIDEO_ID] for v in plan.videos}
    already = len(selected_ids & (done | failed))
    log.info(
        "%d videos selected, %d already committed, %d to do", len(plan.videos), already, len(todo)
    )
    num_extracted = num_failed = num_frames = 0
    if todo:
        num_extracted, num_failed, num_frames = _run_on_ray(plan, record, todo)
    return ExtractSummary(
        feature_set_id=plan.spec.feature_set_id,
        feature_set_uri=plan.feature_set_uri,
        num_selected=len(plan.videos),
        num_already_done=already,
        num_extracted=num_extracted,
        num_failed=num_failed,
        num_failed_total=len(selected_ids & failed) + num_failed,
        num_frames=num_frames,
        elapsed_s=time.monotonic() - started,
    )


def model_actor_cpus(gpus_per_actor: float) -> int:
    """Logical CPUs a model actor asks Ray for.

    On CPU none: the model's threads share the cores with the decoders and the OS balances the
    two. When decoding is the heavier work (long videos) every core decodes; when the model is,
    back-pressure idles the decoders. Measured on 2 cores with 60-s videos, one decoder beside a
    model actor that held the other core capped the job at one core's decode rate. With a GPU,
    a model actor holds one core to feed it.
    """
    return 1 if gpus_per_actor > 0 else 0


def default_decoders(num_cpus: int, concurrency: int, gpus_per_actor: float) -> int:
    """Decode actors when `--num-decoders` is not given: the CPUs the model actors leave."""
    return max(1, num_cpus - model_actor_cpus(gpus_per_actor) * concurrency)


def _run_on_ray(plan: ExtractPlan, record: dict, todo: list[dict]) -> tuple[int, int, int]:
    # Before Ray Data is imported: it reads this logging config (console at WARNING).
    os.environ.setdefault(
        "RAY_DATA_LOGGING_CONFIG", str(Path(__file__).with_name("ray_data_logging.yaml"))
    )
    import ray  # imported here: planning, listing and re-runs with nothing to do need no Ray

    config = plan.config
    started_here = not ray.is_initialized()
    if started_here:
        _init_ray(config)
    try:
        resources = ray.cluster_resources()
        num_cpus = int(resources.get("CPU", 1))
        has_gpu = resources.get("GPU", 0) > 0
        gpus = (
            config.num_gpus_per_worker
            if config.num_gpus_per_worker is not None
            else (1.0 if has_gpu else 0.0)
        )
        if gpus > 0 and not has_gpu:
            raise ValueError(
                f"num_gpus_per_worker {gpus} was asked for but the Ray cluster has no GPU"
            )
        model_cpus = model_actor_cpus(gpus)
        num_decoders = config.num_decoders or default_decoders(num_cpus, config.concurrency, gpus)
        decode_settings = DecodeSettings(
            sampling=plan.spec.sampling,
            decoder=config.decoder,
            rotation=config.rotation,
            resize_size=plan.spec.resize_size,
            input_size=plan.spec.input_size,
            with_flow="flow" in plan.spec.streams,
            timeout_s=config.decode_timeout_s,
            flow=FlowConfig() if "flow" in plan.spec.streams else None,
        )
        embed_settings = EmbedSettings(
            feature_set_uri=plan.feature_set_uri,
            spec=plan.spec.to_json(),
            lineage=record,
            seed=config.seed,
            device="cuda" if gpus > 0 else "cpu",
            # On CPU the model shares the machine with the decoders; threads beyond the
            # cores it can expect would only contend.
            num_threads=max(1, num_cpus // config.concurrency) if gpus == 0 else 2,
        )
        dataset = ray.data.from_items(
            todo, override_num_blocks=max(1, min(len(todo), 4 * num_decoders))
        )
        dataset = dataset.map_batches(
            DecodeStage,
            fn_constructor_kwargs={"settings": decode_settings},
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=num_decoders),
            num_cpus=1,
        )
        dataset = dataset.map_batches(
            EmbedStage,
            # By value: Ray Data stores constructor arguments in the object store itself, and
            # does not resolve an ObjectRef nested in them.
            fn_constructor_kwargs={"settings": embed_settings, "weights": plan.weights_bytes},
            batch_size=config.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=config.concurrency),
            num_cpus=model_cpus,
            num_gpus=gpus,
        )
        progress = ExtractProgress(len(todo), enabled=config.progress)
        extracted = failed = frames = 0
        try:
            for row in dataset.iter_rows():
                ok = bool(row[OK])
                extracted += ok
                failed += not ok
                frames += int(row["num_frames"]) * len(plan.spec.streams)
                progress.update(num_frames=int(row["num_frames"]), failed=not ok)
                if not ok:
                    log.warning(
                        "%s failed: %s: %s", row[c.VIDEO_ID], row[c.ERROR_TYPE], row[c.MESSAGE]
                    )
        finally:
            progress.close()
        return extracted, failed, frames
    finally:
        if started_here:
            ray.shutdown()


def _init_ray(config: ExtractConfig) -> None:
    import ray

    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if config.ray_address:
        # A cluster runs the driver's own copy of vidpipe's packages, whatever its nodes have installed.
        import hybrid_models
        import schemas
        import workers

        kwargs["runtime_env"] = {"py_modules": [schemas, hybrid_models, workers]}
        ray.init(address=config.ray_address, **kwargs)
    else:
        # "local" starts a fresh Ray even where `ray start` left a cluster running:
        # joining one is what --ray-address is for.
        ray.init(address="local", **kwargs)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = False
    log.info("ray: %s", ray.cluster_resources())
