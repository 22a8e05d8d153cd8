"""An anonymized RAD-69 document: decided before the envelope is written, sent after it.

Most objects need no pixel work: their de-identified header is built once, while the envelope is being
prepared, and kept (within a per-request memory budget) so that sending them is a plain copy of the
stored pixel bytes, with a size known in advance. Objects whose pixels must be cleaned, or beyond the
budget, are de-identified again while they are sent.

The first object of a series is prepared from scratch (pydicom parse, plan, apply, write the head) and
remembered; the next ones are prepared by difference from it (read by difference, the changed elements
de-identified by the same walker, the head spliced), which gives the same bytes for a tenth of the work.
Whenever that path is unsure, the object is prepared from scratch.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Iterator

from wadows.deid import Deidentifier, Plan, Refusal
from wadows.deid.walk_by_difference import changed_outputs
from wadows.dicom import part10, similar_header
from wadows.dicom.transcode import choose_transfer_syntax
from wadows.store.base import InstanceRecord, StoreError
from wadows.store.file_identity import file_identity
from wadows.wado import codes
from wadows.wado.messages import Body, DocumentRef, DocumentResult, FileSpan
from wadows.wado.rejected import Rejected

if TYPE_CHECKING:
    from wadows.wado.prepare_ahead import ReadyCopy

log = logging.getLogger(__name__)

DICOM = "application/dicom"
SOP_INSTANCE_UID = 0x00080018


class HeaderBudget:
    """Bytes of prepared headers one request may hold: bounded memory whatever the number of documents."""

    def __init__(self, limit: int):
        self.left = limit

    def take(self, size: int) -> bool:
        if size > self.left:
            return False
        self.left -= size
        return True


def anonymized_result(source, ref: DocumentRef, record: InstanceRecord, accepted: tuple[str, ...],
                      repository_uid: str, budget: HeaderBudget, ready: "ReadyCopy | None" = None) -> DocumentResult:
    """`ready`: the same document prepared by the prepare-ahead helper (used when it is of this very file)."""
    deidentifier = source.deidentifier
    if deidentifier is None:
        raise Rejected(codes.ANONYMIZE_NOT_SUPPORTED, "This server is not configured to anonymize")
    if ready is not None and ready.locator == record.locator:
        identity, promised, target, copy = ready.identity, ready.new_sop_instance_uid, ready.target, ready.copy
    else:
        with source.store.open(record) as fp:
            identity = file_identity(fp)
            plan, target, copy = prepare_copy(deidentifier, fp, record, accepted, copyable=identity is not None)
        promised = plan.new_sop_instance_uid
    if copy is not None and not budget.take(len(copy.head)):
        copy = None
    if copy is not None:
        body = Body(lambda: _prepared_bytes(source, record, copy, identity), copy.size, DICOM)
    else:
        body = Body(lambda: _deidentified_bytes(source, record, target, promised), None, DICOM)
    # An object de-identified earlier keeps its SOP Instance UID: then there is no new one to report.
    new_uid = promised if promised != ref.document_uid else None
    return DocumentResult(ref=ref, repository_uid=repository_uid, body=body, new_document_uid=new_uid)


def prepare_copy(deidentifier: Deidentifier, fp: BinaryIO, record: InstanceRecord, accepted: tuple[str, ...],
                 copyable: bool = True) -> "_Prepared":
    """The plan, the output syntax and (when no pixel edit is needed and the file can be copied from) the head
    of the anonymized object; Rejected when anonymization refuses it."""
    prepared = _prepare_by_difference(deidentifier, fp, record, accepted) if copyable else None
    return prepared or _prepare_from_scratch(deidentifier, fp, record, accepted, copyable)


_Prepared = tuple[Plan, str, part10.CopyPlan | None]  # the plan, the output syntax, the head prepared (if any)


def _prepare_from_scratch(deidentifier: Deidentifier, fp: BinaryIO, record: InstanceRecord,
                          accepted: tuple[str, ...], copyable: bool) -> _Prepared:
    """The reference path: parse with pydicom, plan, apply, write the head. What it learns about the object
    is remembered so that the next objects of its series can be prepared by difference."""
    instance = part10.open_source(fp)
    known = _learn(fp, instance) if copyable else None  # before anything converts its elements
    plan, plan_inputs = _refused_as_rejected(deidentifier.plan_with_inputs, instance.dataset)
    target = _target(record, accepted, plan)
    copy = None
    if plan.pixel_edit is None and copyable:
        copy, layout = part10.plan_copy_with_layout(deidentifier.apply(instance.dataset, plan), instance, target)
        if copy is not None and known is not None and layout is not None:
            _memory(deidentifier).remember(_Learnt(known, plan, _besides_instance_uid(plan_inputs), layout))
    return plan, target, copy


def _prepare_by_difference(deidentifier: Deidentifier, fp: BinaryIO, record: InstanceRecord,
                           accepted: tuple[str, ...]) -> _Prepared | None:
    """What _prepare_from_scratch would return, built from an object prepared before whose header differs
    from this one in a few substitutable values only (see similar_header, walk_by_difference and
    spliced_copy); None when no remembered object is close enough."""
    memory = _memory(deidentifier)
    for learnt in memory.recent():
        similar = _unless_failing(similar_header.read_like, fp, learnt.known)
        if similar is None:
            continue
        header = similar.instance.dataset  # the header pydicom would have read: the same plan
        if learnt.plan_inputs is not None and learnt.plan_inputs.isdisjoint(similar.changed):
            plan = _refused_as_rejected(deidentifier.plan_like, learnt.plan, header)
        else:
            plan = _refused_as_rejected(deidentifier.plan, header)
        target = _target(record, accepted, plan)
        if plan.pixel_edit is not None:
            return plan, target, None
        if target != learnt.layout.target:
            return None
        changes = _unless_failing(changed_outputs, deidentifier, similar.instance.dataset, plan, learnt.plan,
                                  similar.changed)
        if changes is None:
            return None
        copy = _unless_failing(part10.plan_copy_like, learnt.layout, similar.instance, changes, similar.changed)
        if copy is None:
            return None
        memory.used(learnt)
        return plan, target, copy
    return None


def _besides_instance_uid(plan_inputs: frozenset[int] | None) -> frozenset[int] | None:
    # plan_like() decides again what depends on the SOP Instance UID, which differs from slice to slice.
    return None if plan_inputs is None else plan_inputs - {SOP_INSTANCE_UID}


def _learn(fp: BinaryIO, instance: part10.SourceInstance) -> similar_header.KnownHeader | None:
    return _unless_failing(similar_header.learn, fp, instance)


def _unless_failing(step, *args):
    """A step of the path by difference; an error in it (a case it does not foresee) sends the object to the
    path from scratch instead of failing the document. Logged by type only: messages may quote values."""
    try:
        return step(*args)
    except Exception as exc:
        log.warning("anonymized copy prepared from scratch: %s failed (%s)", step.__name__, type(exc).__name__)
        return None


def _refused_as_rejected(decide, *args):
    """decide(*args) (a plan), with the de-identifier's Refusal as this document's urn:dicom:wado:0001."""
    try:
        return decide(*args)
    except Refusal as refusal:
        raise Rejected(codes.UNABLE_TO_ANONYMIZE, f"Unable to anonymize: {refusal.reason}")


def _target(record: InstanceRecord, accepted: tuple[str, ...], plan: Plan) -> str:
    target = _chosen_syntax(record.transfer_syntax_uid, accepted, plan.pixel_edit is not None)
    if target is None:
        raise Rejected(codes.UNABLE_TO_ANONYMIZE, "Unable to anonymize: the pixel data must be cleaned and cannot "
                                                  "be re-encoded in any of the requested transfer syntaxes")
    return target


@functools.lru_cache(maxsize=256)
def _chosen_syntax(stored: str, accepted: tuple[str, ...], pixel_edit: bool) -> str | None:
    # The same few combinations for every document of a request; the choice costs several UID parses.
    return choose_transfer_syntax(stored, accepted, pixel_edit=pixel_edit)


@dataclass(frozen=True)
class _Learnt:
    """One object prepared from scratch: its header as read, its plan, and how its head was written."""

    known: similar_header.KnownHeader
    plan: Plan
    plan_inputs: frozenset[int] | None  # the elements the plan was decided from, but the SOP Instance UID
    #                                      (None: all of them)
    layout: part10.CopyLayout


class _Memory:
    """The objects most recently learnt from, per de-identifier (shared by the threads of a worker)."""

    size = 4  # series in flight at once; each kept object holds its parsed header (well under 1 MB)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[_Learnt] = []

    def recent(self) -> list[_Learnt]:
        with self._lock:
            return list(self._items)

    def remember(self, learnt: _Learnt) -> None:
        with self._lock:
            self._items = [learnt, *self._items[:self.size - 1]]

    def used(self, learnt: _Learnt) -> None:
        with self._lock:
            if self._items and self._items[0] is not learnt and learnt in self._items:
                self._items = [learnt, *(item for item in self._items if item is not learnt)]


_memories: "weakref.WeakKeyDictionary[Deidentifier, _Memory]" = weakref.WeakKeyDictionary()
_memories_lock = threading.Lock()


def _memory(deidentifier: Deidentifier) -> _Memory:
    with _memories_lock:
        memory = _memories.get(deidentifier)
        if memory is None:
            memory = _memories[deidentifier] = _Memory()
        return memory


def _prepared_bytes(source, record: InstanceRecord, prepared: part10.CopyPlan,
                    identity: tuple[int, int, int]) -> Iterator[bytes | FileSpan]:
    with source.store.open(record) as fp:
        if file_identity(fp) != identity:
            # The header we prepared describes another version of the file: its pixels must not follow it.
            raise StoreError("the stored file changed after the response began")
        yield prepared.head
        # The pixel bytes, untouched; the transport fails the response if the file is shorter now.
        yield FileSpan(fp, prepared.start, prepared.end - prepared.start)
        if file_identity(fp) != identity:
            raise StoreError("the stored file changed while it was being sent")
        if prepared.tail:
            yield prepared.tail


def _deidentified_bytes(source, record: InstanceRecord, target: str, promised_uid: str) -> Iterator[bytes]:
    # Planned again from the file as it is now: a file changed since the envelope was written must not slip
    # through on a stale plan (a Refusal here aborts the response, as does a UID other than the one promised).
    with source.store.open(record) as fp:
        instance = part10.open_source(fp)
        plan = source.deidentifier.plan(instance.dataset)
        if plan.new_sop_instance_uid != promised_uid:
            raise Refusal("the stored object changed while the response was being sent")
        header = source.deidentifier.apply(instance.dataset, plan)
        yield from part10.encode(header, instance, target, plan.pixel_edit, chunk_size=source.chunk_size)
