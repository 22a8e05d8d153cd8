"""The SQLite index of a folder store: one row per instance, kept up to date incrementally.

The index is a cache of the folder: it can always be rebuilt, so a schema change or a
damaged file simply starts it over. Files whose size and mtime match the index are never
reopened; files the index could not use (not DICOM, unreadable) are remembered with their
size and mtime too, so a second update reopens nothing that has not changed.

Readers (gunicorn gthread workers, several threads per process, several processes) each get
their own read-only connection via threading.local: SQLite serves concurrent readers without
any Python lock, WAL lets them keep reading while an update commits, and a connection never
crosses a thread or a fork. check_same_thread=False with a lock would serialise every lookup.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from wadows.store.base import InstanceRecord, StoreError
from wadows.store.header import HeaderFacts, NotAnInstance, UnreadableHeader, read_header_facts
from wadows.store.walk import FileEntry, walk_files

log = logging.getLogger(__name__)


class IndexUnusable(StoreError):
    """The index file cannot be opened or written; the message names it (a data dir path, chosen by the operator)."""

SCHEMA_VERSION = 1
COMMIT_EVERY = 1000  # writes per transaction: big enough to be fast, small enough to show progress to readers
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE instances (
    sop_instance_uid    TEXT PRIMARY KEY,
    study_uid           TEXT NOT NULL,
    series_uid          TEXT NOT NULL,
    sop_class_uid       TEXT NOT NULL,
    transfer_syntax_uid TEXT NOT NULL,
    path                TEXT NOT NULL UNIQUE,
    size                INTEGER NOT NULL,
    mtime_ns            INTEGER NOT NULL
);
CREATE INDEX instances_by_study ON instances (study_uid, series_uid);
-- Files examined but not indexed, so that an unchanged one is not reopened next time.
CREATE TABLE skipped (
    path     TEXT PRIMARY KEY,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    reason   TEXT NOT NULL CHECK (reason IN ('not_dicom', 'unreadable'))
);
"""

_NOT_DICOM = "not_dicom"
_UNREADABLE = "unreadable"


@dataclass
class IndexSummary:
    """What one update did.

    examined counts every file seen, and each lands in exactly one of added, updated, unchanged,
    skipped_* or duplicates. removed counts instances that left the index (file gone, or changed
    into something unusable). skipped_non_dicom includes DICOMDIR files: DICOM, but not instances.
    """

    examined: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped_non_dicom: int = 0
    skipped_unreadable: int = 0
    duplicates: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        rate = f" ({self.examined / self.seconds:,.0f} files/s)" if self.seconds > 0 and self.examined else ""
        return (
            f"examined {self.examined} files in {self.seconds:.2f} s{rate}: "
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.removed} removed; skipped {self.skipped_non_dicom} non-DICOM, "
            f"{self.skipped_unreadable} unreadable, {self.duplicates} duplicate"
        )


