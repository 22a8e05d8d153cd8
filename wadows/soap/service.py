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
from wadows.soap import models, translate
from wadows.soap import namespaces as ns
from wadows.soap.errors import SoapFault, receiver, sender
from wadows.soap.mtom_out import new_content_id
from wadows.soap.operations import BY_REQUEST
from wadows.wado.information import information
from wadows.wado.messages import Body
from wadows.wado.rendered import rendered
from wadows.wado.retrieve import retrieve
from wadows.wado.source import ImagingDocumentSource as Source

log = logging.getLogger(__name__)

INTERNAL_TNS = "urn:wadows:internal"  # spyne's own dispatch namespace; never on the wire


@dataclass
class RequestState:
    """Per-request values spyne carries for us in ctx.udc."""

    source: Source
    caller: object  # wadows.policy.access.Caller
    attachments: list[tuple[str, Body]] = field(default_factory=list)
    response: object = None  # the operation's wadows.wado Response, for the audit trail


class WadoSoap12(Soap12):
    """Soap12 with our dispatch (Body child QName) and an xop:Include writer for ihe:Document."""

    def __init__(self):
        super().__init__(validator=None, cleanup_namespaces=True)
        self.serialization_handlers[models.XopDocument] = self._xop_to_parent
        self.serialization_handlers[models.DocumentResponse] = self._document_response_to_parent
        self.deserialization_handlers[models.DocumentRequest] = self._document_request_from_element

    def create_in_document(self, ctx, charset=None):
        pass  # the endpoint already parsed the envelope with the hardened parser

    def decompose_incoming_envelope(self, ctx, message=Soap12.REQUEST):
        super().decompose_incoming_envelope(ctx, message)
        spec = BY_REQUEST.get(ctx.method_request_string)
        if spec is not None:
            ctx.method_request_string = f"{{{INTERNAL_TNS}}}{etree.QName(spec.request).localname}"

    def _document_response_to_parent(self, ctx, cls, inst, parent, ns_, name="DocumentResponse", **_):
        """ihe:DocumentResponse, written from the operation's DocumentResult itself: spyne's generic writer (and
        building its model) cost ~60 µs per document, a third of a large request's time before its first byte.
        The elements, order and namespaces of models.DocumentResponse (tests/test_soap_transport.py compares)."""
        element = etree.Element(f"{{{ns_}}}{name}")
        for tag, value in ((f"{{{ns.XDS}}}HomeCommunityId", inst.ref.home_community_id),
                           (f"{{{ns.XDS}}}RepositoryUniqueId", inst.repository_uid),
                           (f"{{{ns.XDS}}}DocumentUniqueId", inst.ref.document_uid),
                           (f"{{{ns.XDS}}}NewDocumentUniqueId", inst.new_document_uid),
                           (f"{{{ns.WADO}}}FrameNumber", inst.ref.frame_number),
                           (f"{{{ns.XDS}}}mimeType", inst.body.media_type)):
            if value is not None:  # absent, as spyne writes a None of a min_occurs=0 element
                etree.SubElement(element, tag).text = value
        self._xop_to_parent(ctx, models.XopDocument, inst.body, element, ns.XDS, "Document")
        _append(parent, element)

    def _document_request_from_element(self, ctx, cls, element):
        """ihe:DocumentRequest read from its children directly: spyne's generic reader, and the model instance it
        builds, cost ~25 µs per document before the first byte of a large request. What that reader makes of
        the usual shape (child elements without attributes: matched by local name whatever their namespace, the
        last of a name wins, their text or "", comments skipped, unknown names ignored) is read here alike, into
        an object with the same fields; a child with attributes (xsi:nil, xsi:type ...) or anything else goes to
        spyne's reader (tests/test_soap_transport.py compares the two)."""
        values = {}
        for child in element:
            tag = child.tag
            if type(tag) is not str:
                if isinstance(child, etree._Comment):
                    continue
                return self.complex_from_element(ctx, cls, element)
            if child.attrib:
                return self.complex_from_element(ctx, cls, element)
            key = tag.rpartition("}")[2]
            if key in DocumentRequestRead.__slots__:
                values[key] = child.text or ""
        return DocumentRequestRead(**values)

    def _xop_to_parent(self, ctx, cls, inst, parent, ns_, name="retval", **_):
        element = etree.Element(f"{{{ns_}}}{name}")
        content_id = new_content_id()
        etree.SubElement(element, f"{{{ns.XOP}}}Include", href=f"cid:{content_id}")
        ctx.udc.attachments.append((content_id, inst))
        _append(parent, element)


class DocumentRequestRead:
    """The fields of models.DocumentRequest, as WadoSoap12 reads them (None: absent)."""

    __slots__ = tuple(models.DocumentRequest._type_info)

    def __init__(self, **values: str) -> None:
        for name in self.__slots__:
            setattr(self, name, values.get(name))


class ImagingDocumentSourceService(ServiceBase):
    @rpc(models.RetrieveImagingDocumentSetRequest, _body_style="bare",
         _in_message_name="RetrieveImagingDocumentSetRequest",
         _out_message_name=f"{{{ns.XDS}}}RetrieveDocumentSetResponse",
         _returns=models.RetrieveDocumentSetResponse)
    def RetrieveImagingDocumentSet(ctx, request):
        return _run(ctx, "RetrieveImagingDocumentSet", translate.retrieve_response,
                    lambda source, caller: retrieve(source, translate.retrieve_request(request), caller))

    @rpc(models.RetrieveRenderedImagingDocumentSetRequest, _body_style="bare",
         _in_message_name="RetrieveRenderedImagingDocumentSetRequest",
         _out_message_name=f"{{{ns.WADO}}}RetrieveRenderedImagingDocumentSetResponse",
         _returns=models.RetrieveRenderedImagingDocumentSetResponse)
    def RetrieveRenderedImagingDocumentSet(ctx, request):
        body = ctx.in_body_doc
        return _run(ctx, "RetrieveRenderedImagingDocumentSet", translate.rendered_response,
                    lambda source, caller: rendered(source, translate.rendered_request(request, body), caller))

    @rpc(models.RetrieveImagingDocumentSetInformationRequest, _body_style="bare",
         _in_message_name="RetrieveImagingDocumentSetInformationRequest",
         _out_message_name=f"{{{ns.WADO}}}RetrieveImagingDocumentSetInformationResponse",
         _returns=models.RetrieveImagingDocumentSetInformationResponse)
    def RetrieveImagingDocumentSetInformation(ctx, request):
        return _run(ctx, "RetrieveImagingDocumentSetInformation", translate.information_response,
                    lambda source, caller: information(source, translate.information_request(request), caller))


def _run(ctx, operation: str, to_model, operate):
    """Run the operation for this request's caller; keep its result for the audit trail."""
    try:
        ctx.udc.response = operate(ctx.udc.source, ctx.udc.caller)
        return to_model(ctx.udc.response)
    except Exception as exc:
        # spyne turns this into a Receiver fault; its own log line would quote the exception's text.
        log.error("%s failed: %s at %s", operation, type(exc).__name__, logs.where(exc))
        raise


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
        try:
            return self._answer(contexts[0])
        finally:
            # spyne's contexts refer to each other (a cycle only the garbage collector frees): let go of what
            # they hold of ours, so that a response dropped early frees its documents (and files) at once.
            for each in {id(c): c for c in (ctx, *contexts)}.values():
                each.udc = each.in_object = each.out_object = each.out_document = None

    def _answer(self, p_ctx: MethodContext) -> etree._Element:
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
