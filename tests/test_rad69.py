"""RAD-69 through a real server: zeep and raw HTTP, byte-exact objects, every error case, XSD-valid answers."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
import requests
import zeep
from lxml import etree

from support import (EXPLICIT_LE, IMPLICIT_LE, WADO, XDS, document_responses, doc, envelope, post, rad69_body, registry,
                     validate_envelope)

SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
WARNING = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning"
ALL_SYNTAXES = [EXPLICIT_LE, IMPLICIT_LE, "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.4.50",
                "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
                "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.5"]


def retrieve(server, documents, syntaxes=ALL_SYNTAXES, **kw):
    reply = post(server.endpoint, envelope(rad69_body(documents, syntaxes, **kw)))
    assert reply.status == 200, reply.raw[:2000]
    mtom = reply.mtom()
    env = reply.envelope()
    validate_envelope(env, mtom.parts)
    status, errors = registry(env)
    return status, errors, document_responses(env), mtom


@pytest.fixture(scope="module")
def zeep_client(server):
    return zeep.Client(f"{server.endpoint}?wsdl")


def zeep_request(rows, syntaxes=ALL_SYNTAXES, **doc_fields):
    studies = {}
    for row in rows:
        series = studies.setdefault(row["study_uid"], {}).setdefault(row["series_uid"], [])
        series.append({"DocumentUniqueId": row["sop_instance_uid"], **doc_fields})
    return dict(
        StudyRequest=[{"studyInstanceUID": st, "SeriesRequest": [
            {"seriesInstanceUID": se, "DocumentRequest": docs} for se, docs in sm.items()]} for st, sm in studies.items()],
        TransferSyntaxUIDList={"TransferSyntaxUID": syntaxes})


def test_wsdl_is_served_with_the_real_address_and_lists_three_operations(server, zeep_client):
    wsdl = requests.get(f"{server.endpoint}?wsdl", timeout=10)
    assert wsdl.status_code == 200
    assert server.endpoint.encode() in wsdl.content
    operations = sorted(zeep_client.service._binding._operations)
    assert operations == ["ImagingDocumentSource_RetrieveImagingDocumentSet",
                          "ImagingDocumentSource_RetrieveImagingDocumentSetInformation",
                          "ImagingDocumentSource_RetrieveRenderedImagingDocumentSet"]


def test_zeep_gets_every_stored_object_byte_for_byte(server, zeep_client, sample):
    result = zeep_client.service.ImagingDocumentSource_RetrieveImagingDocumentSet(**zeep_request(sample))
    assert result.RegistryResponse.status == SUCCESS
    assert [d.DocumentUniqueId for d in result.DocumentResponse] == [r["sop_instance_uid"] for r in sample]
    repository = server.health()["repositoryUniqueId"]
    for row, response in zip(sample, result.DocumentResponse):
        assert response.mimeType == "application/dicom"
        assert response.RepositoryUniqueId == repository
        assert response.Document == row["path"].read_bytes(), row["file"]


def test_many_studies_and_series_in_one_request_keep_request_order(server, sample):
    rows = list(reversed(sample))
    status, errors, docs, mtom = retrieve(server, [doc(r) for r in rows])
    assert status == SUCCESS and errors == []
    assert len({r["study_uid"] for r in rows}) >= 3 and len({r["series_uid"] for r in rows}) >= 5
    assert {d["uid"] for d in docs} == {r["sop_instance_uid"] for r in rows}
    by_uid = {r["sop_instance_uid"]: r for r in rows}
    for d in docs:
        assert mtom.parts[d["cid"]] == by_uid[d["uid"]]["path"].read_bytes()
        assert d["new_uid"] is None


def test_unknown_document_gives_partial_success(server, sample):
    row = sample[0]
    missing = (row["study_uid"], row["series_uid"], "1.2.3.4.5.6.7.8.9")
    status, errors, docs, _ = retrieve(server, [doc(row), missing])
    assert status == PARTIAL
    assert [d["uid"] for d in docs] == [row["sop_instance_uid"]]
    assert [(e["errorCode"], e["location"]) for e in errors] == [("XDSDocumentUniqueIdError", "1.2.3.4.5.6.7.8.9")]
    assert errors[0]["severity"].endswith(":Error") and errors[0]["codeContext"]


def test_nothing_found_is_failure(server, sample):
    row = sample[0]
    status, errors, docs, _ = retrieve(server, [(row["study_uid"], row["series_uid"], "1.2.3.999")])
    assert status == FAILURE and docs == [] and errors[0]["errorCode"] == "XDSDocumentUniqueIdError"


@pytest.mark.parametrize("field", ["study", "series"])
def test_document_in_another_study_or_series_is_refused(server, sample, field):
    a, b = sample[0], next(r for r in sample if r["study_uid"] != sample[0]["study_uid"])
    study = b["study_uid"] if field == "study" else a["study_uid"]
    series = a["series_uid"] if field == "study" else b["series_uid"]
    status, errors, docs, _ = retrieve(server, [(study, series, a["sop_instance_uid"])])
    assert status == FAILURE and errors[0]["errorCode"] == "XDSDocumentUniqueIdError"
    assert field in errors[0]["codeContext"]


def test_repository_uid_is_checked(server, sample):
    ours = server.health()["repositoryUniqueId"]
    status, errors, docs, _ = retrieve(server, [doc(sample[0])], repository=ours)
    assert status == SUCCESS and docs[0]["repository"] == ours
    status, errors, docs, _ = retrieve(server, [doc(sample[0])], repository="1.3.6.1.4.1.21367.13.80.110")
    assert status == FAILURE and errors[0]["errorCode"] == "XDSUnknownRepositoryId"


def test_unknown_home_community_is_refused_and_absent_is_not_echoed(server, sample):
    body = rad69_body([doc(sample[0])]).replace(
        "<ihe:DocumentUniqueId>", "<ihe:HomeCommunityId>urn:oid:1.2.3.4</ihe:HomeCommunityId><ihe:DocumentUniqueId>")
    env = post(server.endpoint, envelope(body)).envelope()
    status, errors = registry(env)
    assert status == FAILURE and errors[0]["errorCode"] == "XDSUnknownCommunity"
    status, errors, docs, mtom = retrieve(server, [doc(sample[0])])
    assert b"HomeCommunityId" not in mtom.root


@pytest.mark.parametrize("blank", ["study", "series", "document"])
def test_empty_uids_are_request_errors(server, sample, blank):
    study, series, sop = doc(sample[0])
    request = {"study": ("", series, sop), "series": (study, "", sop), "document": (study, series, "")}[blank]
    status, errors, docs, _ = retrieve(server, [request])
    assert status == FAILURE and errors[0]["errorCode"] == "XDSIRequestError"


def test_empty_transfer_syntax_list_is_a_request_error(server, sample):
    body = rad69_body([doc(sample[0])]).replace(
        f"<iherad:TransferSyntaxUID>{EXPLICIT_LE}</iherad:TransferSyntaxUID>", "<iherad:TransferSyntaxUID/>")
    status, errors = registry(post(server.endpoint, envelope(body)).envelope())
    assert status == FAILURE and errors[0]["errorCode"] == "XDSIRequestError"


def test_malformed_uid_is_an_invalid_parameter(server, sample):
    study, series, _ = doc(sample[0])
    status, errors, _, _ = retrieve(server, [(study, series, "1.2.abc")])
    assert errors[0]["errorCode"] == "urn:dicom:wado:0012"
    status, errors, _, _ = retrieve(server, [(study, series, "1." + "2" * 70)])
    assert errors[0]["errorCode"] == "urn:dicom:wado:0012" and len(errors[0]["location"]) < 80


@pytest.mark.parametrize("syntax_name", ["JPEG 2000", "RLE", "JPEG-LS", "Deflated", "Implicit"])
def test_transcodes_to_explicit_little_endian_when_stored_syntax_is_not_accepted(server, sample, syntax_name):
    row = next((r for r in sample if syntax_name.lower() in pydicom.uid.UID(r["transfer_syntax_uid"]).name.lower()),
               None)
    if row is None:
        pytest.fail(f"the sample has no {syntax_name} object")
    status, errors, docs, mtom = retrieve(server, [doc(row)], syntaxes=[EXPLICIT_LE])
    assert status == SUCCESS, errors
    got = pydicom.dcmread(io.BytesIO(mtom.parts[docs[0]["cid"]]))
    assert got.file_meta.TransferSyntaxUID == EXPLICIT_LE
    assert got.SOPInstanceUID == row["sop_instance_uid"]
    stored = pydicom.dcmread(row["path"])
    if "PixelData" in stored:
        assert np.array_equal(got.pixel_array, stored.pixel_array)


def test_no_possible_transfer_syntax_is_a_repository_error_naming_the_reason(server, sample):
    row = next(r for r in sample if r["transfer_syntax_uid"] == EXPLICIT_LE and r["modality"] in ("CT", "MR"))
    status, errors, docs, _ = retrieve(server, [doc(row)], syntaxes=["1.2.840.10008.1.2.4.50"])
    assert status == FAILURE and errors[0]["errorCode"] == "XDSRepositoryError"
    assert "JPEG Baseline" in errors[0]["codeContext"]
    assert errors[0]["location"] == row["sop_instance_uid"]


@pytest.mark.parametrize("value", ["maybe", "oui", "2"])
def test_bad_anonymize_value_is_an_invalid_parameter(server, sample, value):
    status, errors, docs, _ = retrieve(server, [doc(sample[0])], anonymize=value)
    assert status == FAILURE and docs == []
    assert errors[0]["errorCode"] == "urn:dicom:wado:0012" and "Anonymize" in errors[0]["codeContext"]


@pytest.mark.parametrize("value", ["no", "false", "0"])
def test_anonymize_no_returns_the_original(server, sample, value):
    status, errors, docs, mtom = retrieve(server, [doc(sample[0])], anonymize=value)
    assert status == SUCCESS
    assert mtom.parts[docs[0]["cid"]] == sample[0]["path"].read_bytes()


def test_frame_number_is_echoed_with_a_warning_and_the_whole_object_returned(server, sample):
    status, errors, docs, mtom = retrieve(server, [doc(sample[0])], frame="1")
    assert status == SUCCESS
    assert [e["severity"] for e in errors] == [WARNING]
    echoed = etree.fromstring(mtom.root).findtext(f".//{{{XDS}}}DocumentResponse/{{{WADO}}}FrameNumber")
    assert echoed == "1"
    assert mtom.parts[docs[0]["cid"]] == sample[0]["path"].read_bytes()


def test_too_many_documents_are_refused_with_resource_limit(server, sample, tmp_path):
    from support import ServerProcess

    limited = ServerProcess(sample[0]["path"].parent, tmp_path, tmp_path / "log",
                            env={"WADOWS_SERVER_MAX_DOCUMENTS": "2", "WADOWS_POLICY_UNAUTHENTICATED": "full"})
    try:
        rows = [r for r in sample if r["path"].parent == sample[0]["path"].parent][:3]
        if len(rows) < 3:
            rows = [sample[0]] * 3
        status, errors, docs, _ = retrieve(limited, [doc(r) for r in rows])
        assert status == FAILURE and errors[0]["errorCode"] == "urn:dicom:wado:0005"
        status, errors, docs, _ = retrieve(limited, [doc(r) for r in rows[:2]])
        assert status == SUCCESS
    finally:
        limited.stop()
