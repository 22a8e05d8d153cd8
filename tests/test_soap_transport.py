"""The SOAP layer on the wire: MTOM packaging, WS-Addressing, faults, and hostile input, over raw HTTP."""

from __future__ import annotations

import base64
import re

import pytest
import requests
from lxml import etree

from support import (EXPLICIT_LE, SOAP12, WADO, WSA, XDS, doc, document_responses, envelope, post, rad69_body, registry,
                     split_mtom, validate_envelope)

SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"


def assert_still_serving(server, sample):
    reply = post(server.endpoint, envelope(rad69_body([doc(sample[0])])))
    assert reply.status == 200
    assert registry(reply.envelope())[0] == SUCCESS


def fault(reply):
    env = etree.fromstring(reply.raw)
    f = env.find(f"{{{SOAP12}}}Body/{{{SOAP12}}}Fault")
    assert f is not None, reply.raw[:500]
    code = f.findtext(f"{{{SOAP12}}}Code/{{{SOAP12}}}Value")
    reason = f.findtext(f"{{{SOAP12}}}Reason/{{{SOAP12}}}Text")
    return env, code, reason


def test_response_is_mtom_with_bracketed_start_and_matching_cids(server, sample):
    rows = [r for r in sample if r["transfer_syntax_uid"] == EXPLICIT_LE][:3]
    reply = post(server.endpoint, envelope(rad69_body([doc(r) for r in rows])))
    ct = reply.content_type
    assert ct.startswith("multipart/related;")
    assert 'type="application/xop+xml"' in ct and 'start-info="application/soap+xml"' in ct
    assert re.search(r'start="<[^>]+>"', ct)
    mtom = reply.mtom()
    assert mtom.root_headers["content-type"].startswith("application/xop+xml")
    assert 'type="application/soap+xml"' in mtom.root_headers["content-type"]
    hrefs = [d["cid"] for d in document_responses(reply.envelope())]
    assert sorted(hrefs) == sorted(mtom.parts)
    for cid in hrefs:
        assert mtom.part_headers[cid]["content-type"] == "application/dicom"
        assert mtom.part_headers[cid]["content-transfer-encoding"] == "binary"
    # Stored files are sent as they are: from a folder their sizes are known, so the length is too
    # (a PACS does not say how large an object is before sending it).
    if server.store_kind == "folder":
        assert int(reply.headers["Content-Length"]) == len(reply.raw)


def test_transcoded_answer_is_chunked(server, sample):
    row = next(r for r in sample if r["transfer_syntax_uid"] != EXPLICIT_LE)
    reply = requests.post(server.endpoint, data=envelope(rad69_body([doc(row)])),
                          headers={"Content-Type": "application/soap+xml"}, timeout=30)
    assert reply.status_code == 200 and reply.headers.get("Transfer-Encoding") == "chunked"


