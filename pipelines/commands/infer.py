"""`vidpipe infer`: stage 2, a trained model over a feature set on Apache Beam, predictions as Parquet."""

from __future__ import annotations

import argparse
import sys

from pipelines.beam_options import add_beam_args, beam_arguments
from pipelines.errors import UsageError
from schemas import FRAME_ORDERS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds `infer`."""
    p = subparsers.add_parser(
        "infer",
        help="run a trained model over a feature set and write predictions (Beam)",
        description=(
            "Read a feature set's Parquet parts, group each video's frames in order, run the model "
            "with Beam's RunInference and write predictions to OUT/part-*.parquet, dead letters "
            "(unreadable files, videos without frames, model failures) to OUT/errors/ and a "
            "summary to OUT/predictions.json. Runs on Beam's in-process FnApiRunner unless Beam "
            "options after `--` name another runner. Exit status: 0 every video has predictions, "
            "1 some became dead letters, 2 bad arguments."
        ),
    )
    p.add_argument("--features", required=True, help="the feature set: ROOT/features/<id>")
    p.add_argument("--model", required=True, help="the trained model: ROOT/models/<id>")
    p.add_argument("--out", required=True, help="predictions folder: ROOT/predictions/<name>")
    p.add_argument(
        "--frame-orders",
        default="original",
        help=f"comma-separated frame orders to predict on, from {','.join(FRAME_ORDERS)}; "
        "reversed and shuffled feed the temporal-order check (default: original)",
    )
    p.add_argument("--batch-size", type=int, default=16, help="videos per model call (default: 16)")
    p.add_argument(
        "--top-k", type=int, default=5, help="labels kept per action prediction (default: 5)"
    )
    p.add_argument(
        "--manifest", default=None, help="manifest holding the questions (VQA models only)"
    )
    p.add_argument(
        "--beam-size",
        type=int,
        default=1,
        help="caption decoding: 1 is greedy, more is beam search (default: 1)",
    )
    p.add_argument(
        "--max-length", type=int, default=20, help="caption decoding: most words (default: 20)"
    )
    p.add_argument(
        "--length-penalty",
        type=float,
        default=0.0,
        help="caption beam search: GNMT length penalty alpha (default: 0)",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace predictions already in --out")
    add_beam_args(p)
    p.set_defaults(func=_infer)


def _infer(args: argparse.Namespace) -> int:
    from pipelines.inference import DecodingConfig, InferConfig, plan_infer, run_infer

    try:
        config = InferConfig(
            features=args.features,
            model=args.model,
            out=args.out,
            frame_orders=tuple(o.strip() for o in args.frame_orders.split(",") if o.strip()),
            batch_size=args.batch_size,
            top_k=args.top_k,
            manifest=args.manifest,
            decoding=DecodingConfig(
                beam_size=args.beam_size,
                max_length=args.max_length,
                length_penalty=args.length_penalty,
            ),
            device=args.device,
            overwrite=args.overwrite,
        )
        plan = plan_infer(config)
    except (ValueError, FileNotFoundError) as error:
        raise UsageError(str(error).splitlines()[0]) from error
    summary = run_infer(config, beam_arguments(args.beam_args), plan=plan)
    print(
        f"{summary['num_predictions']} {summary['task']} predictions for "
        f"{summary['num_videos']} videos by {summary['model_id']} in {args.out} "
        f"({summary['runner']}, {summary['timings_s']['pipeline']:.1f} s)"
    )
    if summary["num_dead_letters"]:
        print(
            f"{summary['num_dead_letters']} dead letters in {args.out}/errors/: "
            + ", ".join(f"{n} {kind}" for kind, n in summary["num_dead_letters_by_type"].items()),
            file=sys.stderr,
        )
        return 1
    return 0
