"""The spyne application: the three operations, the XOP output hook, and an in-process driver.

spyne deserializes requests into models and serializes responses; everything around it (reading HTTP, MTOM,
WS-Addressing, faults, streaming) is ours, because spyne's versions are missing or broken (see
/docs/conformance.md). The methods translate between spyne models and the transport-free values of wadows.wado.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from lxml import etree
from spyne import Application, ServiceBase, rpc
from spyne.context import MethodContext
from spyne.protocol.soap import Soap12
from spyne.protocol.xml import _append
from spyne.server import ServerBase

from wadows import logs
from wadows.soap import models
from wadows.soap import namespaces as ns
from wadows.soap.errors import SoapFault, receiver, sender
from wadows.soap.mtom_out import new_content_id
from wadows.soap.operations import BY_REQUEST
from wadows.wado import codes
from wadows.wado.messages import Body, DocumentRef, RegistryError, RetrieveRequest, Response
from wadows.wado.retrieve import retrieve
from wadows.wado.source import ImagingDocumentSource as Source

log = logging.getLogger(__name__)

INTERNAL_TNS = "urn:wadows:internal"  # spyne's own dispatch namespace; never on the wire


@dataclass
class RequestState:
    """Per-request values spyne carries for us in ctx.udc."""

    source: Source
    attachments: list[tuple[str, Body]] = field(default_factory=list)
    documents_requested: int = 0


class WadoSoap12(Soap12):
    """Soap12 with our dispatch (Body child QName) and an xop:Include writer for ihe:Document."""

    def __init__(self):
        super().__init__(validator=None, cleanup_namespaces=True)
        self.serialization_handlers[models.XopDocument] = self._xop_to_parent

    def create_in_document(self, ctx, charset=None):
        pass  # the endpoint already parsed the envelope with the hardened parser

    def decompose_incoming_envelope(self, ctx, message=Soap12.REQUEST):
        super().decompose_incoming_envelope(ctx, message)
        spec = BY_REQUEST.get(ctx.method_request_string)
        if spec is not None:
            ctx.method_request_string = f"{{{INTERNAL_TNS}}}{etree.QName(spec.request).localname}"

    def _xop_to_parent(self, ctx, cls, inst, parent, ns_, name="retval", **_):
        element = etree.Element(f"{{{ns_}}}{name}")
        content_id = new_content_id()
        etree.SubElement(element, f"{{{ns.XOP}}}Include", href=f"cid:{content_id}")
        ctx.udc.attachments.append((content_id, inst))
        _append(parent, element)


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _registry_response(status: str, errors: list[RegistryError]) -> models.RegistryResponse:
    error_list = None
    if errors:
        worst = next((e.severity for e in errors if e.severity.endswith(":Error")), errors[0].severity)
        error_list = models.RegistryErrorList(
            highestSeverity=worst,
            RegistryError=[models.RegistryError(errorCode=e.code, codeContext=e.context, location=e.location,
                                                severity=e.severity) for e in errors],
        )
    return models.RegistryResponse(status=status, RegistryErrorList=error_list)


def retrieve_request(model: models.RetrieveImagingDocumentSetRequest | None) -> RetrieveRequest:
    documents = []
    for study in (model.StudyRequest or []) if model else []:
        for series in study.SeriesRequest or []:
            for doc in series.DocumentRequest or []:
                documents.append(DocumentRef(
                    study_uid=_text(study.studyInstanceUID) or "",
                    series_uid=_text(series.seriesInstanceUID) or "",
                    document_uid=_text(doc.DocumentUniqueId) or "",
                    repository_uid=_text(doc.RepositoryUniqueId),
                    home_community_id=_text(doc.HomeCommunityId),
                    anonymize=doc.Anonymize.strip() if doc.Anonymize is not None else None,
                    frame_number=_text(doc.FrameNumber),
                ))
    syntaxes = []
    if model and model.TransferSyntaxUIDList is not None:
        syntaxes = [s for s in (_text(t) for t in model.TransferSyntaxUIDList.TransferSyntaxUID or []) if s]
    return RetrieveRequest(documents=tuple(documents), transfer_syntaxes=tuple(syntaxes))


def retrieve_response(result: Response) -> models.RetrieveDocumentSetResponse:
    return models.RetrieveDocumentSetResponse(
        RegistryResponse=_registry_response(result.status, result.errors),
        DocumentResponse=[
            models.DocumentResponse(
                HomeCommunityId=doc.ref.home_community_id,
                RepositoryUniqueId=doc.repository_uid,
                DocumentUniqueId=doc.ref.document_uid,
                NewDocumentUniqueId=doc.new_document_uid,
                FrameNumber=doc.ref.frame_number,
                mimeType=doc.body.media_type,
                Document=doc.body,
            )
            for doc in result.documents
        ],
    )


def _not_yet(request, document_element: str, what: str) -> models.RegistryResponse:
    """The operations of issue 4 are declared but not implemented: each document gets urn:dicom:wado:0013."""
    uids = [_text(doc.DocumentUniqueId)
            for study in (request.StudyRequest or [] if request else [])
            for series in study.SeriesRequest or []
            for doc in getattr(series, document_element) or []]
    reason = f"{what} is not supported by this server yet"
    errors = [RegistryError(codes.UNSUPPORTED_PARAMETER, reason, uid) for uid in uids] or [
        RegistryError(codes.UNSUPPORTED_PARAMETER, reason)]
    return _registry_response(codes.FAILURE, errors)


class ImagingDocumentSourceService(ServiceBase):
    @rpc(models.RetrieveImagingDocumentSetRequest, _body_style="bare",
         _in_message_name="RetrieveImagingDocumentSetRequest",
         _out_message_name=f"{{{ns.XDS}}}RetrieveDocumentSetResponse",
         _returns=models.RetrieveDocumentSetResponse)
    def RetrieveImagingDocumentSet(ctx, request):
        parsed = retrieve_request(request)
        ctx.udc.documents_requested = len(parsed.documents)
        try:
            return retrieve_response(retrieve(ctx.udc.source, parsed))
        except Exception as exc:
            # spyne turns this into a Receiver fault; its own log line would quote the exception's text.
            log.error("RetrieveImagingDocumentSet failed: %s at %s", type(exc).__name__, logs.where(exc))
            raise

    @rpc(models.RetrieveRenderedImagingDocumentSetRequest, _body_style="bare",
         _in_message_name="RetrieveRenderedImagingDocumentSetRequest",
         _out_message_name=f"{{{ns.WADO}}}RetrieveRenderedImagingDocumentSetResponse",
         _returns=models.RetrieveRenderedImagingDocumentSetResponse)
    def RetrieveRenderedImagingDocumentSet(ctx, request):
        return models.RetrieveRenderedImagingDocumentSetResponse(
            RegistryResponse=_not_yet(request, "RenderedDocumentRequest", "RetrieveRenderedImagingDocumentSet"))

    @rpc(models.RetrieveImagingDocumentSetInformationRequest, _body_style="bare",
         _in_message_name="RetrieveImagingDocumentSetInformationRequest",
         _out_message_name=f"{{{ns.WADO}}}RetrieveImagingDocumentSetInformationResponse",
         _returns=models.RetrieveImagingDocumentSetInformationResponse)
    def RetrieveImagingDocumentSetInformation(ctx, request):
        return models.RetrieveImagingDocumentSetInformationResponse(
            RegistryResponse=_not_yet(request, "DocumentInformationRequest", "RetrieveImagingDocumentSetInformation"))


class SpyneDriver(ServerBase):
    """Runs one parsed envelope through spyne: deserialize, call, serialize. No HTTP here."""

    transport = "urn:wadows:in-process"

    def __init__(self):
        protocol = WadoSoap12()
        app = Application([ImagingDocumentSourceService], tns=INTERNAL_TNS,
                          in_protocol=protocol, out_protocol=WadoSoap12())
        super().__init__(app)

    def call(self, envelope: etree._Element, state: RequestState) -> etree._Element:
        """The response Envelope element (no header yet). Raises SoapFault."""
        ctx = MethodContext(self, MethodContext.SERVER)
        ctx.udc = state
        ctx.in_document = (envelope, {})
        contexts = self.generate_contexts(ctx)
        p_ctx = contexts[0]
        if p_ctx.in_error is not None:
            raise _as_fault(p_ctx.in_error)
        self.get_in_object(p_ctx)
        if p_ctx.in_error is not None:
            raise _as_fault(p_ctx.in_error)
        self.get_out_object(p_ctx)
        if p_ctx.out_error is not None:
            raise _as_fault(p_ctx.out_error)
        p_ctx.out_protocol.serialize(p_ctx, message=p_ctx.out_protocol.RESPONSE)
        if p_ctx.out_error is not None:
            raise _as_fault(p_ctx.out_error)
        return p_ctx.out_document


def _as_fault(error: Exception) -> SoapFault:
    code = getattr(error, "faultcode", "") or ""
    if code.startswith("Client"):
        # spyne's own text may quote request values; the caller gets a generic reason.
        return sender("The request body could not be read as a message of this operation")
    log.error("operation failed inside spyne: %s", type(error).__name__)
    return receiver()
