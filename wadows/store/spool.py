"""A fetched object kept in memory up to a threshold and on disk beyond it: seekable, like a stored file.

The spool has no file descriptor to show. The operations tell two versions of a stored file apart by
fstat() (inode, size, mtime); every fetch spools into a new temporary file, so the same unchanged object
would look changed on every open. Without fileno() they take their path for files with no identity.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterable

from wadows.store.base import StoreError


class SpooledObject(tempfile.SpooledTemporaryFile):
    def fileno(self) -> int:
        raise io.UnsupportedOperation("a spooled PACS object has no stable file identity")


def spool(chunks: Iterable[bytes], threshold: int, expected_length: int | None = None,
          directory: str | None = None) -> SpooledObject:
    """The chunks written to a new spool (on disk in directory, default the system's temporary folder, once
    past threshold bytes), positioned at 0. Raises StoreError when expected_length is given and the bytes
    received differ from it (a body cut short or padded)."""
    spooled = SpooledObject(max_size=threshold, mode="w+b", dir=directory)
    try:
        if threshold <= 0:
            spooled.rollover()  # SpooledTemporaryFile reads max_size 0 as "no limit"; here it means "disk"
        received = 0
        for chunk in chunks:
            spooled.write(chunk)
            received += len(chunk)
        if expected_length is not None and received != expected_length:
            raise StoreError(f"the PACS sent {received} bytes of a {expected_length}-byte object")
        spooled.seek(0)
        return spooled
    except BaseException:
        spooled.close()
        raise
