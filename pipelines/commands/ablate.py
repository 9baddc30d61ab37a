"""`vidpipe ablate CONFIG`: train the variants of a TOML file on the same data, write a table."""

from __future__ import annotations

import argparse

from pipelines.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds `ablate`."""
    p = subparsers.add_parser(
        "ablate",
        help="train model variants on the same data and write a comparison table",
        description=(
            "Train every [[variants]] entry of a TOML file (model, feature set, settings) on the "
            "same manifest and splits, score each on the test split, and write "
            "OUT/ablations.json ({columns, rows}) and OUT/ablations.md; each variant's model "
            "folder goes to OUT/models/<variant>/. Variants already trained there are read back, "
            "so a stopped ablation continues. Exit status: 0 done, 2 bad config or arguments."
        ),
    )
    p.add_argument("config", help="ablation TOML file (see pipelines/jobs/action_ablations.toml)")
    p.add_argument("--manifest", default=None, help="manifest (overrides the file's)")
    p.add_argument("--out", default=None, help="output folder (overrides the file's)")
    p.add_argument(
        "--feature-set",
        action="append",
        default=[],
        metavar="NAME=URI",
        help="the folder of a feature set the variants name (repeatable; overrides the file)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--progress", action="store_true", help="progress bars while training")
    p.set_defaults(func=_ablate)


def _ablate(args: argparse.Namespace) -> int:
    from pipelines.training import ablations
    from schemas import ManifestError

    feature_sets = {}
    for item in args.feature_set:
        name, sep, uri = item.partition("=")
        if not sep or not name or not uri:
            raise UsageError(f"--feature-set {item!r} must be NAME=URI")
        feature_sets[name] = uri
    if args.threads is not None:
        if args.threads <= 0:
            raise UsageError(f"--threads ({args.threads}) must be > 0")
        import torch

        torch.set_num_threads(args.threads)
    try:
        config = ablations.load_config(
            args.config,
            manifest=args.manifest,
            out=args.out,
            feature_sets=feature_sets,
            device=args.device,
            progress=args.progress,
        )
        ablations.plan_ablation(config)
    except ManifestError as error:
        raise UsageError(str(error)) from error
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise UsageError(str(error).splitlines()[0]) from error
    table = ablations.run_ablation(config)
    print(ablations.table_markdown(table), end="")
    print(f"wrote {config.out.rstrip('/')}/{ablations.TABLE_JSON} and {ablations.TABLE_MARKDOWN}")
    return 0