def test_stored_objects_in_a_chunked_answer_go_out_whole(server, sample):
    """One object to transcode makes the answer chunked; the stored objects beside it still go out with
    sendfile(2), each as a chunk of its own framed by wadows: the exact wire bytes are checked here."""
    import socket
    from urllib.parse import urlsplit

    transcoded = next(r for r in sample if r["transfer_syntax_uid"] != EXPLICIT_LE)
    stored = [r for r in sample if r["transfer_syntax_uid"] == EXPLICIT_LE][:2]
    body = envelope(rad69_body([doc(stored[0]), doc(transcoded), doc(stored[1])]))
    address = urlsplit(server.endpoint)
    request = (f"POST {address.path} HTTP/1.1\r\nHost: {address.netloc}\r\nConnection: close\r\n"
               f"Content-Type: application/soap+xml\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    with socket.create_connection((address.hostname, address.port), timeout=60) as connection:
        connection.sendall(request)
        data = b""
        while chunk := connection.recv(1 << 16):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"\r\ntransfer-encoding: chunked" in head.lower() and b"content-length" not in head.lower()
    decoded = b""
    while True:  # strictly: size line, exactly that many bytes, CRLF; a last chunk of 0 and nothing after it
        size_line, crlf, rest = rest.partition(b"\r\n")
        assert crlf and re.fullmatch(rb"[0-9A-F]+", size_line), size_line[:40]
        size = int(size_line, 16)
        if size == 0:
            assert rest == b"\r\n"
            break
        assert rest[size:size + 2] == b"\r\n"
        decoded, rest = decoded + rest[:size], rest[size + 2:]
    content_type = re.search(rb"\r\ncontent-type: ([^\r]+)", head, re.IGNORECASE).group(1).decode()
    mtom = split_mtom(content_type, decoded)
    by_uid = {r["sop_instance_uid"]: r for r in stored}
    for d in document_responses(etree.fromstring(mtom.root)):
        if d["uid"] in by_uid:
            assert mtom.parts[d["cid"]] == by_uid[d["uid"]]["path"].read_bytes()


def test_ws_addressing_action_and_relates_to(server, sample):
    reply = post(server.endpoint, envelope(rad69_body([doc(sample[0])]), message_id="urn:uuid:1234-abcd"))
    header = reply.envelope().find(f"{{{SOAP12}}}Header")
    action = header.find(f"{{{WSA}}}Action")
    assert action.text == "urn:ihe:iti:2007:RetrieveDocumentSetResponse"
    assert action.get(f"{{{SOAP12}}}mustUnderstand") in ("1", "true")
    assert header.findtext(f"{{{WSA}}}RelatesTo") == "urn:uuid:1234-abcd"
    assert header.findtext(f"{{{WSA}}}MessageID").startswith("urn:uuid:")


@pytest.mark.parametrize("action", ["urn:ihe:rad:2009:RetrieveImagingDocumentSet ",
                                    "urn:ihe:rad:xdsi-b:2009:RetrieveImagingDocumentSet", ""])
def test_every_rad69_action_spelling_and_a_jaxws_message_id(server, sample, action):
    reply = post(server.endpoint, envelope(rad69_body([doc(sample[0])]), action=action, message_id="uuid:42"))
    assert reply.status == 200
    assert reply.envelope().find(f"{{{SOAP12}}}Header").findtext(f"{{{WSA}}}RelatesTo") == "uuid:42"


@pytest.mark.parametrize("prefix", ["urn:dicom:wado:ws:2011", "urn:dicom:ws:wado:2011"])
def test_rendered_answers_in_the_callers_dialect(server, sample, prefix):
    study, series, sop = doc(sample[0])
    body = (f'<wado:RetrieveRenderedImagingDocumentSetRequest xmlns:wado="{WADO}" xmlns:ihe="{XDS}">'
            f'<wado:StudyRequest studyInstanceUID="{study}"><wado:SeriesRequest seriesInstanceUID="{series}">'
            f'<wado:RenderedDocumentRequest><ihe:DocumentUniqueId>{sop}</ihe:DocumentUniqueId>'
            f'<wado:ContentTypeList><wado:ContentType>image/jpeg</wado:ContentType></wado:ContentTypeList>'
            f'</wado:RenderedDocumentRequest></wado:SeriesRequest></wado:StudyRequest>'
            f'</wado:RetrieveRenderedImagingDocumentSetRequest>')
    reply = post(server.endpoint, envelope(body, action=f"{prefix}:RetrieveRenderedImagingDocumentSet"))
    env = reply.envelope()
    assert env.find(f"{{{SOAP12}}}Header").findtext(f"{{{WSA}}}Action") == \
        f"{prefix}:RetrieveRenderedImagingDocumentSetResponse"
    validate_envelope(env, reply.mtom().parts)
    status, errors = registry(env)
    assert status == SUCCESS, errors


def test_cxf_style_mtom_request_with_xml_declaration_and_no_attachments(server, sample):
    boundary = "uuid:7d2c1a3e-5b1f-4c6e-9f0a-8e2b3c4d5e6f"
    xml = envelope(rad69_body([doc(sample[0])]))  # starts with an XML declaration
    body = (f"--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"application/soap+xml\"\r\n"
            f"Content-Transfer-Encoding: binary\r\nContent-ID: <root.message@cxf.apache.org>\r\n\r\n").encode() \
        + xml + f"\r\n--{boundary}--".encode()
    ct = (f'multipart/related; type="application/xop+xml"; boundary="{boundary}"; '
          f'start="<root.message@cxf.apache.org>"; start-info="application/soap+xml"; '
          f'action="urn:ihe:rad:2009:RetrieveImagingDocumentSet"')
    reply = post(server.endpoint, body, content_type=ct)
    assert reply.status == 200, reply.raw[:1000]
    status, _ = registry(reply.envelope())
    assert status == SUCCESS
    assert reply.mtom().parts[document_responses(reply.envelope())[0]["cid"]] == sample[0]["path"].read_bytes()


def test_chunked_request_body(server, sample):
    xml = envelope(rad69_body([doc(sample[0])]))
    reply = requests.post(server.endpoint, data=(xml[i:i + 100] for i in range(0, len(xml), 100)),
                          headers={"Content-Type": "application/soap+xml"}, timeout=30)
    assert reply.status_code == 200 and reply.request.headers.get("Transfer-Encoding") == "chunked"


SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"


@pytest.mark.parametrize("packaging", ["plain", "mtom"])
def test_soap11_envelope_gets_a_soap11_version_mismatch(server, sample, packaging):
    """SOAP 1.2 Part 1, Appendix A: a SOAP/1.1 sender gets a SOAP/1.1 fault it can read, with the Upgrade header
    block naming the SOAP 1.2 envelope (§5.4.7)."""
    message_id = "urn:uuid:5e0c1d2a-soap11-request"
    xml = envelope(rad69_body([doc(sample[0])]), soap_ns=SOAP11, message_id=message_id)
    content_type = "text/xml; charset=utf-8"
    if packaging == "mtom":  # JAX-WS SOAP 1.1 with MTOM: the root part is application/xop+xml; type="text/xml"
        xml = (b'--b0\r\nContent-Type: application/xop+xml; charset=UTF-8; type="text/xml"\r\n'
               b"Content-ID: <root>\r\n\r\n" + xml + b"\r\n--b0--\r\n")
        content_type = ('multipart/related; type="application/xop+xml"; boundary="b0"; start="<root>"; '
                        'start-info="text/xml"')
    reply = post(server.endpoint, xml, content_type=content_type,
                 headers={"SOAPAction": "urn:ihe:rad:2009:RetrieveImagingDocumentSet"})
    assert reply.status == 500 and reply.content_type == "text/xml; charset=utf-8"
    env = etree.fromstring(reply.raw)
    assert env.tag == f"{{{SOAP11}}}Envelope"
    assert [child.tag for child in env] == [f"{{{SOAP11}}}Header", f"{{{SOAP11}}}Body"]
    upgrade = env.find(f"{{{SOAP11}}}Header/{{{SOAP12}}}Upgrade")
    supported = upgrade.find(f"{{{SOAP12}}}SupportedEnvelope")
    prefix, _, local = supported.get("qname").rpartition(":")
    assert (supported.nsmap[prefix], local) == (SOAP12, "Envelope")
    fault_el = env.find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault")
    assert [child.tag for child in fault_el] == ["faultcode", "faultstring"]  # SOAP 1.1 §4.4: unqualified
    prefix, _, local = fault_el.findtext("faultcode").rpartition(":")
    assert (fault_el.nsmap[prefix], local) == (SOAP11, "VersionMismatch")
    reason = fault_el.findtext("faultstring")
    assert "SOAP 1.2" in reason and message_id not in reason and sample[0]["sop_instance_uid"] not in reason
    assert message_id.encode() not in reply.raw and sample[0]["sop_instance_uid"].encode() not in reply.raw
    assert_still_serving(server, sample)


@pytest.mark.parametrize("namespace", ["urn:example", "http://www.w3.org/2003/05/soap-envelope/"])
def test_envelope_of_another_namespace_gets_a_soap12_version_mismatch(server, sample, namespace):
    xml = envelope(rad69_body([doc(sample[0])]), soap_ns=namespace)
    reply = post(server.endpoint, xml)
    env, code, reason = fault(reply)
    assert reply.status == 500 and code == "env:VersionMismatch"
    assert reply.content_type.startswith("application/soap+xml")
    assert env.find(f"{{{SOAP12}}}Header/{{{SOAP12}}}Upgrade") is not None


@pytest.mark.parametrize("name,body", [
    ("malformed", b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Body></s:Envelope>"),
    ("empty", b""),
    ("not an envelope", b"<hello/>"),
    ("empty body", envelope("")),
    ("unknown operation", envelope("<x:Bogus xmlns:x='urn:example'/>")),
    ("deep", b"<a>" * 3000 + b"</a>" * 3000),
])
def test_unreadable_requests_are_sender_faults(server, sample, name, body):
    reply = post(server.endpoint, body)
    env, code, reason = fault(reply)
    assert reply.status == 400 and code.endswith(":Sender"), (name, reason)
    assert "Traceback" not in reason and "File " not in reason
    assert_still_serving(server, sample)


@pytest.mark.parametrize("body", ["", "<x:Bogus xmlns:x='urn:example'/>"])
def test_body_faults_carry_relates_to(server, body):
    reply = post(server.endpoint, envelope(body, message_id="urn:uuid:body-fault-1"))
    env, code, _ = fault(reply)
    assert reply.status == 400 and code.endswith(":Sender")
    assert env.find(f"{{{SOAP12}}}Header").findtext(f"{{{WSA}}}RelatesTo") == "urn:uuid:body-fault-1"


def test_xxe_is_not_resolved(server, sample):
    secret = open("/etc/passwd").read().split(":")[0]
    xml = (b'<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           + envelope(rad69_body([doc(sample[0])]).replace("<ihe:DocumentUniqueId>",
                                                            "<ihe:DocumentUniqueId>&x;")).split(b"?>", 1)[1])
    reply = post(server.endpoint, xml)
    assert reply.status == 400
    assert b"root:x:" not in reply.raw and secret.encode() + b":x:" not in reply.raw
    assert_still_serving(server, sample)


