"""The Imaging Document Source: what the operations need to know about this server, in one object."""

from __future__ import annotations

from dataclasses import dataclass

from typing import TYPE_CHECKING

from wadows.deid import Deidentifier
from wadows.store.base import Store

if TYPE_CHECKING:
    from wadows.wado.prepare_ahead import PrepareAhead


@dataclass
class ImagingDocumentSource:
    store: Store
    repository_uid: str
    home_community_id: str | None = None
    deidentifier: Deidentifier | None = None  # None: Anonymize is answered with urn:dicom:wado:0002
    max_documents: int = 10_000          # per request; more is urn:dicom:wado:0005
    chunk_size: int = 1 << 20
    prepared_header_bytes: int = 64 << 20  # de-identified headers one request may keep between envelope and send
    rendered_bytes: int = 256 << 20        # renderings one request may hold before its envelope is written
    xpath_seconds: float = 5.0             # a metadata XPath running longer is stopped (urn:dicom:wado:0005)
    information_seconds: float = 60.0      # XPath time one metadata request may use in all
    information_bytes: int = 256 << 20     # metadata answers one request may hold before its envelope is written
    prepare_ahead: "PrepareAhead | None" = None  # a second core for large anonymized RAD-69 requests
