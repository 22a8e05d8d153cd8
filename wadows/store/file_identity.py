"""What tells one version of an open stored file from another, for copies that must not mix two versions."""

from __future__ import annotations

import os
from typing import BinaryIO


def file_identity(fp: BinaryIO) -> tuple[int, int, int] | None:
    """Inode, size and mtime of the open file; None for streams that are not files (nothing to compare)."""
    try:
        info = os.fstat(fp.fileno())
    except (AttributeError, OSError, ValueError):
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns
