"""The embedded default store: a folder of DICOM Part 10 files, found through a FolderIndex."""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from wadows.dicom import part10, syntaxes
from wadows.store.base import InstanceGone, InstanceRecord, StoreError
from wadows.store.index import FolderIndex, IndexSummary
from wadows.store.walk import count_files

INDEX_FILE_NAME = "index.sqlite3"


class FolderStore:
    """Serves the instances under root; the index lives at index_path."""

    def __init__(self, root: Path, index_path: Path) -> None:
        self.root = Path(root)
        self.index = FolderIndex(index_path)

    def refresh(self, progress: Callable[[int], None] | None = None) -> IndexSummary:
        """Re-index the folder incrementally; progress gets the number of files examined so far."""
        return self.index.update(self.root, progress)

    def locate(self, sop_instance_uid: str) -> InstanceRecord | None:
        """The record of an instance, or None when the folder does not hold it."""
        return self.index.get(sop_instance_uid)

    def instances(self, study_uid: str, series_uid: str | None = None) -> list[InstanceRecord]:
        return self.index.instances(study_uid, series_uid)

    def available(self, record: InstanceRecord) -> int | None:
        """The file's current size; InstanceGone when it is no longer there. A file changed since it was
        indexed is read once to make sure it still holds the instance as indexed (see _check_changed)."""
        try:
            info = os.stat(record.locator)
        except FileNotFoundError:
            raise InstanceGone("file no longer in the store") from None
        except OSError as exc:
            raise StoreError(f"the instance file cannot be examined ({exc.strerror or type(exc).__name__})") from None
        if not stat.S_ISREG(info.st_mode):
            raise InstanceGone("the instance file was replaced by something that is not a file")
        if _changed(record, info):
            with self.open(record):  # open() does the checking
                pass
        return info.st_size

    def open(self, record: InstanceRecord) -> BinaryIO:
        """The instance's file, opened for reading and positioned at its start."""
        try:
            fp = open(record.locator, "rb")
        except FileNotFoundError:
            raise InstanceGone("file no longer in the store") from None
        except PermissionError:
            raise StoreError("the store may not read the instance file (permission denied)") from None
        except IsADirectoryError:
            raise InstanceGone("the instance file was replaced by a folder") from None
        except OSError as exc:
            # The message names the failure only: the path may spell out a patient's name.
            reason = exc.strerror or errno.errorcode.get(exc.errno or 0, type(exc).__name__)
            raise StoreError(f"the instance file could not be opened ({reason})") from None
        try:
            if _changed(record, os.fstat(fp.fileno())):
                _check_changed(fp, record)
                fp.seek(0)
        except BaseException:
            fp.close()
            raise
        return fp

    def count(self) -> int:
        """How many instances the folder holds."""
        return self.index.count()

    def health(self) -> int | None:
        return self.index.count()


def _changed(record: InstanceRecord, info: os.stat_result) -> bool:
    return record.modified_ns is not None and (info.st_size, info.st_mtime_ns) != (record.size, record.modified_ns)


def _check_changed(fp: BinaryIO, record: InstanceRecord) -> None:
    """A file rewritten since indexing (damaged, or replaced by a corrected copy) is served only if it is still
    a whole Part 10 object of the same instance in the same transfer syntax: callers are promised the
    indexed syntax, and a copy sent byte for byte is otherwise never parsed. DicomReadError when damaged."""
    instance = part10.open_source(fp)
    if str(instance.dataset.get("SOPInstanceUID", "")) != record.sop_instance_uid:
        raise InstanceGone("the instance file now holds another instance (re-index the store)")
    if instance.transfer_syntax != syntaxes.normalize(record.transfer_syntax_uid):
        raise StoreError("the instance file was rewritten in another transfer syntax (re-index the store)")


def index_folder(root: Path, data_dir: Path, show_progress: bool = True) -> IndexSummary:
    """Index root into data_dir/index.sqlite3 (the `wadows index` command), with a progress bar on a TTY."""
    data_dir = Path(data_dir)
    store = FolderStore(root, data_dir / INDEX_FILE_NAME)
    if not (show_progress and sys.stderr is not None and sys.stderr.isatty()):
        return store.refresh()

    from tqdm import tqdm  # only the interactive path needs it

    with tqdm(total=count_files(root), file=sys.stderr, unit="file", desc="indexing") as bar:
        return store.refresh(progress=lambda examined: bar.update(examined - bar.n))