def test_billion_laughs_is_refused_quickly(server, sample):
    entities = '<!ENTITY a "lollollollollol">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    xml = f'<?xml version="1.0"?><!DOCTYPE s [{entities}]><s>&j;</s>'.encode()
    reply = post(server.endpoint, xml)
    assert reply.status == 400
    assert len(reply.raw) < 5000
    assert_still_serving(server, sample)


def test_oversized_body_is_refused(server, sample):
    big = envelope("<x:Pad xmlns:x='urn:example'>" + "A" * (11 * 1024 * 1024) + "</x:Pad>")
    reply = post(server.endpoint, big)
    _, code, reason = fault(reply)
    assert reply.status == 413 and code.endswith(":Sender") and "larger" in reason
    assert_still_serving(server, sample)


def test_unknown_must_understand_header_is_a_must_understand_fault(server, sample):
    extra = '<x:Secret xmlns:x="urn:example:ext" s:mustUnderstand="true">1</x:Secret>'
    reply = post(server.endpoint, envelope(rad69_body([doc(sample[0])]), extra_headers=extra,
                                           message_id="urn:uuid:must-understand-1"))
    env, code, _ = fault(reply)
    assert reply.status == 500 and code.endswith(":MustUnderstand")
    assert env.find(f"{{{SOAP12}}}Header/{{{SOAP12}}}NotUnderstood") is not None
    # JAX-WS with required addressing refuses a fault without RelatesTo and shows its own error instead
    assert env.find(f"{{{SOAP12}}}Header").findtext(f"{{{WSA}}}RelatesTo") == "urn:uuid:must-understand-1"
    assert_still_serving(server, sample)


