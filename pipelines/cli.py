"""The `vidpipe` command: one subcommand per stage, and one line plus exit code 2 for user errors."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pipelines.commands import (
    ablate,
    dataset,
    evaluate,
    extract,
    features,
    infer,
    report,
    run,
    train,
)
from pipelines.errors import BadArguments, UsageError

# Each module adds its subcommand(s) with `register(subparsers)` and sets
# `func(args) -> int` on them; the list is explicit on purpose.
COMMAND_MODULES = [dataset, extract, features, train, ablate, infer, evaluate, report, run]


class OneLineParser(argparse.ArgumentParser):
    """argparse that raises BadArguments for a bad flag instead of printing usage and exiting,
    so `main` reports it in one line and `vidpipe run` can check a job's stages up front."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BadArguments(self.prog, message)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="vidpipe",
        description="Batch video analytics with hybrid CNN-RNN models.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress details to stderr"
    )
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=OneLineParser
    )
    subparsers.required = True
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except BadArguments as error:
        print(f"{error.prog}: error: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except UsageError as error:
        print(f"vidpipe {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vidpipe {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
