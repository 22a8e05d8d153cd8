"""What the three operations share for each requested document: its identifiers checked, the stored instance
found and still there, and a RegistryError when it is not."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Callable, Iterable, Iterator, TypeVar

from wadows import logs
from wadows.dicom.pixel_span import DicomReadError

from wadows.store.base import InstanceGone, InstanceRecord, StoreError, StoreUnavailable
from wadows.wado import codes
from wadows.wado.messages import DocumentRef, DocumentResult, FileSpan, RegistryError
from wadows.wado.rejected import GONE, NOT_AUTHORIZED, Rejected
from wadows.wado.source import ImagingDocumentSource
from wadows.wado.uids import is_valid_uid, shown

log = logging.getLogger(__name__)

NO_LONGER_AVAILABLE = "The document is no longer available in this repository"

T = TypeVar("T")
I = TypeVar("I")


def request_size_error(source: ImagingDocumentSource, count: int) -> RegistryError | None:
    """The request-wide checks: at least one document, at most max_documents."""
    if not count:
        return RegistryError(codes.REQUEST_ERROR, "The request names no document")
    if count > source.max_documents:
        return RegistryError(codes.TOO_LARGE, f"The request names {count} documents; this server answers at most "
                                              f"{source.max_documents} per request")
    return None


def prefetch(source: ImagingDocumentSource, refs: Iterable[DocumentRef]) -> None:
    """Let a store that can (a PACS over QIDO-RS) look up each requested series in one round trip, instead of
    one per document. Failures are left for the per-document lookups to report."""
    locate_series = getattr(source.store, "locate_series", None)
    if locate_series is None:
        return
    for study, series in dict.fromkeys((ref.study_uid, ref.series_uid) for ref in refs):
        if is_valid_uid(study) and is_valid_uid(series):
            try:
                locate_series(study, series)
            except StoreError:
                return  # the store is down or confused: each document will say so


def local_copies(source: ImagingDocumentSource,
                 refs: Iterable[DocumentRef]) -> tuple[ImagingDocumentSource, Callable[[], None] | None]:
    """prefetch, or more from a store that can (a PACS): the requested series fetched whole into local copies
    for this request alone. Returns the source to read through (the store's view for the request) and what
    removes its copies (None when there are none to remove); dropping the view removes them too."""
    view = getattr(source.store, "local_copies", None)
    if view is None:
        prefetch(source, refs)
        return source, None
    wanted = [(ref.study_uid, ref.series_uid, ref.document_uid) for ref in refs
              if is_valid_uid(ref.study_uid) and is_valid_uid(ref.series_uid) and is_valid_uid(ref.document_uid)]
    copies = view(wanted)
    return replace(source, store=copies), copies.close


def release_when_sent(close: Callable[[], None], documents: list[DocumentResult]) -> None:
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


def each_document(items: Iterable[I], prepare: Callable[[I], T],
                  ref_of: Callable[[I], DocumentRef] = lambda item: item) -> tuple[list[T], list[RegistryError]]:
    """prepare(item) for every requested document in request order; a Rejected becomes that document's
    RegistryError (location: the DocumentUniqueId the caller sent)."""
    results, errors = [], []
    for item in items:
        try:
            results.append(prepare(item))
        except Exception as exc:
            rejected = exc if isinstance(exc, Rejected) else as_rejected(exc)
            errors.append(RegistryError(rejected.code, rejected.context, shown(ref_of(item).document_uid) or None,
                                        kind=rejected.kind))
    return results, errors


def as_rejected(exc: Exception) -> Rejected:
    """What a failure while preparing one document means for that document alone: the store or the stored
    object let us down. Anything unforeseen is logged by type and place (never its text) and reported as a
    processing failure of that document; the others still go out."""
    if isinstance(exc, StoreUnavailable):
        return Rejected(codes.REPOSITORY_BUSY, f"The image store is not available: {exc}")
    if isinstance(exc, InstanceGone):
        return Rejected(codes.DOCUMENT_UNIQUE_ID_ERROR, NO_LONGER_AVAILABLE, GONE)
    if isinstance(exc, StoreError):
        return Rejected(codes.REPOSITORY_ERROR, f"The image store could not deliver the document: {exc}")
    if isinstance(exc, DicomReadError):
        return Rejected(codes.PROCESSING_FAILURE, f"The stored object cannot be read: {exc}")
    log.error("preparing a document failed: %s at %s", type(exc).__name__, logs.where(exc))
    return Rejected(codes.PROCESSING_FAILURE, "The document could not be prepared")


def find_document(source: ImagingDocumentSource, ref: DocumentRef) -> tuple[InstanceRecord, int | None]:
    """The stored instance the caller named, checked against the study and series it named, and its current
    size. Raises Rejected with the code RAD-69 (and the NIST tests) expect."""
    _check_identifiers(source, ref)
    try:
        record = source.store.locate(ref.document_uid)
    except StoreUnavailable as exc:
        raise Rejected(codes.REPOSITORY_BUSY, f"The image store is not available: {exc}")
    except StoreError as exc:
        raise Rejected(codes.REPOSITORY_ERROR, f"The image store could not look the document up: {exc}")
    if record is None:
        raise Rejected(codes.DOCUMENT_UNIQUE_ID_ERROR, "No document with this DocumentUniqueId in this repository")
    if record.study_uid != ref.study_uid:
        raise Rejected(codes.DOCUMENT_UNIQUE_ID_ERROR, "The document is not part of the requested study")
    if record.series_uid != ref.series_uid:
        raise Rejected(codes.DOCUMENT_UNIQUE_ID_ERROR, "The document is not part of the requested series")
    return record, _available(source, record)


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
        raise Rejected(codes.DOCUMENT_UNIQUE_ID_ERROR, NO_LONGER_AVAILABLE, GONE)
    except StoreUnavailable as exc:
        raise Rejected(codes.REPOSITORY_BUSY, f"The image store is not available: {exc}")
    except StoreError as exc:
        raise Rejected(codes.REPOSITORY_ERROR, f"The image store could not deliver the document: {exc}")


def authorize(caller, anonymize: bool) -> None:
    """Before anything about the document is looked up, so that an unauthorized caller learns nothing of it.
    `caller` has `allowed` and `originals` (wadows.policy.access.Caller)."""
    if not caller.allowed:
        raise Rejected(codes.DOCUMENT_UNIQUE_ID_ERROR, "The caller is not authorized to use this server",
                       NOT_AUTHORIZED)
    if not anonymize and not caller.originals:
        raise Rejected(codes.DOCUMENT_UNIQUE_ID_ERROR, "The caller is not authorized to receive original objects: "
                                                       "ask with Anonymize=yes", NOT_AUTHORIZED)
