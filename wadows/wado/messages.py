"""Plain request and response values shared by every transport (SOAP and WADO-URI)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator

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
    kind: str | None = None  # a finer reason (wadows.wado.rejected), not sent in WS mode


@dataclass(frozen=True)
class FileSpan:
    """`count` bytes of an open stored file from `offset`: a document's bytes the transport may send without
    copying them through Python (wadows.zero_copy). The file stays open until the producer is resumed."""

    fp: BinaryIO
    offset: int
    count: int


@dataclass
class Body:
    """The bytes of one returned document, produced only when the writer reaches it: bytes, and FileSpans for
    stretches copied unchanged from the stored file."""

    chunks: Callable[[], Iterator[bytes | FileSpan]]
    size: int | None = None  # known in advance only when the bytes are a stored file
    media_type: str = "application/dicom"


@dataclass
class DocumentResult:
    """One RAD-69 document."""

    ref: DocumentRef
    repository_uid: str  # echoed: the caller's value, or ours when it sent none
    body: Body
    new_document_uid: str | None = None  # set when the object was anonymized into a new SOP Instance UID


@dataclass(frozen=True)
class RenderingParameters:
    """The rendering elements of a RenderedDocumentRequest, as sent (checked by the operation)."""

    content_types: tuple[str, ...] = ()
    charsets: tuple[str, ...] = ()
    annotation: str | None = None
    rows: str | None = None
    columns: str | None = None
    region: str | tuple[str, str, str, str] | None = None  # "x1,y1,x2,y2" text, or XMin, YMin, XMax, YMax
    window_center: str | None = None
    window_width: str | None = None
    image_quality: str | None = None
    presentation_uid: str | None = None
    presentation_series_uid: str | None = None


@dataclass(frozen=True)
class RenderedRequest:
    documents: tuple[tuple[DocumentRef, RenderingParameters], ...]


@dataclass(frozen=True)
class UsedParameters:
    """What a rendering actually used, echoed in the RenderedDocumentResponse (PS3.18 §6.4.2.2)."""

    rows: int
    columns: int
    region: tuple[float, float, float, float] | None = None
    window_center: float | None = None
    window_width: float | None = None
    image_quality: int | None = None
    annotation: str | None = None
    presentation_uid: str | None = None
    presentation_series_uid: str | None = None


@dataclass
class RenderedResult:
    ref: DocumentRef
    repository_uid: str
    body: Body
    used: UsedParameters | None  # None for text renderings
    anonymized: bool


@dataclass(frozen=True)
class InformationRequest:
    documents: tuple[tuple[DocumentRef, tuple[str, ...]], ...]  # each document with its XPath expressions


@dataclass
class InformationResult:
    ref: DocumentRef
    repository_uid: str
    answers: list[str | None]  # one per XPath, in request order; None when nothing matched


@dataclass
class Response:
    """The answer of any of the three operations: results (of the operation's kind) and RegistryErrors."""

    documents: list = field(default_factory=list)
    errors: list[RegistryError] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)  # the DocumentUniqueIds asked for, for the audit trail

    @property
    def status(self) -> str:
        """ITI TF-3 Table 4.2.4.2-4: errors and some documents make a partial success."""
        if not any(e.severity == codes.SEVERITY_ERROR for e in self.errors):
            return codes.SUCCESS
        return codes.PARTIAL_SUCCESS if self.documents else codes.FAILURE
