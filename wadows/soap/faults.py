"""Fault envelopes, written here rather than by spyne: spyne cannot produce VersionMismatch or MustUnderstand, and
it answers every fault with HTTP 500. SOAP 1.2, except the SOAP/1.1 VersionMismatch fault of Appendix A."""

from __future__ import annotations

from lxml import etree

from wadows.soap import addressing
from wadows.soap import namespaces as ns
from wadows.soap.errors import SoapFault

# SOAP 1.2 Part 2, Table 20 (HTTP binding): only Sender faults are the client's fault.
_HTTP_STATUS = {"Sender": 400, "Receiver": 500, "VersionMismatch": 500, "MustUnderstand": 500,
                "DataEncodingUnknown": 500}


def http_status(fault: SoapFault) -> int:
    if fault.code == "Sender":
        return fault.http_status
    return _HTTP_STATUS.get(fault.code, 500)


def envelope(fault: SoapFault, relates_to: str | None = None) -> bytes:
    env = etree.Element(f"{{{ns.SOAP12}}}Envelope", nsmap={"env": ns.SOAP12, "wsa": ns.WSA})
    header = addressing.response_header(ns.WSA_FAULT_ACTION, relates_to or getattr(fault, "relates_to", None))
    if fault.code == "VersionMismatch":
        header.insert(0, _upgrade())
    not_understood = getattr(fault, "not_understood", None)
    if not_understood:
        qname = etree.QName(not_understood)
        block = etree.Element(f"{{{ns.SOAP12}}}NotUnderstood", nsmap={"nu": qname.namespace} if qname.namespace else None)
        block.set("qname", f"nu:{qname.localname}" if qname.namespace else qname.localname)
        header.insert(0, block)
    env.append(header)
    body = etree.SubElement(env, f"{{{ns.SOAP12}}}Body")
    fault_el = etree.SubElement(body, f"{{{ns.SOAP12}}}Fault")
    code = etree.SubElement(fault_el, f"{{{ns.SOAP12}}}Code")
    etree.SubElement(code, f"{{{ns.SOAP12}}}Value").text = f"env:{fault.code}"
    if fault.subcode:
        sub = etree.SubElement(code, f"{{{ns.SOAP12}}}Subcode")
        etree.SubElement(sub, f"{{{ns.SOAP12}}}Value").text = fault.subcode
    reason = etree.SubElement(fault_el, f"{{{ns.SOAP12}}}Reason")
    text = etree.SubElement(reason, f"{{{ns.SOAP12}}}Text")
    text.set(f"{{{ns.XML}}}lang", "en")
    text.text = fault.reason
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def soap11_version_mismatch(fault: SoapFault) -> bytes:
    """SOAP 1.2 Part 1, Appendix A: a SOAP/1.1 sender gets a SOAP/1.1 fault it can read (faultcode, faultstring),
    with the Upgrade header block naming the envelope we accept. No WS-Addressing: the message was not processed."""
    env = etree.Element(f"{{{ns.SOAP11}}}Envelope", nsmap={"soap": ns.SOAP11})
    etree.SubElement(env, f"{{{ns.SOAP11}}}Header").append(_upgrade())
    fault_el = etree.SubElement(etree.SubElement(env, f"{{{ns.SOAP11}}}Body"), f"{{{ns.SOAP11}}}Fault")
    etree.SubElement(fault_el, "faultcode").text = "soap:VersionMismatch"  # SOAP 1.1: unqualified children
    etree.SubElement(fault_el, "faultstring").text = fault.reason
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def _upgrade() -> etree._Element:
    # SOAP 1.2 Part 1 §5.4.7; env declared on the block itself so that its qname resolves in any envelope.
    upgrade = etree.Element(f"{{{ns.SOAP12}}}Upgrade", nsmap={"env": ns.SOAP12})
    etree.SubElement(upgrade, f"{{{ns.SOAP12}}}SupportedEnvelope", qname="env:Envelope")
    return upgrade
