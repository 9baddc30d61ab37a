"""`vidpipe ablate`: train the variants of a TOML file on the same data and splits and write one
comparison table (OUT/ablations.json for the report, OUT/ablations.md); trained variants are reused.
"""

from __future__ import annotations

import json
import logging
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import fsspec

from pipelines.artifacts import read_model_meta
from pipelines.training import action
from pipelines.training.common import ModelFolder
from schemas import slug

logger = logging.getLogger(__name__)

TABLE_JSON = "ablations.json"
TABLE_MARKDOWN = "ablations.md"
# Training settings a TOML file may set in [defaults] or per variant.
TRAIN_KEYS = (
    "epochs",
    "batch_size",
    "learning_rate",
    "weight_decay",
    "seed",
    "patience",
    "temporal_jitter",
    "standardize",
)
VARIANT_KEYS = ("name", "model", "feature_set", "spatial", "stream", "model_config", *TRAIN_KEYS)


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One row of the table: a model of the zoo on a named feature set, with its settings."""

    name: str
    model: str
    feature_set: str
    spatial: bool = False
    stream: str = "rgb"
    model_config: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)  # overrides of [defaults]

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("a variant's name is empty")
        if self.model not in action.ACTION_MODELS:
            raise ValueError(
                f"variant {self.name!r}: model {self.model!r} is not one of "
                f"{', '.join(action.ACTION_MODELS)}"
            )


@dataclass(frozen=True, kw_only=True)
class AblationConfig:
    manifest: str
    out: str
    feature_sets: Mapping[str, str]  # name -> ROOT/features/<id>
    variants: tuple[Variant, ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    progress: bool = False

    def __post_init__(self) -> None:
        if not self.variants:
            raise ValueError("the ablation lists no [[variants]]")
        names = [v.name for v in self.variants]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"variant names repeat: {', '.join(repeated)}")
        slugs = [slug(n) for n in names]
        if len(set(slugs)) != len(slugs):
            raise ValueError("two variant names give the same folder name; rename one")
        for variant in self.variants:
            uri = self.feature_sets.get(variant.feature_set)
            if not uri:
                raise ValueError(
                    f"variant {variant.name!r} uses feature set {variant.feature_set!r}, which "
                    "has no folder (set it in [feature_sets] or with --feature-set NAME=URI)"
                )

    def train_config(self, variant: Variant) -> action.ActionTrainConfig:
        """The `vidpipe train` settings of `variant`."""
        settings = {**self.defaults, **variant.train}
        if "standardize" in settings:  # a TOML list
            settings["standardize"] = tuple(settings["standardize"])
        return action.ActionTrainConfig(
            model=variant.model,
            manifest=self.manifest,
            out=f"{self.out.rstrip('/')}/models/{slug(variant.name)}",
            features=self.feature_sets[variant.feature_set],
            spatial=variant.spatial,
            stream=variant.stream,
            model_config=dict(variant.model_config),
            device=self.device,
            amp=self.device.startswith("cuda"),
            progress=self.progress,
            **settings,
        )


def load_config(
    path: str,
    *,
    manifest: str | None = None,
    out: str | None = None,
    feature_sets: Mapping[str, str] | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> AblationConfig:
    """An `AblationConfig` from a TOML file; arguments override what the file says."""
    try:
        values = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"ablation config not found: {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path} is not valid TOML: {error}") from None
    unknown = sorted(set(values) - {"manifest", "out", "defaults", "feature_sets", "variants"})
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {', '.join(unknown)}")
    defaults = dict(values.get("defaults", {}))
    bad = sorted(set(defaults) - set(TRAIN_KEYS))
    if bad:
        raise ValueError(f"{path}: [defaults] takes {', '.join(TRAIN_KEYS)}, not {', '.join(bad)}")
    variants = []
    for number, raw in enumerate(values.get("variants", [])):
        bad = sorted(set(raw) - set(VARIANT_KEYS))
        if bad:
            raise ValueError(f"{path}: variant {number} has unknown key(s) {', '.join(bad)}")
        missing = [key for key in ("name", "model", "feature_set") if key not in raw]
        if missing:
            raise ValueError(f"{path}: variant {number} lacks {', '.join(missing)}")
        variants.append(
            Variant(
                name=raw["name"],
                model=raw["model"],
                feature_set=raw["feature_set"],
                spatial=bool(raw.get("spatial", False)),
                stream=raw.get("stream", "rgb"),
                model_config=dict(raw.get("model_config", {})),
                train={k: raw[k] for k in TRAIN_KEYS if k in raw},
            )
        )
    manifest = manifest or values.get("manifest")
    out = out or values.get("out")
    if not manifest or not out:
        raise ValueError(f"{path}: give manifest and out (in the file or as flags)")
    sets = {**values.get("feature_sets", {}), **(feature_sets or {})}
    return AblationConfig(
        manifest=manifest,
        out=out,
        feature_sets=sets,
        variants=tuple(variants),
        defaults=defaults,
        device=device,
        progress=progress,
    )


def plan_ablation(config: AblationConfig) -> list[action.ActionTrainConfig]:
    """Every variant's training settings, validated; ValueError names the first bad one."""
    configs = []
    for variant in config.variants:
        try:
            configs.append(config.train_config(variant))
        except (ValueError, TypeError) as error:
            raise ValueError(f"variant {variant.name!r}: {error}") from None
    return configs