def test_ws_security_header_with_must_understand_is_accepted(server, sample):
    extra = ('<wsse:Security s:mustUnderstand="1" xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/'
             'oasis-200401-wss-wssecurity-secext-1.0.xsd"/>')
    reply = post(server.endpoint, envelope(rad69_body([doc(sample[0])]), extra_headers=extra))
    assert reply.status == 200 and registry(reply.envelope())[0] == SUCCESS


def test_non_anonymous_reply_to_is_refused(server, sample):
    xml = envelope(rad69_body([doc(sample[0])])).replace(
        b"http://www.w3.org/2005/08/addressing/anonymous", b"http://client.example/callback")
    reply = post(server.endpoint, xml)
    assert reply.status == 400 and "anonymous" in fault(reply)[2]


@pytest.mark.parametrize("href", ["http://evil.example/x", "file:///etc/passwd", "cid:not-in-this-message"])
def test_xop_include_resolves_only_parts_of_the_message(server, sample, href):
    boundary = "b1"
    body_xml = rad69_body([doc(sample[0])]).replace(
        f"<ihe:DocumentUniqueId>{sample[0]['sop_instance_uid']}</ihe:DocumentUniqueId>",
        f'<ihe:DocumentUniqueId><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="{href}"/>'
        f'</ihe:DocumentUniqueId>')
    xml = envelope(body_xml, message_id="urn:uuid:xop-fault-1")
    body = (f"--{boundary}\r\nContent-Type: application/xop+xml; type=\"application/soap+xml\"\r\n"
            f"Content-ID: <root>\r\n\r\n").encode() + xml + f"\r\n--{boundary}--\r\n".encode()
    reply = post(server.endpoint, body,
                 content_type=f'multipart/related; type="application/xop+xml"; boundary="{boundary}"; start="<root>"')
    env, _, reason = fault(reply)
    assert reply.status == 400 and "xop:Include" in reason
    assert env.find(f"{{{SOAP12}}}Header").findtext(f"{{{WSA}}}RelatesTo") == "urn:uuid:xop-fault-1"
    assert b"root:x:" not in reply.raw
    assert_still_serving(server, sample)


