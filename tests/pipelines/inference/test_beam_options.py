import argparse

import pytest
from apache_beam.options.pipeline_options import DirectOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from pipelines.beam_options import (
    add_beam_args,
    beam_arguments,
    beam_path,
    make_pipeline,
    pipeline_options,
    runner_name,
)


def parsed(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--features")
    add_beam_args(parser)
    return parser.parse_args(argv)


def test_options_after_the_double_dash_reach_beam_unchanged():
    args = parsed(["--features", "f", "--", "--runner", "FlinkRunner", "--flink_master=host:8081"])
    assert args.features == "f"
    assert beam_arguments(args.beam_args) == ["--runner", "FlinkRunner", "--flink_master=host:8081"]
    options = pipeline_options(args.beam_args)
    assert runner_name(options) == "FlinkRunner"
    assert options.get_all_options()["flink_master"] == "host:8081"
    assert beam_arguments(["--", "--streaming"]) == ["--streaming"]
    assert parsed(["--features", "f"]).beam_args == []


def test_the_default_runner_is_the_in_process_fn_api_runner():
    pipeline = make_pipeline([])
    assert (
        isinstance(pipeline.runner, FnApiRunner) and runner_name(pipeline.options) == "FnApiRunner"
    )
    multi = make_pipeline(["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert isinstance(multi.runner, FnApiRunner)
    direct = multi.options.view_as(DirectOptions)
    assert (direct.direct_running_mode, direct.direct_num_workers) == ("multi_processing", 2)
    # A runner the user names is Beam's to build: DirectRunner means Beam's own choice.
    assert not isinstance(make_pipeline(["--runner", "DirectRunner"]).runner, FnApiRunner)


def test_paths_beam_cannot_read_are_refused(tmp_path):
    assert beam_path(str(tmp_path) + "/") == str(tmp_path)
    with pytest.raises(ValueError, match=r"^memory://x: Beam has no filesystem for this location"):
        beam_path("memory://x")
