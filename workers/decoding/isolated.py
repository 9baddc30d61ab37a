"""Decode each video in a child process with a time limit, so a hang or a crash costs one video, not the job.

decord can hang in C on a lying header, segfault on corrupt input and leak
memory over many files; none of that can be caught in-process. The child
probes, samples and decodes in one round trip and sends the frames back as
raw bytes; the parent kills and replaces it on timeout or death, and
replaces it every `max_videos_per_process` videos to bound its memory.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
import traceback
from dataclasses import dataclass, fields
from multiprocessing.connection import Connection
from typing import Any, Literal

import numpy as np

from workers.decoding.decode import (
    DecoderChoice,
    RotationChoice,
    Sampling,
    check_choices,
    check_sampling,
    decode_video,
)
from workers.decoding.results import Clip, DecodeError, DecodeFailure

logger = logging.getLogger(__name__)

StartMethod = Literal["forkserver", "spawn"]
# Modules the forkserver imports once, so each child starts without importing them.
PRELOAD = ["workers.decoding.decode"]
_FRAME_FIELDS = ("frames", "successor_frames")


@dataclass(frozen=True, kw_only=True)
class IsolatedDecoderConfig:
    """Limits of an `IsolatedDecoder`."""

    timeout_s: float = 120.0  # per video and attempt, from request to last byte of frames
    max_videos_per_process: int = 200  # then the child is replaced, releasing what it leaked
    max_attempts: int = 2  # a timeout or crash is retried (with PyAV when decord was at fault)
    start_timeout_s: float = 120.0  # for a new child to import and report ready
    start_method: StartMethod = "forkserver"

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s ({self.timeout_s}) must be > 0")
        if self.max_videos_per_process < 1:
            raise ValueError(f"max_videos_per_process ({self.max_videos_per_process}) must be >= 1")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts ({self.max_attempts}) must be >= 1")
        if not self.start_timeout_s > 0:
            raise ValueError(f"start_timeout_s ({self.start_timeout_s}) must be > 0")
        if self.start_method not in ("forkserver", "spawn"):
            raise ValueError(f"start_method {self.start_method!r} is not one of forkserver, spawn")


class IsolatedDecoder:
    """Probe, sample and decode videos in a child process; bad videos come back as `DecodeFailure`.

    Use as a context manager. `decode` never raises for a bad, hanging or
    crashing video; it raises ValueError/TypeError for bad arguments and
    RuntimeError when no child process can be started. Not thread-safe: one
    caller at a time.
    """

    def __init__(self, config: IsolatedDecoderConfig | None = None, **overrides: Any):
        if config is not None and overrides:
            raise TypeError("pass either a config or keyword overrides, not both")
        self.config = config or IsolatedDecoderConfig(**overrides)
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._videos_in_process = 0
        self.num_processes_started = 0

    def __enter__(self) -> IsolatedDecoder:
        self._ensure_process()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def child_pid(self) -> int | None:
        """The id of the current decoding process, None when there is none."""
        return self._process.pid if self._process is not None else None

    def close(self) -> None:
        """Stop the child process (politely, then by force)."""
        self._stop_process(polite=True)

    def decode(
        self,
        uri: str,
        sampling: Sampling,
        *,
        decoder: DecoderChoice = "auto",
        rotation: RotationChoice = "apply",
        with_successors: bool = False,
        seed: int | None = None,
    ) -> Clip | DecodeFailure:
        """The clip of `uri` sampled by `sampling` (spec, its text, or indices), or why there is none.

        `seed` seeds a numpy Generator for random TSN segment offsets (None:
        centred segments); a seed rather than a Generator so that a retried
        video gets the same frames.
        """
        if not isinstance(uri, str) or not uri:
            raise TypeError(f"uri must be a non-empty string, got {uri!r}")
        spec, indices = check_sampling(sampling)
        check_choices(decoder, rotation)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        request = {
            "uri": uri,
            "sampling": str(spec) if spec is not None else indices,
            "decoder": decoder,
            "rotation": rotation,
            "with_successors": bool(with_successors),
            "seed": seed,
        }
        attempt = 0
        while True:
            attempt += 1
            outcome = self._attempt(request)
            if isinstance(outcome, Clip):
                return outcome
            error, step = outcome
            retry = error.error_type in ("timeout", "crash") and attempt < self.config.max_attempts
            if not retry:
                return DecodeFailure.from_error(error, attempts=attempt)
            if request["decoder"] == "auto" and step == "decode:decord":
                request = {**request, "decoder": "pyav"}  # decord hung or died: do not ask it again
            logger.warning("%s: attempt %d failed (%s), retrying", uri, attempt, error.message)

    def _attempt(self, request: dict[str, Any]) -> Clip | tuple[DecodeError, str]:
        self._ensure_process()
        assert self._conn is not None and self._process is not None
        step = "probe"
        deadline = time.monotonic() + self.config.timeout_s
        try:
            self._conn.send(request)
            while True:
                if not self._conn.poll(max(deadline - time.monotonic(), 0.0)):
                    self._stop_process(polite=False)
                    return DecodeError(
                        _stage(step),
                        "timeout",
                        f"{request['uri']}: no result within {self.config.timeout_s} s "
                        f"(during {step}); decoding process killed",
                    ), step
                message = self._conn.recv()
                kind = message[0]
                if kind == "step":
                    step = message[1]
                    continue
                if kind == "error":
                    result: Clip | tuple[DecodeError, str] = DecodeError(*message[1:]), step
                else:
                    result = self._receive_clip(message[1], deadline)
                self._videos_in_process += 1
                if self._videos_in_process >= self.config.max_videos_per_process:
                    logger.debug(
                        "replacing decoding process after %d videos", self._videos_in_process
                    )
                    self._stop_process(polite=True)
                return result
        except _FramesLate:
            self._stop_process(polite=False)
            return DecodeError(
                "decode",
                "timeout",
                f"{request['uri']}: frames not received within {self.config.timeout_s} s; "
                "decoding process killed",
            ), step
        except (EOFError, OSError):  # the pipe closed under us: the child is gone
            return self._crashed(request, step), step

    def _receive_clip(self, header: dict[str, Any], deadline: float) -> Clip:
        assert self._conn is not None
        arrays = {}
        for name in _FRAME_FIELDS:
            shape = header.pop(f"{name}_shape")
            if shape is None:
                arrays[name] = None
                continue
            if not self._conn.poll(max(deadline - time.monotonic(), 0.0)):
                raise _FramesLate
            array = np.empty(shape, dtype=np.uint8)
            self._conn.recv_bytes_into(array.reshape(-1))  # flat view: one copy, no pickle
            arrays[name] = array
        return Clip(**header, **arrays)

    def _crashed(self, request: dict[str, Any], step: str) -> DecodeError:
        process = self._process
        assert process is not None
        process.join(timeout=5)
        code = process.exitcode
        self._stop_process(polite=False)
        how = f"exit code {code}"
        if code is not None and code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:  # a signal number Python has no name for
                how = f"killed by signal {-code}"
        return DecodeError(
            _stage(step), "crash", f"{request['uri']}: decoding process died ({how}) during {step}"
        )

    def _ensure_process(self) -> None:
        if self._process is not None and self._process.is_alive():
            return
        if self._process is not None:  # died while idle: not any video's fault
            logger.warning("decoding process %s died while idle", self._process.pid)
            self._stop_process(polite=False)
        context = multiprocessing.get_context(self.config.start_method)
        if self.config.start_method == "forkserver":
            context.set_forkserver_preload(PRELOAD)
        parent_end, child_end = context.Pipe(duplex=True)
        process = context.Process(
            target=_child_main, args=(child_end,), name="vidpipe-decoder", daemon=True
        )
        process.start()
        child_end.close()
        if not parent_end.poll(self.config.start_timeout_s):
            process.kill()
            process.join()
            parent_end.close()
            raise RuntimeError(
                f"decoding process did not start within {self.config.start_timeout_s} s"
            )
        try:
            ready = parent_end.recv()
        except EOFError:
            process.join()
            parent_end.close()
            raise RuntimeError(
                f"decoding process exited while starting (exit code {process.exitcode})"
            ) from None
        assert ready == ("ready", process.pid), ready
        self._process, self._conn = process, parent_end
        self._videos_in_process = 0
        self.num_processes_started += 1

    def _stop_process(self, *, polite: bool) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if process is None:
            return
        if polite and process.is_alive():
            try:
                conn.send(None)
                process.join(timeout=5)
            except OSError:
                pass  # it is gone already
        if process.is_alive():
            process.kill()
        process.join()
        if conn is not None:
            conn.close()
        process.close()


class InProcessDecoder:
    """`IsolatedDecoder`'s interface without a child process: no timeout, no crash protection.

    For tests, benchmarks and trusted inputs; exceptions other than DecodeError
    (bugs) propagate.
    """

    def __enter__(self) -> InProcessDecoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def close(self) -> None:
        pass

    def decode(
        self,
        uri: str,
        sampling: Sampling,
        *,
        decoder: DecoderChoice = "auto",
        rotation: RotationChoice = "apply",
        with_successors: bool = False,
        seed: int | None = None,
    ) -> Clip | DecodeFailure:
        """As `IsolatedDecoder.decode`."""
        rng = np.random.default_rng(seed) if seed is not None else None
        try:
            return decode_video(
                uri,
                sampling,
                decoder=decoder,
                rotation=rotation,
                with_successors=with_successors,
                rng=rng,
            )
        except DecodeError as error:
            return DecodeFailure.from_error(error)


class _FramesLate(Exception):
    """The child announced a clip but its frames did not arrive before the deadline."""


def _stage(step: str) -> Literal["probe", "decode"]:
    return "probe" if step == "probe" else "decode"


def _child_main(conn: Connection) -> None:
    """The decoding process: answer requests until told to stop or the parent goes away."""
    # The parent decides when this process ends; Ctrl-C in a terminal reaches it there.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        _serve(conn, request)


def _serve(conn: Connection, request: dict[str, Any]) -> None:
    step = "probe"

    def progress(new_step: str) -> None:
        nonlocal step
        step = new_step
        conn.send(("step", new_step))

    seed = request["seed"]
    try:
        clip = decode_video(
            request["uri"],
            request["sampling"],
            decoder=request["decoder"],
            rotation=request["rotation"],
            with_successors=request["with_successors"],
            rng=np.random.default_rng(seed) if seed is not None else None,
            progress=progress,
        )
    except DecodeError as error:
        conn.send(("error", error.stage, error.error_type, error.message))
        return
    except Exception as error:  # a video must become an error row, whatever went wrong
        logger.error("unexpected error decoding %s:\n%s", request["uri"], traceback.format_exc())
        message = f"{request['uri']}: {type(error).__name__}: {error}"
        conn.send(("error", _stage(step), "unexpected", message))
        return
    header = {f.name: getattr(clip, f.name) for f in fields(clip) if f.name not in _FRAME_FIELDS}
    for name in _FRAME_FIELDS:
        array = getattr(clip, name)
        header[f"{name}_shape"] = None if array is None else array.shape
    conn.send(("clip", header))
    for name in _FRAME_FIELDS:
        array = getattr(clip, name)
        if array is not None:
            conn.send_bytes(np.ascontiguousarray(array).reshape(-1))
