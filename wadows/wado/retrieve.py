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
from wadows.wado.documents import authorize, each_document, find_document, local_copies, request_size_error
from wadows.wado.prepare_ahead import MIN_DOCUMENTS, Pending, ReadyCopy
from wadows.wado.rejected import Rejected
from wadows.wado.source import ImagingDocumentSource
from wadows.wado.uids import is_valid_uid, shown

log = logging.getLogger(__name__)

DICOM = "application/dicom"


def retrieve(source: ImagingDocumentSource, request: RetrieveRequest, caller) -> Response:
    problem = request_size_error(source, len(request.documents))
    if problem is not None:
        return Response(errors=[problem], requested=[ref.document_uid for ref in request.documents])
    budget = HeaderBudget(source.prepared_header_bytes)
    source, release = local_copies(source, [ref for ref in request.documents if _may_receive(ref, caller)])
    ahead = _work_ahead(source, request, caller)
    try:
        documents, errors = each_document(
            list(enumerate(request.documents)),
            lambda item: _prepare(source, item[1], request.transfer_syntaxes, budget, caller, ahead.get(item[0])),
            ref_of=lambda item: item[1])
    finally:
        ahead.close()
    if release is not None:
        _release_when_sent(release, documents)
    response = Response(documents=documents, errors=errors,
                        requested=[ref.document_uid for ref in request.documents])
    for doc in documents:
        if doc.ref.frame_number is not None:
            response.errors.append(RegistryError(
                codes.UNSUPPORTED_PARAMETER, "FrameNumber is ignored by RetrieveImagingDocumentSet: the whole object "
                                             "is returned", shown(doc.ref.document_uid), codes.SEVERITY_WARNING))
    _log_outcome(len(request.documents), response)
    return response


class _Ahead:
    """Which requested documents (by position) the prepare-ahead helper is preparing, and its answer."""

    def __init__(self, pending: Pending | None = None, positions: dict[int, int] | None = None) -> None:
        self._pending, self._positions = pending, positions or {}

    def get(self, position: int) -> Callable[[], ReadyCopy | None] | None:
        job = self._positions.get(position)
        return None if job is None else lambda: self._pending.result(job)

    def close(self) -> None:
        if self._pending is not None:
            self._pending.close()


def _work_ahead(source: ImagingDocumentSource, request: RetrieveRequest, caller) -> _Ahead:
    """Hand the last anonymized documents to the helper, if there are enough to be worth it."""
    if source.prepare_ahead is None or not request.transfer_syntaxes or not caller.allowed:
        return _Ahead()
    positions = [i for i, ref in enumerate(request.documents) if _anonymized_copy_wanted(ref)]
    if len(positions) < MIN_DOCUMENTS:
        return _Ahead()
    theirs = positions[len(positions) * 9 // 20:]  # 55%: the request also looks up and checks the helper's ones
    jobs = [(request.documents[i].document_uid, request.transfer_syntaxes) for i in theirs]
    pending = source.prepare_ahead.submit(jobs)
    return _Ahead(pending, {position: job for job, position in enumerate(theirs)}) if pending else _Ahead()


def _may_receive(ref: DocumentRef, caller) -> bool:
    """Only what the caller may have is fetched ahead: a refused document costs the PACS nothing."""
    try:
        authorize(caller, parse_anonymize(ref.anonymize) is AnonymizeChoice.YES)
    except Rejected:
        return False
    return True


def _anonymized_copy_wanted(ref: DocumentRef) -> bool:
    try:
        return parse_anonymize(ref.anonymize) is AnonymizeChoice.YES and is_valid_uid(ref.document_uid)
    except Rejected:  # a value Anonymize may not have: reported when the document's turn comes
        return False


def _release_when_sent(close: Callable[[], None], documents: list[DocumentResult]) -> None:
    """The request's local copies of stored objects go once the last document is out, or as soon as one
    ends early: the response is cut there, nothing more will be read."""
    if not documents:
        close()
        return
    left = [len(documents)]
    for doc in documents:
        doc.body.chunks = _then_release(doc.body.chunks, left, close)


def _then_release(chunks: Callable[[], Iterator[bytes | FileSpan]], left: list[int],
                  close: Callable[[], None]) -> Callable[[], Iterator[bytes | FileSpan]]:
    def produce() -> Iterator[bytes | FileSpan]:
        whole = False
        try:
            yield from chunks()
            whole = True
        finally:
            left[0] -= 1
            if not whole or not left[0]:
                close()
    return produce


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
