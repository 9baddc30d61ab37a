"""Stage 1's promises that need whole processes: a SIGKILLed job resumes to exactly the rows of
an uninterrupted one, and a real multi-node Ray cluster gives the same rows as embedded Ray."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from workers import store

pytestmark = pytest.mark.slow

ARGS = [
    "--sampling", "uniform:4", "--backbone", "small_cnn", "--input-size", "32",
    "--streams", "rgb,flow", "--batch-size", "2", "--no-progress",
]  # fmt: skip


def extract_command(manifest, out, *extra):
    return [
        sys.executable,
        "-m",
        "pipelines.cli",
        "extract",
        "--manifest",
        str(manifest),
        "--out",
        str(out),
        *ARGS,
        *extra,
    ]


def rows_of(root):
    """Every feature row as {(video_id, stream, frame_index): (timestamp_s, feature)}; fails on duplicates."""
    (summary,) = store.list_feature_sets(str(root))
    table = store.read_features_table(summary["uri"]).to_pylist()
    keyed = {
        (r["video_id"], r["stream"], r["frame_index"]): (r["timestamp_s"], r["feature"])
        for r in table
    }
    assert len(keyed) == len(table), "duplicate rows"
    return summary["feature_set_id"], keyed


def assert_same_rows(left, right):
    left_id, left_rows = left
    right_id, right_rows = right
    assert left_id == right_id
    assert left_rows.keys() == right_rows.keys()
    for key, (timestamp, feature) in left_rows.items():
        assert right_rows[key][0] == timestamp
        # Batches differ between runs; oneDNN may pick other kernels for other batch sizes.
        np.testing.assert_allclose(right_rows[key][1], feature, rtol=1e-4, atol=1e-5)


def wait_for_session_to_end(session_id, timeout_s=60.0):
    """Until no process of the killed job's session (driver, raylet, workers) is left."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = subprocess.run(
            ["ps", "-s", str(session_id), "-o", "pid=,stat="], capture_output=True, text=True
        )
        if all(
            line.split()[1].startswith("Z") for line in alive.stdout.splitlines() if line.strip()
        ):
            return
        time.sleep(0.2)
    raise AssertionError(f"processes of session {session_id} outlived the kill")


def committed(root):
    summaries = store.list_feature_sets(str(root))
    return summaries[0]["num_videos"] + summaries[0]["num_errors"] if summaries else 0


def kill_when(command, condition, timeout_s=240.0):
    process = subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + timeout_s
    while not condition() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    finished = process.poll() is not None
    if not finished:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    wait_for_session_to_end(process.pid)
    return finished


@pytest.fixture(scope="module")
def embedded_rows(synth_small, tmp_path_factory):
    """The rows of one uninterrupted run with the default embedded Ray."""
    out = tmp_path_factory.mktemp("embedded")
    subprocess.run(
        extract_command(synth_small / "manifest.parquet", out), check=True, capture_output=True
    )
    rows = rows_of(out)
    assert len(rows[1]) == 12 * 4 * 2
    return rows


def test_killed_job_resumes_to_exactly_the_uninterrupted_rows(synth_small, tmp_path, embedded_rows):
    manifest = synth_small / "manifest.parquet"

    resumed = tmp_path / "resumed"
    started = time.monotonic()
    moments = [
        lambda: time.monotonic() - started > 2.0,  # while Ray is starting
        lambda: committed(resumed) >= 1,  # right after the first commit
        lambda: committed(resumed) >= 6,  # half way
    ]
    for moment in moments:
        started = time.monotonic()
        before = committed(resumed)
        kill_when(extract_command(manifest, resumed), moment)
        assert committed(resumed) >= before
    # After three kills, a last run finishes the job.
    subprocess.run(extract_command(manifest, resumed), check=True, capture_output=True)
    assert_same_rows(embedded_rows, rows_of(resumed))


@pytest.fixture()
def two_node_cluster():
    """`ray start --head` plus a second node joining it, both on this machine; stopped afterwards.

    Yields the address and the environment (with the cluster's auth token) to reach it.
    """
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    port = 6391
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    subprocess.run(
        [ray_bin, "start", "--head", "--port", str(port), "--include-dashboard", "false", *common],
        check=True,
        capture_output=True,
        env=env,
    )
    try:
        subprocess.run(
            [ray_bin, "start", "--address", f"127.0.0.1:{port}", *common],
            check=True,
            capture_output=True,
            env=env,
        )
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, env=env)


def test_ray_cluster_gives_the_embedded_rows(
    synth_small, tmp_path, embedded_rows, two_node_cluster
):
    address, env = two_node_cluster
    command = extract_command(
        synth_small / "manifest.parquet", tmp_path / "cluster", "--ray-address", address
    )
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert_same_rows(embedded_rows, rows_of(tmp_path / "cluster"))
