"""The DICOM objects of a WADO-RS series (or study) answer, one after the other, as streams of bytes.

The answer is `multipart/related; type="application/dicom"`, one part per instance. Orthanc 1.10 / DICOMweb 1.7
sends it with `Connection: close` and no Content-Length (the body ends when the connection does) and gives
each part its own Content-Length. A part counts as whole only when the boundary after it has arrived.
"""

from __future__ import annotations

from collections.abc import Iterator

import requests

from wadows.multipart import MultipartError, MultipartReader
from wadows.store.base import StoreError
from wadows.store.dicom_part import DICOM, DicomPart, content_length, media_type_and_boundary


def dicom_parts(response: requests.Response, chunk_size: int) -> Iterator[DicomPart]:
    """Each part in turn; read a part's chunks to their end before asking for the next one. A part's chunks
    raise StoreError when the answer is malformed or cut inside the part, and whatever the connection raises."""
    media_type, boundary = media_type_and_boundary(response.headers.get("Content-Type", ""))
    if media_type != "multipart/related" or not boundary:
        raise StoreError(f"the PACS answered a series with {media_type or 'no media type'}, not multipart/related")
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
            raise StoreError(f"the PACS answered a {part_type} part in a series of DICOM objects")
        yield DicomPart(content_length(headers.get("content-length")), _whole(body))


def _whole(chunks: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from chunks
    except MultipartError as exc:  # its texts describe the framing only
        raise StoreError(f"the PACS's multipart answer is malformed ({exc})") from None
