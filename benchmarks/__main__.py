"""`python -m benchmarks` (what `make bench` runs): every benchmark in order, each printing its table.

A benchmark is a module `benchmarks/<name>.py` with `main(argv) -> int` that takes `--out`;
adding one is adding its name to BENCHMARKS.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# Run in this order; each writes bench-output/<name>.json.
BENCHMARKS = (
    "extract",  # stage 1: decode → CNN → feature store
    "infer",  # stage 2: vidpipe infer (Beam) against a plain PyTorch loop
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Run vidpipe's benchmarks and print their tables."
    )
    parser.add_argument(
        "--out", default="bench-output", help="output folder (default: bench-output)"
    )
    parser.add_argument(
        "--only",
        choices=BENCHMARKS,
        action="append",
        help="run only this benchmark (repeatable; default: all, in order)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log each step to stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    status = 0
    for name in BENCHMARKS:
        if args.only and name not in args.only:
            continue
        # Imported one at a time: a benchmark's heavy imports cost nothing when it is not run.
        module = importlib.import_module(f"benchmarks.{name}")
        status = max(status, module.main(["--out", args.out]))
        print()
    return status


if __name__ == "__main__":
    sys.exit(main())