def test_xop_include_to_a_part_of_the_message_is_resolved(server, sample):
    boundary = "b2"
    sop = sample[0]["sop_instance_uid"]
    body_xml = rad69_body([doc(sample[0])]).replace(
        f"<ihe:DocumentUniqueId>{sop}</ihe:DocumentUniqueId>",
        '<ihe:DocumentUniqueId><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:uid%40x"/>'
        '</ihe:DocumentUniqueId>')
    body = (f"--{boundary}\r\nContent-Type: application/xop+xml; type=\"application/soap+xml\"\r\n"
            f"Content-ID: <root>\r\n\r\n").encode() + envelope(body_xml) + \
        (f"\r\n--{boundary}\r\nContent-Type: text/plain\r\nContent-ID: <uid@x>\r\n\r\n{sop}"
         f"\r\n--{boundary}--\r\n").encode()
    reply = post(server.endpoint, body,
                 content_type=f'multipart/related; type="application/xop+xml"; boundary="{boundary}"; start="<root>"')
    # The XOP Infoset of DocumentUniqueId is base64 of the part: not a UID, so the document is not found.
    status, errors = registry(reply.envelope())
    assert reply.status == 200 and errors[0]["errorCode"] in ("urn:dicom:wado:0012", "XDSDocumentUniqueIdError")


def test_contract_endpoints(server):
    assert requests.get(server.endpoint, timeout=5).status_code == 400
    assert requests.get(f"{server.endpoint}?xsd=nope.xsd", timeout=5).status_code == 404
    xsd = requests.get(f"{server.endpoint}?xsd=xds-b.xsd", timeout=5)
    assert xsd.status_code == 200 and b"urn:ihe:iti:xds-b:2007" in xsd.content
    assert requests.get(f"{server.url}/nothing-here", timeout=5).status_code == 404
    assert requests.put(server.endpoint, data=b"x", timeout=5).status_code == 405
    health = requests.get(f"{server.url}/health", timeout=5).json()
    assert health["status"] == "ok" and health["instances"] > 10


def test_dicomtrolley_style_request_one_element_per_study(server, sample):
    """Plain XML, no action parameter, an action with a trailing space, stray text in the Body, and one
    RetrieveImagingDocumentSetRequest per study."""
    a = sample[0]
    b = next(r for r in sample if r["study_uid"] != a["study_uid"])
    body = "response" + rad69_body([doc(a)]) + rad69_body([doc(b)])
    reply = post(server.endpoint, envelope(body, action="urn:ihe:rad:2009:RetrieveImagingDocumentSet "),
                 content_type="application/soap+xml")
    assert reply.status == 200
    status, errors = registry(reply.envelope())
    assert status == SUCCESS
    assert [d["uid"] for d in document_responses(reply.envelope())] == [a["sop_instance_uid"], b["sop_instance_uid"]]


def test_document_request_children_in_the_dicom_text_order(server, sample):
    """PS3.18 §6.4.1.1 lists RepositoryUniqueId, DocumentUniqueId, HomeCommunityId, Anonymize: the IHE schema
    orders them otherwise. Both are read."""
    ours = server.health()["repositoryUniqueId"]
    body = rad69_body([doc(sample[0])]).replace(
        f"<ihe:DocumentUniqueId>{sample[0]['sop_instance_uid']}</ihe:DocumentUniqueId>",
        f"<wado:Anonymize>no</wado:Anonymize><ihe:DocumentUniqueId>{sample[0]['sop_instance_uid']}"
        f"</ihe:DocumentUniqueId><ihe:RepositoryUniqueId>{ours}</ihe:RepositoryUniqueId>")
    reply = post(server.endpoint, envelope(body))
    assert registry(reply.envelope())[0] == SUCCESS
    assert document_responses(reply.envelope())[0]["repository"] == ours


def test_one_part_referenced_many_times_is_refused(server, sample):
    """Each xop:Include becomes a base64 copy of its part: 200 references to one 1 MB part would be 267 MB."""
    boundary = "b3"
    includes = "".join('<x:Pad xmlns:x="urn:example"><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" '
                       'href="cid:big@x"/></x:Pad>' for _ in range(200))
    xml = envelope(rad69_body([doc(sample[0])])).replace(b"<s:Body>", b"<s:Body>" + includes.encode(), 1)
    body = (f"--{boundary}\r\nContent-Type: application/xop+xml; type=\"application/soap+xml\"\r\n"
            f"Content-ID: <root>\r\n\r\n").encode() + xml + \
        f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-ID: <big@x>\r\n\r\n".encode() + \
        b"\0" * (1 << 20) + f"\r\n--{boundary}--\r\n".encode()
    reply = post(server.endpoint, body,
                 content_type=f'multipart/related; type="application/xop+xml"; boundary="{boundary}"; start="<root>"')
    assert reply.status == 400 and "more than once" in fault(reply)[2]
    assert_still_serving(server, sample)


# --- MTOM request framing (RFC 2046), read by wadows.multipart.split ---------------------------------------------

ROOT_PART = {"Content-Type": 'application/xop+xml; charset=UTF-8; type="application/soap+xml"',
             "Content-Transfer-Encoding": "binary", "Content-ID": "<root>"}
