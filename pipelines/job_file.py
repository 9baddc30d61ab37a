"""`vidpipe run` job files: TOML stage tables → checked stages with their command lines, in run order.

Everything a user can get wrong in a job file is found here, before any stage writes a byte:
unknown tables and keys, values the subcommand's own parser refuses, references to no table.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.datasets.synth import MANIFEST_NAME
from schemas import id_problem

# Stage kinds in their natural order; dependencies decide the actual run order.
KINDS = ("dataset", "extract", "train", "infer", "evaluate")
NAMED_KINDS = ("extract", "train", "infer")  # [extract.NAME], [train.NAME], [infer.NAME]
JOB_KEYS = ("name", "root")

# `{models.NAME}` is the folder of [train.NAME], and so on; `{root}` and `{manifest}` stand alone.
_REFERENCE_KINDS = {"models": "train", "features": "extract", "predictions": "infer"}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)(?:\.([^{}\s]*))?\}")
_PLACEHOLDERS_HELP = "{root}, {manifest}, {models.NAME}, {features.NAME}, {predictions.NAME}"

# The subcommand each kind runs, and the keys the job sets itself (paths it lays out under ROOT).
_COMMANDS = {
    "dataset": ("dataset", "synth"),
    "extract": ("extract",),
    "train": ("train",),
    "infer": ("infer",),
    "evaluate": ("evaluate",),
}
_SET_BY_JOB = {
    "dataset": ("out", "overwrite"),
    "extract": ("out", "manifest"),
    "train": ("out", "manifest", "resume"),
    "infer": ("out", "manifest", "overwrite"),
    "evaluate": ("out", "manifest"),
}


@dataclass(frozen=True, kw_only=True)
class Stage:
    """One table of the job file as the command line it runs; paths are still placeholders."""

    kind: str
    name: str | None  # NAME of [train.NAME]; None for [dataset] and [evaluate]
    argv: tuple[str, ...]  # e.g. ("train", "--out", "{models.action}", ...)
    needs: tuple[str, ...]  # ids of the stages whose outputs it reads
    output: str  # where its outputs go, e.g. "{models.action}"
    task: str | None = None  # train: action, caption or vqa

    @property
    def id(self) -> str:
        return f"{self.kind}.{self.name}" if self.name else self.kind


@dataclass(frozen=True, kw_only=True)
class Job:
    """A checked job: its stages in run order and where they write."""

    name: str
    path: str  # the job file
    root: str  # absolute local path or fsspec URL
    manifest: str  # a path, or "{root}/data/manifest.parquet" for a synthetic dataset
    stages: tuple[Stage, ...]

    @property
    def state_uri(self) -> str:
        return f"{self.root}/jobs/{self.name}/state.json"

    @property
    def report_uri(self) -> str | None:
        return next(
            (resolve(s.output, self.paths()) for s in self.stages if s.kind == "evaluate"), None
        )

    def paths(
        self, *, root: str | None = None, feature_sets: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The value of every placeholder under `root` (default: the job's).

        A feature set's folder is named by a content hash that is known only once its weights
        exist; `feature_sets` maps extract names to the feature set ids planned so far, and the
        others get a stand-in path that the command-line parsers accept.
        """
        root = self.root if root is None else root
        values = {"root": root, "manifest": self.manifest.replace("{root}", root)}
        feature_sets = feature_sets or {}
        for stage in self.stages:
            if stage.kind == "train":
                values[f"models.{stage.name}"] = f"{root}/models/{stage.name}"
            elif stage.kind == "infer":
                values[f"predictions.{stage.name}"] = f"{root}/predictions/{stage.name}"
            elif stage.kind == "extract":
                feature_set_id = feature_sets.get(stage.name, f"<{stage.name}>")
                values[f"features.{stage.name}"] = f"{root}/features/{feature_set_id}"
            elif stage.kind == "evaluate":
                values["report"] = f"{root}/reports/{self.name}"
        return values


def resolve(template: str, values: Mapping[str, str]) -> str:
    """`template` with its placeholders replaced; KeyError names one without a value."""

    def value(match: re.Match) -> str:
        key = match.group(1) if match.group(2) is None else f"{match.group(1)}.{match.group(2)}"
        return values[key]

    return _PLACEHOLDER.sub(value, template)


def resolve_argv(argv: Sequence[str], values: Mapping[str, str]) -> list[str]:
    return [resolve(arg, values) for arg in argv]


