"""`vidpipe features list|show`: what the feature store holds and how it was made."""

from __future__ import annotations

import argparse
import json

from pipelines.errors import UsageError
from workers import store


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds `features list` and `features show`."""
    parser = subparsers.add_parser("features", help="list and inspect feature sets in a store")
    commands = parser.add_subparsers(dest="features_command", metavar="SUBCOMMAND", required=True)
    listing = commands.add_parser("list", help="one line per feature set under ROOT")
    listing.add_argument("root", help="store root (local folder or fsspec URL)")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=_list)
    show = commands.add_parser("show", help="lineage, schema and counts of one feature set")
    show.add_argument("root", help="store root (local folder or fsspec URL)")
    show.add_argument("feature_set_id", help="the id printed by `features list` or `extract`")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.set_defaults(func=_show)


def _list(args: argparse.Namespace) -> int:
    summaries = store.list_feature_sets(args.root)
    if args.json:
        print(json.dumps(summaries, indent=2))
        return 0
    if not summaries:
        print(f"no feature sets under {args.root}")
        return 0
    header = f"{'feature set':<32} {'backbone':<18} {'sampling':<14} {'streams':<9} {'videos':>7} {'errors':>7}  created"
    print(header)
    for s in summaries:
        spec = s["spec"]
        print(
            f"{s['feature_set_id']:<32} {spec['backbone']:<18} {spec['sampling']:<14} "
            f"{','.join(spec['streams']):<9} {s['num_videos']:>7} {s['num_errors']:>7}  {s['created_at']}"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    uri = store.feature_set_uri(args.root, args.feature_set_id)
    try:
        record = store.read_feature_set_record(uri)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from error
    done, failed = store.committed_video_ids(uri)
    table = store.read_features_table(uri, columns=["video_id", "stream"]) if done else None
    details = {
        "feature_set_id": record["feature_set_id"],
        "uri": uri,
        "created_at": record["created_at"],
        "spec": record["spec"],
        "feature_dim": record["feature_dim"],
        "spatial_shape": record.get("spatial_shape"),
        "libraries": record["libraries"],
        "num_videos": len(done),
        "num_errors": len(failed),
        "num_rows": 0 if table is None else table.num_rows,
        "num_parts": len(store.part_paths(uri)),
    }
    if args.json:
        print(json.dumps(details, indent=2))
        return 0
    for key in (
        "feature_set_id",
        "uri",
        "created_at",
        "feature_dim",
        "spatial_shape",
        "num_videos",
        "num_errors",
        "num_rows",
        "num_parts",
    ):
        print(f"{key:<15} {details[key]}")
    print("spec:")
    for key, value in record["spec"].items():
        print(f"  {key:<15} {value}")
    print("libraries:")
    for key, value in record["libraries"].items():
        print(f"  {key:<15} {value}")
    if failed:
        errors = store.read_errors_table(uri).to_pylist()
        print("errors:")
        for row in errors[:20]:
            print(f"  {row['video_id']}: {row['stage']} {row['error_type']}: {row['message']}")
        if len(errors) > 20:
            print(f"  ... and {len(errors) - 20} more")
    return 0