MTOM_TYPE = 'multipart/related; type="application/xop+xml"; boundary="b4"; start="<root>"'


def mtom_body(parts, preamble=b"", epilogue=b"", padding=b"", close=True):
    out = [preamble]
    for headers, content in parts:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
        out.append(b"--b4" + padding + b"\r\n" + head + b"\r\n" + content + b"\r\n")
    out.append((b"--b4--" + padding + b"\r\n" if close else b"") + epilogue)
    return b"".join(out)


@pytest.mark.parametrize("variant", ["preamble and epilogue", "transport padding", "root named by start, not first",
                                     "base64 root", "boundary-like line in the content", "folded header"])
def test_mtom_request_framings_are_read(server, sample, variant):
    xml = envelope(rad69_body([doc(sample[0])]))
    root, other = dict(ROOT_PART), ({"Content-Type": "text/plain", "Content-ID": "<other>"}, b"unused\r\n")
    kwargs = {}
    if variant == "preamble and epilogue":
        kwargs = {"preamble": b"This is a MIME preamble.\r\n", "epilogue": b"This is an epilogue.\r\n--b4\r\n"}
    elif variant == "transport padding":
        kwargs = {"padding": b" \t "}
    elif variant == "base64 root":
        root["Content-Transfer-Encoding"], xml = "base64", base64.encodebytes(xml)
    elif variant == "boundary-like line in the content":  # "--b4x" and "--b4 x" are not delimiters of "b4"
        xml += b"<?note\r\n--b4x\r\n--b4 x\r\n?>"
    elif variant == "folded header":
        root["Content-Type"] = 'application/xop+xml;\r\n\tcharset=UTF-8; type="application/soap+xml"'
    parts = [other, (root, xml)] if variant == "root named by start, not first" else [(root, xml), other]
    reply = post(server.endpoint, mtom_body(parts, **kwargs), content_type=MTOM_TYPE)
    assert reply.status == 200, reply.raw[:500]
    assert registry(reply.envelope())[0] == SUCCESS


@pytest.mark.parametrize("variant,reason", [
    ("no closing delimiter", "closing boundary"),
    ("another boundary", "boundary delimiter"),
    ("no boundary parameter", "boundary parameter"),
    ("start names no part", "start part"),
    ("closed without a part", "without any MIME part"),
    ("malformed base64 root", "base64"),
])
def test_mtom_request_framing_errors_are_sender_faults(server, sample, variant, reason):
    xml = envelope(rad69_body([doc(sample[0])]))
    content_type, body = MTOM_TYPE, mtom_body([(ROOT_PART, xml)])
    if variant == "no closing delimiter":
        body = mtom_body([(ROOT_PART, xml)], close=False)
    elif variant == "another boundary":
        content_type = MTOM_TYPE.replace('"b4"', '"b5"')
    elif variant == "no boundary parameter":
        content_type = 'multipart/related; type="application/xop+xml"; start="<root>"'
    elif variant == "start names no part":
        content_type = MTOM_TYPE.replace("<root>", "<elsewhere>")
    elif variant == "closed without a part":
        body = b"--b4--\r\n"
    else:
        body = mtom_body([({**ROOT_PART, "Content-Transfer-Encoding": "base64"}, b"PD94bWw")])
    reply = post(server.endpoint, body, content_type=content_type)
    env, code, text = fault(reply)
    assert reply.status == 400 and code.endswith(":Sender") and reason in text, (reply.status, code, text)
    assert "Envelope" not in text and sample[0]["sop_instance_uid"] not in text


@pytest.mark.parametrize("boundary", ["boundary*=idna''x", "boundary*=punycode''x%ff", "boundary*=utf-16''%ff"])
def test_an_rfc2231_boundary_in_a_charset_that_cannot_decode_is_a_sender_fault(server, sample, boundary):
    """A boundary parameter in RFC 2231 form names a codec Python has but that cannot decode it that way: the
    request is unreadable (400, Sender), not a server failure (it was a 500 with an ERROR log line)."""
    body = mtom_body([(ROOT_PART, envelope(rad69_body([doc(sample[0])])))])
    reply = post(server.endpoint, body,
                 content_type=f'multipart/related; type="application/xop+xml"; start="<root>"; {boundary}')
    env, code, text = fault(reply)
    assert reply.status == 400 and code.endswith(":Sender"), (reply.status, code, text)


