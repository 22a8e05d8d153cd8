"""RAD-69 RetrieveImagingDocumentSet: one result per requested document, each body produced only when sent.

Everything that can fail cheaply is decided here, before the envelope is written (the envelope carries the
status): identifiers, repository, transfer syntax, whether the file is still there, whether anonymization
refuses the object. What can only fail while streaming (a file corrupted after these checks) aborts the
response instead of sending a wrong object.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Callable, Iterator

from wadows.dicom import part10
from wadows.dicom.transcode import choose_transfer_syntax, explain_refusal
from wadows.store.base import InstanceRecord, StoreError
from wadows.store.file_identity import file_identity
from wadows.wado import codes
from wadows.wado.anonymize import AnonymizeChoice, parse_anonymize
from wadows.wado.anonymized import HeaderBudget, anonymized_result
from wadows.wado.messages import (Body, DocumentRef, DocumentResult, FileSpan, RegistryError, RetrieveRequest,
                                  Response)
from wadows.wado.documents import (authorize, each_document, find_document, local_copies, release_when_sent,
                                  request_size_error)
from wadows.wado.prepare_ahead import ReadyCopy, work_ahead
from wadows.wado.rejected import Rejected
from wadows.wado.source import ImagingDocumentSource
from wadows.wado.uids import shown

log = logging.getLogger(__name__)

DICOM = "application/dicom"


def retrieve(source: ImagingDocumentSource, request: RetrieveRequest, caller) -> Response:
    problem = request_size_error(source, len(request.documents))
    if problem is not None:
        return Response(errors=[problem], requested=[ref.document_uid for ref in request.documents])
    budget = HeaderBudget(source.prepared_header_bytes)
    source, release = local_copies(source, (ref for ref in request.documents if _may_receive(ref, caller)))
    try:
        documents, errors = _prepare_all(source, request, budget, caller)
    except BaseException:
        if release is not None:
            release()  # no answer will read the local copies
        raise
    if release is not None:
        release_when_sent(release, documents)
    response = Response(documents=documents, errors=errors,
                        requested=[ref.document_uid for ref in request.documents])
    for doc in documents:
        if doc.ref.frame_number is not None:
            response.errors.append(RegistryError(
                codes.UNSUPPORTED_PARAMETER, "FrameNumber is ignored by RetrieveImagingDocumentSet: the whole object "
                                             "is returned", shown(doc.ref.document_uid), codes.SEVERITY_WARNING))
    _log_outcome(len(request.documents), response)
    return response


def _prepare_all(source: ImagingDocumentSource, request: RetrieveRequest, budget: HeaderBudget,
                 caller) -> tuple[list[DocumentResult], list[RegistryError]]:
    """Every document in request order, the last anonymized ones prepared by the helper when it can."""
    ahead = work_ahead(source, request, caller)
    try:
        return each_document(
            list(enumerate(request.documents)),
            lambda item: _prepare(source, item[1], request.transfer_syntaxes, budget, caller, ahead.get(item[0])),
            ref_of=lambda item: item[1])
    finally:
        ahead.close()


def _may_receive(ref: DocumentRef, caller) -> bool:
    """Only what the caller may have is fetched ahead: a refused document costs the PACS nothing."""
    try:
        authorize(caller, parse_anonymize(ref.anonymize) is AnonymizeChoice.YES)
    except Rejected:
        return False
    return True


def _prepare(source: ImagingDocumentSource, ref: DocumentRef, accepted: tuple[str, ...],
             budget: HeaderBudget, caller, ready: Callable[[], ReadyCopy | None] | None = None) -> DocumentResult:
    choice = parse_anonymize(ref.anonymize)
    authorize(caller, choice is AnonymizeChoice.YES)
    record, size = find_document(source, ref)
    if not accepted:
        raise Rejected(codes.REQUEST_ERROR, "The TransferSyntaxUIDList names no transfer syntax")
    repository_uid = ref.repository_uid or source.repository_uid
    if choice is AnonymizeChoice.YES:
        return anonymized_result(source, ref, record, accepted, repository_uid, budget, ready and ready())
    if record.transfer_syntax_uid in accepted:
        body = Body(lambda: _stored_bytes(source, record, size), size, DICOM)
    else:
        target = choose_transfer_syntax(record.transfer_syntax_uid, accepted)
        if target is None:
            raise Rejected(codes.REPOSITORY_ERROR, explain_refusal(record.transfer_syntax_uid, accepted))
        body = Body(lambda: _transcoded_bytes(source, record, target), None, DICOM)
    return DocumentResult(ref=ref, repository_uid=repository_uid, body=body)


def _stored_bytes(source: ImagingDocumentSource, record: InstanceRecord,
                  size: int | None) -> Iterator[bytes | FileSpan]:
    """The stored file byte for byte. The envelope already promised `size` bytes: a file that changed length
    since, or was rewritten while being sent, must abort the response rather than send a wrong object."""
    with source.store.open(record) as fp:
        if size is None:  # a store that cannot tell the size in advance: the response is chunked
            while data := fp.read(source.chunk_size):
                yield data
            return
        identity = file_identity(fp)
        yield FileSpan(fp, 0, size)  # the transport fails the response if the file is shorter now
        fp.seek(size)
        if fp.read(1):
            raise StoreError("a stored file grew while it was being sent")
        if file_identity(fp) != identity:
            raise StoreError("a stored file was rewritten while it was being sent")


def _transcoded_bytes(source: ImagingDocumentSource, record: InstanceRecord, target: str) -> Iterator[bytes]:
    with source.store.open(record) as fp:
        instance = part10.open_source(fp)
        yield from part10.encode(instance.dataset, instance, target, chunk_size=source.chunk_size)


def _log_outcome(requested: int, response: Response) -> None:
    # Counts and error codes only: identifiers are treated as patient data and never logged.
    errors = Counter(e.code for e in response.errors if e.severity == codes.SEVERITY_ERROR)
    log.info("RetrieveImagingDocumentSet: %d requested, %d returned, errors %s", requested,
             len(response.documents), dict(errors) or "none")
