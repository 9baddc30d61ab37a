"""Beam pipeline options for stage 2: the in-process FnApiRunner unless the user names a runner.

Everything after `--` on the command line goes to Beam's PipelineOptions unchanged, so Flink,
Spark, Dataflow or Prism are chosen with Beam's own flags and no code of ours changes.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Beam takes a second to import: the command line's --help needs none of it
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions


class _WithoutGcpNotice(logging.Filter):
    """Drops Beam's import-time notice that BigQuery's client libraries are absent: vidpipe
    installs Beam without the GCP extra on purpose, and the notice reads like an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "apitools not found" not in record.getMessage()


logging.getLogger().addFilter(_WithoutGcpNotice())

DEFAULT_RUNNER = "FnApiRunner"


def add_beam_args(parser: argparse.ArgumentParser) -> None:
    """Adds the trailing `-- BEAM_OPTION ...` arguments that go to Beam unchanged."""
    parser.add_argument(
        "beam_args",
        nargs="*",
        metavar="-- BEAM_OPTION",
        help="Apache Beam pipeline options after `--`, passed to Beam unchanged, e.g. "
        "`-- --runner FlinkRunner --flink_master host:8081` or "
        "`-- --direct_running_mode=multi_processing --direct_num_workers=2` "
        f"(default: Beam's in-process {DEFAULT_RUNNER})",
    )


def beam_arguments(args: Sequence[str]) -> list[str]:
    """The Beam options in `args`, without a leading `--` that some argparse versions keep."""
    values = list(args)
    return values[1:] if values[:1] == ["--"] else values


def pipeline_options(beam_args: Sequence[str] = ()) -> PipelineOptions:
    """PipelineOptions parsed from `beam_args` exactly as Beam parses them."""
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(beam_arguments(beam_args))


def runner_name(options: PipelineOptions) -> str:
    """The runner the options name, or FnApiRunner when they name none."""
    from apache_beam.options.pipeline_options import StandardOptions

    runner = options.view_as(StandardOptions).runner
    if runner is None:
        return DEFAULT_RUNNER
    return runner if isinstance(runner, str) else type(runner).__name__


def make_pipeline(beam_args: Sequence[str] = ()) -> beam.Pipeline:
    """A Pipeline on the runner `beam_args` names; Beam's in-process FnApiRunner by default.

    The default is not the DirectRunner: it first tries to download the Prism binary, which
    fails on machines without internet. FnApiRunner honours `--direct_running_mode` and
    `--direct_num_workers`, so `multi_processing` runs the same graph in worker processes.
    """
    import apache_beam as beam
    from apache_beam.options.pipeline_options import StandardOptions
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    options = pipeline_options(beam_args)
    if options.view_as(StandardOptions).runner is None:
        return beam.Pipeline(runner=FnApiRunner(), options=options)
    return beam.Pipeline(options=options)


def beam_path(uri: str) -> str:
    """`uri` as Beam's FileSystems take it (local paths made absolute, no trailing slash).

    ValueError when Beam has no filesystem for it: Beam's IO reads local paths, and gs:// or
    s3:// once Beam's extras for them are installed, but not fsspec-only URLs like memory://.
    """
    from apache_beam.io.filesystems import FileSystems

    if "://" not in uri:
        uri = os.path.abspath(uri)
    try:
        FileSystems.get_filesystem(uri)
    except ValueError as error:
        raise ValueError(
            f"{uri}: Beam has no filesystem for this location (local paths work, and gs:// or "
            "s3:// with apache-beam[gcp] or apache-beam[aws] installed)"
        ) from error
    return uri.rstrip("/")
