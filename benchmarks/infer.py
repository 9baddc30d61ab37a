"""Stage-2 benchmark: videos/s of `vidpipe infer` (Beam, in-process FnApiRunner) against a plain
PyTorch loop over the same Parquet features and model, and the peak memory of each at N and 5N.

Run: `python -m benchmarks.infer`. Each contender runs in its own process, so its RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import (
    format_bytes,
    format_table,
    load_average,
    machine_info,
    run_command,
)
from schemas import FeatureSetSpec
from schemas import columns as c

log = logging.getLogger(__name__)

NAME = "infer"
RESULT_FILE = "infer.json"
MIN_THROUGHPUT_RATIO = 0.5  # the target: Beam at least half the plain loop's videos/s
MAX_MEMORY_GROWTH = 1.2  # the target: peak RSS at 5N within 1.2x of N
LOOP_RESULT_FILE = "loop.json"  # what the plain-loop child writes beside its predictions
STAMP = "2025-01-01T00:00:00+00:00"  # event time of the synthetic feature rows
MODEL_NAME = "gru"  # the zoo entry benchmarked: a GRU over the frames, last state


@dataclass(frozen=True, kw_only=True)
class InferBenchConfig:
    """What the stage-2 benchmark runs on; the defaults are what `make bench` measures."""

    num_videos: int = 2000  # N
    scale: int = 5  # the memory run has scale×N videos
    frames_per_video: int = 16  # uniform:16, as stage 1 stores by default
    feature_dim: int = 512  # resnet18's pooled features
    num_classes: int = 10
    hidden_dim: int = 128  # the zoo's default
    videos_per_part: int = 8  # what `vidpipe extract --batch-size 8` commits per part
    batch_size: int = 16  # videos per model call, `vidpipe infer`'s default
    # torch intra-op threads of both contenders (OMP_NUM_THREADS). One: this GRU takes ~5 ms a
    # batch, too little to split, and on a shared box a second spinning thread made it 100x slower.
    threads: int = 1
    seed: int = 0
    timeout_s: float = 900.0  # per run

    def __post_init__(self) -> None:
        for name in (
            "num_videos",
            "scale",
            "frames_per_video",
            "feature_dim",
            "num_classes",
            "hidden_dim",
            "videos_per_part",
            "batch_size",
            "threads",
        ):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name} ({value}) must be >= 1")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s ({self.timeout_s}) must be > 0")


# ---------------------------------------------------------------- inputs


def feature_spec(config: InferBenchConfig) -> FeatureSetSpec:
    """The lineage the synthetic feature set claims: resnet18 at 112 px, uniform:K."""
    return FeatureSetSpec(
        backbone="resnet18",
        weights="none",
        weights_digest=f"bench-random-features:{config.seed}",
        input_size=112,
        resize_size=112,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        sampling=f"uniform:{config.frames_per_video}",
        streams=("rgb",),
        flow=None,
        decoder="pyav",
        rotation="apply",
        dtype="float32",
        precision="fp32",
        spatial_map=False,
    )


def make_feature_set(config: InferBenchConfig, root: Path, num_videos: int) -> str:
    """A feature set of `num_videos` videos of seeded random features under `root`; its folder.

    Written with the feature store's own writer, `videos_per_part` videos per part, as stage 1
    commits them. Nothing is reused between runs: the folder is rebuilt each time.
    """
    from workers import store

    shutil.rmtree(root, ignore_errors=True)
    spec = feature_spec(config)
    uri = store.feature_set_uri(str(root), spec.feature_set_id)
    record = store.create_or_open_feature_set(
        uri, spec, feature_dim=config.feature_dim, spatial_shape=None
    )
    rng = np.random.default_rng(config.seed)
    k = config.frames_per_video
    frame_index = (np.arange(k) * 15).astype(np.int32)  # uniform:16 over a 10 s, 25 fps video
    for start in range(0, num_videos, config.videos_per_part):
        ids = [
            f"video-{i:06d}" for i in range(start, min(num_videos, start + config.videos_per_part))
        ]
        features = rng.standard_normal((len(ids), k, config.feature_dim), dtype=np.float32)
        videos = [
            store.VideoFeatures(
                video_id=video_id,
                stream="rgb",
                decoder="pyav",
                frame_index=frame_index,
                timestamp_s=frame_index / 25.0,
                feature=features[row],
                spatial_map=None,
            )
            for row, video_id in enumerate(ids)
        ]
        table = store.features_table(
            videos,
            feature_dim=config.feature_dim,
            dtype="float32",
            spatial_shape=None,
            event_timestamp=STAMP,
        )
        store.commit_part(uri, table, ids, lineage=record)
    return uri


def make_model(config: InferBenchConfig, uri: str) -> str:
    """A trained-shape GRU folder at its seeded initial weights; the same for both contenders."""
    from hybrid_models.zoo import build_model
    from pipelines.artifacts import write_model

    network = build_model(
        MODEL_NAME,
        seed=config.seed,
        feature_dim=config.feature_dim,
        num_classes=config.num_classes,
        hidden_dim=config.hidden_dim,
    )
    class_names = [f"class_{i:02d}" for i in range(config.num_classes)]
    write_model(
        uri,
        network,
        network.config,
        name=MODEL_NAME,
        extra={"class_names": class_names, "feature_set_id": feature_spec(config).feature_set_id},
    )
    return uri


# ---------------------------------------------------------------- the plain loop


def plain_loop(
    features_uri: str, model_uri: str, out: Path, *, batch_size: int, top_k: int
) -> dict:
    """Predictions of every video with a plain loop, written as `vidpipe infer`'s action rows.

    Part by part (a part holds whole videos): pyarrow read → sort per video and frame → pad
    → model → top-k → one Parquet file. Returns its timings and counts.
    """
    import torch

    from hybrid_models.sequences import pad_sequences
    from pipelines.artifacts import read_model
    from pipelines.inference.rows import predictions_schema
    from workers import store

    started = time.perf_counter()
    loaded = read_model(model_uri)
    model = loaded.model.eval()
    class_names = np.asarray(loaded.extra["class_names"])
    schema = predictions_schema("action", list(class_names))
    out.mkdir(parents=True, exist_ok=True)
    loaded_s = time.perf_counter() - started
    num_videos = 0
    columns = [c.VIDEO_ID, c.FRAME_INDEX, c.FEATURE]
    with pq.ParquetWriter(
        out / "part-00000-of-00001.parquet", schema, compression="zstd"
    ) as writer:
        for path in store.part_paths(features_uri):
            table = pq.read_table(path, columns=columns).sort_by(
                [(c.VIDEO_ID, "ascending"), (c.FRAME_INDEX, "ascending")]
            )
            ids = table.column(c.VIDEO_ID).to_numpy(zero_copy_only=False)
            frames = table.column(c.FRAME_INDEX).to_numpy()
            column = table.column(c.FEATURE).combine_chunks()
            features = column.flatten().to_numpy().reshape(len(column), -1)  # (N, D)
            starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
            stops = np.r_[starts[1:], len(ids)]
            for first in range(0, len(starts), batch_size):
                ends = stops[first : first + batch_size]
                spans = list(zip(starts[first : first + batch_size], ends, strict=True))
                batch = [torch.from_numpy(features[a:b].copy()) for a, b in spans]
                padded, mask = pad_sequences(batch)  # (B, T, D), (B, T)
                with torch.no_grad():
                    scores = model(padded, mask).logits.softmax(dim=-1).numpy()  # (B, C)
                best = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]  # (B, k)
                rows = {
                    c.VIDEO_ID: [str(ids[a]) for a, _ in spans],
                    c.MODEL_ID: [loaded.model_id] * len(spans),
                    c.FRAME_ORDER: ["original"] * len(spans),
                    c.NUM_FRAMES: [int(b - a) for a, b in spans],
                    c.PREDICTED_LABEL: class_names[best[:, 0]].tolist(),
                    c.TOP_K_LABELS: class_names[best].tolist(),
                    c.TOP_K_SCORES: np.take_along_axis(scores, best, axis=1).tolist(),
                    c.SCORES: scores.tolist(),
                    c.FRAME_INDICES: [frames[a:b].tolist() for a, b in spans],
                    c.ATTENTION: [None] * len(spans),
                }
                writer.write_table(pa.Table.from_pydict(rows, schema=schema))
                num_videos += len(spans)
    return {
        "num_videos": num_videos,
        "load_s": loaded_s,
        "loop_s": time.perf_counter() - started - loaded_s,
    }


# ---------------------------------------------------------------- running both


def infer_command(features: str, model: str, out: Path, batch_size: int) -> list[str]:
    """`vidpipe infer` as a user runs it: the in-process FnApiRunner, no Beam options."""
    return [
        sys.executable, "-m", "pipelines.cli", "infer", "--features", features, "--model", model,
        "--out", str(out), "--batch-size", str(batch_size), "--overwrite",
    ]  # fmt: skip


def loop_command(features: str, model: str, out: Path, batch_size: int) -> list[str]:
    return [
        sys.executable, "-m", "benchmarks.infer", "--plain-loop", features, model, str(out),
        "--batch-size", str(batch_size),
    ]  # fmt: skip


def top1_by_video(out: Path) -> dict[str, str]:
    """video id -> predicted label of a predictions folder's parts."""
    tables = [
        pq.read_table(path, columns=[c.VIDEO_ID, c.PREDICTED_LABEL])
        for path in sorted(out.glob("part-*.parquet"))
    ]
    table = pa.concat_tables(tables)
    return dict(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))