def load_job(path: str | os.PathLike, *, root: str | None = None) -> Job:
    """Read and check the job file at `path`; ValueError names the table and key at fault.

    `root` overrides the file's `[job] root` (a relative root in the file is taken from the
    file's folder, a relative `root` argument from the working directory).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise ValueError(f"no job file at {path}") from error
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read the job file {path}: {error}") from error
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"invalid TOML: {error}") from error
    return parse_job(data, path=path, root=root)


def parse_job(data: Mapping[str, Any], *, path: Path, root: str | None = None) -> Job:
    """The checked Job of a job file's parsed TOML (see `load_job`)."""
    from pipelines.cli import build_parser  # the real parsers; cli imports the commands lazily

    unknown = [key for key in data if key not in ("job", *KINDS)]
    if unknown:
        raise ValueError(
            f"unknown table [{unknown[0]}]{_suggestion(unknown[0], ('job', *KINDS))}; "
            f"expected {', '.join(f'[{k}]' for k in ('job', *KINDS))}"
        )
    job_table = _table(data, "job")
    for key in job_table:
        if key not in JOB_KEYS:
            raise ValueError(
                f"[job] unknown key {key!r}{_suggestion(key, JOB_KEYS)}; expected name or root"
            )
    name = _string(job_table.get("name", path.stem), "[job] name")
    problem = id_problem(name)
    if problem is not None:
        raise ValueError(f"[job] name: {problem}")
    job_root = _job_root(job_table, path=path, root=root)
    if "dataset" not in data:
        raise ValueError('a job needs a [dataset] table: synth options, or manifest = "path"')

    parser = build_parser()
    tables = _stage_tables(data)
    manifest = _manifest(tables[0][2], path=path)
    stages = [_stage(kind, stage_name, table, parser, tables) for kind, stage_name, table in tables]
    job = Job(
        name=name,
        path=str(path),
        root=job_root,
        manifest=manifest,
        stages=tuple(_run_order(stages)),
    )
    values = job.paths()
    for stage in job.stages:
        _check_references(stage, values)
        _check_arguments(stage, resolve_argv(stage.argv, values), parser)
    return job


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"[{key}] must be a table, got {key} = {value!r}")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where} must be a non-empty string, got {value!r}")
    return value


