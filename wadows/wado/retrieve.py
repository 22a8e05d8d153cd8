"""RAD-69 RetrieveImagingDocumentSet: one result per requested document, each body produced only when sent.

Everything that can fail cheaply is decided here, before the envelope is written (the envelope carries the
status): identifiers, repository, transfer syntax, whether the file is still there, whether anonymization
refuses the object. What can only fail while streaming (a file corrupted after these checks) aborts the
response instead of sending a wrong object.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Iterator

from wadows.dicom import part10
from wadows.dicom.transcode import choose_transfer_syntax, explain_refusal
from wadows.store.base import InstanceGone, InstanceRecord, StoreError, StoreUnavailable
from wadows.wado import codes
from wadows.wado.anonymize import AnonymizeChoice, parse_anonymize
from wadows.wado.anonymized import HeaderBudget, anonymized_result
from wadows.wado.messages import Body, DocumentRef, DocumentResult, RegistryError, RetrieveRequest, RetrieveResponse
from wadows.wado.rejected import Rejected
from wadows.wado.source import ImagingDocumentSource
from wadows.wado.uids import is_valid_uid, shown

log = logging.getLogger(__name__)

DICOM = "application/dicom"


def retrieve(source: ImagingDocumentSource, request: RetrieveRequest) -> RetrieveResponse:
    response = RetrieveResponse()
    if not request.documents:
        response.errors.append(RegistryError(codes.REQUEST_ERROR, "The request names no DocumentRequest"))
        return response
    if len(request.documents) > source.max_documents:
        response.errors.append(RegistryError(
            codes.TOO_LARGE, f"The request names {len(request.documents)} documents; this server answers at most "
                             f"{source.max_documents} per request"))
        return response
    budget = HeaderBudget(source.prepared_header_bytes)
    for ref in request.documents:
        try:
            response.documents.append(_prepare(source, ref, request.transfer_syntaxes, budget))
        except Rejected as rejected:
            response.errors.append(RegistryError(rejected.code, rejected.context, shown(ref.document_uid) or None))
            continue
        if ref.frame_number is not None:
            response.errors.append(RegistryError(
                codes.UNSUPPORTED_PARAMETER, "FrameNumber is ignored by RetrieveImagingDocumentSet: the whole object "
                                             "is returned", shown(ref.document_uid), codes.SEVERITY_WARNING))
    _log_outcome(len(request.documents), response)
    return response


def _prepare(source: ImagingDocumentSource, ref: DocumentRef, accepted: tuple[str, ...],
             budget: HeaderBudget) -> DocumentResult:
    _check_identifiers(source, ref)
    if not accepted:
        raise Rejected(codes.REQUEST_ERROR, "The TransferSyntaxUIDList names no transfer syntax")
    choice = parse_anonymize(ref.anonymize)
    record = source.store.locate(ref.document_uid)
    if record is None:
        raise Rejected(codes.DOCUMENT_UNIQUE_ID_ERROR, "No document with this DocumentUniqueId in this repository")
    if record.study_uid != ref.study_uid:
        raise Rejected(codes.DOCUMENT_UNIQUE_ID_ERROR, "The document is not part of the requested study")
    if record.series_uid != ref.series_uid:
        raise Rejected(codes.DOCUMENT_UNIQUE_ID_ERROR, "The document is not part of the requested series")
    size = _available(source, record)
    repository_uid = ref.repository_uid or source.repository_uid
    if choice is AnonymizeChoice.YES:
        return anonymized_result(source, ref, record, accepted, repository_uid, budget)
    if record.transfer_syntax_uid in accepted:
        body = Body(lambda: _stored_bytes(source, record, size), size, DICOM)
    else:
        target = choose_transfer_syntax(record.transfer_syntax_uid, accepted)
        if target is None:
            raise Rejected(codes.REPOSITORY_ERROR, explain_refusal(record.transfer_syntax_uid, accepted))
        body = Body(lambda: _transcoded_bytes(source, record, target), None, DICOM)
    return DocumentResult(ref=ref, repository_uid=repository_uid, body=body)


def _check_identifiers(source: ImagingDocumentSource, ref: DocumentRef) -> None:
    for name, value in (("studyInstanceUID", ref.study_uid), ("seriesInstanceUID", ref.series_uid),
                        ("DocumentUniqueId", ref.document_uid)):
        if not value:
            raise Rejected(codes.REQUEST_ERROR, f"The {name} is empty")
        if not is_valid_uid(value):
            raise Rejected(codes.INVALID_PARAMETER, f"The {name} is not a valid DICOM UID")
    if ref.repository_uid and ref.repository_uid != source.repository_uid:
        raise Rejected(codes.UNKNOWN_REPOSITORY, "This server does not answer to the RepositoryUniqueId requested")
    if ref.home_community_id and ref.home_community_id != source.home_community_id:
        raise Rejected(codes.UNKNOWN_COMMUNITY, "This server does not belong to the HomeCommunityId requested")


def _available(source: ImagingDocumentSource, record: InstanceRecord) -> int | None:
    try:
        return source.store.available(record)
    except InstanceGone:
        raise Rejected(codes.DOCUMENT_UNIQUE_ID_ERROR, "The document is no longer available in this repository")
    except StoreUnavailable as exc:
        raise Rejected(codes.REPOSITORY_BUSY, f"The image store is not available: {exc}")
    except StoreError as exc:
        raise Rejected(codes.REPOSITORY_ERROR, f"The image store could not deliver the document: {exc}")


def _stored_bytes(source: ImagingDocumentSource, record: InstanceRecord, size: int | None) -> Iterator[bytes]:
    """The stored file byte for byte. The envelope already promised `size` bytes: a file that changed length
    since must abort the response rather than send a wrong object."""
    with source.store.open(record) as fp:
        sent = 0
        while True:
            data = fp.read(source.chunk_size)
            if not data:
                break
            sent += len(data)
            if size is not None and sent > size:
                raise StoreError("a stored file grew while it was being sent")
            yield data
        if size is not None and sent != size:
            raise StoreError("a stored file shrank while it was being sent")


def _transcoded_bytes(source: ImagingDocumentSource, record: InstanceRecord, target: str) -> Iterator[bytes]:
    with source.store.open(record) as fp:
        instance = part10.open_source(fp)
        yield from part10.encode(instance.dataset, instance, target, chunk_size=source.chunk_size)


def _log_outcome(requested: int, response: RetrieveResponse) -> None:
    # Counts and error codes only: identifiers are treated as patient data and never logged.
    errors = Counter(e.code for e in response.errors if e.severity == codes.SEVERITY_ERROR)
    log.info("RetrieveImagingDocumentSet: %d requested, %d returned, errors %s", requested,
             len(response.documents), dict(errors) or "none")
