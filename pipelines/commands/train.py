"""`vidpipe train`: train a model of the zoo on a feature set and write its model folder."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from pipelines.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds `train`."""
    p = subparsers.add_parser(
        "train",
        help="train a temporal model on stored features and write ROOT/models/<id>/",
        description=(
            "Train a model of the zoo on a feature set (or, for r3d, cnn_rnn and --multistage, on "
            "frames decoded again the way that feature set was made), stop early on the "
            "validation split, score the test split and write the model folder: "
            "model.safetensors, model.json (written last), train_config.json, "
            "training_log.jsonl (one line per epoch) and state/ (for --resume). Seeded and "
            "deterministic on CPU; mixed precision on CUDA. Exit status: 0 trained, 2 bad "
            "arguments, missing feature set or manifest (nothing written)."
        ),
    )
    p.add_argument("--task", required=True, choices=sorted(TASKS), help="what the model does")
    p.add_argument(
        "--model", required=True, help="model of the zoo, e.g. lstm, gru, two_stream, r3d"
    )
    p.add_argument("--features", default=None, help="feature set folder: ROOT/features/<id>")
    p.add_argument("--manifest", required=True, help="manifest with labels and splits")
    p.add_argument("--out", required=True, help="model folder to write: ROOT/models/<id>")
    p.add_argument("--epochs", type=int, default=40, help="most epochs to train (default: 40)")
    p.add_argument("--batch-size", type=int, default=32, help="videos per batch (default: 32)")
    p.add_argument("--lr", type=float, default=3e-3, help="learning rate of AdamW (default: 3e-3)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
    p.add_argument("--seed", type=int, default=0, help="seed of weights and batches (default: 0)")
    p.add_argument(
        "--patience",
        type=int,
        default=10,
        help="stop after this many epochs without a lower validation loss; 0: never (default: 10)",
    )
    p.add_argument("--resume", action="store_true", help="continue the unfinished run in --out")
    p.add_argument(
        "--device", default="cpu", help="cpu, cuda or cuda:N; CUDA trains in mixed precision"
    )
    p.add_argument("--no-amp", action="store_true", help="full precision on CUDA too")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--stream", default="rgb", help="stream a single-stream model reads: rgb or flow"
    )
    p.add_argument(
        "--spatial",
        action="store_true",
        help="feature models read the flattened spatial maps (extract with --spatial-map)",
    )
    p.add_argument(
        "--multi-label", action="store_true", help="learn the manifest's labels (sigmoid, BCE)"
    )
    p.add_argument(
        "--model-config",
        default="{}",
        help="JSON overriding zoo config fields, e.g. '{\"hidden_dim\": 64}'",
    )
    p.add_argument(
        "--temporal-jitter",
        type=float,
        default=None,
        help="train on random runs of consecutive frames keeping at least this fraction "
        "(e.g. 0.5); default: whole videos",
    )
    p.add_argument(
        "--standardize",
        default="",
        help="streams whose features are standardised while training, e.g. flow or rgb,flow; "
        "folded into the model's first layer, so it still takes raw features (default: none)",
    )
    p.add_argument(
        "--sampling", default=None, help="pixel models without --features: frame sampling"
    )
    p.add_argument(
        "--input-size", type=int, default=None, help="pixel models without --features: frame size"
    )
    p.add_argument(
        "--multistage",
        action="store_true",
        help="pretrain the small_cnn backbone on frames, train the temporal model on its frozen "
        "features, fine-tune end to end; writes small_cnn.safetensors beside the model",
    )
    p.add_argument(
        "--pretrain-epochs", type=int, default=24, help="multi-stage pretraining epochs (24)"
    )
    p.add_argument(
        "--pretrain-attribute-weight",
        type=float,
        default=1.0,
        help="multi-stage pretraining: weight of the attribute heads (tags of the manifest's "
        "labels, the count answer) beside the frame-pair objective; 0: pairs only (1.0)",
    )
    p.add_argument(
        "--finetune-epochs", type=int, default=3, help="multi-stage fine-tuning epochs (3)"
    )
    p.add_argument(
        "--finetune-lr", type=float, default=3e-4, help="multi-stage fine-tuning rate (3e-4)"
    )
    language = p.add_argument_group("caption and vqa")
    language.add_argument(
        "--streams",
        default=None,
        help="feature streams concatenated per frame: rgb, flow or rgb,flow "
        "(default: every stream of the feature set)",
    )
    language.add_argument(
        "--beam-size", type=int, default=3, help="caption: beam of test decoding (default: 3)"
    )
    language.add_argument(
        "--length-penalty", type=float, default=0.0, help="caption: GNMT length penalty α (0)"
    )
    language.add_argument(
        "--curriculum",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="caption: short captions first, all of them from mid-training (default: on)",
    )
    language.add_argument(
        "--attention-penalty",
        type=float,
        default=0.1,
        help="caption: weight of the doubly-stochastic attention penalty (default: 0.1)",
    )
    language.add_argument(
        "--scst-epochs",
        type=int,
        default=0,
        help="caption: self-critical (CIDEr-D) fine-tuning epochs after cross-entropy (0)",
    )
    language.add_argument(
        "--scst-lr", type=float, default=5e-5, help="caption: SCST learning rate (5e-5)"
    )
    language.add_argument(
        "--scst-samples", type=int, default=5, help="caption: sampled captions per video (5)"
    )
    language.add_argument(
        "--scst-baseline",
        choices=("greedy", "mean"),
        default="greedy",
        help="caption: SCST baseline, the greedy caption's reward or the mean of the video's "
        "other samples (greedy)",
    )
    language.add_argument(
        "--multitask-action-weight",
        type=float,
        default=0.5,
        help="caption_multitask: weight of the action loss (default: 0.5)",
    )
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    if args.threads is not None:
        if args.threads <= 0:
            raise UsageError(f"--threads ({args.threads}) must be > 0")
        import torch

        torch.set_num_threads(args.threads)
    return TASKS[args.task](args)


