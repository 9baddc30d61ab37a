"""A progress bar for stage 1: videos done, frames per second, errors and time left."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


class ExtractProgress:
    """Counts finished videos; shows a tqdm bar on stderr when `enabled`."""

    def __init__(self, total_videos: int, *, enabled: bool):
        self.num_videos = 0
        self.num_frames = 0
        self.num_errors = 0
        self.started_s = time.monotonic()
        self._bar = tqdm(
            total=total_videos,
            unit="video",
            disable=not enabled,
            file=sys.stderr,
            dynamic_ncols=True,
            smoothing=0.1,
        )

    def update(self, *, num_frames: int, failed: bool) -> None:
        self.num_videos += 1
        self.num_frames += num_frames
        self.num_errors += int(failed)
        self._bar.set_postfix(
            {"frames/s": f"{self.frames_per_second:.1f}", "errors": self.num_errors}, refresh=False
        )
        self._bar.update(1)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started_s

    @property
    def frames_per_second(self) -> float:
        return self.num_frames / max(self.elapsed_s, 1e-9)

    def close(self) -> None:
        self._bar.close()
