"""Every Arrow schema and column name of vidpipe, manifest validation, ids and lineage.

This package imports nothing else of vidpipe's: all other packages agree
through it.
"""

from schemas import columns
from schemas._meta import schema_version
from schemas.features import (
    ERRORS_SCHEMA,
    EVENT_TIMESTAMP_TYPE,
    STREAMS,
    feature_dim_of,
    frame_features_schema,
    spatial_shape_of,
)
from schemas.ids import check_id, content_hash, id_problem, slug
from schemas.lineage import LINEAGE_KEY, FeatureSetSpec, library_versions, lineage_record
from schemas.manifest import (
    MANIFEST_SCHEMA,
    SPLITS,
    ManifestError,
    ManifestProblem,
    conform,
    manifest_table,
    read_manifest,
    read_manifest_unvalidated,
    resolve_uri,
    validate_manifest,
    write_manifest,
)
from schemas.predictions import (
    ACTION_PREDICTIONS_SCHEMA,
    ANSWER_PREDICTIONS_SCHEMA,
    CAPTION_PREDICTIONS_SCHEMA,
    CLASS_NAMES_KEY,
    FRAME_ORDERS,
)

__all__ = [
    "ACTION_PREDICTIONS_SCHEMA",
    "ANSWER_PREDICTIONS_SCHEMA",
    "CAPTION_PREDICTIONS_SCHEMA",
    "CLASS_NAMES_KEY",
    "ERRORS_SCHEMA",
    "EVENT_TIMESTAMP_TYPE",
    "FRAME_ORDERS",
    "LINEAGE_KEY",
    "MANIFEST_SCHEMA",
    "SPLITS",
    "STREAMS",
    "FeatureSetSpec",
    "ManifestError",
    "ManifestProblem",
    "check_id",
    "columns",
    "conform",
    "content_hash",
    "feature_dim_of",
    "frame_features_schema",
    "id_problem",
    "library_versions",
    "lineage_record",
    "manifest_table",
    "read_manifest",
    "read_manifest_unvalidated",
    "resolve_uri",
    "schema_version",
    "slug",
    "spatial_shape_of",
    "validate_manifest",
    "write_manifest",
]
