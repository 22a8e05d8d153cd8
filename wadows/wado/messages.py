"""Plain request and response values shared by every transport (SOAP now, WADO-URI later)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

from wadows.wado import codes


@dataclass(frozen=True)
class DocumentRef:
    """One requested document, as the caller named it."""

    study_uid: str
    series_uid: str
    document_uid: str
    repository_uid: str | None = None
    home_community_id: str | None = None
    anonymize: str | None = None  # the raw element text; None when absent
    frame_number: str | None = None


@dataclass(frozen=True)
class RetrieveRequest:
    """RAD-69: documents plus the transfer syntaxes the caller accepts, in its order of preference."""

    documents: tuple[DocumentRef, ...]
    transfer_syntaxes: tuple[str, ...]


@dataclass(frozen=True)
class RegistryError:
    code: str
    context: str  # human-readable; never carries patient data
    location: str | None = None
    severity: str = codes.SEVERITY_ERROR


@dataclass
class Body:
    """The bytes of one returned document, produced only when the writer reaches it."""

    chunks: Callable[[], Iterator[bytes]]
    size: int | None = None  # known in advance only when the bytes are a stored file
    media_type: str = "application/dicom"


@dataclass
class DocumentResult:
    ref: DocumentRef
    repository_uid: str  # echoed: the caller's value, or ours when it sent none
    body: Body
    new_document_uid: str | None = None  # set when the object was anonymized into a new SOP Instance UID


@dataclass
class RetrieveResponse:
    documents: list[DocumentResult] = field(default_factory=list)
    errors: list[RegistryError] = field(default_factory=list)

    @property
    def status(self) -> str:
        """ITI TF-3 Table 4.2.4.2-4: errors and some documents make a partial success."""
        if not any(e.severity == codes.SEVERITY_ERROR for e in self.errors):
            return codes.SUCCESS
        return codes.PARTIAL_SUCCESS if self.documents else codes.FAILURE
