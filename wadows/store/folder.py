"""The embedded default store: a folder of DICOM Part 10 files, found through a FolderIndex."""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

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
        """The file's current size, without reading it; InstanceGone when it is no longer there."""
        try:
            info = os.stat(record.locator)
        except FileNotFoundError:
            raise InstanceGone("file no longer in the store") from None
        except OSError as exc:
            raise StoreError(f"the instance file cannot be examined ({exc.strerror or type(exc).__name__})") from None
        if not stat.S_ISREG(info.st_mode):
            raise InstanceGone("the instance file was replaced by something that is not a file")
        return info.st_size

    def open(self, record: InstanceRecord) -> BinaryIO:
        """The instance's file, opened for reading; its size may differ from the record (the reader validates)."""
        try:
            return open(record.locator, "rb")
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

    def count(self) -> int:
        """How many instances the folder holds."""
        return self.index.count()


def index_folder(root: Path, data_dir: Path, show_progress: bool = True) -> IndexSummary:
    """Index root into data_dir/index.sqlite3 (the `wadows index` command), with a progress bar on a TTY."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    store = FolderStore(root, data_dir / INDEX_FILE_NAME)
    if not (show_progress and sys.stderr is not None and sys.stderr.isatty()):
        return store.refresh()

    from tqdm import tqdm  # only the interactive path needs it

    with tqdm(total=count_files(root), file=sys.stderr, unit="file", desc="indexing") as bar:
        return store.refresh(progress=lambda examined: bar.update(examined - bar.n))
