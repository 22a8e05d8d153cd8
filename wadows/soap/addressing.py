"""WS-Addressing 1.0 in and out, and the SOAP 1.2 mustUnderstand rule for header blocks.

spyne has no WS-Addressing at all. We read what IHE ITI TF-2 Appendix V requires, accept the spellings clients
really send (MessageID with or without `urn:`, actions with stray whitespace, mustUnderstand "1" or "true"), and
answer with Action (mustUnderstand) and RelatesTo.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from lxml import etree

from wadows.soap import namespaces as ns
from wadows.soap.errors import SoapFault, sender

WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"

# Header blocks we process (or, for WS-Security, accept so XUA-style callers are not turned away; identity
# checks are the access policy's job, not a header's).
UNDERSTOOD = {f"{{{ns.WSA}}}{name}" for name in ("Action", "To", "MessageID", "ReplyTo", "FaultTo", "RelatesTo", "From")}
UNDERSTOOD.add(f"{{{WSSE}}}Security")

_OUR_ROLES = {None, "http://www.w3.org/2003/05/soap-envelope/role/next",
              "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver"}
_TRUE = {"1", "true"}


@dataclass
class Addressing:
    action: str | None = None
    message_id: str | None = None
    reply_to: str | None = None


def read(header: etree._Element | None) -> Addressing:
    """Collect the wsa headers and refuse header blocks marked mustUnderstand that we do not process.

    Everything is collected before anything is refused: a fault still carries RelatesTo (WS-Addressing 1.0 Core
    3.4), and clients that require addressing (JAX-WS AddressingFeature(required=true)) reject a fault without it,
    showing their own "missing RelatesTo" error instead of ours."""
    found = Addressing()
    if header is None:
        return found
    blocks = [block for block in header if isinstance(block.tag, str)]
    for block in blocks:
        if block.tag == f"{{{ns.WSA}}}Action":
            found.action = (block.text or "").strip()
        elif block.tag == f"{{{ns.WSA}}}MessageID":
            found.message_id = (block.text or "").strip() or None
        elif block.tag == f"{{{ns.WSA}}}ReplyTo":
            address = block.find(f"{{{ns.WSA}}}Address")
            found.reply_to = (address.text or "").strip() if address is not None else None
    for block in blocks:
        must = (block.get(f"{{{ns.SOAP12}}}mustUnderstand") or "").strip().lower() in _TRUE
        role = block.get(f"{{{ns.SOAP12}}}role")
        if must and role in _OUR_ROLES and block.tag not in UNDERSTOOD:
            raise _relating(not_understood(block.tag), found)
    if found.reply_to not in (None, "", ns.WSA_ANONYMOUS):
        # Only the synchronous exchange of IHE Appendix V; asynchronous replies are optional and not offered.
        raise _relating(sender("Only the anonymous ReplyTo address is supported",
                               subcode="wsa:OnlyAnonymousAddressSupported"), found)
    return found


def _relating(fault: SoapFault, found: Addressing) -> SoapFault:
    fault.relates_to = found.message_id  # the fault writer puts it in wsa:RelatesTo
    return fault


def not_understood(tag: str) -> SoapFault:
    fault = SoapFault("MustUnderstand", "A header block marked mustUnderstand was not understood")
    fault.not_understood = tag  # the fault writer adds the env:NotUnderstood header
    return fault


def response_header(action: str, relates_to: str | None) -> etree._Element:
    header = etree.Element(f"{{{ns.SOAP12}}}Header", nsmap={"env": ns.SOAP12, "wsa": ns.WSA})
    act = etree.SubElement(header, f"{{{ns.WSA}}}Action")
    act.set(f"{{{ns.SOAP12}}}mustUnderstand", "true")
    act.text = action
    etree.SubElement(header, f"{{{ns.WSA}}}MessageID").text = f"urn:uuid:{uuid.uuid4()}"
    if relates_to:
        etree.SubElement(header, f"{{{ns.WSA}}}RelatesTo").text = relates_to
    etree.SubElement(header, f"{{{ns.WSA}}}To").text = ns.WSA_ANONYMOUS
    return header