@pytest.mark.parametrize("fields", [
    {},
    {"home_community_id": "urn:oid:1.2.3", "frame_number": "2", "new_document_uid": "2.25.1234"},
    {"home_community_id": "", "frame_number": "", "new_document_uid": ""},
])
def test_document_responses_are_written_as_spynes_generic_writer_would(fields):
    """RAD-69 DocumentResponses are written by our own handler (spyne's generic writer was a third of a large
    request's time before its first byte): element for element what spyne writes from models.DocumentResponse."""
    from types import SimpleNamespace

    from spyne.protocol.xml import XmlDocument

    from wadows.soap import models
    from wadows.soap import namespaces as ns
    from wadows.soap.endpoint import with_our_prefixes
    from wadows.soap.service import WadoSoap12
    from wadows.wado.messages import Body, DocumentRef, DocumentResult

    ref = DocumentRef("1.2.3", "1.2.3.4", "1.2.3.4.5", home_community_id=fields.get("home_community_id"),
                      frame_number=fields.get("frame_number"))
    result = DocumentResult(ref=ref, repository_uid="1.2.3.99", body=Body(lambda: iter(()), 0, "application/dicom"),
                            new_document_uid=fields.get("new_document_uid"))
    model = models.DocumentResponse(HomeCommunityId=ref.home_community_id, RepositoryUniqueId=result.repository_uid,
                                    DocumentUniqueId=ref.document_uid, NewDocumentUniqueId=result.new_document_uid,
                                    FrameNumber=ref.frame_number, mimeType=result.body.media_type, Document=result.body)
    protocol = WadoSoap12()
    written = []
    for write, value in ((lambda *a: XmlDocument.complex_to_parent(protocol, *a), model),  # spyne's generic writer
                         (protocol._document_response_to_parent, result)):
        ctx = SimpleNamespace(udc=SimpleNamespace(attachments=[]))
        parent = etree.Element("parent")
        write(ctx, models.DocumentResponse, value, parent, ns.XDS, "DocumentResponse")
        [(content_id, body)] = ctx.udc.attachments
        assert body is result.body
        # Prefixes as the endpoint writes them (spyne numbers its own differently on each path).
        written.append(etree.tostring(with_our_prefixes(parent)).decode().replace(content_id, "CID"))
    assert written[0] == written[1]
    assert "<ihe:DocumentUniqueId>1.2.3.4.5</ihe:DocumentUniqueId>" in written[1]


_XSI = "http://www.w3.org/2001/XMLSchema-instance"


@pytest.mark.parametrize("children", [
    '<ihe:DocumentUniqueId>1.2.3</ihe:DocumentUniqueId>',
    '<ihe:RepositoryUniqueId>1.9</ihe:RepositoryUniqueId><ihe:DocumentUniqueId> 1.2.3 </ihe:DocumentUniqueId>'
    '<wado:Anonymize>yes</wado:Anonymize><wado:FrameNumber>2</wado:FrameNumber>'
    '<ihe:HomeCommunityId>urn:oid:1.2</ihe:HomeCommunityId>',
    '<ihe:DocumentUniqueId/><wado:Anonymize></wado:Anonymize>',  # empty
    '<ihe:DocumentUniqueId>1.2.3</ihe:DocumentUniqueId><ihe:DocumentUniqueId>4.5.6</ihe:DocumentUniqueId>',  # twice
    '<x:DocumentUniqueId xmlns:x="urn:elsewhere">1.2.3</x:DocumentUniqueId><ihe:Anonymize>yes</ihe:Anonymize>',
    '<DocumentUniqueId>1.2.3</DocumentUniqueId>',  # no namespace
    '<!-- a comment --><ihe:DocumentUniqueId>1.2<!-- inside -->.3</ihe:DocumentUniqueId>',
    '<ihe:DocumentUniqueId>1.2.3<b>x</b>tail</ihe:DocumentUniqueId><ihe:Unknown>9</ihe:Unknown>',
    f'<ihe:DocumentUniqueId xmlns:xsi="{_XSI}" xsi:nil="true"/><wado:Anonymize>yes</wado:Anonymize>',
    f'<ihe:DocumentUniqueId xmlns:xsi="{_XSI}" xsi:nil="false">1.2.3</ihe:DocumentUniqueId>',
    '<ihe:DocumentUniqueId id="a">1.2.3</ihe:DocumentUniqueId>',
    '<ihe:DocumentUniqueId Anonymize="yes">1.2.3</ihe:DocumentUniqueId>',
    '<?pi data?><ihe:DocumentUniqueId>1.2.3</ihe:DocumentUniqueId>',
    '',
])
def test_document_requests_are_read_as_spynes_generic_reader_would(children):
    """RAD-69 DocumentRequests are read by our own handler (spyne's generic reader was ~25 µs per document before
    the first byte): field for field what spyne reads from models.DocumentRequest, or spyne's reader itself."""
    from types import SimpleNamespace

    from spyne.protocol.xml import XmlDocument

    from wadows.soap import models
    from wadows.soap.service import WadoSoap12

    element = etree.fromstring(f'<ihe:DocumentRequest xmlns:ihe="urn:ihe:iti:xds-b:2007" '
                               f'xmlns:wado="urn:dicom:wado:ws:2011">{children}</ihe:DocumentRequest>')
    protocol = WadoSoap12()
    ctx = SimpleNamespace()
    read = []
    for reader in (lambda *a: XmlDocument.complex_from_element(protocol, *a),  # spyne's generic reader
                   lambda *a: protocol.from_element(*a)):  # as spyne calls it: our handler is registered
        try:
            value = reader(ctx, models.DocumentRequest, element)
        except Exception as exc:
            read.append(type(exc))
        else:
            read.append({name: getattr(value, name) for name, _ in models.DocumentRequest._type_info.items()})
    assert read[0] == read[1]
    if "=" not in children and "<?" not in children:  # the usual shape: read by our handler, not handed back
        assert type(value).__name__ == "DocumentRequestRead"


