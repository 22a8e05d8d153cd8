"""A stored object whose broken value makes pydicom raise with the value in its message: the request gets a
per-document answer, and neither our log nor the libraries' (spyne, pydicom, gunicorn) carries the value."""

from __future__ import annotations

import pydicom
import pytest
import requests
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from support import ServerProcess, envelope, post, rad69_body, registry

PLANTED = b"DOE^JANE1"


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    root = tmp_path_factory.mktemp("broken")
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    # Smallest Image Pixel Value (US) with 9 bytes: pydicom refuses to convert it and quotes the bytes.
    ds[0x00280106] = RawDataElement(Tag(0x00280106), "US", len(PLANTED), PLANTED, 0, False, True)
    path = root / "store" / "broken.dcm"
    path.parent.mkdir()
    ds.save_as(path, enforce_file_format=True)
    server = ServerProcess(root / "store", root / "data", root / "log", ["--unauthenticated", "full"])
    yield server, (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    server.stop()


def test_broken_values_stay_out_of_every_log(broken):
    server, ids = broken
    for anonymize in ("yes", None):
        reply = post(server.endpoint, envelope(rad69_body([ids], anonymize=anonymize)))
        assert reply.status == 200
        registry(reply.envelope())
        if anonymize:  # text hidden in a number's bytes does not survive anonymization either
            assert PLANTED not in reply.raw
    information = (f'<wado:RetrieveImagingDocumentSetInformationRequest xmlns:wado="urn:dicom:wado:ws:2011" '
                   f'xmlns:ihe="urn:ihe:iti:xds-b:2007"><wado:StudyRequest studyInstanceUID="{ids[0]}">'
                   f'<wado:SeriesRequest seriesInstanceUID="{ids[1]}"><wado:DocumentInformationRequest>'
                   f'<ihe:DocumentUniqueId>{ids[2]}</ihe:DocumentUniqueId><wado:Anonymize>yes</wado:Anonymize>'
                   f'<wado:XPath>/</wado:XPath></wado:DocumentInformationRequest></wado:SeriesRequest>'
                   f'</wado:StudyRequest></wado:RetrieveImagingDocumentSetInformationRequest>')
    reply = post(server.endpoint, envelope(information,
                                           action="urn:dicom:wado:ws:2011:RetrieveImagingDocumentSetInformation"))
    assert reply.status == 200
    for params in ({"contentType": "application/dicom", "anonymize": "yes"}, {"contentType": "image/png"}):
        answer = requests.get(f"{server.url}/wado", timeout=30, params={
            "requestType": "WADO", "studyUID": ids[0], "seriesUID": ids[1], "objectUID": ids[2], **params})
        assert answer.status_code in (200, 422, 500, 503)
        if "anonymize" in params:
            assert PLANTED not in answer.content
    log = server.log().encode()
    assert PLANTED not in log and b"DOE" not in log
    assert ids[2].encode() not in log and ids[0].encode() not in log


def test_indexing_logs_no_path_even_at_debug_level(tmp_path, caplog):
    """Store paths often spell the patient ("DOE^JOHN/CT/1.dcm"): not even DEBUG lines of the indexer carry them.
    The index keeps the skipped files (path and reason) for the operator in its own table."""
    import logging
    import shutil

    from wadows.store.folder import FolderStore

    folder = tmp_path / "store" / "QZXDOE^QZXJOHN"
    (folder / "unlistable").mkdir(parents=True)
    ct = get_testdata_file("CT_small.dcm")
    shutil.copy(ct, folder / "QZXDOE-ct.dcm")
    shutil.copy(ct, folder / "QZXDOE-duplicate.dcm")
    (folder / "QZXDOE-notes.txt").write_text("not DICOM")
    (folder / "QZXDOE-cut.dcm").write_bytes(open(ct, "rb").read()[:200])
    (folder / "unlistable").chmod(0)
    try:
        with caplog.at_level(logging.DEBUG):
            summary = FolderStore(tmp_path / "store", tmp_path / "index.sqlite3").refresh()
    finally:
        (folder / "unlistable").chmod(0o755)
    assert summary.duplicates == 1 and summary.skipped_non_dicom + summary.skipped_unreadable >= 2
    assert caplog.records, "nothing was logged: the test would prove nothing"
    assert "QZX" not in caplog.text
