"""Interop: suds (PyPI `suds`, formerly suds-community), a SOAP 1.1-only client, against our SOAP 1.2-only server.

suds reads our WSDL and, whatever its binding says, sends a SOAP 1.1 envelope (`text/xml` + `SOAPAction`). SOAP 1.2
Part 1 Appendix A: a SOAP 1.2 node that does not process SOAP/1.1 answers a SOAP/1.1 message with a VersionMismatch
fault "based on a SOAP/1.1 message construct following SOAP/1.1 semantics" (SOAP 1.1 envelope,
`faultcode`/`faultstring`, `text/xml`, HTTP 500), carrying the `Upgrade` header block that names the SOAP 1.2
envelope (§5.4.7). suds must surface it as a WebFault with faultcode VersionMismatch and a readable message, and the
server must go on serving: a RAD-69 retrieval right after gets the stored object byte for byte. Skipped only when
suds cannot be imported.
"""

from __future__ import annotations

import pytest
from lxml import etree

from support import SOAP12, ServerProcess, doc, envelope, post, rad69_body

suds = pytest.importorskip("suds", reason="suds (SOAP 1.1 client, in the test extra) is not installed")
from suds import WebFault  # noqa: E402
from suds.client import Client  # noqa: E402
from suds.transport import TransportError  # noqa: E402
from suds.transport.http import HttpTransport  # noqa: E402

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


class RecordingTransport(HttpTransport):
    """suds' own HTTP transport, keeping what went out and the HTTP status and type of what came back."""

    def send(self, request):
        self.sent_headers = dict(request.headers)
        self.sent = request.message
        try:
            reply = super().send(request)
        except TransportError as exc:
            self.status = exc.httpcode
            self.reply_type = exc.fp.headers.get("Content-Type", "") if exc.fp is not None else ""
            raise
        self.status, self.reply_type = reply.code, reply.headers.get("Content-Type", "")
        return reply


@pytest.fixture(scope="module")
def world(store_dir, sample, tmp_path_factory):
    root = tmp_path_factory.mktemp("interop-suds")
    server = ServerProcess(store_dir, root / "data", root / "server.log", ["--unauthenticated", "full"])
    yield {"server": server, "sample": sample}
    server.stop()


def suds_client(server) -> tuple[Client, RecordingTransport]:
    transport = RecordingTransport()
    return Client(f"{server.endpoint}?wsdl", cache=None, transport=transport, timeout=30), transport


def retrieve_with_suds(client, row):
    return client.service.ImagingDocumentSource_RetrieveImagingDocumentSet(
        StudyRequest=[{"_studyInstanceUID": row["study_uid"], "SeriesRequest": [{
            "_seriesInstanceUID": row["series_uid"],
            "DocumentRequest": [{"DocumentUniqueId": row["sop_instance_uid"]}]}]}],
        TransferSyntaxUIDList={"TransferSyntaxUID": [EXPLICIT_LE]})


def fault_code_and_reason(fault) -> tuple[str, str]:
    """What suds parsed: a SOAP 1.1 fault's faultcode and faultstring (a SOAP 1.2 fault would have neither)."""
    return str(fault.faultcode), str(fault.faultstring)


def assert_still_serving(world):
    row = next(r for r in world["sample"] if r["transfer_syntax_uid"] == EXPLICIT_LE)
    reply = post(world["server"].endpoint, envelope(rad69_body([doc(row)])))
    assert reply.status == 200, reply.raw[:500]
    mtom = reply.mtom()
    assert list(mtom.parts.values()) == [row["path"].read_bytes()]
    assert world["server"].process.poll() is None
    assert "Traceback" not in world["server"].log()


