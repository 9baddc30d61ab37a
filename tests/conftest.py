"""Fixtures shared across the suite: one Ray instance per module that asks for it, small real videos."""

from __future__ import annotations

import os

import pytest

# Ray Data prints INFO lines to the console unless told otherwise (see workers/extract.py).
os.environ.setdefault(
    "RAY_DATA_LOGGING_CONFIG",
    os.path.join(os.path.dirname(__file__), "..", "workers", "ray_data_logging.yaml"),
)


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tests run tiny tensors: a second intra-op thread only spins against Ray and Beam workers
    (on a busy 2-core machine a 1 s test took 15 s with two)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray with two CPUs for the tests of one module, shut down afterwards."""
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory):
    """Twelve synthetic videos (32×32, 12 frames) and their manifest, made once per session."""
    from pipelines.datasets.synth import SynthConfig, generate_dataset

    out = tmp_path_factory.mktemp("synth-small")
    generate_dataset(SynthConfig(num_videos=12, seed=7, size=32, fps=12.0, duration_s=1.0), out)
    return out