def run_ablation(config: AblationConfig) -> dict[str, Any]:
    """Train (or read back) every variant and write the table; returns the table."""
    rows = []
    for variant, train_config in zip(config.variants, plan_ablation(config), strict=True):
        folder = ModelFolder(train_config.out)
        if folder.is_complete:
            logger.info("variant %r: already trained, reading %s", variant.name, folder.uri)
            meta = read_model_meta(folder.uri)
        else:
            if folder.has_state():
                train_config = replace(train_config, resume=True)
            logger.info("variant %r: training %s", variant.name, variant.model)
            meta = action.train(train_config).meta
        rows.append(table_row(variant, meta))
    table = comparison_table(rows)
    write_table(config.out, table)
    return table


def table_row(variant: Variant, meta: Mapping[str, Any]) -> dict[str, Any]:
    extra = meta["extra"]
    metrics = extra["test_metrics"]
    row: dict[str, Any] = {
        "variant": variant.name,
        "model": meta["model"],
        "feature_set": variant.feature_set,
        "inputs": ("spatial maps" if extra.get("spatial") else extra["inputs"])
        + ("" if extra.get("streams", ["rgb"]) != ["flow"] else " (flow)"),
        "parameters": extra["num_parameters"],
        "train_seconds": extra.get("train_seconds"),
        "test_top_1": metrics.get("top_1"),
    }
    pairs = [p for p in metrics.get("class_pairs", []) if p["num_videos"]]
    for pair in pairs:
        name = "/".join(pair["classes"])
        row[f"{name} top_1"] = pair["top_1_accuracy"]
        row[f"{name} two_way"] = pair["two_way_accuracy"]
    if pairs:
        row["pairs_two_way_mean"] = sum(p["two_way_accuracy"] for p in pairs) / len(pairs)
    row["model_id"] = meta["model_id"]
    return row


def comparison_table(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """{"columns": [...], "rows": [...]}: columns in first-seen order over all rows."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    return {"columns": columns, "rows": [dict(row) for row in rows]}


def table_markdown(table: Mapping[str, Any]) -> str:
    """The table as GitHub Markdown; fractions with three decimals, missing cells empty."""
    columns = table["columns"]

    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.3f}" if value <= 1 else f"{value:.1f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value).replace("|", "\\|")

    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in table["rows"]]
    return "\n".join(lines) + "\n"


def write_table(out: str, table: Mapping[str, Any]) -> None:
    fs, path = fsspec.core.url_to_fs(out)
    fs.makedirs(path, exist_ok=True)
    with fs.open(f"{path}/{TABLE_JSON}", "w") as f:
        json.dump(table, f, indent=2)
    with fs.open(f"{path}/{TABLE_MARKDOWN}", "w") as f:
        f.write(table_markdown(table))
