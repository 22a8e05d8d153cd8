"""Anonymized documents prepared on a second core while the request's own thread prepares the others.

A RAD-69 envelope carries the outcome of every document, so every de-identified header is built before the
first byte goes out. That work is Python, on one core, and the client is idle meanwhile. Each server process
keeps one helper process (started from the fork server the first time a large anonymized request comes); the
request gives it the last 55% of its anonymized documents and prepares the others itself.

The helper only builds what the request would have built (wadows.wado.anonymized.prepare_copy) on the same
folder store, with the same de-identifier: a copy plan and the identity of the file it was made from. The
request still looks every document up and checks it itself; a helper's result is used only for the file it
found there, and the identity is checked again when the bytes are sent, as for a copy prepared here. Anything
the helper cannot prepare (a refusal, pixels to clean, an error of any kind) is prepared again by the request
itself, so every error is reported the usual way. One request uses the helper at a time: the others, and a
request that finds the helper gone, prepare everything themselves.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable

from wadows import forkserver
from wadows.deid import Deidentifier
from wadows.dicom import part10
from wadows.store.folder import FolderStore
from wadows.store.file_identity import file_identity
from wadows.wado.anonymize import AnonymizeChoice, parse_anonymize
from wadows.wado.anonymized import prepare_copy
from wadows.wado.messages import DocumentRef, RetrieveRequest
from wadows.wado.rejected import Rejected
from wadows.wado.uids import is_valid_uid

log = logging.getLogger(__name__)

MIN_DOCUMENTS = 16        # below this, starting the helper's work costs more than it saves
ANSWER_SECONDS = 60.0     # a helper silent this long (plus JOB_SECONDS per job) is stopped; the request prepares
JOB_SECONDS = 0.05        # its documents itself


@dataclass(frozen=True)
class ReadyCopy:
    """An anonymized document the helper prepared: what anonymized_result would have found."""

    locator: str
    identity: tuple[int, int, int]
    new_sop_instance_uid: str
    target: str
    copy: part10.CopyPlan


class _Helper:
    """One helper process and the pipe to it."""

    def __init__(self, deidentifier: Deidentifier, store: FolderStore) -> None:
        context = forkserver.context()
        self.connection, child_end = context.Pipe()
        self.process = context.Process(target=_serve, daemon=True, name="wadows-prepare-ahead",
                                       args=(child_end, deidentifier, store.root, store.index.db_path))
        try:
            self.process.start()
        except BaseException:
            self.connection.close()  # no helper: its pipe must not outlive the attempt
            raise
        finally:
            child_end.close()

    def stop(self) -> None:
        self.connection.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)


class PrepareAhead:
    """The helper of one de-identifier and store in this process (started on first use, restarted if gone)."""

    def __init__(self, deidentifier: Deidentifier, store: FolderStore) -> None:
        self._deidentifier, self._store = deidentifier, store
        self._lock = threading.Lock()  # held by the one request using the helper
        self._helper: _Helper | None = None

    def submit(self, jobs: list[tuple[str, tuple[str, ...]]]) -> "Pending | None":
        """Send (SOP Instance UID, accepted transfer syntaxes) jobs to the helper; None when it is busy with
        another request or cannot be started (then the caller prepares everything itself)."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._helper is None or not self._helper.process.is_alive():
                self._helper = _Helper(self._deidentifier, self._store)
            self._helper.connection.send(jobs)
        except Exception as exc:  # noqa: BLE001 - no helper today: the request works alone
            log.warning("prepare-ahead helper unavailable (%s): documents prepared in the request", type(exc).__name__)
            self._drop()
            self._lock.release()
            return None
        return Pending(self, len(jobs))

    def _receive(self, jobs: int) -> list[ReadyCopy | None] | None:
        helper, seconds = self._helper, ANSWER_SECONDS + JOB_SECONDS * jobs
        try:
            if helper is not None and helper.connection.poll(seconds):
                return helper.connection.recv()
            log.warning("prepare-ahead helper did not answer in %g s: stopped", seconds)
        except Exception as exc:  # noqa: BLE001 - gone, or an answer that cannot be read: the pipe is out of step
            log.warning("prepare-ahead helper failed (%s): documents prepared in the request", type(exc).__name__)
        self._drop()
        return None

    def _drop(self) -> None:
        if self._helper is not None:
            self._helper.stop()
            self._helper = None

    def close(self) -> None:
        with self._lock:
            self._drop()