class FolderIndex:
    """The instance index of one folder, in an SQLite file at db_path."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        self._local = threading.local()
        self._ensure_schema()

    # ---- lookups (any thread) ------------------------------------------------------------

    def get(self, sop_instance_uid: str) -> InstanceRecord | None:
        """The record of an instance, or None when the index does not hold it."""
        row = self._reader().execute(
            "SELECT study_uid, series_uid, sop_instance_uid, sop_class_uid, transfer_syntax_uid, size, path,"
            " mtime_ns FROM instances WHERE sop_instance_uid = ?",
            (sop_instance_uid,),
        ).fetchone()
        if row is None:
            return None
        return _record(row)

    def count(self) -> int:
        """How many instances the index holds."""
        return self._reader().execute("SELECT count(*) FROM instances").fetchone()[0]

    def instances(self, study_uid: str, series_uid: str | None = None) -> list[InstanceRecord]:
        """The instances of a study (or of one of its series), in path order."""
        query = ("SELECT study_uid, series_uid, sop_instance_uid, sop_class_uid, transfer_syntax_uid, size, path,"
                 " mtime_ns FROM instances WHERE study_uid = ?")
        args: tuple[str, ...] = (study_uid,)
        if series_uid is not None:
            query += " AND series_uid = ?"
            args += (series_uid,)
        rows = self._reader().execute(query + " ORDER BY path", args).fetchall()
        return [_record(row) for row in rows]

    def close(self) -> None:
        """Close the calling thread's read connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ---- update (one writer) ---------------------------------------------------------------

    def update(self, root: Path, progress: Callable[[int], None] | None = None) -> IndexSummary:
        """Bring the index in line with the files under root; progress gets the count examined so far."""
        started = time.perf_counter()
        summary = IndexSummary()
        conn = self._connect_writer()
        try:
            known = {
                path: (size, mtime, uid)
                for path, size, mtime, uid in conn.execute(
                    "SELECT path, size, mtime_ns, sop_instance_uid FROM instances"
                )
            }
            skipped = {
                path: (size, mtime, reason)
                for path, size, mtime, reason in conn.execute("SELECT path, size, mtime_ns, reason FROM skipped")
            }
            unlistable_dirs = 0

            def note_unlistable(_: str) -> None:
                nonlocal unlistable_dirs
                unlistable_dirs += 1

            # Walk first and drop what is gone, so a duplicate whose twin was deleted is
            # indexed in this same update rather than the next one.
            entries = list(walk_files(root, on_unreadable_dir=note_unlistable))
            present = {entry.path for entry in entries}
            gone = [path for path in known if path not in present]
            conn.executemany("DELETE FROM instances WHERE path = ?", ((p,) for p in gone))
            conn.executemany(
                "DELETE FROM skipped WHERE path = ?", ((p,) for p in skipped if p not in present)
            )
            summary.removed += len(gone)
            conn.commit()

            pending = 0
            for entry in entries:
                summary.examined += 1
                pending += self._examine(conn, entry, known, skipped, summary)
                if pending >= COMMIT_EVERY:
                    conn.commit()
                    pending = 0
                if progress is not None:
                    progress(summary.examined)
            conn.commit()
            if unlistable_dirs:
                log.warning("%d folders could not be listed; their files are not indexed", unlistable_dirs)
        finally:
            conn.close()
        summary.seconds = time.perf_counter() - started
        log.info("index updated: %s", summary)
        return summary

    def _examine(
        self,
        conn: sqlite3.Connection,
        entry: FileEntry,
        known: dict[str, tuple[int, int, str]],
        skipped: dict[str, tuple[int, int, str]],
        summary: IndexSummary,
    ) -> int:
        """Index one file; returns how many rows it wrote (for batching commits)."""
        stamp = (entry.size, entry.mtime_ns)
        indexed = known.get(entry.path)
        if indexed is not None and indexed[:2] == stamp:
            summary.unchanged += 1
            return 0
        remembered = skipped.get(entry.path)
        if remembered is not None and remembered[:2] == stamp:
            self._count_skip(summary, remembered[2])
            return 0

        writes = 0
        if indexed is not None:  # changed on disk: its old row goes whatever the new content is
            conn.execute("DELETE FROM instances WHERE path = ?", (entry.path,))
            writes += 1
        if remembered is not None:
            conn.execute("DELETE FROM skipped WHERE path = ?", (entry.path,))
            writes += 1

        if entry.size is None:
            summary.skipped_unreadable += 1
            if indexed is not None:
                summary.removed += 1
            log.debug("a file could not be examined")  # never the path: it may spell a patient's name
            return writes
        try:
            facts = read_header_facts(entry.path)
        except (NotAnInstance, UnreadableHeader) as exc:
            reason = _NOT_DICOM if isinstance(exc, NotAnInstance) else _UNREADABLE
            self._count_skip(summary, reason)
            if indexed is not None:
                summary.removed += 1
            log.debug("a file was skipped: %s", reason)  # its path is in the index's `skipped` table
            conn.execute(
                "INSERT INTO skipped (path, size, mtime_ns, reason) VALUES (?, ?, ?, ?)",
                (entry.path, entry.size, entry.mtime_ns, reason),
            )
            return writes + 1

        if not self._insert(conn, entry, facts):
            # The same SOP Instance UID already has a file: keep that one. Not remembered in
            # `skipped`, so this file takes over on the update after its twin disappears.
            summary.duplicates += 1
            if indexed is not None:
                summary.removed += 1
            log.debug("a second file holds an instance already indexed")
            return writes
        if indexed is not None:
            summary.updated += 1
        else:
            summary.added += 1
        return writes + 1

    @staticmethod
    def _insert(conn: sqlite3.Connection, entry: FileEntry, facts: HeaderFacts) -> bool:
        cursor = conn.execute(
            "INSERT OR IGNORE INTO instances (sop_instance_uid, study_uid, series_uid, sop_class_uid,"
            " transfer_syntax_uid, path, size, mtime_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                facts.sop_instance_uid,
                facts.study_uid,
                facts.series_uid,
                facts.sop_class_uid,
                facts.transfer_syntax_uid,
                entry.path,
                entry.size,
                entry.mtime_ns,
            ),
        )
        return cursor.rowcount == 1

    @staticmethod
    def _count_skip(summary: IndexSummary, reason: str) -> None:
        if reason == _NOT_DICOM:
            summary.skipped_non_dicom += 1
        else:
            summary.skipped_unreadable += 1

    # ---- connections and schema -------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        # A connection inherited through fork (gunicorn preload) must not be used in the child.
        if conn is None or self._local.pid != os.getpid():
            uri = f"file:{quote(str(self.db_path.absolute()))}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
            self._local.conn = conn
            self._local.pid = os.getpid()
        return conn

    def _connect_writer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute("PRAGMA journal_mode = WAL")
        # The index is a rebuildable cache: losing the last commit on power loss is acceptable.
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _ensure_schema(self) -> None:
        try:
            if self.db_path.parent.exists() and not self.db_path.parent.is_dir():
                raise IndexUnusable(f"the index cannot be kept in {self.db_path.parent}: it is not a folder")
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            if self.db_path.exists() and not self.db_path.is_file():
                raise IndexUnusable(f"the index {self.db_path} is not a file")
            try:
                self._migrate()
            except sqlite3.DatabaseError as exc:
                if getattr(exc, "sqlite_errorcode", None) not in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
                    raise
                # Not an SQLite file, or damaged: the index is a cache, start it over.
                log.warning("index file was unusable; rebuilding it")
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self.db_path}{suffix}").unlink(missing_ok=True)
                self._migrate()
        except (OSError, sqlite3.Error) as exc:
            # Cannot open or write it (permissions, a full disk, a file in the way): the operator must act.
            reason = getattr(exc, "strerror", None) or str(exc)
            raise IndexUnusable(f"the index {self.db_path} cannot be used ({reason})") from None

    def _migrate(self) -> None:
        conn = self._connect_writer()
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == SCHEMA_VERSION:
                return
            conn.execute("BEGIN IMMEDIATE")
            # Re-read under the write lock: another process may have just built it.
            if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
                conn.rollback()
                return
            if version:
                log.info("index schema %d is not %d; rebuilding the index", version, SCHEMA_VERSION)
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall():
                conn.execute(f'DROP TABLE "{name}"')
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.commit()
        finally:
            conn.close()


def _record(row: tuple) -> InstanceRecord:
    return InstanceRecord(*row[:5], size=row[5], locator=row[6], modified_ns=row[7])
