"""An anonymized RAD-69 document: planned before the envelope is written, de-identified while it is sent."""

from __future__ import annotations

from typing import Iterator

from wadows.deid import Refusal
from wadows.dicom import part10
from wadows.dicom.transcode import choose_transfer_syntax
from wadows.store.base import InstanceRecord
from wadows.wado import codes
from wadows.wado.messages import Body, DocumentRef, DocumentResult
from wadows.wado.rejected import Rejected


def anonymized_result(source, ref: DocumentRef, record: InstanceRecord, accepted: tuple[str, ...],
                      repository_uid: str) -> DocumentResult:
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
        raise Rejected(codes.UNABLE_TO_ANONYMIZE, "Unable to anonymize: the pixel data must be cleaned and cannot be "
                                                  "re-encoded in any of the requested transfer syntaxes")
    promised = plan.new_sop_instance_uid
    body = Body(lambda: _deidentified_bytes(source, record, target, promised), None, "application/dicom")
    # An object de-identified earlier keeps its SOP Instance UID: then there is no new one to report.
    new_uid = promised if promised != ref.document_uid else None
    return DocumentResult(ref=ref, repository_uid=repository_uid, body=body, new_document_uid=new_uid)


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