def _prefixes_by_copying(element):
    """with_our_prefixes as it was first written: the tree copied element by element under our declarations."""
    from wadows.soap import namespaces as ns

    def copy(source, parent):
        target = (etree.Element(source.tag, source.attrib, nsmap=ns.NSMAP) if parent is None
                  else etree.SubElement(parent, source.tag, source.attrib))
        target.text, target.tail = source.text, source.tail
        for child in source:
            copy(child, target)
        return target

    return copy(element, None)


def test_answers_get_our_prefixes_as_a_copy_under_them_would(store_dir, sample, tmp_path):
    """The Envelope spyne writes (ns0, ns1 ... on every element) is given our prefixes by lxml, not by copying the
    tree: byte for byte what the copy gave, for answers of the three operations, with errors and without."""
    import copy

    from test_metadata import information_body
    from test_rendered import rendered_body

    from wadows.policy.access import Caller
    from wadows.soap.endpoint import body_request, with_our_prefixes
    from wadows.soap.service import RequestState, SpyneDriver
    from wadows.store.folder import FolderStore, index_folder
    from wadows.wado.source import ImagingDocumentSource

    index_folder(store_dir, tmp_path, show_progress=False)
    source = ImagingDocumentSource(FolderStore(store_dir, tmp_path / "index.sqlite3"), "1.2.3")
    driver, rows = SpyneDriver(), sample[:3]
    missing = (rows[0]["study_uid"], rows[0]["series_uid"], "1.2.3.4.5.6.7")
    bodies = [rad69_body([doc(r) for r in rows]), rad69_body([doc(r) for r in rows] + [missing], anonymize="yes"),
              rad69_body([missing]), rendered_body([(doc(r), {}) for r in rows]),
              information_body([(doc(rows[0]), [], None), (missing, [], None)])]
    for body in bodies:
        request = etree.fromstring(envelope(body))
        body_request(request)
        spyne_tree = driver.call(request, RequestState(source=source, caller=Caller("test", None, True, True)))
        expected = etree.tostring(_prefixes_by_copying(copy.deepcopy(spyne_tree)))
        assert etree.tostring(with_our_prefixes(spyne_tree)) == expected
        assert expected.startswith(b"<env:Envelope ")


def test_a_dropped_answer_frees_its_documents_at_once(tmp_path):
    """spyne's method contexts refer to each other; the driver lets go of what they hold of ours, so an answer the
    server drops (a client gone before the first byte) frees its documents, and the files or local copies they
    hold, by reference counting, without waiting for the garbage collector."""
    import gc
    import io
    import weakref

    import pydicom

    from wadows import config as cfg
    from wadows.policy.access import Caller
    from wadows.runtime import build_app
    from wadows.sample import build_sample

    build_sample(tmp_path / "store")
    app, _ = build_app(cfg.load(None), tmp_path / "store", tmp_path / "data")
    ds = pydicom.dcmread(next((tmp_path / "store").rglob("*.dcm")), stop_before_pixels=True)
    body = envelope(rad69_body([(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)]))
    environ = {"CONTENT_TYPE": "application/soap+xml", "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body), "REQUEST_METHOD": "POST"}
    gc.collect()
    gc.disable()
    try:
        answer = app.soap.handle(environ, Caller("anonymous", None, True, True))
        [document] = answer.response.documents
        freed = weakref.ref(document)
        del answer, document
        assert freed() is None, "the answer's documents outlived it: something holds them in a cycle"
    finally:
        gc.enable()

