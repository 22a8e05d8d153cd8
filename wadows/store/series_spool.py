"""Local copies of the instances one request fetched with their series: a file each, in a directory of its own.

A copy is kept only when its part arrived whole (the boundary after it, and its Content-Length when given) and
its own header names a wanted instance of the series asked for; the SOP Instance UID it is kept under is read
from that header, never taken from the answer around it. A UID that comes twice is trusted in neither copy.

The directory goes when the spool is closed or dropped (the request is over: sent, abandoned or failed). A
process killed before that leaves its directory behind; the next spool made under the same root removes the
directories of processes of this host that are gone. Files are named by a counter: UIDs are patient data.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import socket
import tempfile
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

from wadows.store.base import StoreError
from wadows.store.dicom_part import DicomPart
from wadows.store.header import HeaderFacts, NotAnInstance, UnreadableHeader, header_facts, read_header_facts

log = logging.getLogger(__name__)

MIN_FREE_BYTES = 1 << 30  # left free on the spool's disk whatever the budget: the server and the OS need it
SMALL_OBJECT = 1 << 20  # an object up to this size is also kept in memory while it is written, to be read back
PREFIX = "series"


@dataclass(frozen=True)
class LocalCopy:
    path: str
    size: int
    facts: HeaderFacts


class _Full(Exception):
    """No room for the next part (the request's budget, or the disk)."""


class _Short(Exception):
    """A part whose length is not the one its headers declared."""


class SeriesSpool:
    def __init__(self, root: str | None, budget: int) -> None:
        """root: where the request's directory is made (default: the system's temporary folder); budget: bytes
        the copies may take in all."""
        root = root or tempfile.gettempdir()
        os.makedirs(root, mode=0o700, exist_ok=True)
        _remove_orphans(root)
        self.directory = tempfile.mkdtemp(prefix=f"{PREFIX}-{_host_tag()}-{os.getpid()}-", dir=root)
        self._close = weakref.finalize(self, shutil.rmtree, self.directory, ignore_errors=True)
        self._left = budget
        self._copies: dict[str, LocalCopy] = {}
        self._doubtful: set[str] = set()
        self._written = 0

    def copy(self, sop_instance_uid: str) -> LocalCopy | None:
        return self._copies.get(sop_instance_uid)

    def has_room(self) -> bool:
        return self._left > 0

    def take(self, parts: Iterable[DicomPart], study_uid: str, series_uid: str, wanted: set[str]) -> str | None:
        """Keep the parts that are wanted instances of the series, until the parts end or all wanted are here.
        Returns why it stopped before that, if it did (a text without data, for the log); parts already kept
        stay kept. Whatever the parts raise stops it: a connection cut, a malformed answer, a full disk."""
        missing = set(wanted) - self._copies.keys() - self._doubtful
        try:
            for part in parts if missing else ():
                kept = self._keep(part, study_uid, series_uid, wanted)
                if kept in missing:
                    missing.discard(kept)
                    if not missing:
                        return None
                elif kept is not None:  # the same instance twice: neither copy is trusted
                    self._drop(kept)
            return None
        except (_Full, _Short, StoreError) as exc:
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - the caller falls back to one request per instance
            return type(exc).__name__  # its text may quote a URL, which spells out UIDs

    def close(self) -> None:
        self._close()

    def _keep(self, part: DicomPart, study_uid: str, series_uid: str, wanted: set[str]) -> str | None:
        """The SOP Instance UID of a wanted instance the part holds (kept, unless it is there already), or None
        when the part is not one (not kept)."""
        path, size, whole = self._write(part)
        try:
            facts = header_facts(io.BytesIO(whole)) if whole is not None else read_header_facts(path)
        except (NotAnInstance, UnreadableHeader):
            facts = None
        except Exception:
            self._discard(path, size)  # not kept: its bytes are given back to the budget
            raise
        if (facts is None or (facts.study_uid, facts.series_uid) != (study_uid, series_uid)
                or facts.sop_instance_uid not in wanted or facts.sop_instance_uid in self._doubtful):
            self._discard(path, size)
            return None
        uid = facts.sop_instance_uid
        if uid in self._copies:
            self._discard(path, size)
        else:
            self._copies[uid] = LocalCopy(path, size, facts)
        return uid

    def _write(self, part: DicomPart) -> tuple[str, int, bytes | None]:
        """The file written, its size, and its bytes when small (their header is read from memory: faster)."""
        declared = part.declared_length
        if declared is not None and declared > self._left:
            raise _Full("the request's spool budget is spent")
        if _free_bytes(self.directory) - (declared or 0) < MIN_FREE_BYTES:
            raise _Full("the spool's disk is nearly full")
        self._written += 1
        path = os.path.join(self.directory, str(self._written))
        size, kept = 0, []
        try:
            with open(path, "xb") as out:
                for chunk in part.chunks:
                    size += len(chunk)
                    if size > self._left:
                        raise _Full("the request's spool budget is spent")
                    out.write(chunk)
                    if size <= SMALL_OBJECT:
                        kept.append(chunk)
            if declared is not None and size != declared:
                raise _Short(f"a part of {size} bytes declared {declared}")
        except BaseException:
            _unlink(path)
            raise
        self._left -= size
        return path, size, b"".join(kept) if size <= SMALL_OBJECT else None

    def _drop(self, uid: str) -> None:
        self._doubtful.add(uid)
        copy = self._copies.pop(uid, None)
        if copy is not None:
            self._discard(copy.path, copy.size)

    def _discard(self, path: str, size: int) -> None:
        _unlink(path)
        self._left += size


def _free_bytes(directory: str) -> int:
    info = os.statvfs(directory)
    return info.f_bavail * info.f_frsize


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _host_tag() -> str:
    # Spool roots may be shared by hosts (a data dir on NFS): a process id means something on its own host only.
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def _remove_orphans(root: str) -> None:
    """The directories left by processes of this host that ended without removing theirs (killed)."""
    host = _host_tag()
    try:
        names = os.listdir(root)
    except OSError:
        return
    for name in names:
        fields = name.split("-", 3)
        if len(fields) != 4 or fields[0] != PREFIX or fields[1] != host or not fields[2].isdigit():
            continue
        pid = int(fields[2])
        if pid != os.getpid() and not _alive(pid):
            log.info("removing a series spool left by an ended process")
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
