"""Importers of public video datasets' annotation files, in their published formats, into manifests.

One module per format; each importer takes the file or folder as published
and returns a manifest table, raising ValueError that names the bad file and line.
"""

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from pipelines.datasets.importers.charades import import_charades
from pipelines.datasets.importers.hmdb51 import import_hmdb51
from pipelines.datasets.importers.kinetics import import_kinetics
from pipelines.datasets.importers.msrvtt import import_msrvtt
from pipelines.datasets.importers.msvd import import_msvd
from pipelines.datasets.importers.qa import import_msrvtt_qa, import_msvd_qa
from pipelines.datasets.importers.ucf101 import import_ucf101

# Format name -> importer. All take (src, *, video_root=...); ucf101 and hmdb51
# also take split_number, and ucf101 val_groups (see SPLIT_OPTIONS).
IMPORTERS: dict[str, Callable[..., pa.Table]] = {
    "ucf101": import_ucf101,
    "hmdb51": import_hmdb51,
    "kinetics": import_kinetics,
    "charades": import_charades,
    "msvd": import_msvd,
    "msrvtt": import_msrvtt,
    "msvd-qa": import_msvd_qa,
    "msrvtt-qa": import_msrvtt_qa,
}

# Format -> the split options its importer takes, beyond video_root.
SPLIT_OPTIONS: dict[str, tuple[str, ...]] = {
    "ucf101": ("split_number", "val_groups"),
    "hmdb51": ("split_number",),
}


def import_dataset(
    fmt: str,
    src: Path,
    *,
    video_root: str = "videos",
    split_number: int | None = None,
    val_groups: int | None = None,
) -> pa.Table:
    """The manifest of `src` read as format `fmt`; ValueError for an option `fmt` does not take.

    None means "not given": the importer's default applies.
    """
    if fmt not in IMPORTERS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(IMPORTERS)}")
    given = {"split_number": split_number, "val_groups": val_groups}
    options = {name: value for name, value in given.items() if value is not None}
    for name in options:
        if name not in SPLIT_OPTIONS.get(fmt, ()):
            takers = [f for f, names in SPLIT_OPTIONS.items() if name in names]
            raise ValueError(f"{name} applies to {' and '.join(takers)}, not {fmt}")
    return IMPORTERS[fmt](src, video_root=video_root, **options)


__all__ = [
    "IMPORTERS",
    "SPLIT_OPTIONS",
    "import_charades",
    "import_dataset",
    "import_hmdb51",
    "import_kinetics",
    "import_msrvtt",
    "import_msrvtt_qa",
    "import_msvd",
    "import_msvd_qa",
    "import_ucf101",
]
