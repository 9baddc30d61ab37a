"""`vidpipe report diff|render`: compare two evaluation reports, re-render a report's HTML."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipelines.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds `report` and its two subcommands."""
    parser = subparsers.add_parser("report", help="compare and render evaluation reports")
    commands = parser.add_subparsers(dest="report_command", metavar="SUBCOMMAND", required=True)

    diff = commands.add_parser(
        "diff", help="what changed from report A to report B: metrics, counts, lineage"
    )
    diff.add_argument("old", metavar="A", help="the old report.json, or the folder holding it")
    diff.add_argument("new", metavar="B", help="the new report.json, or the folder holding it")
    diff.add_argument(
        "--json",
        action="store_true",
        help="print the whole diff as JSON (every metric, with status)",
    )
    diff.set_defaults(func=_diff)

    render = commands.add_parser(
        "render", help="write report.html (and a copy of report.json) from a report.json"
    )
    render.add_argument(
        "report", metavar="REPORT_JSON", help="report.json, or the folder holding it"
    )
    render.add_argument("--out", required=True, help="folder to write into (local or fsspec URL)")
    render.set_defaults(func=_render)


def _read(path: str) -> dict[str, Any]:
    from pipelines.report import read_report, report_json_path

    try:
        return read_report(path)
    except FileNotFoundError as error:
        raise UsageError(f"no report at {report_json_path(path)}") from error
    except (ValueError, OSError) as error:
        raise UsageError(str(error)) from error


def _diff(args: argparse.Namespace) -> int:
    from pipelines.report import diff_reports, format_diff, report_json_path

    old, new = _read(args.old), _read(args.new)
    diff = diff_reports(
        old, new, old_path=report_json_path(args.old), new_path=report_json_path(args.new)
    )
    if args.json:
        print(json.dumps(diff, indent=2, ensure_ascii=False))
    else:
        print("\n".join(format_diff(diff)))
    return 0


def _render(args: argparse.Namespace) -> int:
    from pipelines.report import write_report

    report = _read(args.report)
    try:
        json_path, html_path = write_report(report, args.out)
    except OSError as error:
        raise UsageError(f"cannot write the report to {args.out}: {error}") from error
    print(
        f"wrote {html_path} and {json_path} (frames are not decoded: attention shows weights only)"
    )
    return 0
