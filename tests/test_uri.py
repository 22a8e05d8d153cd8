"""WADO-URI (GET /wado) through the real server: the same operations as WS mode, HTTP statuses as PS3.18 says."""

from __future__ import annotations

import io
import shutil
import socket
from urllib.parse import urlencode

import pydicom
import pytest
import requests
from PIL import Image

from support import EXPLICIT_LE, ServerProcess
from wadows.sample import IDENTIFYING_STRINGS


def get(server, headers=None, **params):
    return requests.get(f"{server.url}/wado", params={"requestType": "WADO", **params}, headers=headers or {},
                        timeout=60)


def ids(row):
    return {"studyUID": row["study_uid"], "seriesUID": row["series_uid"], "objectUID": row["sop_instance_uid"]}


def row_of(sample, modality, ts=None):
    return next(r for r in sample if r["modality"] == modality and (ts is None or r["transfer_syntax_uid"] == ts))


def test_dicom_as_stored_with_any_transfer_syntax(server, sample):
    for row in sample:
        reply = get(server, contentType="application/dicom", transferSyntax="*", **ids(row))
        assert reply.status_code == 200 and reply.headers["Content-Type"] == "application/dicom"
        assert reply.content == row["path"].read_bytes(), row["file"]
        if server.store_kind == "folder":  # a PACS does not tell the size before sending the object
            assert int(reply.headers["Content-Length"]) == len(reply.content)


def test_head_sends_the_headers_only(server, sample):
    """The stored file goes out with sendfile(2) on GET; on HEAD not one byte of it may follow the headers
    (read off a raw socket: an HTTP library would hide stray bytes by opening a new connection)."""
    row = row_of(sample, "CT")
    query = urlencode({"requestType": "WADO", "contentType": "application/dicom", "transferSyntax": "*", **ids(row)})
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(f"HEAD /wado?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        received = b""
        while b"\r\n\r\n" not in received:
            received += sock.recv(65536)
        sock.settimeout(1.0)
        try:
            received += sock.recv(65536)
        except TimeoutError:
            pass
    head, _, rest = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and rest == b"", (head, len(rest))


def test_dicom_defaults_to_explicit_little_endian(server, sample):
    row = next(r for r in sample if r["transfer_syntax_uid"] not in (EXPLICIT_LE,) and r["modality"] == "MR")
    reply = get(server, contentType="application/dicom", **ids(row))
    assert reply.status_code == 200
    assert pydicom.dcmread(io.BytesIO(reply.content)).file_meta.TransferSyntaxUID == EXPLICIT_LE


def test_impossible_transfer_syntax_is_406(server, sample):
    reply = get(server, contentType="application/dicom", transferSyntax="1.2.840.10008.1.2.4.50",
                **ids(row_of(sample, "CT")))
    assert reply.status_code == 406 and "JPEG Baseline" in reply.text


def test_anonymized_dicom(server, sample):
    row = row_of(sample, "CT")
    reply = get(server, contentType="application/dicom", anonymize="yes", **ids(row))
    assert reply.status_code == 200
    ds = pydicom.dcmread(io.BytesIO(reply.content))
    assert ds.SOPInstanceUID != row["sop_instance_uid"] and ds.PatientIdentityRemoved == "YES"
    raw = reply.content.lower() + str(reply.headers).lower().encode()
    assert [s for s in IDENTIFYING_STRINGS if s.lower().encode() in raw] == []
    assert row["study_uid"].encode() not in reply.content


def test_refused_anonymization_is_422_with_a_reason(server, sample):
    reply = get(server, contentType="application/dicom", anonymize="yes", frameNumber=None, **ids(row_of(sample, "US")))
    assert reply.status_code == 422 and "burned-in" in reply.text and reply.headers["Content-Type"].startswith("text/")


@pytest.mark.parametrize("params,message", [
    ({"contentType": "image/jpeg", "anonymize": "yes"}, "only with contentType=application/dicom"),
    ({"anonymize": "yes"}, "only with contentType=application/dicom"),
    ({"contentType": "application/dicom", "anonymize": "YES"}, 'exactly the value "yes"'),
    ({"contentType": "application/dicom", "anonymize": "true"}, 'exactly the value "yes"'),
    ({"StudyUID": "1.2.3"}, "unknown parameter"),
    ({"contentType": "application/dicom", "rows": "64"}, "do not apply"),
    ({"contentType": "image/png", "transferSyntax": EXPLICIT_LE}, "apply only"),
])
def test_bad_requests_are_400_with_a_clear_message(server, sample, params, message):
    reply = get(server, **ids(row_of(sample, "CT")), **params)
    assert reply.status_code == 400 and message in reply.text


def test_missing_and_malformed_identifiers_are_400_unknown_404(server, sample):
    row = row_of(sample, "CT")
    assert requests.get(f"{server.url}/wado", params=ids(row), timeout=10).status_code == 400  # no requestType
    assert get(server, studyUID=row["study_uid"], seriesUID=row["series_uid"]).status_code == 400
    assert get(server, **{**ids(row), "objectUID": "1.2.x"}).status_code == 400
    assert get(server, contentType="application/dicom", **{**ids(row), "objectUID": "1.2.3.404"}).status_code == 404
    repeated = requests.get(f"{server.url}/wado?requestType=WADO&studyUID=1.2&studyUID=1.3&seriesUID=1&objectUID=1",
                            timeout=10)
    assert repeated.status_code == 400 and "more than once" in repeated.text


def test_rendered_by_default_and_every_rendering_parameter(server, sample):
    ct = row_of(sample, "CT")
    reply = get(server, **ids(ct))
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "image/jpeg"
    reply = get(server, contentType="image/png", rows="64", region="0,0,0.5,0.5", windowCenter="40",
                windowWidth="400", annotation="technique", **ids(ct))
    assert reply.status_code == 200 and Image.open(io.BytesIO(reply.content)).size == (64, 64)
    reply = get(server, headers={"Accept": "image/png"}, **ids(ct))
    assert reply.headers["Content-Type"] == "image/png"
    assert get(server, headers={"Accept": "application/pdf"}, contentType="image/jpeg", **ids(ct)).status_code == 406
    assert get(server, windowCenter="40", **ids(ct)).status_code == 400


def test_report_as_html_and_multi_frame_needs_a_frame(server, sample):
    sr = row_of(sample, "SR")
    reply = get(server, contentType="text/html", charset="utf-8", **ids(sr))
    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/html")
    us = row_of(sample, "US")
    assert get(server, contentType="image/jpeg", **ids(us)).status_code == 406
    assert get(server, contentType="image/jpeg", frameNumber="99", **ids(us)).status_code == 400
    assert get(server, contentType="image/jpeg", frameNumber="2", **ids(us)).status_code == 200


def test_deleted_object_is_410(store_dir, sample, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(store_dir / "sample", store)
    server = ServerProcess(store, tmp_path / "data", tmp_path / "log", ["--unauthenticated", "full"])
    try:
        row = row_of(sample, "CT")
        next(store.rglob(row["file"].split("/")[-2] + "/*.dcm")).unlink()
        reply = get(server, contentType="application/dicom", **ids(row))
        assert reply.status_code == 410
        log = server.log()
        assert row["sop_instance_uid"] not in log and row["study_uid"] not in log
    finally:
        server.stop()
