"""Interop: PHP's SoapClient (Debian php-cli + php-soap) against a real server on loopback.

tests/interop/php/client.php makes the calls; this test checks what it wrote. What happens, precisely:

* Our WSDL as served is refused: `SoapFault` (faultcode `WSDL`) "Unknown required WSDL extension
  'http://www.w3.org/2006/05/addressing/wsdl'": ext/soap rejects any `wsdl:required="true"` extension it does not
  know, here `<wsaw:UsingAddressing wsdl:required="true"/>`. With that attribute set to "false" (what PHP users do)
  the WSDL loads and SoapClient sends SOAP 1.2 (`application/soap+xml; action="..."`) with bodies our XSDs accept.
  SoapClient writes no WS-Addressing; the script adds Action/MessageID headers itself.
* ext/soap has no MTOM, and every successful answer (RAD-69, metadata, RegistryErrors too) is multipart/related
  (ITI TF-2 V.8: MTOM even when nothing is optimized). Plain SoapClient receives the whole answer (HTTP 200) and
  raises `SoapFault` Sender "looks like we got no XML document".
* A 30-line SoapClient subclass whose __doRequest hands over the root part with each xop:Include replaced by the
  base64 of its part (the XOP Infoset) makes everything work: metadata, RAD-69 documents byte for byte (one ends in
  CR LF), anonymized ones, RegistryErrors as parsed objects.
* SOAP faults (plain application/soap+xml) reach plain SoapClient as `SoapFault`: MustUnderstand (HTTP 500),
  Sender for a non-anonymous ReplyTo (HTTP 400). ext/soap does not resolve the prefix of a SOAP 1.2 fault code
  from the server: PHP code sees `faultcode` "env:MustUnderstand" (our prefix), with `faultcodens` unset.

Skipped (with the reason) only when php or its soap extension is missing.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from lxml import etree

from support import SOAP12, WSA, ServerProcess, split_mtom, validate_envelope
from test_rad69 import ALL_SYNTAXES
from wadows.soap import contract

PHP_CLIENT = Path(__file__).parent / "interop" / "php" / "client.php"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
RETRIEVE = "ImagingDocumentSource_RetrieveImagingDocumentSet"
INFORMATION = "ImagingDocumentSource_RetrieveImagingDocumentSetInformation"
MESSAGE_ID = "urn:uuid:7d444840-9dc0-11d1-b245-5ffdce74fad2"
NATIVE = "http://dicom.nema.org/PS3.19/models/NativeDICOM"


def php_with_soap() -> str:
    php = shutil.which("php")
    if php is None:
        pytest.skip("interop with PHP SoapClient needs php on PATH (Debian php-cli; not found)")
    modules = subprocess.run([php, "-m"], capture_output=True, text=True, timeout=60).stdout.split()
    if "soap" not in modules:
        pytest.skip("interop with PHP SoapClient needs the soap extension (Debian php-soap; not loaded)")
    return php


def rad69_args(rows, **fields) -> dict:
    studies: dict[str, dict[str, list[dict]]] = {}
    for row in rows:
        series = studies.setdefault(row["study_uid"], {}).setdefault(row["series_uid"], [])
        series.append({"DocumentUniqueId": row["sop_instance_uid"], **fields})
    return {"StudyRequest": [{"studyInstanceUID": st, "SeriesRequest": [
        {"seriesInstanceUID": se, "DocumentRequest": docs} for se, docs in by_series.items()]}
        for st, by_series in studies.items()], "TransferSyntaxUIDList": {"TransferSyntaxUID": ALL_SYNTAXES}}


def information_args(rows, xpaths, **fields) -> dict:
    args = rad69_args(rows, XPath=xpaths, **fields)
    del args["TransferSyntaxUIDList"]
    for study in args["StudyRequest"]:
        for series in study["SeriesRequest"]:
            series["DocumentInformationRequest"] = series.pop("DocumentRequest")
    return args


def wsa(action: str) -> list[str]:
    return [f'<wsa:Action xmlns:wsa="{WSA}" xmlns:env="{SOAP12}" env:mustUnderstand="true">{action}</wsa:Action>',
            f'<wsa:MessageID xmlns:wsa="{WSA}">{MESSAGE_ID}</wsa:MessageID>']


@pytest.fixture(scope="module")
def world(store_dir, sample, crlf, tmp_path_factory):
    php = php_with_soap()
    root = tmp_path_factory.mktemp("interop-php")
    server = ServerProcess(store_dir, root / "data", root / "server.log", ["--unauthenticated", "full"])
    ct = next(r for r in sample if r["modality"] == "CT")
    rows = [r for r in sample if r["study_uid"] == ct["study_uid"]] + [crlf]
    xpaths = ["/", 'string(//DicomAttribute[@keyword="Modality"]/Value)']
    calls = [
        {"name": "metadata-plain", "operation": INFORMATION, "args": information_args([ct], xpaths),
         "headers": wsa("urn:dicom:wado:ws:2011:RetrieveImagingDocumentSetInformation")},
        {"name": "rad69-plain", "operation": RETRIEVE, "args": rad69_args([ct]),
         "headers": wsa("urn:ihe:rad:2009:RetrieveImagingDocumentSet")},
        {"name": "unknown-uid-plain", "operation": RETRIEVE,
         "args": rad69_args([{**ct, "sop_instance_uid": "1.2.3.4.5.6.7.8.9"}])},
        {"name": "metadata", "client": "mtom", "operation": INFORMATION, "args": information_args([ct], xpaths),
         "headers": wsa("urn:dicom:wado:ws:2011:RetrieveImagingDocumentSetInformation")},
        {"name": "rad69", "client": "mtom", "operation": RETRIEVE, "args": rad69_args(rows),
         "headers": wsa("urn:ihe:rad:2009:RetrieveImagingDocumentSet")},
        {"name": "rad69-anonymized", "client": "mtom", "operation": RETRIEVE,
         "args": rad69_args([ct], Anonymize="yes")},
        {"name": "unknown-uid", "client": "mtom", "operation": RETRIEVE,
         "args": rad69_args([{**ct, "sop_instance_uid": "1.2.3.4.5.6.7.8.9"}])},
        {"name": "bad-anonymize", "client": "mtom", "operation": RETRIEVE, "args": rad69_args([ct], Anonymize="maybe")},
        {"name": "must-understand", "operation": RETRIEVE, "args": rad69_args([ct]),
         "headers": [f'<x:Unknown xmlns:x="urn:example:unknown" xmlns:env="{SOAP12}" '
                     f'env:mustUnderstand="true">x</x:Unknown>']},
        {"name": "reply-to", "operation": RETRIEVE, "args": rad69_args([ct]),
         "headers": [f'<wsa:ReplyTo xmlns:wsa="{WSA}">'
                     f'<wsa:Address>http://example.org/elsewhere</wsa:Address></wsa:ReplyTo>']},
    ]
    out = root / "out"
    job = root / "job.json"
    job.write_text(json.dumps({"wsdl": f"{server.endpoint}?wsdl", "out": str(out), "calls": calls}))
    try:
        run = subprocess.run([php, str(PHP_CLIENT), str(job)], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        yield {"out": out, "server": server, "ct": ct, "rows": rows}
    finally:
        server.stop()


def result(world, name: str) -> dict:
    folder = world["out"] / name
    assert not (folder / "fault.json").exists(), (folder / "fault.json").read_text()
    return json.loads((folder / "result.json").read_text())


def fault(world, name: str) -> dict:
    return json.loads((world["out"] / name / "fault.json").read_text())


def http_status(world, name: str) -> int:
    return int((world["out"] / name / "response-headers.txt").read_text().split()[1])


def errors_of(answer: dict) -> list[dict]:
    return answer["RegistryResponse"].get("RegistryErrorList", {}).get("RegistryError", [])


def test_our_wsdl_as_served_is_refused_for_its_required_addressing_extension(world):
    wsdl = json.loads((world["out"] / "wsdl.json").read_text())
    assert wsdl == {"loaded": False, "faultcode": "WSDL", "faultstring":
                    "SOAP-ERROR: Parsing WSDL: Unknown required WSDL extension "
                    "'http://www.w3.org/2006/05/addressing/wsdl'"}


def test_php_sends_soap12_with_the_action_and_bodies_our_xsds_accept(world):
    for name in ("metadata-plain", "rad69-plain", "metadata", "rad69", "rad69-anonymized"):
        folder = world["out"] / name
        headers = (folder / "request-headers.txt").read_text()
        content_type = next(line for line in headers.splitlines() if line.lower().startswith("content-type:"))
        assert "application/soap+xml" in content_type and 'action="urn:' in content_type, content_type
        sent = etree.fromstring((folder / "request.xml").read_bytes())
        assert sent.tag == f"{{{SOAP12}}}Envelope"
        contract.validate(sent.find(f"{{{SOAP12}}}Body")[0])


def test_plain_soapclient_gets_the_mtom_answer_and_cannot_read_it(world):
    for name in ("metadata-plain", "rad69-plain", "unknown-uid-plain"):
        assert fault(world, name) == {"class": "SoapFault", "faultcode": "Sender", "faultcodens": SOAP12,
                                      "faultstring": "looks like we got no XML document"}
        assert http_status(world, name) == 200
        # what PHP held was the whole, valid answer: a multipart/related message with a SOAP 1.2 root
        mtom = held_answer(world, name)
        env = etree.fromstring(mtom.root)
        validate_envelope(env, mtom.parts)
        if name != "unknown-uid-plain":  # (sent without WS-Addressing)
            assert env.find(f"{{{SOAP12}}}Header").findtext(f"{{{WSA}}}RelatesTo") == MESSAGE_ID
    assert list(held_answer(world, "rad69-plain").parts.values()) == [world["ct"]["path"].read_bytes()]


def held_answer(world, name: str):
    headers = (world["out"] / name / "response-headers.txt").read_text()
    content_type = next(line.split(":", 1)[1].strip() for line in headers.splitlines()
                        if line.lower().startswith("content-type:"))
    return split_mtom(content_type, (world["out"] / name / "response.txt").read_bytes())


def test_metadata_through_the_xop_aware_subclass(world):
    answer = result(world, "metadata")
    ct = world["ct"]
    assert answer["RegistryResponse"]["status"] == SUCCESS
    [info] = answer["DocumentInformationResponse"]
    assert info["DocumentUniqueId"] == ct["sop_instance_uid"]
    model, modality = info["XPathResponseList"]["XPathResponse"]
    root = etree.fromstring(model.encode())
    assert root.find(f'{{{NATIVE}}}DicomAttribute[@tag="00080018"]/{{{NATIVE}}}Value').text == ct["sop_instance_uid"]
    assert modality == "CT"


def test_rad69_documents_through_the_xop_aware_subclass_byte_for_byte(world):
    answer = result(world, "rad69")
    assert answer["RegistryResponse"]["status"] == SUCCESS
    by_uid = {r["sop_instance_uid"]: r for r in world["rows"]}
    responses = answer["DocumentResponse"]
    assert sorted(d["DocumentUniqueId"] for d in responses) == sorted(by_uid)
    for response in responses:
        data = (world["out"] / "rad69" / response["Document"]["file"]).read_bytes()
        assert data == by_uid[response["DocumentUniqueId"]]["path"].read_bytes(), response["DocumentUniqueId"]
        assert response["mimeType"] == "application/dicom"
    assert any(by_uid[d["DocumentUniqueId"]]["path"].read_bytes().endswith(b"\r\n") for d in responses)


def test_anonymized_rad69_through_the_xop_aware_subclass(world):
    answer = result(world, "rad69-anonymized")
    ct = world["ct"]
    assert answer["RegistryResponse"]["status"] == SUCCESS
    [response] = answer["DocumentResponse"]
    new_uid = response["NewDocumentUniqueId"]
    assert new_uid.startswith("2.25.") and new_uid != ct["sop_instance_uid"]
    data = (world["out"] / "rad69-anonymized" / response["Document"]["file"]).read_bytes()
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.SOPInstanceUID == new_uid and ds.PatientIdentityRemoved == "YES"
    assert ct["patient_id"].encode() not in data and ct["study_uid"].encode() not in data


def test_registry_errors_reach_php_as_parsed_objects(world):
    unknown = result(world, "unknown-uid")
    assert unknown["RegistryResponse"]["status"] == FAILURE and "DocumentResponse" not in unknown
    [error] = errors_of(unknown)
    assert (error["errorCode"], error["location"]) == ("XDSDocumentUniqueIdError", "1.2.3.4.5.6.7.8.9")
    bad = result(world, "bad-anonymize")
    assert bad["RegistryResponse"]["status"] == FAILURE
    [error] = errors_of(bad)
    assert error["errorCode"] == "urn:dicom:wado:0012" and "Anonymize" in error["codeContext"]
    assert error["location"] == world["ct"]["sop_instance_uid"]


def test_soap_faults_reach_plain_soapclient_as_soapfault(world):
    assert fault(world, "must-understand") == {
        "class": "SoapFault", "faultcode": "env:MustUnderstand", "faultcodens": None,
        "faultstring": "A header block marked mustUnderstand was not understood"}
    assert http_status(world, "must-understand") == 500
    assert fault(world, "reply-to") == {
        "class": "SoapFault", "faultcode": "env:Sender", "faultcodens": None,
        "faultstring": "Only the anonymous ReplyTo address is supported"}
    assert http_status(world, "reply-to") == 400
