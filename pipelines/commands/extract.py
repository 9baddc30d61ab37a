"""`vidpipe extract`: stage 1, per-frame CNN features of a manifest's videos into the feature store."""

from __future__ import annotations

import argparse
import sys

from pipelines.errors import UsageError
from schemas import ManifestError
from workers.extract_config import DECODERS, DTYPES, PRECISIONS, ROTATIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds `extract`."""
    p = subparsers.add_parser(
        "extract",
        help="decode videos and store per-frame CNN features (Ray)",
        description=(
            "Decode the manifest's videos, sample frames, run a CNN and write per-frame features "
            "to ROOT/features/<feature_set_id>/. Videos already committed are skipped, so a killed "
            "run resumes where it stopped. Exit status: 0 all videos have features, 1 some videos "
            "failed (see the feature set's errors/), 2 bad arguments or manifest."
        ),
    )
    p.add_argument("--manifest", required=True, help="manifest (.parquet, .jsonl or .csv)")
    p.add_argument("--out", required=True, help="store root: a folder or fsspec URL")
    p.add_argument(
        "--sampling",
        default="uniform:8",
        help="uniform:K | segments:S,L | fps:R | stride:N | all (default: uniform:8)",
    )
    p.add_argument(
        "--backbone",
        default="resnet18",
        help="resnet18|34|50, mobilenet_v3_small|large, efficientnet_b0, vgg16 (fc7), "
        "vit_b_16 (class token), small_cnn, small_cnn_grid (default: resnet18)",
    )
    p.add_argument(
        "--weights",
        default="none",
        help="none (seeded random init), a torchvision weights name (IMAGENET1K_V1, DEFAULT) "
        "cached under TORCH_HOME, or a .safetensors/.pt state dict path or URL",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of random weights (default: 0)")
    p.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="crop size in pixels (default: the weights' own, else 224)",
    )
    p.add_argument("--streams", default="rgb", help="rgb, flow or rgb,flow (default: rgb)")
    p.add_argument(
        "--decoder",
        default="auto",
        choices=DECODERS,
        help="auto: decord, then PyAV where decord fails (default: auto)",
    )
    p.add_argument(
        "--rotation",
        default="apply",
        choices=ROTATIONS,
        help="apply or ignore rotation tags (default: apply)",
    )
    p.add_argument(
        "--dtype", default="float32", choices=DTYPES, help="stored feature type (default: float32)"
    )
    p.add_argument(
        "--precision", default="fp32", choices=PRECISIONS, help="compute precision (default: fp32)"
    )
    p.add_argument(
        "--spatial-map", action="store_true", help="also store the last spatial feature map"
    )
    p.add_argument("--batch-size", type=int, default=8, help="videos per CNN call (default: 8)")
    p.add_argument("--concurrency", type=int, default=1, help="CNN actors (default: 1)")
    p.add_argument(
        "--num-decoders",
        type=int,
        default=None,
        help="decoding actors (default: one per CPU; with GPUs, the CPUs the model actors leave)",
    )
    p.add_argument(
        "--num-gpus-per-worker",
        type=float,
        default=None,
        help="GPUs per CNN actor (default: 1 when the cluster has GPUs, else 0)",
    )
    p.add_argument(
        "--decode-timeout", type=float, default=120.0, help="seconds per video (default: 120)"
    )
    p.add_argument(
        "--ray-address", default=None, help="join this Ray cluster instead of starting one"
    )
    p.add_argument("--splits", default=None, help="only these splits, e.g. train,val")
    p.add_argument("--limit", type=int, default=None, help="only the first N selected videos")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_extract)


def config_from_args(args: argparse.Namespace):
    """The ExtractConfig the flags ask for; ValueError names a bad value."""
    from workers.extract_config import ExtractConfig

    return ExtractConfig(
        manifest=args.manifest,
        root=args.out,
        sampling=args.sampling,
        backbone=args.backbone,
        weights=args.weights,
        seed=args.seed,
        input_size=args.input_size,
        streams=tuple(s.strip() for s in args.streams.split(",") if s.strip()),
        decoder=args.decoder,
        rotation=args.rotation,
        dtype=args.dtype,
        precision=args.precision,
        spatial_map=args.spatial_map,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        num_decoders=args.num_decoders,
        num_gpus_per_worker=args.num_gpus_per_worker,
        decode_timeout_s=args.decode_timeout,
        ray_address=args.ray_address,
        splits=tuple(args.splits.split(",")) if args.splits else None,
        limit=args.limit,
        progress=not args.no_progress,
    )


def plan_from_args(args: argparse.Namespace):
    """The checked ExtractPlan of the flags; a user's mistake becomes a UsageError."""
    from workers.extract import plan_extract

    try:
        return plan_extract(config_from_args(args))
    except (ValueError, FileNotFoundError) as error:
        message = str(error).splitlines()[0] if not isinstance(error, ManifestError) else str(error)
        raise UsageError(message) from error


def _extract(args: argparse.Namespace) -> int:
    from workers.extract import run_extract

    summary = run_extract(plan_from_args(args))
    print(f"feature set {summary.feature_set_id} at {summary.feature_set_uri}")
    print(
        f"{summary.num_selected} videos: {summary.num_extracted} extracted now, "
        f"{summary.num_already_done} already committed, {summary.num_failed_total} failed "
        f"({summary.num_frames} frames in {summary.elapsed_s:.1f} s, "
        f"{summary.frames_per_second:.1f} frames/s)"
    )
    if summary.num_failed_total:
        print(
            f"{summary.num_failed_total} of {summary.num_selected} videos failed; "
            f"see `vidpipe features show {args.out} {summary.feature_set_id}`",
            file=sys.stderr,
        )
        return 1
    return 0
