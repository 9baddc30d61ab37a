"""Schema identity stored in Arrow metadata, so a file says what it holds."""

import pyarrow as pa

SCHEMA_NAME_KEY = b"vidpipe.schema"
SCHEMA_VERSION_KEY = b"vidpipe.schema_version"


def versioned(name: str, version: int, fields: list[pa.Field]) -> pa.Schema:
    """A schema whose metadata names it and carries its version."""
    return pa.schema(
        fields,
        metadata={SCHEMA_NAME_KEY: name.encode(), SCHEMA_VERSION_KEY: str(version).encode()},
    )


def schema_version(schema: pa.Schema) -> tuple[str, int] | None:
    """(name, version) from a schema's metadata, or None when it has none."""
    meta = schema.metadata or {}
    if SCHEMA_NAME_KEY not in meta or SCHEMA_VERSION_KEY not in meta:
        return None
    return meta[SCHEMA_NAME_KEY].decode(), int(meta[SCHEMA_VERSION_KEY])
