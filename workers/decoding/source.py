"""A local file for any uri: local paths as they are, other fsspec URLs copied to a temporary file.

Both decoders seek, and decord only reads local files or whole byte strings,
so a remote video is fetched once and decoded from disk.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath

import fsspec
from fsspec.implementations.local import LocalFileSystem

from workers.decoding.results import DecodeError

logger = logging.getLogger(__name__)


@contextmanager
def local_file(uri: str) -> Iterator[str]:
    """The path of a local file holding `uri`'s bytes, valid inside the `with` block.

    Missing, unreadable, directory and zero-byte uris raise DecodeError. Other
    special files (a FIFO, a device) are opened as they are: a read that never
    returns is what the isolated decoder's timeout is for.
    """
    if not isinstance(uri, str) or not uri:
        raise TypeError(f"uri must be a non-empty string, got {uri!r}")
    if "://" not in uri:
        yield _checked_local(uri)
        return
    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ValueError, ImportError) as error:
        raise DecodeError("probe", "io_error", f"cannot open {uri}: {error}") from error
    if isinstance(fs, LocalFileSystem):
        yield _checked_local(path)
        return
    try:
        info = fs.info(path)
    except FileNotFoundError:
        raise DecodeError("probe", "not_found", f"{uri} does not exist") from None
    except OSError as error:
        raise DecodeError("probe", "io_error", f"cannot read {uri}: {error}") from error
    if info.get("type") == "directory":
        raise DecodeError("probe", "not_a_file", f"{uri} is a directory")
    if info.get("size") == 0:
        raise DecodeError("probe", "empty_file", f"{uri} is empty (0 bytes)")
    # Keep the suffix: FFmpeg probes content, but the name helps it pick a demuxer first.
    suffix = PurePosixPath(path).suffix[:16]
    with tempfile.TemporaryDirectory(prefix="vidpipe-decode-") as folder:
        local = os.path.join(folder, f"video{suffix}")
        try:
            fs.get_file(path, local)
        except FileNotFoundError:
            raise DecodeError("probe", "not_found", f"{uri} does not exist") from None
        except OSError as error:
            raise DecodeError("probe", "io_error", f"cannot read {uri}: {error}") from error
        logger.debug("copied %s to %s (%d bytes)", uri, local, os.path.getsize(local))
        yield local


def _checked_local(path: str) -> str:
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise DecodeError("probe", "not_found", f"{path} does not exist") from None
    except PermissionError:
        raise DecodeError("probe", "permission_denied", f"{path} cannot be read") from None
    except OSError as error:
        raise DecodeError("probe", "io_error", f"cannot stat {path}: {error}") from error
    if stat.S_ISDIR(status.st_mode):
        raise DecodeError("probe", "not_a_file", f"{path} is a directory")
    if stat.S_ISREG(status.st_mode) and status.st_size == 0:
        raise DecodeError("probe", "empty_file", f"{path} is empty (0 bytes)")
    if stat.S_ISREG(status.st_mode) and not os.access(path, os.R_OK):
        raise DecodeError("probe", "permission_denied", f"{path} cannot be read")
    return path
