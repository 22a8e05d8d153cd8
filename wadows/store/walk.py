"""Walking a store folder: every regular file under a root, with the size and mtime the index compares.

Symlinks are followed (stores are often assembled from links), but each real directory is
entered once, so a link back up the tree cannot loop. Entries come in name order so that a
fresh index resolves duplicate UIDs the same way on every host.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A file found under the root. size and mtime_ns are None when the file cannot be stat'ed
    (a dangling symlink, a file removed mid-walk): the index counts it as unreadable."""

    path: str
    size: int | None
    mtime_ns: int | None


def walk_files(root: Path, on_unreadable_dir: Callable[[str], None] | None = None) -> Iterator[FileEntry]:
    """Every file under root (absolute paths), depth first, in name order."""
    top = os.path.abspath(root)
    if not os.path.isdir(top):
        raise NotADirectoryError("the store folder does not exist or is not a directory")
    visited: set[tuple[int, int]] = set()
    yield from _walk_dir(top, visited, on_unreadable_dir)


def count_files(root: Path) -> int:
    """How many files walk_files will yield (the total of a progress bar)."""
    return sum(1 for _ in walk_files(root))


def _walk_dir(
    directory: str,
    visited: set[tuple[int, int]],
    on_unreadable_dir: Callable[[str], None] | None,
) -> Iterator[FileEntry]:
    try:
        info = os.stat(directory)
        key = (info.st_dev, info.st_ino)
        if key in visited:
            return
        visited.add(key)
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        log.warning("a folder under the store root could not be listed; its files are left out")
        if on_unreadable_dir is not None:
            on_unreadable_dir(directory)
        return
    for entry in entries:
        try:
            is_dir = entry.is_dir(follow_symlinks=True)
        except OSError:
            is_dir = False
        if is_dir:
            yield from _walk_dir(entry.path, visited, on_unreadable_dir)
            continue
        try:
            st = entry.stat(follow_symlinks=True)
        except OSError:
            # A dangling symlink or a file that vanished between listing and stat.
            yield FileEntry(entry.path, None, None)
            continue
        if stat.S_ISREG(st.st_mode):
            yield FileEntry(entry.path, st.st_size, st.st_mtime_ns)
        # Sockets, FIFOs and devices are not files we could serve; opening a FIFO would block.
