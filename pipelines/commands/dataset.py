"""`vidpipe dataset synth|import|validate`: make, import and check manifests."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines.errors import UsageError
from schemas import ManifestError, read_manifest_unvalidated, validate_manifest


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds `dataset` and its three subcommands."""
    parser = subparsers.add_parser("dataset", help="make, import and validate video manifests")
    commands = parser.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND", required=True)

    synth = commands.add_parser(
        "synth", help="generate a synthetic dataset of encoded videos and its manifest"
    )
    synth.add_argument(
        "--out", required=True, help="folder to write videos/ and manifest.parquet into"
    )
    synth.add_argument("--num-videos", type=int, required=True, help="number of videos to generate")
    synth.add_argument(
        "--seed", type=int, default=0, help="seed: the same seed gives the same dataset"
    )
    synth.add_argument(
        "--size", type=int, default=64, help="frame width and height in pixels (even, >= 32)"
    )
    synth.add_argument("--fps", type=float, default=12.0, help="frames per second")
    synth.add_argument("--duration", type=float, default=2.0, help="video length in seconds")
    synth.add_argument(
        "--codec",
        default="h264",
        help="codec: h264 (MP4), mpeg4 (MP4), vp9 (WebM), av1 (MP4), mjpeg (AVI)",
    )
    synth.add_argument(
        "--overwrite", action="store_true", help="replace a dataset already in --out"
    )
    synth.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes that encode videos (default: one per 64 videos, at most one per CPU); "
        "the output does not depend on it",
    )
    synth.set_defaults(func=_synth)

    imp = commands.add_parser(
        "import", help="convert a public dataset's annotation files into a manifest"
    )
    imp.add_argument(
        "format",
        help="ucf101, hmdb51, kinetics, charades, msvd, msrvtt, msvd-qa or msrvtt-qa",
    )
    imp.add_argument("src", help="the annotation file or folder, as published")
    imp.add_argument("--out", required=True, help="manifest to write (.parquet)")
    imp.add_argument(
        "--video-root",
        default="videos",
        help="folder or URL holding the videos in the dataset's own layout; a relative one is "
        "taken from the manifest's folder (default: videos)",
    )
    imp.add_argument(
        "--split-number",
        type=int,
        default=None,
        help="which official split to use, 1-3 (ucf101, hmdb51; default 1)",
    )
    imp.add_argument(
        "--val-groups",
        type=int,
        default=None,
        help="ucf101: hold out the N highest-numbered training groups as val, so that no "
        "group straddles splits (default 0: no val)",
    )
    imp.set_defaults(func=_import)

    validate = commands.add_parser("validate", help="print every problem of a manifest")
    validate.add_argument("manifest", help="manifest file (.parquet, .jsonl or .csv)")
    validate.set_defaults(func=_validate)


def _synth(args: argparse.Namespace) -> int:
    from pipelines.datasets.synth import SynthConfig, generate_dataset

    try:
        config = SynthConfig(
            num_videos=args.num_videos,
            seed=args.seed,
            size=args.size,
            fps=args.fps,
            duration_s=args.duration,
            codec=args.codec,
        )
    except ValueError as error:
        raise UsageError(str(error)) from error
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers ({args.workers}) must be >= 1")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder")
    if (out / "manifest.parquet").exists() and not args.overwrite:
        raise UsageError(f"{out} already holds a dataset; pass --overwrite to replace it")
    try:
        summary = generate_dataset(config, out, num_workers=args.workers)
    except OSError as error:
        raise UsageError(f"cannot write the dataset to {out}: {error}") from error
    print(summary.describe())
    return 0


def _import(args: argparse.Namespace) -> int:
    from pipelines.datasets.importers import IMPORTERS, import_dataset
    from schemas import write_manifest

    if args.format not in IMPORTERS:
        raise UsageError(f"unknown format {args.format!r}; expected one of {', '.join(IMPORTERS)}")
    if not args.out.endswith(".parquet"):
        raise UsageError(f"--out {args.out!r} must end with .parquet")
    if not Path(args.src).exists():
        raise UsageError(f"{args.src} does not exist")
    try:
        table = import_dataset(
            args.format,
            Path(args.src),
            video_root=args.video_root,
            split_number=args.split_number,
            val_groups=args.val_groups,
        )
    except (ValueError, OSError) as error:
        raise UsageError(f"cannot import {args.src} as {args.format}: {error}") from error
    problems = validate_manifest(table)
    if problems:
        raise UsageError(f"imported manifest is invalid: {problems[0]} ({len(problems)} problems)")
    try:
        write_manifest(table, args.out)
    except OSError as error:
        raise UsageError(f"cannot write {args.out}: {error}") from error
    print(f"wrote {table.num_rows} videos to {args.out}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    try:
        table = read_manifest_unvalidated(args.manifest)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from error
    except ManifestError as error:
        raise UsageError(str(error)) from error
    problems = validate_manifest(table)
    for problem in problems:
        print(f"{args.manifest}: {problem}")
    if problems:
        print(f"{len(problems)} problems in {table.num_rows} rows", file=sys.stderr)
        return 2
    print(f"{args.manifest}: valid, {table.num_rows} videos")
    return 0