class Pending:
    """The helper's answer to one request, received when first needed and released exactly once."""

    def __init__(self, owner: PrepareAhead, count: int) -> None:
        self._owner, self._count = owner, count
        self._results: list[ReadyCopy | None] | None = None
        self._open = True

    def result(self, index: int) -> ReadyCopy | None:
        """The helper's copy for job `index`, waiting for the helper's answer if need be."""
        self._settle()
        return self._results[index] if self._results and index < len(self._results) else None

    def close(self) -> None:
        self._settle()

    def _settle(self) -> None:
        if not self._open:
            return
        self._open = False
        try:
            results = self._owner._receive(self._count)
            self._results = results if isinstance(results, list) and len(results) == self._count else None
        except BaseException:
            self._owner._drop()  # interrupted: an answer may still come, and the next request must not read it
            raise
        finally:
            self._owner._lock.release()


class Ahead:
    """Which requested documents (by position) the prepare-ahead helper is preparing, and its answer."""

    def __init__(self, pending: Pending | None = None, positions: dict[int, int] | None = None) -> None:
        self._pending, self._positions = pending, positions or {}

    def get(self, position: int) -> Callable[[], ReadyCopy | None] | None:
        job = self._positions.get(position)
        return None if job is None else lambda: self._pending.result(job)

    def close(self) -> None:
        if self._pending is not None:
            self._pending.close()


def work_ahead(source, request: RetrieveRequest, caller) -> Ahead:
    """Hand the last anonymized documents to the helper, if there are enough to be worth it."""
    if source.prepare_ahead is None or not request.transfer_syntaxes or not caller.allowed:
        return Ahead()
    positions = [i for i, ref in enumerate(request.documents) if _anonymized_copy_wanted(ref)]
    if len(positions) < MIN_DOCUMENTS:
        return Ahead()
    theirs = positions[len(positions) * 9 // 20:]  # 55%: the request also looks up and checks the helper's ones
    jobs = [(request.documents[i].document_uid, request.transfer_syntaxes) for i in theirs]
    pending = source.prepare_ahead.submit(jobs)
    return Ahead(pending, {position: job for job, position in enumerate(theirs)}) if pending else Ahead()


def _anonymized_copy_wanted(ref: DocumentRef) -> bool:
    try:
        return parse_anonymize(ref.anonymize) is AnonymizeChoice.YES and is_valid_uid(ref.document_uid)
    except Rejected:  # a value Anonymize may not have: reported when the document's turn comes
        return False


def _serve(connection: Connection, deidentifier: Deidentifier, root: Path, index_path: Path) -> None:
    """The helper's loop: a list of jobs in, a list of ReadyCopy or None out, until the pipe closes."""
    store = FolderStore(root, index_path)
    while True:
        try:
            jobs = connection.recv()
        except (EOFError, OSError):
            return
        connection.send([_prepare(deidentifier, store, uid, accepted) for uid, accepted in jobs])


def _prepare(deidentifier: Deidentifier, store: FolderStore, uid: str,
             accepted: tuple[str, ...]) -> ReadyCopy | None:
    try:
        record = store.locate(uid)
        if record is None:
            return None
        with store.open(record) as fp:
            identity = file_identity(fp)
            if identity is None:
                return None
            plan, target, copy = prepare_copy(deidentifier, fp, record, accepted)
        if copy is None:
            return None
        return ReadyCopy(record.locator, identity, plan.new_sop_instance_uid, target, copy)
    except Exception:  # noqa: BLE001 - the request prepares this document again and reports what goes wrong
        return None
