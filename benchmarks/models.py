"""Measure the "3D CNN vs CNN-RNN" table of trained model folders (see docs/models.md).

    python -m benchmarks.models --row 'r3d (3D CNN)=ROOT/models/r3d:8:32' \
        --row 'small_cnn + GRU=ROOT/models/best:8:48' --out ROOT/tables

Each --row is NAME=MODEL_FOLDER:FRAMES:SIZE, the clip shape the model is measured on.
"""

from __future__ import annotations

import argparse
import os
import sys

from pipelines.training.video3d_table import (
    Contender,
    MeasureConfig,
    build_table,
    table_markdown,
    write_table,
)


def _contender(text: str) -> Contender:
    name, sep, rest = text.partition("=")
    parts = rest.rsplit(":", 2)
    if not sep or not name or len(parts) != 3 or not all(p.isdigit() for p in parts[1:]):
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=MODEL_FOLDER:FRAMES:SIZE")
    uri, frames, size = parts
    return Contender(name=name, model_uri=uri, num_frames=int(frames), input_size=int(size))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.models", description=__doc__)
    parser.add_argument("--row", type=_contender, action="append", required=True,
                        help="NAME=MODEL_FOLDER:FRAMES:SIZE (repeatable)")  # fmt: skip
    parser.add_argument("--out", required=True, help="folder for the JSON and Markdown table")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per batch (16)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per row (1)")
    args = parser.parse_args(argv)
    table = build_table(args.row, MeasureConfig(batch_size=args.batch_size, threads=args.threads))
    write_table(args.out, table)
    print(f"load average at the end: {os.getloadavg()}")
    print(table_markdown(table), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
