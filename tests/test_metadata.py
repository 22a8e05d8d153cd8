"""RetrieveImagingDocumentSetInformation through the real server: XPath over the PS3.19 model, anonymized too."""

from __future__ import annotations

import zeep
from lxml import etree

from support import RS, SOAP12, WADO, XDS, doc, envelope, post, validate_envelope
from wadows.sample import IDENTIFYING_STRINGS

NATIVE = "http://dicom.nema.org/PS3.19/models/NativeDICOM"
ACTION = "urn:dicom:wado:ws:2011:RetrieveImagingDocumentSetInformation"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"


def information_body(items: list[tuple[tuple[str, str, str], list[str], str | None]]) -> str:
    out = [f'<wado:RetrieveImagingDocumentSetInformationRequest xmlns:wado="{WADO}" xmlns:ihe="{XDS}">']
    for (study, series, sop), xpaths, anonymize in items:
        out.append(f'<wado:StudyRequest studyInstanceUID="{study}"><wado:SeriesRequest seriesInstanceUID="{series}">'
                   f'<wado:DocumentInformationRequest><ihe:DocumentUniqueId>{sop}</ihe:DocumentUniqueId>')
        if anonymize is not None:
            out.append(f"<wado:Anonymize>{anonymize}</wado:Anonymize>")
        out.extend(f"<wado:XPath>{_escape(x)}</wado:XPath>" for x in xpaths)
        out.append("</wado:DocumentInformationRequest></wado:SeriesRequest></wado:StudyRequest>")
    out.append("</wado:RetrieveImagingDocumentSetInformationRequest>")
    return "".join(out)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def ask(server, items):
    reply = post(server.endpoint, envelope(information_body(items), action=ACTION))
    assert reply.status == 200, reply.raw[:1000]
    env = reply.envelope()
    validate_envelope(env, reply.mtom().parts)
    body = env.find(f"{{{SOAP12}}}Body")[0]
    rr = body.find(f"{{{RS}}}RegistryResponse")
    errors = [dict(e.attrib) for e in rr.iter(f"{{{RS}}}RegistryError")]
    answers = {d.findtext(f"{{{XDS}}}DocumentUniqueId"): [x.text or "" for x in d.iter(f"{{{WADO}}}XPathResponse")]
               for d in body.findall(f"{{{WADO}}}DocumentInformationResponse")}
    return reply, rr.get("status"), errors, answers


def ct(sample):
    return next(r for r in sample if r["modality"] == "CT")


def test_whole_model_and_xpaths_in_request_order(server, sample):
    row = ct(sample)
    xpaths = ["/", 'string(/NativeDicomModel/DicomAttribute[@keyword="Modality"]/Value)',
              'count(//dcm:DicomAttribute[@keyword="PatientName"])',
              '/dcm:NativeDicomModel/dcm:DicomAttribute[@tag="00100010"]/dcm:PersonName/dcm:Alphabetic/dcm:FamilyName',
              '//DicomAttribute[@keyword="NoSuchKeyword"]']
    _, status, errors, answers = ask(server, [(doc(row), xpaths, None)])
    assert status == SUCCESS and errors == []
    model, modality, count, family, nothing = answers[row["sop_instance_uid"]]
    root = etree.fromstring(model.encode())
    assert root.tag == f"{{{NATIVE}}}NativeDicomModel"
    sop = root.find(f'{{{NATIVE}}}DicomAttribute[@tag="00080018"]/{{{NATIVE}}}Value')
    assert sop.text == row["sop_instance_uid"]
    assert root.find(f'{{{NATIVE}}}DicomAttribute[@tag="7FE00010"]/{{{NATIVE}}}BulkData') is not None
    assert (modality, count, nothing) == ("CT", "1", "")
    assert etree.fromstring(family.encode()).text == row["patient_name"].split("^")[0]


def test_invalid_xpath_fails_only_its_document(server, sample):
    a, b = sample[0], sample[1]
    _, status, errors, answers = ask(server, [(doc(a), ["//DicomAttribute[", "/"], None), (doc(b), ["/"], None)])
    assert status == PARTIAL
    assert [(e["errorCode"], e["location"]) for e in errors] == [("urn:dicom:wado:0012", a["sop_instance_uid"])]
    assert list(answers) == [b["sop_instance_uid"]]


def test_anonymized_metadata_carries_no_identity_and_the_new_uids(server, sample):
    row = ct(sample)
    reply, status, errors, answers = ask(server, [(doc(row), ["/"], "yes")])
    assert status == SUCCESS, errors
    root = etree.fromstring(answers[row["sop_instance_uid"]][0].encode())
    new_sop = root.find(f'{{{NATIVE}}}DicomAttribute[@tag="00080018"]/{{{NATIVE}}}Value').text
    assert new_sop.startswith("2.25.") and new_sop != row["sop_instance_uid"]
    removed = root.find(f'{{{NATIVE}}}DicomAttribute[@tag="00120062"]/{{{NATIVE}}}Value').text
    assert removed == "YES"
    raw = reply.raw.lower()
    assert [s for s in IDENTIFYING_STRINGS if s.lower().encode() in raw] == []
    assert row["study_uid"].encode() not in reply.raw and row["series_uid"].encode() not in reply.raw
    # the same new UID as RAD-69 gives the same object
    from support import rad69_body, document_responses
    rad69 = post(server.endpoint, envelope(rad69_body([doc(row)], anonymize="yes")))
    assert document_responses(rad69.envelope())[0]["new_uid"] == new_sop


def test_anonymized_metadata_is_refused_where_the_object_is(server, sample):
    us = next(r for r in sample if r["modality"] == "US")
    _, status, errors, _ = ask(server, [(doc(us), ["/"], "yes")])
    assert errors[0]["errorCode"] == "urn:dicom:wado:0001"


def test_zeep_reads_the_metadata_operation(server, sample):
    row = ct(sample)
    client = zeep.Client(f"{server.endpoint}?wsdl")
    result = client.service.ImagingDocumentSource_RetrieveImagingDocumentSetInformation(StudyRequest=[{
        "studyInstanceUID": row["study_uid"], "SeriesRequest": [{"seriesInstanceUID": row["series_uid"],
        "DocumentInformationRequest": [{"DocumentUniqueId": row["sop_instance_uid"],
                                        "XPath": ['string(//DicomAttribute[@keyword="StudyDescription"]/Value)']}]}]}])
    assert result.RegistryResponse.status == SUCCESS
    assert result.DocumentInformationResponse[0].XPathResponseList.XPathResponse == [row["study_description"]]


def test_a_pathological_xpath_is_stopped_and_the_server_keeps_serving(server, sample):
    row = ct(sample)
    slow = "//*[count(//*[count(//*[.='x'])>0])>0]"  # about a minute of libxml2 time on this model
    import time

    started = time.monotonic()
    _, status, errors, _ = ask(server, [(doc(row), [slow], None)])
    assert time.monotonic() - started < 30
    assert errors[0]["errorCode"] == "urn:dicom:wado:0005" and "stopped" in errors[0]["codeContext"]
    _, status, _, _ = ask(server, [(doc(row), ["/"], None)])
    assert status == SUCCESS