def bench_one(
    argv: list[str], out: Path, *, num_videos: int, threads: int, log_path: Path, timeout_s: float
) -> dict:
    """One contender's run in its own process: wall time, peak RSS of its tree, its predictions."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}  # torch sizes its pool from it
    run = run_command(argv, log_path=log_path, timeout_s=timeout_s, env=env)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[1:4])} exited with {run.returncode}; see {log_path}")
    predicted = top1_by_video(out)
    if len(predicted) != num_videos:
        raise RuntimeError(
            f"{len(predicted)} videos predicted, expected {num_videos}; see {log_path}"
        )
    figures = {
        "num_videos": num_videos,
        "wall_s": run.wall_s,
        "wall_videos_per_s": num_videos / run.wall_s,
        "cpu_s": run.cpu_series[-1][1],
        "peak_rss_bytes": run.memory.peak_rss_bytes,
        "peak_pss_bytes": run.memory.peak_pss_bytes,
        "max_processes": run.memory.max_processes,
        "log": str(log_path),
    }
    summary = out / "predictions.json"
    if summary.exists():  # Beam: the pipeline's own time, without interpreter, imports, plan
        figures["work_s"] = json.loads(summary.read_text())["timings_s"]["pipeline"]
    else:
        figures["work_s"] = json.loads((out / LOOP_RESULT_FILE).read_text())["loop_s"]
    figures["work_videos_per_s"] = num_videos / figures["work_s"]
    return figures | {"_predicted": predicted}


def marginal_rate(small: dict, large: dict) -> float | None:
    """Videos/s of the extra videos of the large run: what a long job runs at, start-up excluded.

    None when the runs do not tell: the same size, or the large run not slower (noise).
    """
    extra_s = large["wall_s"] - small["wall_s"]
    extra_videos = large["num_videos"] - small["num_videos"]
    return extra_videos / extra_s if extra_videos > 0 and extra_s > 0 else None


def run(config: InferBenchConfig, out_dir: Path, *, repeats: int = 1) -> dict:
    """Builds the inputs, runs both contenders at N and scale×N, writes `out_dir/infer.json`."""
    work = out_dir / NAME
    load_before = load_average()
    started = time.perf_counter()
    model = make_model(config, str((work / "models" / "gru-init").resolve()))
    # Scale 1: the N run stands for the scaled run (one launch of each contender).
    sizes = {"n": config.num_videos}
    if config.scale > 1:
        sizes["scaled"] = config.num_videos * config.scale
    features = {
        key: make_feature_set(config, (work / f"store-{key}").resolve(), num)
        for key, num in sizes.items()
    }
    log.info("inputs ready in %.1f s", time.perf_counter() - started)
    runs: dict[str, list[dict]] = {}
    loads: dict[str, list[float]] = {}
    for repeat in range(repeats):
        for key, num in sizes.items():
            for who, command in (("beam", infer_command), ("loop", loop_command)):
                name = f"{who}_{key}"
                before = load_average()[0]
                out = work / "out" / name
                figures = bench_one(
                    command(features[key], model, out, config.batch_size),
                    out,
                    num_videos=num,
                    threads=config.threads,
                    log_path=work / "logs" / f"{name}-{repeat}.log",
                    timeout_s=config.timeout_s,
                )
                loads.setdefault(name, []).extend([before, load_average()[0]])
                runs.setdefault(name, []).append(figures)
                log.info("%s: %.1f videos/s wall", name, figures["wall_videos_per_s"])
    # The same model on the same features must give the same labels, or the race is unfair.
    for key in sizes:
        beam, loop = runs[f"beam_{key}"][0]["_predicted"], runs[f"loop_{key}"][0]["_predicted"]
        disagree = sum(beam[v] != loop.get(v) for v in beam)
        if disagree:
            raise RuntimeError(f"Beam and the plain loop disagree on {disagree} videos ({key})")
    for figures in (f for fs in runs.values() for f in fs):
        del figures["_predicted"]
    best = {name: min(fs, key=lambda f: f["wall_s"]) for name, fs in runs.items()}
    if config.scale == 1:
        best |= {"beam_scaled": best["beam_n"], "loop_scaled": best["loop_n"]}
    rates = {
        who: {
            "wall_n": best[f"{who}_n"]["wall_videos_per_s"],
            "wall_scaled": best[f"{who}_scaled"]["wall_videos_per_s"],
            "work_scaled": best[f"{who}_scaled"]["work_videos_per_s"],
            "marginal": marginal_rate(best[f"{who}_n"], best[f"{who}_scaled"]),
        }
        for who in ("beam", "loop")
    }
    ratios = {
        f"beam_over_loop_{kind}": _ratio(rates["beam"][kind], rates["loop"][kind])
        for kind in ("wall_n", "wall_scaled", "work_scaled", "marginal")
    }
    growth = {
        who: best[f"{who}_scaled"]["peak_rss_bytes"] / best[f"{who}_n"]["peak_rss_bytes"]
        for who in ("beam", "loop")
    }
    throughput = ratios["beam_over_loop_wall_scaled"]
    result = {
        "benchmark": NAME,
        "machine": machine_info(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "load_1min_per_run": loads,
        "elapsed_s": time.perf_counter() - started,
        "settings": {**asdict(config), "model": MODEL_NAME, "repeats": repeats},
        "runs": runs,
        "best": best,
        "videos_per_s": rates,
        "ratios": {**ratios, "peak_rss_scaled_over_n": growth},
        "targets": {
            "throughput": {
                "value": throughput,
                "min": MIN_THROUGHPUT_RATIO,
                "met": throughput >= MIN_THROUGHPUT_RATIO,
            },
            "memory_growth": {
                "value": growth["beam"],
                "max": MAX_MEMORY_GROWTH,
                "met": growth["beam"] <= MAX_MEMORY_GROWTH,
            },
        },
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RESULT_FILE).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return None if numerator is None or denominator is None else numerator / denominator


# ---------------------------------------------------------------- the report


def format_report(result: dict) -> str:
    """The result as the text `make bench` prints."""
    settings, best, rates = result["settings"], result["best"], result["videos_per_s"]
    ratios, targets = result["ratios"], result["targets"]
    n, scale = settings["num_videos"], settings["scale"]

    def verdict(name: str) -> str:
        return "met" if targets[name]["met"] else "MISSED"

    rows = [["run", "videos", "wall s", "videos/s wall", "work s", "videos/s work", "peak RSS"]]
    for name in ("beam_n", "loop_n", "beam_scaled", "loop_scaled"):
        f = best[name]
        rows.append(
            [
                name.replace("_scaled", f"_{scale}N").replace("_n", "_N"),
                str(f["num_videos"]),
                f"{f['wall_s']:.1f}",
                f"{f['wall_videos_per_s']:.0f}",
                f"{f['work_s']:.1f}",
                f"{f['work_videos_per_s']:.0f}",
                format_bytes(f["peak_rss_bytes"]),
            ]
        )
    return "\n".join(
        [
            "== stage 2: inference (benchmarks/infer.py) ==",
            f"load average (1/5/15 min) {result['load_average_before']} before, "
            f"{result['load_average_after']} after; {result['machine']['cores']} cores",
            f"features  {n} and {scale * n} videos x {settings['frames_per_video']} frames x "
            f"{settings['feature_dim']} float32, {settings['videos_per_part']} videos per part",
            f"model     zoo {MODEL_NAME} (hidden {settings['hidden_dim']}, "
            f"{settings['num_classes']} classes) at init weights; batch {settings['batch_size']}; "
            f"{settings['threads']} torch thread(s) each",
            "beam      vidpipe infer (FnApiRunner, in-process) in a child process",
            "loop      pyarrow read per part, sort, pad, model, top-k, one Parquet file",
            "",
            format_table(rows),
            "wall: the whole process (interpreter, imports, plan); work: Beam's pipeline.run() / "
            "the loop after loading the model",
            f"marginal videos/s ({scale - 1}N extra videos over the extra wall time): beam "
            f"{_number(rates['beam']['marginal'], '.0f')}, loop "
            f"{_number(rates['loop']['marginal'], '.0f')}",
            "",
            format_table(
                [
                    ["target", "value", "goal", "verdict"],
                    [
                        f"beam / loop videos/s ({scale}N wall)",
                        f"{targets['throughput']['value']:.2f}",
                        f">= {MIN_THROUGHPUT_RATIO:g}",
                        verdict("throughput"),
                    ],
                    [
                        f"beam peak RSS {scale}N / N",
                        f"{targets['memory_growth']['value']:.2f}",
                        f"<= {MAX_MEMORY_GROWTH:g}",
                        verdict("memory_growth"),
                    ],
                ]
            ),
            f"other ratios: beam/loop N wall {ratios['beam_over_loop_wall_n']:.2f}, "
            f"{scale}N work {ratios['beam_over_loop_work_scaled']:.2f}, marginal "
            f"{_number(ratios['beam_over_loop_marginal'], '.2f')}; loop peak RSS {scale}N / N "
            f"{ratios['peak_rss_scaled_over_n']['loop']:.2f}",
        ]
    )


def _number(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


# ---------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    defaults = InferBenchConfig()
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.infer",
        description="Stage-2 benchmark: vidpipe infer against a plain PyTorch loop, N and scale×N.",
    )
    p.add_argument("--out", default="bench-output", help="output folder (default: bench-output)")
    p.add_argument("--num-videos", type=int, default=defaults.num_videos, help="N videos")
    p.add_argument("--scale", type=int, default=defaults.scale, help="the large run has scale×N")
    p.add_argument("--frames", type=int, default=defaults.frames_per_video, help="frames per video")
    p.add_argument("--feature-dim", type=int, default=defaults.feature_dim, help="feature size")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help="videos per call")
    p.add_argument(
        "--threads", type=int, default=defaults.threads, help="torch threads of both contenders"
    )
    p.add_argument("--repeats", type=int, default=1, help="run each contender this many times")
    p.add_argument(
        "--plain-loop",
        nargs=3,
        metavar=("FEATURES", "MODEL", "OUT"),
        help="(internal) run only the plain loop, in this process",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark with flags `argv` and prints its report; 2 for bad flags."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.plain_loop:
        features, model, out = args.plain_loop
        figures = plain_loop(features, model, Path(out), batch_size=args.batch_size, top_k=5)
        (Path(out) / LOOP_RESULT_FILE).write_text(json.dumps(figures))
        return 0
    try:
        config = InferBenchConfig(
            num_videos=args.num_videos,
            scale=args.scale,
            frames_per_video=args.frames,
            feature_dim=args.feature_dim,
            batch_size=args.batch_size,
            threads=args.threads,
        )
    except ValueError as error:
        parser.error(str(error))
    result = run(config, Path(args.out), repeats=args.repeats)
    print(format_report(result))
    print(f"\nwritten: {Path(args.out) / RESULT_FILE}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    sys.exit(main())