def _suggestion(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _job_root(job_table: Mapping[str, Any], *, path: Path, root: str | None) -> str:
    if root is None:
        if "root" not in job_table:
            raise ValueError("the job names no [job] root: set one or pass --root")
        root = _string(job_table["root"], "[job] root")
        if "://" not in root:
            root = str(path.parent / root)
    if "://" in root:
        return root.rstrip("/")
    return os.path.abspath(root)


def _stage_tables(data: Mapping[str, Any]) -> list[tuple[str, str | None, Mapping[str, Any]]]:
    """(kind, name, table) in the order of KINDS, names in file order; dataset first."""
    tables: list[tuple[str, str | None, Mapping[str, Any]]] = []
    for kind in KINDS:
        if kind not in data:
            continue
        table = _table(data, kind)
        if kind not in NAMED_KINDS:
            tables.append((kind, None, table))
            continue
        if not table:
            raise ValueError(f"[{kind}] holds no [{kind}.NAME] table")
        for name, sub in table.items():
            if not isinstance(sub, dict):
                raise ValueError(
                    f"[{kind}] holds named tables [{kind}.NAME], not keys: {kind}.{name} = {sub!r}"
                )
            problem = id_problem(name)
            if problem is not None:
                raise ValueError(f"[{kind}.{name}] the table's name: {problem}")
            tables.append((kind, name, sub))
    return tables


def _manifest(dataset: Mapping[str, Any], *, path: Path) -> str:
    if "manifest" not in dataset:
        return "{root}/data/" + MANIFEST_NAME
    manifest = _string(dataset["manifest"], "[dataset] manifest")
    others = [key for key in dataset if key != "manifest"]
    if others:
        raise ValueError(f"[dataset] with manifest = ... takes no synth options, got {others[0]!r}")
    if "://" in manifest:
        return manifest
    return os.path.abspath(path.parent / manifest)


def _stage(
    kind: str,
    name: str | None,
    table: Mapping[str, Any],
    parser: argparse.ArgumentParser,
    tables: Sequence[tuple[str, str | None, Mapping[str, Any]]],
) -> Stage:
    where = f"[{kind}.{name}]" if name else f"[{kind}]"
    names = {k: [n for tk, n, _ in tables if tk == k] for k in NAMED_KINDS}

    def reference(key: str, target_kind: str, value: Any) -> str:
        target = _string(value, f"{where} {key}")
        if target not in names[target_kind]:
            known = ", ".join(names[target_kind]) or "none"
            raise ValueError(
                f"{where} {key} = {target!r} names no [{target_kind}.{target}] table "
                f"(there are: {known})"
            )
        return target

    options = dict(table)
    needs = ["dataset"] if kind != "dataset" else []
    argv: list[str] = list(_COMMANDS[kind])
    task = None
    beam_options: list[str] = []
    if kind == "dataset":
        if "manifest" in options:
            # An existing manifest: the stage checks it (and records its digest).
            return Stage(
                kind=kind,
                name=None,
                argv=("dataset", "validate", "{manifest}"),
                needs=(),
                output="{manifest}",
            )
        argv += ["--out", "{root}/data"]
        output = "{manifest}"
    elif kind == "extract":
        argv += ["--manifest", "{manifest}", "--out", "{root}"]
        output = f"{{features.{name}}}"
    elif kind == "train":
        argv += ["--manifest", "{manifest}", "--out", f"{{models.{name}}}"]
        if "features" in options:
            features = reference("features", "extract", options.pop("features"))
            argv += ["--features", f"{{features.{features}}}"]
        task = options.get("task")
        output = f"{{models.{name}}}"
    elif kind == "infer":
        if "model" not in options:
            raise ValueError(f"{where} needs model = the NAME of a [train.NAME] table")
        model = reference("model", "train", options.pop("model"))
        train_table = next(t for k, n, t in tables if k == "train" and n == model)
        if "features" in options:
            features = reference("features", "extract", options.pop("features"))
        elif "features" in train_table:
            features = reference("features", "extract", train_table["features"])
        else:
            raise ValueError(
                f"{where} needs features = the NAME of an [extract.NAME] table "
                f"([train.{model}] reads no feature set to default to)"
            )
        # --manifest always: infer reads it for the questions of a VQA model, ignores it otherwise.
        argv += [
            "--model", f"{{models.{model}}}",
            "--features", f"{{features.{features}}}",
            "--manifest", "{manifest}",
            "--out", f"{{predictions.{name}}}",
        ]  # fmt: skip
        beam_options = _beam_options(options.pop("beam_options", []), where)
        output = f"{{predictions.{name}}}"
    else:  # evaluate
        predictions = options.pop("predictions", names["infer"])
        if isinstance(predictions, str):
            predictions = [predictions]
        if not isinstance(predictions, list) or not predictions:
            raise ValueError(f"{where} predictions must be a list of [infer.NAME] names")
        targets = [reference("predictions", "infer", p) for p in predictions]
        argv += [
            "--predictions", ",".join(f"{{predictions.{t}}}" for t in targets),
            "--manifest", "{manifest}",
            "--out", "{report}",
        ]  # fmt: skip
        if "features" in options:
            features = reference("features", "extract", options.pop("features"))
            argv += ["--features", f"{{features.{features}}}"]
        beam_options = _beam_options(options.pop("beam_options", []), where)
        output = "{report}"

    flags = _long_options(_subparser(parser, _COMMANDS[kind]))
    for key, value in options.items():
        if key in _SET_BY_JOB[kind]:
            raise ValueError(f"{where} {key!r} is set by the job itself; remove it")
        if key not in flags:
            raise ValueError(
                f"{where} unknown option {key!r}{_suggestion(key, sorted(flags))}; "
                f"see `vidpipe {' '.join(_COMMANDS[kind])} --help`"
            )
        argv += _flag_arguments(flags[key], value, f"{where} {key}")
    if beam_options:
        argv += ["--", *beam_options]
    for arg in argv:
        for match in _PLACEHOLDER.finditer(arg):
            target_kind = _REFERENCE_KINDS.get(match.group(1))
            is_own_output = target_kind == kind and match.group(2) == name
            if (
                target_kind is not None
                and match.group(2) in names[target_kind]
                and not is_own_output
            ):
                needs.append(f"{target_kind}.{match.group(2)}")
    return Stage(
        kind=kind,
        name=name,
        argv=tuple(argv),
        needs=tuple(dict.fromkeys(needs)),
        output=output,
        task=task if isinstance(task, str) else None,
    )


def _beam_options(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where} beam_options must be a list of strings, got {value!r}")
    return list(value)


def _subparser(parser: argparse.ArgumentParser, command: Sequence[str]) -> argparse.ArgumentParser:
    for word in command:
        # argparse keeps subcommands in a private action; there is no public accessor.
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[word]
    return parser


def _long_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Job-file key → the action of its long flag (`batch_size` → `--batch-size`)."""
    options = {}
    for action in parser._actions:
        long = [s for s in action.option_strings if s.startswith("--")]
        if long and action.dest != "help":
            options[long[0][2:].replace("-", "_")] = action
    return options


def _flag_arguments(action: argparse.Action, value: Any, where: str) -> list[str]:
    """The command-line words of one job-file key: `--flag=value`, a bare flag, or none."""
    flag = next(s for s in action.option_strings if s.startswith("--"))
    if action.nargs == 0:  # a switch
        if not isinstance(value, bool):
            raise ValueError(f"{where} is a switch: true or false, got {value!r}")
        if isinstance(action, argparse.BooleanOptionalAction):
            return [action.option_strings[0] if value else action.option_strings[1]]
        return [flag] if value else []
    if isinstance(value, bool):
        raise ValueError(f"{where} takes a value, not {str(value).lower()}")
    if isinstance(value, dict):
        text = json.dumps(value, sort_keys=True)
    elif isinstance(value, list):
        if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value):
            raise ValueError(f"{where} must be a list of strings or numbers, got {value!r}")
        text = ",".join(str(v) for v in value)
    elif isinstance(value, str | int | float):
        text = str(value)
    else:
        raise ValueError(f"{where} has a value of type {type(value).__name__}, which no flag takes")
    # `--flag=value` keeps a value that starts with '-' (a negative number) a value.
    return [f"{flag}={text}"]


def _run_order(stages: Sequence[Stage]) -> list[Stage]:
    """`stages` ordered so that each comes after those it needs, otherwise in KINDS order."""
    ordered: list[Stage] = []
    done: set[str] = set()
    remaining = list(stages)
    while remaining:
        ready = next((s for s in remaining if all(n in done for n in s.needs)), None)
        if ready is None:
            raise ValueError(
                "stages depend on each other in a cycle: "
                + ", ".join(f"[{s.id}]" for s in remaining)
            )
        ordered.append(ready)
        done.add(ready.id)
        remaining.remove(ready)
    return ordered


def _check_references(stage: Stage, values: Mapping[str, str]) -> None:
    for arg in stage.argv:
        for match in _PLACEHOLDER.finditer(arg):
            key = match.group(1) if match.group(2) is None else f"{match.group(1)}.{match.group(2)}"
            if key in values:
                continue
            kind = _REFERENCE_KINDS.get(match.group(1))
            if kind is not None and match.group(2) is not None:
                raise ValueError(
                    f"[{stage.id}] {match.group(0)} names no [{kind}.{match.group(2)}] table"
                )
            raise ValueError(
                f"[{stage.id}] unknown placeholder {match.group(0)}; expected {_PLACEHOLDERS_HELP}"
            )


def _check_arguments(stage: Stage, argv: list[str], parser: argparse.ArgumentParser) -> None:
    """Parse `argv` with the subcommand's own parser, then build the configs that can be built
    without reading any file, so a bad value stops the job before its first stage."""
    from pipelines.errors import BadArguments

    try:
        args = parser.parse_args(argv)
    except BadArguments as error:
        raise ValueError(f"[{stage.id}] {error}") from error
    check = _CONFIG_CHECKS.get(stage.task if stage.kind == "train" else stage.kind)
    if check is None:
        return
    try:
        check(args)
    except (ValueError, TypeError) as error:
        raise ValueError(f"[{stage.id}] {str(error).splitlines()[0]}") from error


def _check_extract(args: argparse.Namespace) -> None:
    from hybrid_models.backbones import backbone_spec
    from pipelines.commands.extract import config_from_args
    from workers.sampling import parse_sampling

    config = config_from_args(args)
    parse_sampling(config.sampling)
    backbone_spec(config.backbone)


def _check_caption(args: argparse.Namespace) -> None:
    from pipelines.training import caption

    caption.config_from_args(args)


def _check_vqa(args: argparse.Namespace) -> None:
    from pipelines.training import vqa

    vqa.config_from_args(args)


# Stages whose subcommand exposes a file-free config builder, checked up front (train by task).
_CONFIG_CHECKS: dict[str, Callable[[argparse.Namespace], None]] = {
    "extract": _check_extract,
    "caption": _check_caption,
    "vqa": _check_vqa,
}
