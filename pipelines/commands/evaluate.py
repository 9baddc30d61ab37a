"""`vidpipe evaluate`: stage 2, predictions joined to a manifest on Apache Beam, one report."""

from __future__ import annotations

import argparse

from pipelines.beam_options import add_beam_args, beam_arguments
from pipelines.errors import UsageError
from schemas import SPLITS, ManifestError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds `evaluate`."""
    p = subparsers.add_parser(
        "evaluate",
        help="score predictions against a manifest and write report.json and report.html (Beam)",
        description=(
            "Join each predictions folder to the manifest's ground truth, compute the metrics of "
            "its task (action, caption, vqa) with Beam combiners and write OUT/report.json and "
            "OUT/report.html. Dead letters of inference and videos without predictions are "
            "counted in the report. Runs on Beam's in-process FnApiRunner unless Beam options "
            "after `--` name another runner. Exit status: 0 report written, 2 bad arguments."
        ),
    )
    p.add_argument(
        "--predictions",
        required=True,
        help="comma-separated predictions folders (ROOT/predictions/<name>), one per task",
    )
    p.add_argument("--manifest", required=True, help="manifest with the ground truth")
    p.add_argument(
        "--out",
        required=True,
        help="report folder ROOT/reports/<report_id>; its name is the report id",
    )
    p.add_argument(
        "--features",
        default=None,
        help="feature set whose lineage the report shows (default: the predictions' own)",
    )
    p.add_argument(
        "--splits",
        default="test",
        help=f"comma-separated manifest splits to evaluate, from {','.join(SPLITS)} "
        "(default: test)",
    )
    p.add_argument(
        "--bootstrap-resamples",
        type=int,
        default=1000,
        help="resamples of the bootstrap 95%% confidence intervals (default: 1000)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    p.add_argument(
        "--num-samples",
        type=int,
        default=10,
        help="captions and answers shown in the report (default: 10)",
    )
    p.add_argument(
        "--objects",
        default=None,
        help="caption error analysis: comma-separated object words, or `synthetic` for the "
        "synthetic dataset's shapes (default: words after colour/size words in the references)",
    )
    p.add_argument(
        "--no-spice",
        action="store_true",
        help="do not run SPICE even where its jars are installed (it is then marked unavailable)",
    )
    add_beam_args(p)
    p.set_defaults(func=_evaluate)


def _objects(text: str | None) -> tuple[str, ...] | None:
    from pipelines.evaluation import SYNTHETIC_OBJECTS

    if text is None:
        return None
    if text.strip() == "synthetic":
        return SYNTHETIC_OBJECTS
    words = tuple(word.strip() for word in text.split(",") if word.strip())
    if not words:
        raise UsageError(f"--objects {text!r} names no word")
    return words


def _evaluate(args: argparse.Namespace) -> int:
    from pipelines.evaluation import BootstrapConfig, EvaluateConfig, plan_evaluate, run_evaluate

    try:
        config = EvaluateConfig(
            predictions=tuple(p.strip() for p in args.predictions.split(",") if p.strip()),
            manifest=args.manifest,
            out=args.out,
            features=args.features,
            splits=tuple(s.strip() for s in args.splits.split(",") if s.strip()),
            bootstrap=BootstrapConfig(num_resamples=args.bootstrap_resamples, seed=args.seed),
            num_samples=args.num_samples,
            spice=not args.no_spice,
            objects=_objects(args.objects),
        )
        plan = plan_evaluate(config)
    except ManifestError as error:
        raise UsageError(str(error)) from error
    except (ValueError, FileNotFoundError) as error:
        raise UsageError(str(error).splitlines()[0]) from error
    report = run_evaluate(config, beam_arguments(args.beam_args), plan=plan)
    counts = report["counts"]
    evaluated = ", ".join(f"{n} {task}" for task, n in counts["videos_evaluated"].items())
    missing = sum(counts["missing_predictions"].values())
    print(
        f"report {report['report_id']} in {args.out}: {evaluated} videos evaluated of "
        f"{counts['videos_in_manifest']}, {missing} without predictions, "
        f"{counts['dead_letters']} dead letters"
    )
    for task in ("action", "caption", "vqa"):
        section = report.get(task)
        if section is not None:
            shown = ", ".join(
                f"{name} {value:.4f}"
                for name, value in section["metrics"].items()
                if isinstance(value, float)
            )
            print(f"{task} ({section['model_id']}): {shown}")
    return 0