def test_suds_reads_our_wsdl_and_sends_soap11(world):
    client, transport = suds_client(world["server"])
    methods = sorted(m.name for m in client.wsdl.services[0].ports[0].methods.values())
    assert methods == ["ImagingDocumentSource_RetrieveImagingDocumentSet",
                       "ImagingDocumentSource_RetrieveImagingDocumentSetInformation",
                       "ImagingDocumentSource_RetrieveRenderedImagingDocumentSet"]
    with pytest.raises(WebFault):
        retrieve_with_suds(client, world["sample"][0])
    assert transport.sent_headers["Content-Type"].startswith("text/xml")
    action = transport.sent_headers["SOAPAction"]
    action = action.decode() if isinstance(action, bytes) else action  # suds keeps it as bytes
    assert action.strip('"') == "urn:ihe:rad:2009:RetrieveImagingDocumentSet"
    assert etree.fromstring(transport.sent).tag == f"{{{SOAP11}}}Envelope"


def test_soap11_request_is_a_version_mismatch_web_fault_and_the_server_keeps_serving(world):
    client, transport = suds_client(world["server"])
    with pytest.raises(WebFault) as caught:
        retrieve_with_suds(client, world["sample"][0])
    code, reason = fault_code_and_reason(caught.value.fault)
    assert code.rpartition(":")[2] == "VersionMismatch", code
    assert "SOAP 1.2" in reason and "Traceback" not in reason
    assert transport.status == 500  # SOAP 1.1 and SOAP 1.2 HTTP bindings agree: a fault is a 500
    # the Upgrade header block names the envelope we do support (SOAP 1.2 Part 1 §5.4.7)
    answer = caught.value.document.root()
    upgrade = answer.getChild("Header").getChild("Upgrade")
    assert upgrade is not None and upgrade.namespace()[1] == SOAP12
    supported = upgrade.getChild("SupportedEnvelope")
    prefix, _, local = supported.get("qname").rpartition(":")
    assert local == "Envelope" and supported.resolvePrefix(prefix)[1] == SOAP12
    assert_still_serving(world)


@pytest.mark.parametrize("operation,kwargs", [
    ("ImagingDocumentSource_RetrieveImagingDocumentSetInformation",
     lambda r: {"StudyRequest": [{"_studyInstanceUID": r["study_uid"], "SeriesRequest": [{
         "_seriesInstanceUID": r["series_uid"], "DocumentInformationRequest": [
             {"DocumentUniqueId": r["sop_instance_uid"], "XPath": ["/"]}]}]}]}),
    ("ImagingDocumentSource_RetrieveRenderedImagingDocumentSet",
     lambda r: {"StudyRequest": [{"_studyInstanceUID": r["study_uid"], "SeriesRequest": [{
         "_seriesInstanceUID": r["series_uid"], "RenderedDocumentRequest": [
             {"DocumentUniqueId": r["sop_instance_uid"], "ContentTypeList": {"ContentType": ["image/jpeg"]}}]}]}]}),
])
def test_every_operation_answers_soap11_the_same_way(world, operation, kwargs):
    client, transport = suds_client(world["server"])
    with pytest.raises(WebFault) as caught:
        getattr(client.service, operation)(**kwargs(world["sample"][0]))
    code, _ = fault_code_and_reason(caught.value.fault)
    assert code.rpartition(":")[2] == "VersionMismatch" and transport.status == 500
    assert_still_serving(world)


def test_many_soap11_requests_in_a_row_leave_the_server_serving(world):
    client, _ = suds_client(world["server"])
    for row in world["sample"]:
        with pytest.raises(WebFault):
            retrieve_with_suds(client, row)
    assert_still_serving(world)


def test_version_mismatch_reaches_a_soap11_client_as_a_soap11_fault(world):
    client, transport = suds_client(world["server"])
    with pytest.raises(WebFault) as caught:
        retrieve_with_suds(client, world["sample"][0])
    assert transport.status == 500 and transport.reply_type == "text/xml; charset=utf-8"
    assert caught.value.document.root().namespace()[1] == SOAP11
    code = caught.value.fault.faultcode  # suds keeps the prefixed text: the prefix must name SOAP 1.1
    prefix, _, local = str(code).rpartition(":")
    assert local == "VersionMismatch" and caught.value.document.root().resolvePrefix(prefix)[1] == SOAP11
    assert str(caught.value) == f"Server raised fault: '{caught.value.fault.faultstring}'"
    assert "SOAP 1.2" in str(caught.value)
