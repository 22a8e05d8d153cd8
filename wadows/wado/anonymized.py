"""An anonymized RAD-69 document: decided before the envelope is written, sent after it.

Most objects need no pixel work: their de-identified header is built once, while the envelope is being
prepared, and kept (within a per-request memory budget) so that sending them is a plain copy of the
stored pixel bytes, with a size known in advance. Objects whose pixels must be cleaned, or beyond the
budget, are de-identified again while they are sent.
"""

from __future__ import annotations

import os
from typing import BinaryIO, Iterator

from wadows.deid import Refusal
from wadows.dicom import part10
from wadows.dicom.transcode import choose_transfer_syntax
from wadows.store.base import InstanceRecord, StoreError
from wadows.wado import codes
from wadows.wado.messages import Body, DocumentRef, DocumentResult
from wadows.wado.rejected import Rejected

DICOM = "application/dicom"


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
                      repository_uid: str, budget: HeaderBudget) -> DocumentResult:
    deidentifier = source.deidentifier
    if deidentifier is None:
        raise Rejected(codes.ANONYMIZE_NOT_SUPPORTED, "This server is not configured to anonymize")
    with source.store.open(record) as fp:
        instance = part10.open_source(fp)
        try:
            plan = deidentifier.plan(instance.dataset)
        except Refusal as refusal:
            raise Rejected(codes.UNABLE_TO_ANONYMIZE, f"Unable to anonymize: {refusal.reason}")
        target = choose_transfer_syntax(record.transfer_syntax_uid, accepted, pixel_edit=plan.pixel_edit is not None)
        if target is None:
            raise Rejected(codes.UNABLE_TO_ANONYMIZE, "Unable to anonymize: the pixel data must be cleaned and cannot "
                                                      "be re-encoded in any of the requested transfer syntaxes")
        promised = plan.new_sop_instance_uid
        prepared = None
        identity = _identity(fp)
        if plan.pixel_edit is None and identity is not None:
            prepared = part10.plan_copy(deidentifier.apply(instance.dataset, plan), instance, target)
            if prepared is not None and not budget.take(len(prepared.head)):
                prepared = None
    if prepared is not None:
        body = Body(lambda: _prepared_bytes(source, record, prepared, identity), prepared.size, DICOM)
    else:
        body = Body(lambda: _deidentified_bytes(source, record, target, promised), None, DICOM)
    # An object de-identified earlier keeps its SOP Instance UID: then there is no new one to report.
    new_uid = promised if promised != ref.document_uid else None
    return DocumentResult(ref=ref, repository_uid=repository_uid, body=body, new_document_uid=new_uid)


def _identity(fp: BinaryIO) -> tuple[int, int, int] | None:
    """What tells the stored file we prepared from apart from any other: device/inode, size, mtime."""
    try:
        info = os.fstat(fp.fileno())
    except (AttributeError, OSError, ValueError):
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


def _prepared_bytes(source, record: InstanceRecord, prepared: part10.CopyPlan,
                    identity: tuple[int, int, int]) -> Iterator[bytes]:
    with source.store.open(record) as fp:
        if _identity(fp) != identity:
            # The header we prepared describes another version of the file: its pixels must not follow it.
            raise StoreError("the stored file changed after the response began")
        yield prepared.head
        position = prepared.start
        while position < prepared.end:
            fp.seek(position)
            data = fp.read(min(source.chunk_size, prepared.end - position))
            if not data:
                raise StoreError("the stored file ended before its pixel data did")
            position += len(data)
            yield data
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