def _train_action(args: argparse.Namespace) -> int:
    from pipelines.training import action
    from pipelines.training.common import shared_fields
    from pipelines.training.multistage import PretrainConfig
    from schemas import ManifestError

    try:
        model_config = json.loads(args.model_config)
    except json.JSONDecodeError as error:
        raise UsageError(f"--model-config is not JSON: {error}") from error
    if not isinstance(model_config, dict):
        raise UsageError(f"--model-config must be a JSON object, got {args.model_config!r}")
    try:
        config = action.ActionTrainConfig(
            **shared_fields(args),
            stream=args.stream,
            spatial=args.spatial,
            multi_label=args.multi_label,
            model_config=model_config,
            temporal_jitter=args.temporal_jitter,
            standardize=tuple(name for name in args.standardize.split(",") if name),
            sampling=args.sampling,
            input_size=args.input_size,
            multistage=args.multistage,
            pretrain=PretrainConfig(
                epochs=args.pretrain_epochs, attribute_weight=args.pretrain_attribute_weight
            ),
            finetune_epochs=args.finetune_epochs,
            finetune_learning_rate=args.finetune_lr,
        )
        checked = action.plan(config)
    except ManifestError as error:
        raise UsageError(str(error)) from error
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise UsageError(str(error).splitlines()[0]) from error
    summary = action.run(checked)
    print(describe(summary))
    return 0


def describe(summary) -> str:  # an ActionSummary
    """Lines for people: where the model is and how it scored on the test split."""
    metrics = summary.test_metrics
    lines = [
        f"model {summary.meta['model']} at {summary.model_uri} "
        f"({summary.num_parameters:,} parameters, {summary.epochs_run} epochs, "
        f"{summary.train_seconds:.1f} s)"
    ]
    if "top_1" in metrics:
        lines.append(f"test: top-1 {metrics['top_1']:.3f} on {metrics['num_videos']} videos")
        for pair in metrics.get("class_pairs", []):
            if pair["num_videos"]:
                lines.append(
                    f"  {pair['classes'][0]}/{pair['classes'][1]}: top-1 "
                    f"{pair['top_1_accuracy']:.3f}, which of the two {pair['two_way_accuracy']:.3f}"
                )
    elif metrics.get("mAP") is not None:
        lines.append(f"test: mAP {metrics['mAP']:.3f} on {metrics['num_videos']} videos")
    backbone = summary.meta["extra"].get("backbone")
    if backbone:
        lines.append(f"features of its backbone: {backbone['extract_command']}")
    return "\n".join(lines)


def _train_caption(args: argparse.Namespace) -> int:
    from pipelines.training import caption

    return _train_language(caption, args)


def _train_vqa(args: argparse.Namespace) -> int:
    from pipelines.training import vqa

    return _train_language(vqa, args)


def _train_language(module, args: argparse.Namespace) -> int:  # pipelines.training.caption|vqa
    """Flags -> config -> checked plan -> training; a user's mistake becomes one line."""
    from schemas import ManifestError

    try:
        checked = module.plan(module.config_from_args(args))
    except ManifestError as error:
        raise UsageError(str(error)) from error
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise UsageError(str(error).splitlines()[0]) from error
    print(module.describe(module.run(checked)))
    return 0


# The one dispatch by task: each entry maps the parsed flags onto its task's config and trains.
TASKS: dict[str, Callable[[argparse.Namespace], int]] = {
    "action": _train_action,
    "caption": _train_caption,
    "vqa": _train_vqa,
}
