"""POST /wado-ws: from HTTP bytes to a streamed MTOM answer, with every bad input turned into a fault."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable

from lxml import etree

from wadows import logs
from wadows.soap import addressing, faults, mtom_in, mtom_out
from wadows.soap import namespaces as ns
from wadows.soap.errors import ONLY_SOAP12, Soap11Message, SoapFault, receiver, sender
from wadows.soap.operations import BY_REQUEST
from wadows.soap.service import RequestState, SpyneDriver
from wadows.soap.xmlparse import parse_untrusted
from wadows.wado.source import ImagingDocumentSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = 10 * 1024 * 1024
    max_xml_depth: int = 64
    max_mime_parts: int = mtom_in.MAX_PARTS


@dataclass
class HttpAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: Iterable[bytes]
    operation: str | None = None  # for the audit trail and the metrics
    response: object = None       # the operation's wadows.wado Response, when there was one


class SoapEndpoint:
    def __init__(self, source: ImagingDocumentSource, limits: Limits = Limits()):
        self.source = source
        self.limits = limits
        self.driver = SpyneDriver()

    def handle(self, environ: dict, caller) -> HttpAnswer:
        relates_to = None
        try:
            body = read_body(environ, self.limits.max_request_bytes)
            package = mtom_in.unpack(environ.get("CONTENT_TYPE", ""), body, self.limits.max_mime_parts)
            envelope = parse_untrusted(package.xml, self.limits.max_xml_depth)
            # WS-Addressing first, so that every later fault (xop:Include, the Body) carries RelatesTo. wsa values
            # are URIs, never XOP-optimized: nothing is lost by reading them before XOP is resolved.
            wsa = addressing.read(envelope_header(envelope))
            relates_to = wsa.message_id
            mtom_in.resolve_xop(envelope, package.attachments)
            request = body_request(envelope)
            spec = BY_REQUEST.get(request.tag)
            if spec is None:
                raise sender("The SOAP Body does not hold a request of an operation this endpoint offers")
            state = RequestState(source=self.source, caller=caller)
            response = with_our_prefixes(self.driver.call(envelope, state))
            action = spec.response_action(wsa.action or package.action_param)
            response.insert(0, addressing.response_header(action, relates_to))
            xml = etree.tostring(response, xml_declaration=True, encoding="UTF-8")
            message = mtom_out.build(xml, state.attachments, action)
            headers = [("Content-Type", message.content_type), ("MIME-Version", "1.0")]
            if message.content_length is not None:
                headers.append(("Content-Length", str(message.content_length)))
            return HttpAnswer(200, headers, message.chunks, spec.name, state.response)
        except SoapFault as fault:
            log.info("SOAP fault %s: %s", fault.code, fault.reason)
            return fault_answer(fault, relates_to)
        except Exception as exc:
            log.error("unexpected failure while handling a SOAP request: %s at %s", type(exc).__name__,
                      logs.where(exc))
            return fault_answer(receiver(), relates_to)


def fault_answer(fault: SoapFault, relates_to: str | None) -> HttpAnswer:
    if isinstance(fault, Soap11Message):  # the SOAP 1.1 HTTP binding's media type
        body, content_type = faults.soap11_version_mismatch(fault), "text/xml; charset=utf-8"
    else:
        body, content_type = faults.envelope(fault, relates_to), "application/soap+xml; charset=utf-8"
    return HttpAnswer(faults.http_status(fault), [("Content-Type", content_type), ("Content-Length", str(len(body)))],
                      [body])


def read_body(environ: dict, limit: int) -> bytes:
    """The whole request body, refusing more than `limit` bytes (declared or actually sent, chunked or not)."""
    declared = environ.get("CONTENT_LENGTH")
    too_large = sender(f"The request is larger than this server accepts ({limit} bytes)", http_status=413)
    if declared:
        try:
            length = int(declared)
        except ValueError:
            raise sender("The Content-Length header is not a number") from None
        if length > limit:
            raise too_large
    stream = environ["wsgi.input"]
    parts, size = [], 0
    while True:
        try:
            chunk = stream.read(min(65536, limit + 1 - size))
        except OSError:
            raise
        except Exception:  # the server's framing errors (gunicorn: InvalidChunkSize...): the client's fault
            raise sender("The request body cannot be read: its HTTP framing is malformed") from None
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            raise too_large
        if declared and size >= int(declared):
            break
    return b"".join(parts)


def with_our_prefixes(element: etree._Element) -> etree._Element:
    """The same tree with readable prefixes declared once on the Envelope (env:, ihe:, rs:, wado:, xop:) instead
    of spyne's ns0/ns1 declared on every element: captures are read by people. The Envelope is made anew with
    our declarations; its children move under it and lxml rewrites their prefixes to the ones declared there
    (in C: copying the tree element by element was ~2.5 ms of a 200-document answer before its first byte)."""
    envelope = etree.Element(element.tag, element.attrib, nsmap=ns.NSMAP)
    envelope.text = element.text
    for child in list(element):
        envelope.append(child)
    etree.cleanup_namespaces(envelope, top_nsmap=ns.NSMAP, keep_ns_prefixes=list(ns.NSMAP))
    return envelope


def envelope_header(envelope: etree._Element) -> etree._Element | None:
    """The SOAP 1.2 Header, once the root is known to be a SOAP 1.2 Envelope."""
    if envelope.tag == f"{{{ns.SOAP11}}}Envelope":
        raise Soap11Message()
    if etree.QName(envelope).localname == "Envelope" and envelope.tag != f"{{{ns.SOAP12}}}Envelope":
        raise SoapFault("VersionMismatch", ONLY_SOAP12)
    if envelope.tag != f"{{{ns.SOAP12}}}Envelope":
        raise sender("The request is not a SOAP envelope")
    return envelope.find(f"{{{ns.SOAP12}}}Header")


def body_request(envelope: etree._Element) -> etree._Element:
    """The request element: the first child of the Body."""
    body = envelope.find(f"{{{ns.SOAP12}}}Body")
    if body is None:
        raise sender("The SOAP envelope has no Body")
    children = [child for child in body if isinstance(child.tag, str)]
    if not children:
        raise sender("The SOAP Body is empty")
    _merge_repeated_requests(children)
    return children[0]


def _merge_repeated_requests(children: list[etree._Element]) -> None:
    """Some consumers (dicomtrolley) send one RAD-69 request element per study in a single Body. Their study
    requests are folded into the first element so that one answer covers them all."""
    first = children[0]
    if first.tag != f"{{{ns.RAD}}}RetrieveImagingDocumentSetRequest":
        return
    syntax_list = first.find(f"{{{ns.RAD}}}TransferSyntaxUIDList")
    for other in children[1:]:
        if other.tag != first.tag:
            continue
        for study in other.findall(f"{{{ns.RAD}}}StudyRequest"):
            if syntax_list is not None:
                syntax_list.addprevious(study)
            else:
                first.append(study)
        other.getparent().remove(other)
