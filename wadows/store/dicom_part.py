"""The DICOM objects inside a WADO-RS response (one instance, or each instance of a series), as streams of bytes.

WADO-RS answers `multipart/related; type="application/dicom"` with one part per instance (Orthanc's
DICOMweb plugin 1.7 answers nothing else: it refuses a bare `Accept: application/dicom` with HTTP 400);
some servers answer a single `application/dicom` body. Both arrive here as the object's bytes in chunks,
never held whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message

import requests

from wadows.multipart import MultipartError, MultipartReader
from wadows.store.base import StoreError

DICOM = "application/dicom"


@dataclass
class DicomPart:
    declared_length: int | None  # the part's (or body's) Content-Length, when the server gave one
    chunks: Iterator[bytes]


def dicom_part(response: requests.Response, chunk_size: int) -> DicomPart:
    """The first DICOM object of a WADO-RS answer. Raises StoreError when the answer holds none."""
    media_type, boundary = media_type_and_boundary(response.headers.get("Content-Type", ""))
    if media_type == DICOM:
        encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
        length = None if encoded else content_length(response.headers.get("Content-Length"))
        return DicomPart(length, _guarded(response.iter_content(chunk_size)))
    if media_type != "multipart/related":
        raise StoreError(f"the PACS answered {media_type or 'without a media type'} instead of a DICOM object")
    if not boundary:
        raise StoreError("the PACS answered multipart/related without a boundary")
    try:
        return next(_parts(response, chunk_size, boundary))
    except StopIteration:
        raise StoreError("the PACS answered with no DICOM object") from None


def dicom_parts(response: requests.Response, chunk_size: int) -> Iterator[DicomPart]:
    """Each DICOM object of a series (or study) answer in turn, one part per instance; read a part's chunks to
    their end before asking for the next one. A part's chunks raise StoreError when the answer is malformed or
    cut inside the part, and whatever the connection raises. A part counts as whole only when the boundary
    after it has arrived (Orthanc sends a series with `Connection: close` and no Content-Length, each part with
    its own)."""
    media_type, boundary = media_type_and_boundary(response.headers.get("Content-Type", ""))
    if media_type != "multipart/related" or not boundary:
        raise StoreError(f"the PACS answered a series with {media_type or 'no media type'}, not multipart/related")
    return _parts(response, chunk_size, boundary)


def _parts(response: requests.Response, chunk_size: int, boundary: str) -> Iterator[DicomPart]:
    parts = MultipartReader(response.iter_content(chunk_size), boundary).parts()
    while True:
        try:
            headers, body = next(parts)
        except StopIteration:
            return
        except MultipartError as exc:
            raise StoreError(f"the PACS's multipart answer is malformed ({exc})") from None
        part_type, _ = media_type_and_boundary(headers.get("content-type") or DICOM)
        if part_type != DICOM:
            raise StoreError(f"the PACS answered a {part_type} part instead of a DICOM object")
        yield DicomPart(content_length(headers.get("content-length")), _guarded(body))


def _guarded(chunks: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from chunks
    except MultipartError as exc:  # its texts describe the framing only
        raise StoreError(f"the PACS's multipart answer is malformed ({exc})") from None


def media_type_and_boundary(value: str) -> tuple[str, str | None]:
    message = Message()
    message["Content-Type"] = value
    boundary = message.get_param("boundary")
    return (message.get_content_type() if value else ""), (boundary if isinstance(boundary, str) else None)


def content_length(value: str | None) -> int | None:
    try:
        length = int(value) if value is not None else None
    except ValueError:
        return None
    return length if length is not None and length >= 0 else None
