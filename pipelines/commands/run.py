"""`vidpipe run JOB.toml`: a whole job (dataset → extract → train → infer → evaluate) in one command,
skipping the stages whose outputs are already there, made by the same command from the same inputs.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
import traceback
from pathlib import Path

from pipelines.errors import UsageError
from schemas import columns as c

DEMO_JOB = Path(__file__).resolve().parents[1] / "jobs" / "demo.toml"
CRASHED = 3  # exit status when a stage raised: neither "failed videos" (1) nor "bad input" (2)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds `run`."""
    p = subparsers.add_parser(
        "run",
        help="run a job file: dataset, extract, train, infer and evaluate stages in one go",
        description=(
            "Run the stages of a TOML job file in order, in this process: [dataset] (synth "
            "options, or manifest = PATH), [extract.NAME], [train.NAME], [infer.NAME] and "
            "[evaluate]. Keys are the subcommand's long flags (batch_size = 8 is --batch-size=8, "
            "true is a bare flag, lists are comma-joined); features = NAME, model = NAME and "
            "predictions = [NAMES] name other tables, and {root}, {manifest}, {models.NAME}, "
            "{features.NAME}, {predictions.NAME} in values are replaced by their paths. The "
            "whole file is checked before anything is written. A stage is skipped when its "
            "outputs are complete and ROOT/jobs/<job>/state.json shows they were made by the same "
            "command from the same inputs; a changed option runs that stage and everything "
            "downstream again. Exit status: 0 done, 1 done but some videos failed or became dead "
            "letters, 2 bad job file or a stage refused its arguments, 3 a stage crashed."
        ),
    )
    p.add_argument("job", nargs="?", default=None, help="the job file (TOML)")
    p.add_argument(
        "--demo",
        action="store_true",
        help=f"run the shipped demo job ({DEMO_JOB.name}: synthetic data, action, caption, VQA)",
    )
    p.add_argument(
        "--root",
        default=None,
        help="folder or fsspec URL to write into, instead of the file's [job] root",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pipelines import job_file, job_state

    if args.demo == (args.job is not None):
        raise UsageError("pass a job file or --demo, not both or neither")
    path = DEMO_JOB if args.demo else Path(args.job)
    try:
        job = job_file.load_job(path, root=args.root)
    except ValueError as error:
        raise UsageError(f"{path}: {error}") from error
    try:
        records = job_state.read_state(job.state_uri)
    except ValueError as error:
        raise UsageError(str(error)) from error
    _check_outputs_are_ours(job, records)
    return _run_stages(job, records)


def _check_outputs_are_ours(job, records) -> None:  # (Job, {stage id: StageRecord})
    """UsageError when a stage would replace outputs that this job's state does not record:
    those are someone else's (or a state file was lost), and `run` replaces only its own."""
    from pipelines import job_file, job_state

    values = job.paths()
    for stage in job.stages:
        if stage.kind == "extract" or stage.id in records:
            continue  # feature sets are content-addressed and resumed, never replaced blindly
        if stage.argv[:2] == ("dataset", "validate"):
            continue  # a manifest of the user's, only read
        output = job_file.resolve(stage.output, values)
        if job_state.exists(output):
            raise UsageError(
                f"{output} exists but {job.state_uri} has no record of [{stage.id}] making it; "
                "remove it or choose another --root"
            )


def _run_stages(job, records) -> int:  # (Job, {stage id: StageRecord})
    from pipelines import job_file, job_state

    records = dict(records)
    feature_sets: dict[str, str] = {}  # extract name -> feature set id, as each is planned
    digests: dict[str, str | None] = {}  # stage id -> digest of its outputs, as each is done
    some_failed = False
    for number, stage in enumerate(job.stages, start=1):
        label = f"[{number}/{len(job.stages)}] {stage.id}"
        video_ids = None
        if stage.kind == "extract":
            try:
                plan = _plan_extract(
                    job_file.resolve_argv(stage.argv, job.paths(feature_sets=feature_sets))
                )
            except UsageError as error:
                print(f"vidpipe run: error: {label}: {error}", file=sys.stderr)
                return 2
            feature_sets[stage.name] = plan.spec.feature_set_id
            video_ids = [v[c.VIDEO_ID] for v in plan.videos]
        values = job.paths(feature_sets=feature_sets)
        argv = job_file.resolve_argv(stage.argv, values)
        output = job_file.resolve(stage.output, values)
        # The key sees paths relative to ROOT, so a job moved elsewhere is still up to date.
        relative = job.paths(root="{root}", feature_sets=feature_sets)
        key = job_state.stage_key(
            [
                *job_file.resolve_argv(stage.argv, relative),
                "->",
                job_file.resolve(stage.output, relative),
            ],
            {need: digests[need] for need in stage.needs if _is_keyed_input(stage, need)},
        )
        digest = job_state.output_digest(stage.kind, output)
        if video_ids is not None and not job_state.covers(output, video_ids):
            digest = None  # a feature set that misses videos is resumed
        record = records.get(stage.id)
        if job_state.is_up_to_date(record, key, digest):
            print(f"{label}  skipped (up to date)", flush=True)
            digests[stage.id] = digest
            continue

        extra, outdated = _replace_outdated(stage, record, key, output)
        if outdated is not None:
            print(f"{label}  removing its outdated outputs {outdated}", flush=True)
            job_state.remove(outdated)
        cut = argv.index("--") if "--" in argv else len(argv)  # Beam options stay last
        argv = [*argv[:cut], *extra, *argv[cut:]]
        print(f"{label}  running: vidpipe {shlex.join(argv)}", flush=True)
        code, digest = _execute(job, records, stage, argv, key=key, output=output)
        if code == CRASHED:
            print(f"vidpipe run: error: {label} crashed; stopping", file=sys.stderr)
            return code
        tolerated = _tolerated(stage, code)
        if code != 0 and not tolerated:
            print(f"vidpipe run: error: {label} failed (exit {code}); stopping", file=sys.stderr)
            return code
        if digest is None:
            print(f"vidpipe run: error: {label} left no outputs at {output}", file=sys.stderr)
            return CRASHED
        digests[stage.id] = digest
        some_failed = some_failed or tolerated
        note = " (some videos failed: see its output)" if tolerated else ""
        print(f"{label}  ran in {records[stage.id].seconds:.1f} s{note}", flush=True)
    report = job.report_uri
    if report is not None:
        print(f"report: {_shown(report)}/report.html (and report.json)")
    return 1 if some_failed else 0


def _execute(job, records, stage, argv: list[str], *, key: str, output: str):
    """Run one stage, recording it in `records` and state.json before (running) and after
    (done or failed); (exit status, digest of its outputs or None). A raised exception is
    printed and becomes CRASHED."""
    from pipelines import job_state

    records[stage.id] = job_state.StageRecord(key=key, status=job_state.RUNNING, output=output)
    job_state.write_state(job.state_uri, records)
    started = time.monotonic()
    try:
        code = _call(argv)
    except Exception:  # one stage's crash: the traceback for whoever debugs it, then stop
        traceback.print_exc()
        code = CRASHED
    digest = (
        job_state.output_digest(stage.kind, output)
        if code == 0 or _tolerated(stage, code)
        else None
    )
    records[stage.id] = job_state.StageRecord(
        key=key,
        status=job_state.DONE if digest is not None else job_state.FAILED,
        output=output,
        digest=digest,
        exit_code=code,
        seconds=round(time.monotonic() - started, 1),
        finished_at=job_state.now_iso(),
    )
    job_state.write_state(job.state_uri, records)
    return code, digest


def _shown(path: str) -> str:
    """`path` relative to the working directory when it lies below it (demo-output/...)."""
    if "://" in path or not path.startswith(os.getcwd() + os.sep):
        return path
    return os.path.relpath(path)


def _tolerated(stage, code: int) -> bool:
    """Exit 1 of extract (videos that failed) and infer (dead letters): recorded rows, not a
    reason to stop; every other non-zero status stops the job."""
    return code == 1 and stage.kind in ("extract", "infer")


def _is_keyed_input(stage, need: str) -> bool:
    """Whether the digest of `need`'s outputs goes into `stage`'s key. Not a model's for an
    extraction: the weights' own digest names its feature set, which the key already holds, so a
    model trained again to the same weights does not make the same features again."""
    return not (stage.kind == "extract" and need.startswith("train."))


def _plan_extract(argv: list[str]):  # -> workers.extract.ExtractPlan
    """The extract stage's plan: its feature set's id and videos, from files that now exist."""
    from pipelines.cli import build_parser
    from pipelines.commands import extract

    return extract.plan_from_args(build_parser().parse_args(argv))


def _replace_outdated(stage, record, key: str, output: str) -> tuple[list[str], str | None]:
    """How a stage runs again over its own outdated outputs: the extra flags its command needs,
    and a folder to remove first. Outputs that state.json does not record are never touched."""
    from pipelines import job_state

    if record is None or not job_state.exists(output):
        return [], None
    if stage.kind == "extract":
        # Same folder, other key: the same settings over other inputs (a dataset made again with
        # the same ids); extract would skip the videos already there, so start it afresh.
        return [], output if record.output == output and record.key != key else None
    if stage.kind == "train":
        return [], output  # train refuses a folder that holds a model
    if stage.kind == "infer" or stage.argv[:2] == ("dataset", "synth"):
        return ["--overwrite"], None
    return [], None  # evaluate rewrites its report; a manifest of the user's is only read


def _call(argv: list[str]) -> int:
    """One stage through the same entry point as the command line. Stages may set torch's
    thread count (train --threads); the next stage gets the job's own back."""
    import torch

    from pipelines.cli import main

    threads = torch.get_num_threads()
    try:
        return main(argv)
    finally:
        torch.set_num_threads(threads)
